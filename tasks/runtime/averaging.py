"""The running average of a model's weights over the steps since averaging began (ASGD's average).

With t0 = 0 and lambda = 0, as MLBench's task 3a configured torch's ASGD, averaged SGD is plain
SGD plus this average: after step n of the averaged phase, average = mean of the weights after
steps 1..n. Evaluation uses the average; training continues from the plain weights.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module) -> None:
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.parameters]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        for average, parameter in zip(self.average, self.parameters, strict=True):
            average.add_(parameter.detach() - average, alpha=1.0 / self.steps)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own ones again after it."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.parameters]
            for parameter, average in zip(self.parameters, self.average, strict=True):
                parameter.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, saved in zip(self.parameters, own, strict=True):
                    parameter.copy_(saved)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "average": [a.clone() for a in self.average]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        with torch.no_grad():
            for average, saved in zip(self.average, state["average"], strict=True):
                average.copy_(saved)
