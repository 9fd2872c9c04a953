"""Per-step timing with the phases MLBench reports, synchronized on GPU.

A step runs from the moment the loader has handed over a batch to the end of the batch's training
metrics, as MLBench's code timed it (`batch_start` ... `record_batch_comp_metrics`, `batch_end`):
loader waits, validation, checkpoints and logging fall outside it. `metrics` is the last phase,
so the step up to the optimizer's end is `train_time` minus it.
On CUDA the device is synchronized at each phase boundary, so asynchronous kernels are charged
to the phase that launched them and communication is not hidden inside backward.
"""

from __future__ import annotations

import time
from typing import Callable

PHASES = ("data", "forward", "loss", "backward", "communication", "optimizer", "metrics")
COMPUTE_PHASES = ("forward", "loss", "backward", "optimizer")


class StepTimer:
    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.train_time = 0.0
        self.steps = 0
        self._step_start = 0.0
        self._last = 0.0

    def start_step(self) -> None:
        if self._sync:
            self._sync()
        self._step_start = self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """Charge the time since the previous boundary to `phase`."""
        if self._sync:
            self._sync()
        now = time.perf_counter()
        self.totals[phase] += now - self._last
        self._last = now

    def end_step(self) -> None:
        self.train_time += self._last - self._step_start
        self.steps += 1

    @property
    def compute(self) -> float:
        return sum(self.totals[p] for p in COMPUTE_PHASES)

    @property
    def communication(self) -> float:
        return self.totals["communication"]

    def state_dict(self) -> dict:
        return {"totals": dict(self.totals), "train_time": self.train_time, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.totals = dict(state["totals"])
        self.train_time = state["train_time"]
        self.steps = state["steps"]
