"""Is a nightly metric worse than it was? Change points by E-divisive means, a permutation test and
a minimum magnitude, and a verdict on the latest change.

A series is one metric of one benchmark configuration over nights (`Point`: time, value, commit).
`detect(points, direction)` returns a `Detection`: the verdict (`ok`, `regression`, `improvement`,
or `insufficient history` with the nights it needs), every change point with its p-value and the
mean of the nights on each side, and the segments between them (for plots).

Method (docs/regressions.md: references, how the defaults were measured, how to tune):
- A night is one observation: points sharing a time are repeats, summarized by their median, so
  one odd repeat does not move a night and a slow node that night is not counted as many
  independent measurements.
- E-divisive means (Matteson & James 2014; MongoDB, Daly et al. ICPE 2020): the split of a segment
  that maximizes the energy statistic (exponent 1) between the nights before and after it. A
  significant split divides the segment and both halves are searched again (binary segmentation).
- Significance: a permutation test of that maximum, with a RNG seeded from the settings and the
  segment, so the same series always gives the same answer (Hunter, ICPE 2023, replaced the
  permutations by a Student t-test because theirs were not reproducible). We keep permutations:
  the maximum over all splits is compared with maxima of shuffled series, which accounts for
  having searched every split (a t-test of the chosen split does not), and it assumes no normal
  distribution (times to accuracy come in whole epochs and are skewed).
- Minimum magnitude: a change point whose means differ by less than `min_magnitude_pct` is
  dropped and its two segments merged (the smallest first, recomputing neighbours), so a change
  of spread alone, which the energy statistic also sees, is not reported.
- A change point needs `min_segment_nights` nights on each side: a single odd night at the
  end is an outlier until the next night confirms it.

Conventions for values:
- NaN is a missing value: the point is ignored (a night whose points are all NaN does not exist).
- A failed or non-converging run is the worst infinity of the metric (`failed_value`: +inf when
  lower is better, -inf when higher is better); the other infinity is an error (`SeriesError`).
  Failed nights (median of the repeats is that infinity, i.e. at least half failed) are kept out
  of the change-point search and the means. If the series ends with failed nights after at least
  one finite night, the verdict is `regression` at once, with no p-value and no magnitude: a
  benchmark that stops finishing is the worst regression there is, and waiting for statistics
  would hide it. A failed night followed by finite ones is not reported (the finite nights show
  the run works again).

The verdict is about the latest change point that remains: a regression stays `regression` every
night until a later change point (a fix) ends it; `first_seen` tells a caller whether it is new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable, Sequence

import numpy as np

from operators.regressions.settings import DetectorSettings

__all__ = [
    "ChangePoint",
    "Detection",
    "DetectorSettings",
    "Direction",
    "Point",
    "Segment",
    "SeriesError",
    "Status",
    "Time",
    "Verdict",
    "detect",
    "failed_value",
]

Time = str | int | float  # a night's label: ISO date or time, or a number; one kind per series
# Shuffles are tested in batches of at most this many, and at most this many floats of distances
# (a batch is a (shuffles, nights, nights) array): small enough to stop early, large enough for numpy.
_BATCH_PERMUTATIONS = 50
_BATCH_FLOATS = 1 << 22


class Direction(StrEnum):
    LOWER = "lower"  # lower is better: times, losses
    HIGHER = "higher"  # higher is better: accuracy, throughput, bandwidth


class Status(StrEnum):
    OK = "ok"
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    INSUFFICIENT = "insufficient history"


class SeriesError(ValueError):
    """A series the detector cannot read: the message names the point and what is valid."""


@dataclass(frozen=True)
class Point:
    time: Time
    value: float  # NaN: missing; the metric's worst infinity: a failed run (see `failed_value`)
    commit: str | None = None


@dataclass(frozen=True)
class ChangePoint:
    time: Time  # the first night after the change
    commit_before: str | None  # the last night before it
    commit_after: str | None
    mean_before: float  # of the finite nights of the segment before
    mean_after: float
    magnitude_pct: float  # signed change of the mean: +10.0 = 10 % higher (inf if mean_before is 0)
    p_value: float
    status: Status  # REGRESSION or IMPROVEMENT for the metric's direction


@dataclass(frozen=True)
class Segment:
    start: Time  # first and last night, both included
    end: Time
    nights: int  # finite nights in it
    mean: float


@dataclass(frozen=True)
class Verdict:
    status: Status
    direction: Direction
    nights: int  # finite nights seen
    magnitude_pct: float | None = None  # of the latest change point; None for failed nights
    p_value: float | None = None
    first_seen: Time | None = None  # first night after the change (or the first failed night)
    commit_before: str | None = None
    commit_after: str | None = None
    failed_nights: int = 0  # failed nights at the end of the series
    nights_needed: int | None = None  # INSUFFICIENT: finite nights the test needs

    def summary(self) -> str:
        """The verdict in one line."""
        if self.status is Status.INSUFFICIENT:
            return f"insufficient history: {self.nights} of {self.nights_needed} nights needed"
        if self.status is Status.OK:
            return f"ok: no change in {self.nights} nights"
        where = f"since {self.first_seen} (commit {self.commit_before} -> {self.commit_after})"
        if self.failed_nights:
            return f"regression: the last {self.failed_nights} night(s) failed, {where}"
        return (f"{self.status}: mean {self.magnitude_pct:+.1f} % ({self.direction} is better) {where}, "
                f"p={self.p_value:.3g}")


@dataclass(frozen=True)
class Detection:
    verdict: Verdict
    change_points: tuple[ChangePoint, ...]
    segments: tuple[Segment, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as their values, non-finite numbers as null."""
        return {
            "verdict": _plain(vars(self.verdict)),
            "change_points": [_plain(vars(point)) for point in self.change_points],
            "segments": [_plain(vars(segment)) for segment in self.segments],
        }


