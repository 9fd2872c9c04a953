"""Two benchmark runs side by side: configurations paired by identity, each figure's difference
(B − A, absolute and relative to A), and whether it is significant.

The test: **Welch's t-test** (two-sided, `scipy.stats.ttest_ind(equal_var=False)`) on the runs'
values. Why Welch's and not Mann-Whitney U: a benchmark has few repeats per configuration (MLPerf
asks for 5, the DAG's default is 1), and at 3 runs a side the smallest two-sided p-value
Mann-Whitney U can give is 0.1, so it could never call a difference significant; Welch's test
works from 2 runs a side and does not assume both sides vary alike (a change may make timings
steadier or noisier). It assumes roughly normal means, which skewed timings with an outlier
violate: a small p-value with an outlier in the table deserves a rerun. The hit rate is a count of
runs that reached the target, not a measurement, so it takes **Fisher's exact test** on the
reached/missed counts. A difference is significant when p < alpha (default 0.05); every figure is
tested on its own (no correction for testing many), so among 20 figures one is expected below 0.05
by chance. With fewer than 2 runs on a side nothing is tested.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from operators.compare.samples import ConfigurationKey, Figure, RunSample, repeatless_config, run_figures
from operators.tracking.values import flatten_params

__all__ = ["Side", "Significance", "FigureComparison", "ConfigurationComparison", "BenchmarkSide", "Comparison",
           "compare", "significance"]

DEFAULT_ALPHA = 0.05
MIN_RUNS = 2  # per side, to test anything
_MAX_CHANGES = 8  # config fields listed per configuration; the rest are counted


@dataclass(frozen=True)
class Side:
    """One side's values of a figure (one per run that has it)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if self.n >= 2 else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "values": list(self.values)}


@dataclass(frozen=True)
class Significance:
    test: str | None  # "Welch's t-test" | "Fisher's exact test"; None: not tested
    p_value: float | None
    significant: bool | None
    note: str | None = None  # why it was not tested


@dataclass(frozen=True)
class FigureComparison:
    figure: Figure
    a: Side
    b: Side
    difference: float | None  # mean(B) - mean(A)
    percent: float | None  # difference / mean(A), in %
    significance: Significance
    verdict: str  # better | worse | no significant difference | not tested | same | -

    def to_dict(self) -> dict[str, Any]:
        return {"figure": asdict(self.figure), "a": self.a.to_dict(), "b": self.b.to_dict(),
                "difference": self.difference, "percent": self.percent,
                "significance": asdict(self.significance), "verdict": self.verdict}


@dataclass(frozen=True)
class ConfigurationComparison:
    key: ConfigurationKey
    runs_a: tuple[str, ...]  # run ids
    runs_b: tuple[str, ...]
    failed_a: int
    failed_b: int
    figures: tuple[FigureComparison, ...]
    config_changes: tuple[str, ...] = ()  # `field: A -> B` where the repeat-less configs differ

    def to_dict(self) -> dict[str, Any]:
        return {"key": asdict(self.key), "runs_a": list(self.runs_a), "runs_b": list(self.runs_b),
                "failed_a": self.failed_a, "failed_b": self.failed_b,
                "figures": [figure.to_dict() for figure in self.figures], "config_changes": list(self.config_changes)}


@dataclass(frozen=True)
class BenchmarkSide:
    """What one side names: the reference given, the DAG run, its parent runs and their children."""

    reference: str
    dag_run_id: str | None
    parent_run_ids: tuple[str, ...]
    samples: tuple[RunSample, ...] = field(repr=False)

    def git_shas(self) -> list[str]:
        shas = {s.result.provenance_record.git_sha for s in self.samples if s.result is not None}
        return sorted(sha for sha in shas if sha)

    def summary(self) -> dict[str, Any]:
        return {"reference": self.reference, "dag_run_id": self.dag_run_id,
                "parent_run_ids": list(self.parent_run_ids), "git_shas": self.git_shas(), "runs": len(self.samples)}


@dataclass(frozen=True)
class Comparison:
    a: BenchmarkSide
    b: BenchmarkSide
    alpha: float
    configurations: tuple[ConfigurationComparison, ...]
    only_a: tuple[ConfigurationKey, ...]
    only_b: tuple[ConfigurationKey, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.summary(), "b": self.b.summary(), "alpha": self.alpha,
                "configurations": [c.to_dict() for c in self.configurations],
                "only_a": [asdict(k) for k in self.only_a], "only_b": [asdict(k) for k in self.only_b]}


