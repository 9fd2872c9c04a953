"""Every plot of the project, drawn with matplotlib's Agg backend and object API only (no pyplot
global state: these run inside Airflow workers and after `mlbench allreduce`).

matplotlib is imported lazily inside `figure`, so importing this module is cheap.

- `figure`, `save`: the one figure set-up (size in inches, 100 dpi, constrained layout) and PNG output;
- one run: `plot_curves` (a training run's loss and metric per epoch), `plot_result` (one task-0
  sweep's latency and bus bandwidth per dtype), both drawn from a `result.json`;
- comparisons across a DAG run's configurations: `plot_scaling` (speedup and efficiency over worker
  counts), `plot_time_bars` (compute / communication / other time per configuration) and
  `plot_series` (latency and bus bandwidth curves, one line per series).

The comparison plots take plain rows (dicts); they know nothing of how the pipeline built them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tasks.runtime.history import EpochRecord, Evaluation
from tasks.runtime.results import Measurement, SweepResult, TrainingResult, finite_number

__all__ = [
    "figure",
    "save",
    "plot_curves",
    "by_dtype",
    "plot_series",
    "plot_result",
    "plot_scaling",
    "plot_time_bars",
]


def figure(width: float, height: float, *, layout: str | None = "constrained"):
    """A new matplotlib Figure (Agg backend) of `width` x `height` inches at 100 dpi; constrained
    layout unless `layout` is None (fixed margins: one draw instead of two, for many small panels)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout=layout)