def failed_value(direction: Direction | str) -> float:
    """The value that records a failed or non-converging run: the metric's worst."""
    return math.inf if Direction(direction) is Direction.LOWER else -math.inf


def detect(points: Iterable[Point], direction: Direction | str,
           settings: DetectorSettings | None = None) -> Detection:
    """Change points of one metric's series and the verdict on its latest night."""
    settings = settings or DetectorSettings()
    direction = _direction(direction)
    nights = _nights(points, direction)
    finite = [night for night in nights if not night.failed]
    values = np.array([night.value for night in finite])
    splits: list[tuple[int, float]] = []
    if len(finite) >= settings.min_history_nights:
        splits = _significant_splits(values, 0, len(values), settings)
        splits = _drop_small_changes(values, splits, settings.min_magnitude_pct)
    change_points = _change_points(finite, values, splits, direction)
    verdict = _verdict(direction, finite, _failed_tail(nights), change_points, settings)
    return Detection(verdict, change_points, _segments(finite, values, [split for split, _ in splits]))


# --- nights ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Night:
    time: Time
    value: float  # median of the repeats; the worst infinity if at least half of them failed
    commit: str | None

    @property
    def failed(self) -> bool:
        return not math.isfinite(self.value)


def _direction(direction: Direction | str) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise SeriesError(f"unknown direction {direction!r}; valid: lower, higher") from None


def _nights(points: Iterable[Point], direction: Direction) -> list[_Night]:
    """One `_Night` per time, in time order, from the points that are not missing."""
    repeats: dict[Time, list[Point]] = {}
    for point in points:
        if not math.isnan(point.value):
            _check_value(point, direction)
            repeats.setdefault(point.time, []).append(point)
    try:
        times = sorted(repeats)
    except TypeError:
        raise SeriesError("times mix numbers and text; use one kind (ISO dates, or numbers)") from None
    return [_night(time, repeats[time]) for time in times]


def _check_value(point: Point, direction: Direction) -> None:
    if math.isinf(point.value) and point.value != failed_value(direction):
        raise SeriesError(f"night {point.time}: value {point.value} is the best possible for a metric where "
                          f"{direction} is better; a failed run is {failed_value(direction)}, a missing one nan")


def _night(time: Time, points: Sequence[Point]) -> _Night:
    commit = next((point.commit for point in points if point.commit), None)
    return _Night(time, float(np.median([point.value for point in points])), commit)


def _failed_tail(nights: Sequence[_Night]) -> list[_Night]:
    """The failed nights at the end of the series."""
    tail: list[_Night] = []
    for night in reversed(nights):
        if not night.failed:
            break
        tail.insert(0, night)
    return tail


# --- E-divisive means with a permutation test -----------------------------------------------

def _split_statistics(batch: np.ndarray, min_size: int) -> np.ndarray:
    """The energy statistic (exponent 1) of every split of every row of `batch` (rows, n).

    Column j is the split with min_size + j values before it. With pairwise distances D, the sums
    of D within the left part, across, and within the right part come from running sums of D's
    upper triangle and of its rows, so one row costs O(n^2).
    """
    n = batch.shape[1]
    distances = np.subtract(batch[:, :, None], batch[:, None, :])
    np.abs(distances, out=distances)  # in place: the largest array here
    # Column k - 1 of each: the sum over ordered pairs within the first k values, and over pairs
    # whose first value is among the first k.
    within_left = 2 * np.cumsum(np.einsum("rij,ij->rj", distances, np.triu(np.ones((n, n)), 1)), axis=1)
    rows_left = np.cumsum(distances.sum(axis=2), axis=1)
    left = np.arange(min_size, n - min_size + 1)
    right = n - left
    inside, row_sums = within_left[:, left - 1], rows_left[:, left - 1]
    across = row_sums - inside
    inside_right = rows_left[:, -1:] - inside - 2 * across
    energy = (2 * across / (left * right) - inside / np.maximum(left * (left - 1), 1)
              - inside_right / np.maximum(right * (right - 1), 1))
    return np.asarray(left * right / n * energy)


