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
