"""The regression detector's settings and their defaults, in one place.

Standard library only, so `mlbench detect` can show the defaults in its help without importing
numpy. How each default was chosen, with the measured false-alarm rate and detection delay:
docs/regressions.md (`bench/regression_detector.py` measures them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorSettings:
    p_value: float = 0.02  # a split is significant when its permutation p-value is at most this
    min_magnitude_pct: float = 5.0  # change points whose segment means differ by less are dropped
    permutations: int = 499  # p-values are multiples of 1/500
    seed: int = 0  # of the permutations: the same series always gives the same answer
    min_segment_nights: int = 2  # nights on each side of a change point: one odd night is an outlier

    def __post_init__(self) -> None:
        if not 1 / (self.permutations + 1) <= self.p_value < 1:
            raise ValueError(f"p_value must be in [1/(permutations + 1), 1) = [{1 / (self.permutations + 1):.3g}, 1) "
                             f"(the smallest p-value {self.permutations} permutations can give), got {self.p_value}")
        if not self.min_magnitude_pct >= 0:
            raise ValueError(f"min_magnitude_pct must be >= 0, got {self.min_magnitude_pct}")
        if self.min_segment_nights < 1:
            raise ValueError(f"min_segment_nights must be >= 1, got {self.min_segment_nights}")

    @property
    def min_history_nights(self) -> int:
        """The fewest finite nights in which a change at the very end can be significant.

        With n nights, a clean step in the last `min_segment_nights` nights has the largest statistic
        of all orderings, but so do the shuffles that put the same nights at the end or (the statistic
        is symmetric) at the start: p >= 2 / C(n, min_segment_nights). Below this many nights a change
        that just happened can never reach `p_value`.
        """
        nights = 2 * self.min_segment_nights
        while 2 / math.comb(nights, self.min_segment_nights) > self.p_value:
            nights += 1
        return nights


DEFAULT_NIGHTS = 60  # newest nights of history a series is judged on
HISTORY_DAG_ID = "mlbench_nightly"  # a series' history is this DAG's runs (plus the run being judged)
ON_REGRESSION = ("fail", "warn")  # what `check` does when a regression is found
HISTORY_FIELDS = ("nights", "p_value", "min_magnitude_pct")  # the request's `history` mapping


@dataclass(frozen=True)
class RegressionPolicy:
    """How a DAG run is judged against its history: the request's `on_regression` and `history`
    fields (a sweep file sets them; the manual form defaults to warn)."""

    on_regression: str = "warn"
    nights: int = DEFAULT_NIGHTS
    detector: DetectorSettings = DetectorSettings()

    def __post_init__(self) -> None:
        if self.on_regression not in ON_REGRESSION:
            raise ValueError(f"on_regression must be one of {', '.join(ON_REGRESSION)}, got {self.on_regression!r}")
        if not 2 <= self.nights <= 10_000:
            raise ValueError(f"nights must be a whole number from 2 to 10000, got {self.nights!r}")

    @classmethod
    def from_fields(cls, on_regression: str, history: dict[str, float]) -> RegressionPolicy:
        """From the request's fields; ValueError names the bad one."""
        unknown = sorted(set(history) - set(HISTORY_FIELDS))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; valid: {', '.join(HISTORY_FIELDS)}")
        nights = _number("nights", history.get("nights", cls.nights))
        if not nights.is_integer():
            raise ValueError(f"nights must be a whole number, got {history['nights']!r}")
        defaults = DetectorSettings()
        detector = DetectorSettings(
            p_value=_number("p_value", history.get("p_value", defaults.p_value)),
            min_magnitude_pct=_number("min_magnitude_pct",
                                      history.get("min_magnitude_pct", defaults.min_magnitude_pct)))
        return cls(on_regression=on_regression, nights=int(nights), detector=detector)


def _number(name: str, value: object) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
