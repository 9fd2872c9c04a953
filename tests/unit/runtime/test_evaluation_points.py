"""Where an epoch evaluates before its end (`mid_epoch_eval_interval`): the rule the trainer follows
and the results gate checks."""

import pytest

from tasks.runtime.evaluation_points import mid_epoch_steps

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("interval, steps, expected", [
    (0.3, 125, [38, 75, 113]),  # the 4a demo's epoch at 1 rank: 37.5, 75 and 112.5 rounded up
    (0.3, 100, [30, 60, 90]),  # 0.3 · 3 · 100 is 89.99999... in floating point: still step 90
    (0.25, 8, [2, 4, 6]),  # the fourth quarter is the epoch's own evaluation
    (0.1, 10, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    (0.5, 10, [5]),
    (0.3, 2, [1]),  # 0.6 and 1.2 round up to 1 and 2: step 1 once, step 2 is the epoch's end
    (0.3, 1, []),  # a one-step epoch evaluates at its end only
    (0.9, 5, []),  # 4.5 rounds up to the last step: the epoch's own evaluation
    (None, 125, []),
])
def test_planned_steps(interval, steps, expected):
    assert mid_epoch_steps(interval, steps) == expected


def test_planned_steps_are_inside_the_epoch_increasing_and_distinct():
    for interval in (0.05, 0.1, 0.3, 0.33, 0.5, 0.7):
        for steps in range(1, 60):
            planned = mid_epoch_steps(interval, steps)
            assert planned == sorted(set(planned)) and all(0 < step < steps for step in planned), (interval, steps)
