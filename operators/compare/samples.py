"""One side's runs as `mlbench compare` sees them: each configuration run (`RunSample`) under the
identity its repeats share (`ConfigurationKey`), and the figures one run contributes (`run_figures`).

Figures are read from the typed result record (never by string keys): for a training task the
time to accuracy and its wall-clock variant (runs that reached the target), throughput, compute
and communication (runs that completed) and the hit rate (every run: 1 if it reached the target,
else 0, failed and missing runs included); for task 0 the peak bus bandwidth and the
small-message latency per dtype (runs that completed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tasks.runtime.results import ResultRecord, SweepResult, TrainingResult, finite_number

__all__ = ["ConfigurationKey", "RunSample", "Figure", "run_figures", "repeatless_config"]


@dataclass(frozen=True, order=True)
class ConfigurationKey:
    """What identifies a configuration across DAG runs, repeats aside: its repeats share it."""

    task: str
    algorithm: str
    world_size: int
    backend: str

    @property
    def label(self) -> str:
        workers = "1 worker" if self.world_size == 1 else f"{self.world_size} workers"
        return f"{self.task} · {self.algorithm} · {workers} · {self.backend}"


@dataclass(frozen=True)
class RunSample:
    """One configuration run of a side: its result as logged (None when it left none or it could
    not be read) and why it failed, if it did (its `failure_reason`, an unreadable result.json)."""

    run_id: str
    config_id: str
    key: ConfigurationKey
    has_target: bool  # a training task: its runs count in the hit rate
    result: ResultRecord | None = None
    failure: str | None = None

    @property
    def usable(self) -> bool:
        """Completed with nothing wrong: its figures count."""
        return self.failure is None and self.result is not None and self.result.completed


@dataclass(frozen=True)
class Figure:
    """A compared figure: `name` is its JSON key, `test` the significance test its values take."""

    name: str
    label: str
    unit: str
    lower_is_better: bool
    test: str = "welch"  # welch: Welch's t-test on the values; fisher: Fisher's exact test on hits/misses


HIT_RATE = Figure("hit_rate", "hit rate", "%", lower_is_better=False, test="fisher")
_TRAINING: tuple[tuple[Figure, bool, Callable[[TrainingResult], float | None]], ...] = (
    # (figure, only runs that reached the target, its value)
    (Figure("time_to_accuracy_s", "time to accuracy", "s", True), True, lambda r: r.time_to_accuracy_s),
    (Figure("wall_time_to_accuracy_s", "wall time to accuracy", "s", True), True,
     lambda r: r.wall_time_to_accuracy_s),
    (Figure("throughput_samples_per_s", "throughput", "samples/s", False), False,
     lambda r: r.throughput_samples_per_s),
    (Figure("compute_s", "compute", "s", True), False, lambda r: r.compute_s),
    (Figure("communication_s", "communication", "s", True), False, lambda r: r.communication_s),
)


def _training_figures(sample: RunSample, result: TrainingResult) -> list[tuple[Figure, float]]:
    reached = sample.usable and result.reached_goal()
    values = [(figure, finite_number(value_of(result))) for figure, needs_goal, value_of in _TRAINING
              if sample.usable and (reached or not needs_goal)]
    return [(figure, value) for figure, value in values if value is not None]


def _sweep_figures(sample: RunSample, result: SweepResult) -> list[tuple[Figure, float]]:
    if not sample.usable:
        return []
    figures = []
    for dtype, curve in result.curves().items():  # ascending size: the first is the smallest message
        figures.append((Figure(f"peak_busbw_gbps_{dtype}", f"peak bus bandwidth {dtype}", "GB/s", False),
                        max(point.busbw_gbps for point in curve)))
        figures.append((Figure(f"small_message_latency_ms_{dtype}", f"small-message latency {dtype}", "ms", True),
                        curve[0].latency_median_s * 1e3))
    return figures


def run_figures(sample: RunSample) -> list[tuple[Figure, float]]:
    """The figures this run contributes to its side, in display order."""
    result = sample.result
    figures: list[tuple[Figure, float]] = []
    if isinstance(result, TrainingResult):
        figures = _training_figures(sample, result)
    elif isinstance(result, SweepResult):
        figures = _sweep_figures(sample, result)
    if sample.has_target:  # every run counts in the hit rate, even one that left no result
        reached = sample.usable and isinstance(result, TrainingResult) and result.reached_goal()
        figures.append((HIT_RATE, 1.0 if reached else 0.0))
    return figures


def repeatless_config(sample: RunSample) -> dict[str, Any] | None:
    """The run's resolved config without its seed (repeats differ by seed only), as logged; None
    when the run left no result."""
    if sample.result is None:
        return None
    config = dict(sample.result.config)
    config.pop("seed", None)  # the config is a free-form dict of the record: its seed is a config field
    return config
