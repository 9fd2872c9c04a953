"""What the nightly compares: a *series* is one configuration over nights, and each series watches
a few metrics, each with the direction that is better.

A series is identified by the configuration's config hash (task, preset, algorithm, world size,
backend, device and every hyperparameter; a changed hash starts a new series) plus what the hash
does not hold: the accelerator and the hardware the run got. The git sha and the image are not
part of it: judging them is what the nightly is for.

A night that failed or missed its target is a point, not a gap: its time-like values are the worst
possible (`inf` for lower-is-better, `-inf` for higher-is-better), so a run that stops converging shows up
as the worst regression there is. Pure: no MLflow here (`operators.regressions.history` reads it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Literal

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class LoggedRun:
    """A configuration's MLflow child run, as the history reads it."""

    run_id: str
    dag_run_id: str
    start_ms: int  # when the run started: the night's time
    succeeded: bool  # FINISHED (completed, passed its gate)
    goal_reached: bool | None  # None for a task without a target (task 0)
    metrics: dict[str, float] = field(default_factory=dict)
    git_sha: str | None = None
    image: str | None = None
    configuration: str = ""  # its config id without the repeat (`configuration_of`)


def configuration_of(config_id: str) -> str:
    """A configuration id without its repeat: the repeats of one night are points of one series."""
    return re.sub(r"__r\d+$", "", config_id)


@dataclass(frozen=True)
class SeriesKey:
    """One configuration over nights."""

    task: str
    config_hash: str
    accelerator: str
    hardware: str

    @property
    def name(self) -> str:
        return f"{self.task} {self.config_hash} {self.accelerator} {self.hardware}"


@dataclass(frozen=True)
class WatchedMetric:
    """A metric of a series: its name, which way is better, and its value in one logged run."""

    name: str
    direction: Direction
    value_of: Callable[[LoggedRun], float | None]

    def worst(self) -> float:
        """What a failed run records: the metric's worst (the detector's `failed_value`)."""
        return math.inf if self.direction == "lower" else -math.inf


def _reached(metric: str) -> Callable[[LoggedRun], float | None]:
    """A figure that exists only when the run reached its target: the worst value otherwise."""
    def value_of(run: LoggedRun) -> float | None:
        if not run.succeeded or run.goal_reached is False:
            return math.inf
        return run.metrics.get(metric)
    return value_of


def _completed(metric: str, worst: float) -> Callable[[LoggedRun], float | None]:
    """A figure of any run that completed; a failed run is the worst value."""
    def value_of(run: LoggedRun) -> float | None:
        return run.metrics.get(metric) if run.succeeded else worst
    return value_of


def _comm_share(run: LoggedRun) -> float | None:
    compute, communication = run.metrics.get("compute_s"), run.metrics.get("communication_s")
    if not run.succeeded or compute is None or communication is None or compute + communication <= 0:
        return None
    return communication / (compute + communication)


def _hit(run: LoggedRun) -> float | None:
    return 1.0 if run.succeeded and run.goal_reached else 0.0  # a rate: a miss is 0, not a failure value


TRAINING_METRICS = (
    WatchedMetric("time_to_accuracy_s", "lower", _reached("time_to_accuracy_s")),
    WatchedMetric("wall_time_to_accuracy_s", "lower", _reached("wall_time_to_accuracy_s")),
    WatchedMetric("throughput_samples_per_s", "higher", _completed("throughput_samples_per_s", -math.inf)),
    WatchedMetric("epochs_to_target", "lower", _reached("epochs_run")),
    WatchedMetric("comm_share", "lower", _comm_share),
    WatchedMetric("hit_rate", "higher", _hit),  # one point per repeat: the night's mean is its hit rate
)


def sweep_metrics(dtypes: tuple[str, ...] = ("fp32", "fp16")) -> tuple[WatchedMetric, ...]:
    """Task 0's watched metrics: peak bus bandwidth and small-message latency per dtype (the series
    already holds the backend)."""
    watched: list[WatchedMetric] = []
    for dtype in dtypes:
        watched.append(WatchedMetric(f"peak_busbw_gbps_{dtype}", "higher",
                                     _completed(f"peak_busbw_gbps_{dtype}", -math.inf)))
        watched.append(WatchedMetric(f"small_message_latency_ms_{dtype}", "lower",
                                     _completed(f"small_message_latency_ms_{dtype}", math.inf)))
    return tuple(watched)


@dataclass(frozen=True)
class Point:
    """One run's value of one metric: `time` is the night (ms), `value` may be the worst value."""

    time_ms: int
    value: float
    commit: str | None
    image: str | None
    run_id: str


def points(runs: list[LoggedRun], metric: WatchedMetric) -> list[Point]:
    """The metric over these runs, oldest first; runs without a value for it are left out."""
    found = []
    for run in sorted(runs, key=lambda r: r.start_ms):
        value = metric.value_of(run)
        if value is not None and not math.isnan(value):
            found.append(Point(run.start_ms, float(value), run.git_sha, run.image, run.run_id))
    return found