def _best_split(values: np.ndarray, settings: DetectorSettings, rng: np.random.Generator) -> tuple[int, float]:
    """The split of `values` with the largest statistic, and its permutation p-value.

    The shuffles go in batches, and stop once so many exceeded the observed maximum that the split
    cannot be significant whatever the rest give (Besag & Clifford 1991): the decision is the one
    all `settings.permutations` would give, and a significant split's p-value is exactly theirs.
    Most segments have nothing to find, and stop after the first batch.
    """
    observed = _split_statistics(values[None, :], settings.min_segment_nights)[0]
    best = int(np.argmax(observed))
    # Ties with the observed maximum count as exceeding it (a constant series gives p = 1); the
    # tolerance absorbs rounding differences between orderings of the same values.
    threshold = observed[best] - 1e-9 * (1 + abs(observed[best]))
    batch_size = max(1, min(_BATCH_PERMUTATIONS, _BATCH_FLOATS // len(values) ** 2))
    exceeding, done = 0, 0
    while done < settings.permutations and (exceeding + 1) / (settings.permutations + 1) <= settings.p_value:
        count = min(batch_size, settings.permutations - done)
        shuffled = rng.permuted(np.broadcast_to(values, (count, len(values))), axis=1)
        exceeding += int((_split_statistics(shuffled, settings.min_segment_nights).max(axis=1) >= threshold).sum())
        done += count
    return settings.min_segment_nights + best, (exceeding + 1) / (done + 1)


def _significant_splits(values: np.ndarray, start: int, stop: int,
                        settings: DetectorSettings) -> list[tuple[int, float]]:
    """(index of the first value after the change, p-value) of every significant split of
    values[start:stop], in order (binary segmentation)."""
    if stop - start < 2 * settings.min_segment_nights:
        return []
    # Seeded by the segment, not drawn from one stream: a segment's test does not depend on
    # which segments were tested before it.
    rng = np.random.default_rng((settings.seed, start, stop))
    offset, p_value = _best_split(values[start:stop], settings, rng)
    if p_value > settings.p_value:
        return []
    split = start + offset
    return [*_significant_splits(values, start, split, settings), (split, p_value),
            *_significant_splits(values, split, stop, settings)]


# --- magnitude, change points, verdict ------------------------------------------------------

def _relative_change_pct(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return 100 * (after - before) / abs(before)


def _segment_means(values: np.ndarray, splits: Sequence[int]) -> list[float]:
    bounds = [0, *splits, len(values)]
    return [float(values[a:b].mean()) for a, b in zip(bounds, bounds[1:], strict=False)]


def _drop_small_changes(values: np.ndarray, splits: list[tuple[int, float]],
                        min_magnitude_pct: float) -> list[tuple[int, float]]:
    """The splits whose segments' means differ by at least the minimum magnitude: the smallest
    change is merged away first, then its neighbours are measured again on the merged segment."""
    splits = list(splits)
    while splits:
        means = _segment_means(values, [split for split, _ in splits])
        changes = [abs(_relative_change_pct(a, b)) for a, b in zip(means, means[1:], strict=False)]
        smallest = int(np.argmin(changes))
        if changes[smallest] >= min_magnitude_pct:
            break
        del splits[smallest]
    return splits


def _is_worse(before: float, after: float, direction: Direction) -> bool:
    return after > before if direction is Direction.LOWER else after < before


def _change_points(nights: Sequence[_Night], values: np.ndarray, splits: Sequence[tuple[int, float]],
                   direction: Direction) -> tuple[ChangePoint, ...]:
    if not splits:
        return ()
    means = _segment_means(values, [split for split, _ in splits])
    return tuple(
        ChangePoint(nights[split].time, nights[split - 1].commit, nights[split].commit, before, after,
                    _relative_change_pct(before, after), p_value,
                    Status.REGRESSION if _is_worse(before, after, direction) else Status.IMPROVEMENT)
        for (split, p_value), before, after in zip(splits, means, means[1:], strict=False))


def _segments(nights: Sequence[_Night], values: np.ndarray, splits: Sequence[int]) -> tuple[Segment, ...]:
    if not nights:
        return ()
    bounds = [0, *splits, len(nights)]
    return tuple(Segment(nights[a].time, nights[b - 1].time, b - a, mean)
                 for a, b, mean in zip(bounds, bounds[1:], _segment_means(values, splits), strict=False))


def _verdict(direction: Direction, finite: Sequence[_Night], failed_tail: Sequence[_Night],
             change_points: Sequence[ChangePoint], settings: DetectorSettings) -> Verdict:
    """Failed last nights first (no statistics needed), then too little history, then the latest change."""
    if failed_tail and finite:
        return Verdict(Status.REGRESSION, direction, len(finite), first_seen=failed_tail[0].time,
                       commit_before=finite[-1].commit, commit_after=failed_tail[0].commit,
                       failed_nights=len(failed_tail))
    if len(finite) < settings.min_history_nights:
        return Verdict(Status.INSUFFICIENT, direction, len(finite), nights_needed=settings.min_history_nights)
    if not change_points:
        return Verdict(Status.OK, direction, len(finite))
    latest = change_points[-1]
    return Verdict(latest.status, direction, len(finite), latest.magnitude_pct, latest.p_value, latest.time,
                   latest.commit_before, latest.commit_after)


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """A dataclass's fields for JSON: enums as their values, inf and nan as None."""
    return {key: value.value if isinstance(value, StrEnum)
            else None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in fields.items()}
