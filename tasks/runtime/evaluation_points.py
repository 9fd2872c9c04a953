"""Where inside an epoch a run evaluates (the config's `mid_epoch_eval_interval`): one rule shared by
the trainer, which evaluates there, and the results gate, which checks that it did. Torch-free."""

from __future__ import annotations

import math

# k · interval · steps lands on a whole step up to rounding error (0.3 · 3 · 100 = 89.99999...)
_ROUNDING = 1e-9
SMALLEST_INTERVAL = 0.001  # at most 1,000 evaluations an epoch


def mid_epoch_steps(interval: float | None, steps_in_epoch: int) -> list[int]:
    """The optimizer steps of an epoch after which it evaluates before its end: after every `interval`
    of the epoch (0.3: at 30, 60 and 90 %, MLBench's translation tasks), rounded up to a whole step.
    None or 0 plans none; a step is never planned twice, nor at the epoch's end (its own evaluation)."""
    if not interval:
        return []
    steps: list[int] = []
    k = 1
    while k * interval < 1:
        step = math.ceil(k * interval * steps_in_epoch - _ROUNDING)
        if 0 < step < steps_in_epoch and (not steps or step > steps[-1]):  # k grows, so steps never fall
            steps.append(step)
        k += 1
    return steps
