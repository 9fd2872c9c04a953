"""A `Comparison` as Markdown, to paste into a pull request: a header naming both sides, then per
configuration a table of its figures (A, B, B − A, %, significance) and what differs in its config."""

from __future__ import annotations

from operators.compare.pairing import BenchmarkSide, Comparison, ConfigurationComparison, FigureComparison, Side

__all__ = ["to_markdown"]


def _number(value: float) -> str:
    """4 significant digits, thousands grouped from 1,000 up (throughputs, large bandwidths)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


_SECONDS = {"s": 1.0, "ms": 1e-3}  # time units a figure may be in
_SCALES = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"))


def _scale(row: FigureComparison) -> tuple[float, str]:
    """A time figure's row in the unit of its larger mean (0.0467 s as 46.7 ms): (factor, unit)."""
    unit = row.figure.unit
    if unit not in _SECONDS:
        return 1.0, unit
    means = [abs(m) * _SECONDS[unit] for m in (row.a.mean, row.b.mean) if m is not None]
    seconds = next((size for size, _ in _SCALES if max(means, default=1.0) >= size), _SCALES[-1][0])
    return _SECONDS[unit] / seconds, dict(_SCALES)[seconds]


def _value(side: Side, row: FigureComparison) -> str:
    """The side's mean with its unit, spread and count: `9.12 s ± 0.31 (n=3)`; a rate as `67% (2/3)`."""
    if side.mean is None:
        return "-"
    if row.figure.unit == "%":
        return f"{100 * side.mean:.0f}% ({round(sum(side.values))}/{side.n})"
    factor, unit = _scale(row)
    sd = side.sd * factor if side.sd is not None else None
    # two significant digits are as many as a spread over a few runs supports
    spread = "" if sd is None else f" ± {sd:,.0f}" if sd >= 100 else f" ± {sd:.2g}"
    return f"{_number(side.mean * factor)} {unit}{spread} (n={side.n})"


def _difference(row: FigureComparison) -> tuple[str, str]:
    if row.difference is None:
        return "-", "-"
    sign = "+" if row.difference > 0 else ""
    if row.figure.unit == "%":  # a rate's difference is in percentage points
        absolute = f"{sign}{100 * row.difference:.0f} pp"
    else:
        factor, unit = _scale(row)
        absolute = f"{sign}{_number(row.difference * factor)} {unit}"
    percent = "-" if row.percent is None else f"{'+' if row.percent > 0 else ''}{row.percent:.1f}%"
    return absolute, percent


def _significance(row: FigureComparison) -> str:
    tested = row.significance
    if tested.p_value is None:
        return row.verdict if row.verdict in ("same", "-") else f"not tested: {tested.note}"
    test = "Welch" if tested.test == "Welch's t-test" else "Fisher"
    verdict = f"**{row.verdict}**" if tested.significant else row.verdict
    return f"{verdict} (p = {tested.p_value:.3g}, {test})"


def _side_line(name: str, side: BenchmarkSide) -> str:
    what = f"DAG run `{side.dag_run_id}`" if side.dag_run_id else f"`{side.reference}`"
    parents = ", ".join(f"`{run_id}`" for run_id in side.parent_run_ids)
    shas = ", ".join(f"`{sha[:12]}`" for sha in side.git_shas()) or "unknown"
    return f"- **{name}**: {what} (parent run {parents}; {len(side.samples)} configuration run(s); git {shas})"


def _configuration(config: ConfigurationComparison) -> list[str]:
    runs = (f"A: {len(config.runs_a)} run(s), {config.failed_a} failed · "
            f"B: {len(config.runs_b)} run(s), {config.failed_b} failed")
    lines = [f"### {config.key.label}", "", runs, "",
             "| figure | A | B | B − A | % | significance |", "|---|---:|---:|---:|---:|---|"]
    for row in config.figures:
        absolute, percent = _difference(row)
        lines.append(f"| {row.figure.label} | {_value(row.a, row)} | {_value(row.b, row)} "
                     f"| {absolute} | {percent} | {_significance(row)} |")
    if not config.figures:
        lines.append("| (no figures: no run completed) | | | | | |")
    if config.config_changes:
        lines += ["", "Config differs (A -> B): " + "; ".join(f"`{change}`" for change in config.config_changes)]
    return lines + [""]


def to_markdown(comparison: Comparison) -> str:
    """The whole comparison as Markdown (ends with a newline)."""
    lines = ["## mlbench compare", "", _side_line("A", comparison.a), _side_line("B", comparison.b), "",
             f"Each figure: mean ± standard deviation over the runs that have it; B − A and % of A. "
             f"Significant: p < {comparison.alpha:g}, Welch's t-test (hit rate: Fisher's exact test), "
             f"with at least 2 runs a side.", ""]
    for config in comparison.configurations:
        lines += _configuration(config)
    if not comparison.configurations:
        lines += ["No configuration ran on both sides.", ""]
    for name, keys in (("A", comparison.only_a), ("B", comparison.only_b)):
        if keys:
            lines += [f"Only in {name}: " + "; ".join(key.label for key in keys), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