def significance(figure: Figure, a: Side, b: Side, alpha: float = DEFAULT_ALPHA) -> Significance:
    """The figure's test on both sides' values (see the module docstring for which and why)."""
    from scipy import stats

    if a.n < MIN_RUNS or b.n < MIN_RUNS:
        return Significance(None, None, None, f"needs at least {MIN_RUNS} runs a side")
    if figure.test == "fisher":
        hits_a, hits_b = round(sum(a.values)), round(sum(b.values))
        p = float(stats.fisher_exact([[hits_a, a.n - hits_a], [hits_b, b.n - hits_b]]).pvalue)
        return Significance("Fisher's exact test", p, p < alpha)
    if a.sd == 0 and b.sd == 0:  # identical repeats: the t statistic is undefined
        return Significance(None, None, None, "every run on each side has the same value")
    p = float(stats.ttest_ind(a.values, b.values, equal_var=False).pvalue)
    return Significance("Welch's t-test", p, p < alpha) if math.isfinite(p) else Significance(
        None, None, None, "the test is undefined for these values")


def _verdict(figure: Figure, difference: float | None, tested: Significance) -> str:
    if difference is None:
        return "-"
    if tested.significant is None:
        return "same" if difference == 0 else "not tested"
    if not tested.significant:
        return "no significant difference"
    return "better" if (difference < 0) == figure.lower_is_better else "worse"


def compare_figure(figure: Figure, a: Side, b: Side, alpha: float = DEFAULT_ALPHA) -> FigureComparison:
    mean_a, mean_b = a.mean, b.mean
    difference = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    percent = 100 * difference / abs(mean_a) if difference is not None and mean_a else None
    tested = significance(figure, a, b, alpha)
    return FigureComparison(figure, a, b, difference, percent, tested, _verdict(figure, difference, tested))


def _values(samples: list[RunSample]) -> tuple[dict[str, Figure], dict[str, list[float]]]:
    """Figures in order of first appearance, and each one's values over the runs."""
    figures: dict[str, Figure] = {}
    values: dict[str, list[float]] = {}
    for sample in samples:
        for figure, value in run_figures(sample):
            figures.setdefault(figure.name, figure)
            values.setdefault(figure.name, []).append(value)
    return figures, values


def config_changes(a: list[RunSample], b: list[RunSample]) -> tuple[str, ...]:
    """`field: A -> B` for each config field whose value differs between the sides (seed aside: repeats
    differ by seed); a side whose repeats disagree on a field shows them all."""
    def values(samples: list[RunSample]) -> dict[str, set[str]]:
        fields: dict[str, set[str]] = {}
        for config in filter(None, map(repeatless_config, samples)):
            for name, value in flatten_params(config).items():
                fields.setdefault(name, set()).add(value)
        return fields

    side_a, side_b = values(a), values(b)
    if not side_a or not side_b:
        return ()
    changed = [name for name in sorted(set(side_a) | set(side_b)) if side_a.get(name) != side_b.get(name)]

    def shown(found: set[str] | None) -> str:
        return " / ".join(sorted(found)) if found else "(absent)"

    lines = [f"{name}: {shown(side_a.get(name))} -> {shown(side_b.get(name))}" for name in changed[:_MAX_CHANGES]]
    if len(changed) > _MAX_CHANGES:
        lines.append(f"... and {len(changed) - _MAX_CHANGES} more field(s)")
    return tuple(lines)


def compare_configuration(key: ConfigurationKey, a: list[RunSample], b: list[RunSample],
                          alpha: float = DEFAULT_ALPHA) -> ConfigurationComparison:
    figures_a, values_a = _values(a)
    figures_b, values_b = _values(b)
    figures = {**figures_a, **{name: f for name, f in figures_b.items() if name not in figures_a}}
    compared = tuple(compare_figure(figure, Side(tuple(values_a.get(name, ()))), Side(tuple(values_b.get(name, ()))),
                                    alpha) for name, figure in figures.items())
    return ConfigurationComparison(
        key=key, runs_a=tuple(s.run_id for s in a), runs_b=tuple(s.run_id for s in b),
        failed_a=sum(1 for s in a if not s.usable), failed_b=sum(1 for s in b if not s.usable),
        figures=compared, config_changes=config_changes(a, b))


def _by_key(samples: tuple[RunSample, ...]) -> dict[ConfigurationKey, list[RunSample]]:
    groups: dict[ConfigurationKey, list[RunSample]] = {}
    for sample in samples:
        groups.setdefault(sample.key, []).append(sample)
    return groups


def compare(a: BenchmarkSide, b: BenchmarkSide, alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Every configuration both sides ran, compared; those only one side ran, listed."""
    groups_a, groups_b = _by_key(a.samples), _by_key(b.samples)
    shared = sorted(set(groups_a) & set(groups_b))
    return Comparison(
        a=a, b=b, alpha=alpha,
        configurations=tuple(compare_configuration(key, groups_a[key], groups_b[key], alpha) for key in shared),
        only_a=tuple(sorted(set(groups_a) - set(groups_b))), only_b=tuple(sorted(set(groups_b) - set(groups_a))))