def save(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (parent directories created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")


# ---------------------------------------------------------------------------------------------
# One training run
# ---------------------------------------------------------------------------------------------

def _epoch_series(history: list[EpochRecord], value_of: Callable[[EpochRecord], float | None]
                  ) -> tuple[list[int], list[float]]:
    """The epochs of `history` where `value_of(epoch)` is finite, and those values."""
    points = [(entry.epoch, finite_number(value_of(entry))) for entry in history]
    kept = [(epoch, value) for epoch, value in points if value is not None]
    return [p[0] for p in kept], [p[1] for p in kept]


def _evaluation_series(history: list[EpochRecord], value_of: Callable[[Evaluation], float | None]
                       ) -> tuple[list[float], list[float]]:
    """Every evaluation's position in epochs (inside epochs too) where `value_of` is finite, and those values."""
    points = [(e.position, finite_number(value_of(e))) for entry in history for e in entry.evaluations()]
    kept = [(position, value) for position, value in points if value is not None]
    return [p[0] for p in kept], [p[1] for p in kept]


def _curves_title(result: TrainingResult) -> str:
    title = f"{result.task} {result.algorithm} w{result.world_size}: {result.status}"
    if result.goal_reached and finite_number(result.time_to_accuracy_s) is not None:
        title += f", target reached in {result.time_to_accuracy_s:.2f} s"
    elif result.reason:
        title += f" ({result.reason[:60]})"
    return title


def plot_curves(result: TrainingResult, path: str | Path, companions: tuple[str, ...] = ()) -> Path:
    """Training loss and validation metric per epoch of one run, with the target as a line.

    Loss on the left axis, metric on the right, with the `companions` (other validation metrics on the
    metric's scale, e.g. translation's per-batch BLEU beside its corpus BLEU); validation figures at every
    evaluation, inside epochs too (at 2.3: 30 % into the third epoch); epochs without a value (diverged,
    not evaluated) are left out. A run without any epoch gives a plot that says so.
    """
    history, target = result.history, result.target
    fig = figure(8, 4.5)
    ax_loss = fig.subplots()
    ax_metric = ax_loss.twinx()

    handles = []
    epochs, losses = _epoch_series(history, lambda e: e.train_loss)
    if epochs:
        handles += ax_loss.plot(epochs, losses, "-o", color="C0", markersize=3, label="train loss")
    epochs, losses = _evaluation_series(history, lambda e: e.loss)
    if epochs:
        handles += ax_loss.plot(epochs, losses, "--", color="C0", alpha=0.6, label="validation loss")
    metric_name = target.metric
    epochs, metrics = _evaluation_series(history, lambda e: e.metric)
    if epochs:
        handles += ax_metric.plot(epochs, metrics, "-s", color="C2", markersize=3,
                                  label=f"validation {metric_name}")
    for color, name in enumerate(companions, start=4):
        epochs, values = _evaluation_series(history, lambda e, name=name: e.metrics.get(name))
        if epochs:
            handles += ax_metric.plot(epochs, values, "-^", color=f"C{color}", markersize=3, alpha=0.8,
                                      label=f"validation {name}")
    target_value = finite_number(target.value)
    if target_value is not None:
        handles.append(ax_metric.axhline(target_value, color="C3", linestyle=":",
                                         label=f"target {metric_name} {target_value:g}"))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss", color="C0")
    ax_metric.set_ylabel(f"validation {metric_name}", color="C2")
    ax_loss.grid(True, alpha=0.3)
    ax_loss.set_title(_curves_title(result), fontsize="medium")
    if handles:
        ax_loss.legend(handles=handles, fontsize="small", loc="center right")
    if not history:
        _no_data(ax_loss, "no epoch completed")
    return save(fig, path)


# ---------------------------------------------------------------------------------------------
# Task 0: latency and bus bandwidth over tensor size
# ---------------------------------------------------------------------------------------------

def by_dtype(measurements: list[Measurement]) -> dict[str, list[Measurement]]:
    """dtype -> its measurement rows, in the order measured."""
    series: dict[str, list[Measurement]] = {}
    for row in measurements:
        series.setdefault(row.dtype, []).append(row)
    return series


def plot_series(series: dict[str, list[Measurement]], path: str | Path, title: str) -> Path:
    """Latency (median, p10-p90 band) and bus bandwidth over tensor size in bytes, one line per series.

    `series` maps a label (a dtype, or world size and dtype) to its measurement rows.
    """
    fig = figure(11, 4.2)
    latency_axis, bandwidth_axis = fig.subplots(1, 2)
    any_traffic = False
    for label, rows in series.items():
        rows = sorted(rows, key=lambda r: r.bytes)
        sizes = [r.bytes for r in rows]
        line, = latency_axis.plot(sizes, [r.latency_median_s * 1e3 for r in rows], marker=".", label=label)
        latency_axis.fill_between(sizes, [r.latency_p10_s * 1e3 for r in rows],
                                  [r.latency_p90_s * 1e3 for r in rows], alpha=0.2, color=line.get_color())
        moving = [r for r in rows if r.busbw_gbps > 0]  # one rank moves no data: no bus bandwidth
        if moving:
            any_traffic = True
            bandwidth_axis.plot([r.bytes for r in moving], [r.busbw_gbps for r in moving], marker=".",
                                label=label)
    for axis, label, drawn, empty in (
        (latency_axis, "latency, ms (median, p10-p90)", bool(series), "nothing measured"),
        (bandwidth_axis, "bus bandwidth, GB/s", any_traffic,
         "one rank: no bus traffic" if series else "nothing measured"),
    ):
        axis.set_xscale("log")
        axis.set_xlabel("tensor size, bytes")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if drawn:
            axis.set_yscale("log")
            axis.legend(fontsize="small")
        else:
            _no_data(axis, empty)
    fig.suptitle(title)
    return save(fig, path)


def plot_result(result: SweepResult, path: str | Path) -> Path:
    """One sweep's curves per dtype, titled with its backend, world size and device."""
    title = (f"all-reduce ({result.config.get('op', 'sum')}), {result.backend}, "
             f"{result.world_size} ranks, {result.device}: {result.status}")
    return plot_series(by_dtype(result.measurements), path, title)


# ---------------------------------------------------------------------------------------------
# Training comparison across configurations
# ---------------------------------------------------------------------------------------------

def plot_scaling(rows: list[dict], path: str | Path) -> Path:
    """Speedup and efficiency over worker counts, total (solid) and compute-only (dashed).

    `rows`: comparison rows (`task`, `algorithm`, `world_size`, `speedup`, `efficiency`,
    `compute_speedup`, `compute_efficiency`). One line per task and algorithm, with the ideal
    (linear speedup, efficiency 1) as a dotted line. Rows without a speedup (goal not reached, no
    1-worker baseline) are left out; a plot with nothing to show says so.
    """
    fig = figure(11, 4.2)
    ax_speed, ax_eff = fig.subplots(1, 2)
    series: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        series.setdefault((row["task"], row["algorithm"]), []).append(row)
    several_tasks = len({task for task, _ in series}) > 1
    workers = sorted({int(row["world_size"]) for row in rows}) or [1]
    plotted = False
    for index, ((task, algorithm), group) in enumerate(sorted(series.items())):
        group = sorted(group, key=lambda r: r["world_size"])
        color = f"C{index % 10}"
        name = f"{task} {algorithm}" if several_tasks else algorithm
        for key_speed, key_eff, style, suffix in (
            ("speedup", "efficiency", "-o", "total"),
            ("compute_speedup", "compute_efficiency", "--s", "compute only"),
        ):
            points = [(r["world_size"], r[key_speed], r[key_eff]) for r in group
                      if r.get(key_speed) is not None]
            if not points:
                continue
            plotted = True
            xs = [p[0] for p in points]
            ax_speed.plot(xs, [p[1] for p in points], style, color=color, label=f"{name} ({suffix})")
            ax_eff.plot(xs, [p[2] for p in points], style, color=color, label=f"{name} ({suffix})")
    ax_speed.plot(workers, workers, ":", color="grey", label="ideal")
    ax_eff.plot(workers, [1.0] * len(workers), ":", color="grey", label="ideal")
    for ax, ylabel in ((ax_speed, "speedup vs 1 worker"), (ax_eff, "efficiency (speedup / workers)")):
        ax.set_xlabel("workers")
        ax.set_ylabel(ylabel)
        ax.set_xticks(workers)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_ylim(bottom=0)
    ax_speed.set_title("Speedup (time to accuracy)")
    ax_eff.set_title("Efficiency")
    if not plotted:
        for ax in (ax_speed, ax_eff):
            _no_data(ax, "no speedup: no 1-worker baseline\nor goal not reached")
    return save(fig, path)


def plot_time_bars(bars: list[dict], path: str | Path) -> Path:
    """Stacked compute / communication / other training time, one bar per configuration.

    `bars`: per configuration, in order, `label`, `compute_s`, `communication_s`, `train_time_s`
    (None counts as 0) and `status`: `succeeded`, `failed` or `no result`. 'other' is the rest of
    the training time (host-to-device data copies). Failed configurations are hatched and marked,
    one without a result shows an empty slot labelled 'no result', so every configuration appears.
    """
    fig = figure(max(6.0, 0.65 * len(bars) + 2.5), 4.5)
    ax = fig.subplots()
    computes = [bar.get("compute_s") or 0.0 for bar in bars]
    comms = [bar.get("communication_s") or 0.0 for bar in bars]
    others = [max(0.0, (bar.get("train_time_s") or 0.0) - compute - comm)
              for bar, compute, comm in zip(bars, computes, comms, strict=True)]
    xs = list(range(len(bars)))
    bars_compute = ax.bar(xs, computes, label="compute", color="C0")
    bars_comm = ax.bar(xs, comms, bottom=computes, label="communication", color="C1")
    bottoms = [a + b for a, b in zip(computes, comms, strict=True)]
    bars_other = ax.bar(xs, others, bottom=bottoms, label="other (data)", color="C7", alpha=0.6)
    top = max([b + o for b, o in zip(bottoms, others, strict=True)] + [1e-9])
    for x, bar, total in zip(xs, bars, [b + o for b, o in zip(bottoms, others, strict=True)], strict=True):
        if bar["status"] == "succeeded":
            if total > 0:
                share = comms[x] / (computes[x] + comms[x]) if computes[x] + comms[x] > 0 else 0.0
                ax.text(x, total, f"{100 * share:.0f}%", ha="center", va="bottom", fontsize="x-small")
            continue
        for drawn in (bars_compute, bars_comm, bars_other):
            drawn[x].set_hatch("//")
            drawn[x].set_alpha(0.5)
        ax.text(x, total + 0.02 * top, bar["status"], ha="center", va="bottom", fontsize="x-small",
                color="C3", rotation=90)
    ax.set_xticks(xs)
    ax.set_xticklabels([bar["label"] for bar in bars], rotation=45 if len(xs) > 6 else 0,
                       ha="right" if len(xs) > 6 else "center", fontsize="small")
    ax.set_ylabel("training time (s, summed over steps)")
    ax.set_title("Compute / communication split per configuration")
    ax.set_xlabel("configuration (bar label: communication share)")
    ax.set_ylim(0, top * 1.25)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    if not bars:
        ax.text(0.5, 0.5, "no configurations", transform=ax.transAxes, ha="center", va="center")
    return save(fig, path)
