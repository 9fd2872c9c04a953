"""MLBench task 0: a communication task, typed like the training tasks but without model or data.

What it measures is a sweep of one collective over tensor sizes and dtypes, so its spec holds a
sweep (MLBench's, the full preset) and presets that shrink it, as `--set` overrides, instead of
hyperparameters and a target. Resolving it for a world size and backend gives a
`CommunicationConfig`: every value the ranks use (the measured sizes included), logged in full
and hashed like a training `RunConfig`. Nothing here imports torch or numpy at module level: the
Airflow side resolves configurations too. The task itself is declared in tasks/benchmarks/allreduce.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tasks.errors import UserError
from tasks.overrides import apply_overrides
from tasks.spec import AlgorithmChoice, Preset, ResolvedConfig

KIND: Literal["communication"] = "communication"
# What all-reduce sums, and bytes per element; fp16 on CPU only with gloo (MLBench's finding).
DTYPE_BYTES = {"fp32": 4, "fp16": 2}
DTYPES = tuple(DTYPE_BYTES)


def tensor_sizes(min_elements: int = 1, max_elements: int = 10**8, count: int = 80) -> list[int]:
    """Our sizes: `count` log-spaced element counts from min to max, rounded (not truncated, as
    MLBench did) to whole elements, duplicates removed (77 distinct of 80 at MLBench's range).
    Both ends are exact. MLBench's own list is `mlbench_sizes`."""
    import numpy as np

    if not 1 <= min_elements <= max_elements or count < 1:
        raise ValueError(f"need 1 <= min_elements <= max_elements and count >= 1, got {min_elements}, "
                         f"{max_elements}, {count}")
    sizes = np.rint(np.logspace(np.log10(min_elements), np.log10(max_elements), count)).astype(np.int64)
    return sorted({min_elements, max_elements if count > 1 else min_elements, *(int(s) for s in sizes[1:-1])})


def mlbench_sizes(min_elements: int = 1, max_elements: int = 10**8, count: int = 80) -> list[int]:
    """MLBench's sizes exactly: `int()` of each of `count` log-spaced points from min to max, in order,
    duplicates kept (MLBench measured 1 element three times). At MLBench's range this is
    `[int(x) for x in np.logspace(0, 8, 80)]`."""
    import numpy as np

    return [int(x) for x in np.logspace(np.log10(min_elements), np.log10(max_elements), count)]


def bus_factor(world_size: int) -> float:
    """nccl-tests' all-reduce bus factor 2(n-1)/n: busbw = algbw x factor, what each link carries.
    0 for one rank: a one-rank all-reduce moves no data, whatever its algorithm bandwidth."""
    return 2 * (world_size - 1) / world_size


@dataclass(frozen=True)
class SweepSpec:
    """Which tensors are reduced, and how often each is timed."""

    min_elements: int
    max_elements: int
    size_count: int  # log-spaced points from min to max; small ones collide after rounding
    dtypes: tuple[str, ...]
    repeats: int  # timed calls per size and dtype
    warmup: int  # untimed calls before them
    mlbench_calls: int  # calls per size of the MLBench-compatible pass (mean, no warm-up); 0: no such pass


@dataclass(frozen=True)
class CollectiveSpec:
    """One implementation of the collective; `reference` marks MLBench's."""

    name: str
    collective: Literal["all_reduce"]
    op: Literal["sum"]
    reference: bool = False
    description: str = ""


@dataclass(frozen=True)
class CommunicationTaskSpec(AlgorithmChoice[CollectiveSpec]):
    name: str
    version: str
    mlbench_id: str
    description: str
    algorithms: tuple[CollectiveSpec, ...]
    sweep: SweepSpec  # MLBench's sweep; presets shrink it
    presets: dict[str, Preset]
    seed: int
    kind: str = KIND

    def summary(self) -> dict[str, Any]:
        """The row `mlbench tasks` lists: no model, no dataset, and no target (not a time-to-accuracy task)."""
        return {
            "name": self.name,
            "mlbench_id": self.mlbench_id,
            "model": "none",
            "dataset": "random tensors",
            "metric": "latency, busbw",
            "target_full": "n/a",
            "target_light": "n/a",
            "algorithms": [a.name for a in self.algorithms],
            "presets": list(self.presets),
        }


# Fields of the resolved config that come from elsewhere; set those instead.
COMMUNICATION_DERIVED_FIELDS = {
    "sizes": "min_elements, max_elements and size_count",
    "mlbench_sizes": "min_elements, max_elements and size_count",
    "task": "--task", "task_version": "the task spec", "mlbench_id": "the task spec", "kind": "the task spec",
    "preset": "--preset", "algorithm": "--algorithm", "collective": "--algorithm", "op": "--algorithm",
    "reference_implementation": "--algorithm", "world_size": "--world-size", "backend": "--backend",
    "device": "--device",
}


@dataclass(frozen=True)
class CommunicationConfig(ResolvedConfig):
    """Everything one sweep uses, resolved for its world size. Logged in full."""

    DERIVED: ClassVar[dict[str, str]] = COMMUNICATION_DERIVED_FIELDS

    task: str
    task_version: str
    mlbench_id: str
    kind: Literal["communication"]
    preset: str
    algorithm: str
    collective: str
    op: str
    reference_implementation: bool
    world_size: int
    backend: str
    device: str
    dtypes: tuple[str, ...]
    min_elements: int
    max_elements: int
    size_count: int
    sizes: tuple[int, ...]  # derived: the distinct element counts measured, ascending
    repeats: int
    warmup: int
    mlbench_calls: int
    mlbench_sizes: tuple[int, ...]  # derived: MLBench's int()-truncated sizes, duplicates kept
    seed: int


def resolve_communication(
    spec: CommunicationTaskSpec,
    preset: str,
    *,
    world_size: int,
    backend: str,
    device: str,
    algorithm: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> CommunicationConfig:
    """Resolve a communication task for one world size and backend; `tasks.registry.resolve` has
    checked the preset name, world size, backend and device already."""
    collective = spec.algorithm(algorithm) if algorithm else spec.reference_algorithm
    values: dict[str, Any] = {**dataclasses.asdict(spec.sweep), "seed": spec.seed}
    for source in (spec.presets[preset].overrides, overrides or {}):
        apply_overrides(values, source, derived=CommunicationConfig.DERIVED, owner=spec.name)
    _check_sweep(values)
    return CommunicationConfig(
        task=spec.name, task_version=spec.version, mlbench_id=spec.mlbench_id, kind=KIND, preset=preset,
        algorithm=collective.name, collective=collective.collective, op=collective.op,
        reference_implementation=collective.reference, world_size=world_size, backend=backend, device=device,
        dtypes=tuple(values["dtypes"]), min_elements=values["min_elements"], max_elements=values["max_elements"],
        size_count=values["size_count"],
        sizes=tuple(tensor_sizes(values["min_elements"], values["max_elements"], values["size_count"])),
        repeats=values["repeats"], warmup=values["warmup"], mlbench_calls=values["mlbench_calls"],
        mlbench_sizes=tuple(mlbench_sizes(values["min_elements"], values["max_elements"], values["size_count"])),
        seed=values["seed"],
    )


def _check_sweep(values: dict[str, Any]) -> None:
    dtypes = values["dtypes"]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes or len(set(dtypes)) != len(dtypes):
        shown = bad[0] if bad else ",".join(dtypes)
        raise UserError(f"bad value '{shown}' for 'dtypes'; valid: one or more of {', '.join(DTYPES)}, no repeats")
    if not 1 <= values["min_elements"] <= values["max_elements"]:
        raise UserError(f"bad values for 'min_elements', 'max_elements': need 1 <= min_elements <= max_elements, "
                        f"got {values['min_elements']} and {values['max_elements']}")
    for field, low in (("size_count", 1), ("repeats", 1), ("warmup", 0), ("mlbench_calls", 0), ("seed", 0)):
        if values[field] < low:
            raise UserError(f"bad value {values[field]} for '{field}'; valid: a whole number >= {low}")
