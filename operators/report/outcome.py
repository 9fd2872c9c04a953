"""What one configuration of a DAG run produced (`ConfigurationOutcome`), and what every task
kind's comparison does with a list of them: group the repeats of a configuration, aggregate them
the MLPerf way (`mlperf_score`, `olympic_mean`), pick the primary algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from tasks.runtime.results import ResultRecord

if TYPE_CHECKING:
    from operators.gates.report import ValidationReport

__all__ = [
    "ConfigurationOutcome",
    "olympic_mean",
    "mlperf_score",
    "in_order",
    "by_configuration",
    "configuration_identity",
    "configuration_name",
    "primary_algorithm",
]


@dataclass
class ConfigurationOutcome:
    """What one configuration of a DAG run produced, as the pipeline saw it.

    `result` is the bundle's `result.json` as its kind's record (None if the bundle has none or it
    could not be read), `validation` the Great Expectations report of the bundle (None if it was not
    validated), and `failure_reason` what the caller knows went wrong outside the bundle (launch
    failed, pod evicted, bundle unreadable or invalid).
    """

    config_id: str
    task: str
    world_size: int
    repeat: int
    algorithm: str
    backend: str
    launcher: str
    output: str
    result: ResultRecord | None = None
    validation: ValidationReport | None = None
    failure_reason: str | None = None
    compares_backends: bool = False  # the DAG run ran each configuration on several backends
    pool: str | None = None  # the Kubernetes pool profile it ran on; None for local runs
    price_per_hour: float | None = None  # USD for what it occupied on its pool; None without a price

    @property
    def series(self) -> str:
        """What comparisons group by besides task and world size: the algorithm, qualified by the
        backend when the run compares several (`allreduce-gloo`, `allreduce-nccl`)."""
        return f"{self.algorithm}-{self.backend}" if self.compares_backends else self.algorithm

    @property
    def succeeded(self) -> bool:
        """The run completed, its bundle passed validation (or was not validated), nothing failed.

        Not reaching the target is still a success: the run did what was asked, and the comparison
        counts it in the hit rate.
        """
        return (
            self.result is not None
            and self.result.completed
            and (self.validation is None or self.validation.success)
            and not self.failure_reason
        )

    @property
    def goal_reached(self) -> bool:
        """Succeeded and reached the target, with a time to accuracy to show for it."""
        return self.succeeded and self.result is not None and self.result.reached_goal() is True

    @property
    def failure_summary(self) -> str | None:
        """Why this configuration failed, in one line; None if it succeeded.

        The caller's `failure_reason` comes first, then the run's own reason (`status: failed`),
        then the validation failures.
        """
        if self.succeeded:
            return None
        if self.failure_reason:
            return self.failure_reason
        if self.result is None:
            return "result.json is missing"
        if not self.result.completed:
            return self.result.reason or f"run status {self.result.status!r}"
        return f"validation failed: {self.validation.summary()}" if self.validation else "validation failed"

    @property
    def label(self) -> str:
        """Short name of the configuration for plots: algorithm, world size, repeat."""
        return f"{self.series} w{self.world_size} r{self.repeat}"


def olympic_mean(values: Iterable[float]) -> float | None:
    """Mean that drops one fastest and one slowest value, as MLPerf scores repeated runs.

    With 3 or more values the single smallest and single largest are dropped and the rest
    averaged. With 1 or 2 values there is nothing to drop: the plain mean is returned. None for
    no values.
    """
    values = sorted(float(v) for v in values)
    if not values:
        return None
    if len(values) >= 3:
        values = values[1:-1]
    return sum(values) / len(values)


def mlperf_score(converged: Iterable[float], not_converged: int) -> float | None:
    """A set of runs' time to accuracy as MLPerf scores it: the olympic mean with every run that did
    not converge counted as the slowest.

    One such run is the slowest, so it is the one dropped (the set needs 3 or more runs for that);
    with two or more the set has no score. Without any, this is `olympic_mean` (plain mean of 1 or 2
    runs). None when the set has no score.
    """
    times = sorted(float(v) for v in converged)
    if not_converged > 1 or (not_converged == 1 and len(times) + not_converged < 3):
        return None
    if not_converged == 1:  # the slowest, dropped with the fastest
        times = times[1:]
        return sum(times) / len(times)
    return olympic_mean(times)


def in_order(outcomes: Iterable[ConfigurationOutcome]) -> list[ConfigurationOutcome]:
    """Outcomes by task, series, world size, repeat: the order of per-configuration tables and plots."""
    return sorted(outcomes, key=lambda o: (o.task, o.series, o.world_size, o.repeat, o.config_id))


def by_configuration(
        outcomes: Iterable[ConfigurationOutcome]) -> list[tuple[tuple[str, str, int], list[ConfigurationOutcome]]]:
    """The repeats of each (task, series, world size), sorted by that key."""
    groups: dict[tuple[str, str, int], list[ConfigurationOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.task, outcome.series, int(outcome.world_size)), []).append(outcome)
    return sorted(groups.items())


def configuration_identity(key: tuple[str, str, int], group: list[ConfigurationOutcome]) -> dict[str, Any]:
    """The leading columns of a comparison row: task, algorithm (the series), world size, backends."""
    task, algorithm, world_size = key
    return {"task": task, "algorithm": algorithm, "world_size": world_size,
            "backend": ",".join(sorted({o.backend for o in group}))}


def configuration_name(key: tuple[str, str, int]) -> str:
    """How tables name a (task, series, world size): `cifar10-resnet20 allreduce w2`."""
    task, algorithm, world_size = key
    return f"{task} {algorithm} w{world_size}"


def primary_algorithm(outcomes: list[ConfigurationOutcome]) -> str | None:
    """The algorithm whose metrics also get the unprefixed names (`speedup_w2`): the task's
    reference implementation if it ran, else the only algorithm that ran, else none."""
    references = {o.series for o in outcomes if o.result is not None and o.result.reference_implementation}
    if len(references) == 1:
        return references.pop()
    algorithms = {o.series for o in outcomes}
    return algorithms.pop() if len(algorithms) == 1 else None
