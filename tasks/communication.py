"""MLBench task 0: a communication task, typed like the training tasks but without model or data.

What it measures is a sweep of one collective over tensor sizes and dtypes, so its spec holds a
sweep per preset instead of hyperparameters and a target. Resolving it for a world size and
backend gives a `CommunicationConfig`: every value the ranks use (the measured sizes included),
logged in full and hashed like a training `RunConfig`. Nothing here imports torch or numpy at
module level: the Airflow side resolves configurations too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from tasks.errors import UserError
from tasks.spec import TaskSpec

KIND = "communication"
# What all-reduce sums, and bytes per element; fp16 on CPU only with gloo (MLBench's finding).
DTYPE_BYTES = {"fp32": 4, "fp16": 2}
DTYPES = tuple(DTYPE_BYTES)


def tensor_sizes(min_elements: int = 1, max_elements: int = 10**8, count: int = 80) -> list[int]:
    """MLBench's sizes: `count` log-spaced element counts from min to max, rounded to whole elements,
    duplicates removed (so fewer than `count` when the small ones collide: 77 of MLBench's 80).
    Both ends are exact."""
    import numpy as np

    if not 1 <= min_elements <= max_elements or count < 1:
        raise ValueError(f"need 1 <= min_elements <= max_elements and count >= 1, got {min_elements}, "
                         f"{max_elements}, {count}")
    sizes = np.rint(np.logspace(np.log10(min_elements), np.log10(max_elements), count)).astype(np.int64)
    return sorted({min_elements, max_elements if count > 1 else min_elements, *(int(s) for s in sizes[1:-1])})


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


@dataclass(frozen=True)
class CollectiveSpec:
    """One implementation of the collective; `reference` marks MLBench's."""

    name: str
    collective: Literal["all_reduce"]
    op: Literal["sum"]
    reference: bool = False
    description: str = ""


@dataclass(frozen=True)
class CommunicationTaskSpec:
    name: str
    version: str
    mlbench_id: str
    description: str
    algorithms: tuple[CollectiveSpec, ...]
    sweeps: dict[str, SweepSpec]  # preset name -> its sweep
    seed: int
    kind: Literal["communication"] = KIND

    @property
    def presets(self) -> tuple[str, ...]:
        return tuple(self.sweeps)

    # The same lookups as a training task's, over its collectives.
    reference_algorithm = TaskSpec.reference_algorithm
    algorithm = TaskSpec.algorithm

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


@dataclass(frozen=True)
class CommunicationConfig:
    """Everything one sweep uses, resolved for its world size. Logged in full."""

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
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Stable hash of the resolved config: two sweeps with the same hash measured the same thing."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommunicationConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown config field '{unknown[0]}' in {cls.__name__}; valid: {', '.join(sorted(names))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


ALLREDUCE = CommunicationTaskSpec(
    name="allreduce",
    version="1.0",
    mlbench_id="0a",
    description="Communication backend benchmark: all-reduce (sum) latency and bandwidth over tensor sizes",
    algorithms=(
        CollectiveSpec(
            name="allreduce", collective="all_reduce", op="sum", reference=True,
            description="torch.distributed.all_reduce(SUM), device synchronized around each call (MLBench 0a)",
        ),
    ),
    sweeps={
        # MLBench's sweep: int(np.logspace(0, 8, 80)) elements, 100 calls per size, fp32 and fp16.
        "full": SweepSpec(min_elements=1, max_elements=10**8, size_count=80, dtypes=DTYPES, repeats=100, warmup=5),
        # The same density of sizes up to 40 MB (fp32), fewer calls: minutes instead of an hour on CPU.
        "light": SweepSpec(min_elements=1, max_elements=10**7, size_count=70, dtypes=DTYPES, repeats=30, warmup=3),
        # A few seconds with 2 gloo ranks on 2 CPU cores.
        "demo": SweepSpec(min_elements=1, max_elements=10**6, size_count=20, dtypes=DTYPES, repeats=20, warmup=2),
        # For tests: the whole path in well under a second of measuring.
        "smoke": SweepSpec(min_elements=1, max_elements=1000, size_count=4, dtypes=DTYPES, repeats=3, warmup=1),
    },
    seed=0,
)

# Fields of the resolved config that come from elsewhere; set those instead.
DERIVED_FIELDS = {
    "sizes": "min_elements, max_elements and size_count",
    "task": "--task", "task_version": "the task spec", "mlbench_id": "the task spec", "kind": "the task spec",
    "preset": "--preset", "algorithm": "--algorithm", "collective": "--algorithm", "op": "--algorithm",
    "reference_implementation": "--algorithm", "world_size": "--world-size", "backend": "--backend",
    "device": "--device",
}
SETTABLE_FIELDS = ("dtypes", "min_elements", "max_elements", "size_count", "repeats", "warmup", "seed")


def resolve_communication(
    spec: CommunicationTaskSpec,
    preset: str,
    *,
    world_size: int,
    backend: str,
    device: str,
    algorithm: str | None = None,
    overrides: dict[str, str] | None = None,
) -> CommunicationConfig:
    """Resolve a communication task for one world size and backend; `tasks.registry.resolve` has
    checked the preset name, world size, backend and device already."""
    collective = spec.algorithm(algorithm) if algorithm else spec.reference_algorithm
    values: dict[str, Any] = {**dataclasses.asdict(spec.sweeps[preset]), "seed": spec.seed}
    for field, raw in (overrides or {}).items():
        values[field] = _parse_override(spec, field, raw, values)
    _check_sweep(values)
    return CommunicationConfig(
        task=spec.name, task_version=spec.version, mlbench_id=spec.mlbench_id, kind=spec.kind, preset=preset,
        algorithm=collective.name, collective=collective.collective, op=collective.op,
        reference_implementation=collective.reference, world_size=world_size, backend=backend, device=device,
        dtypes=tuple(values["dtypes"]), min_elements=values["min_elements"], max_elements=values["max_elements"],
        size_count=values["size_count"],
        sizes=tuple(tensor_sizes(values["min_elements"], values["max_elements"], values["size_count"])),
        repeats=values["repeats"], warmup=values["warmup"], seed=values["seed"],
    )


def _parse_override(spec: CommunicationTaskSpec, field: str, raw: str, values: dict[str, Any]) -> Any:
    if field in DERIVED_FIELDS:
        raise UserError(f"'{field}' cannot be set; it comes from {DERIVED_FIELDS[field]}")
    if field not in SETTABLE_FIELDS:
        raise UserError(f"unknown config field '{field}' for task {spec.name}; valid: {', '.join(SETTABLE_FIELDS)}")
    if field == "dtypes":  # "fp16", "fp32,fp16" or a JSON list
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw.split(",")
        items = parsed if isinstance(parsed, list) else [str(parsed)]
        return tuple(str(item).strip() for item in items if str(item).strip())
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"bad value '{raw}' for '{field}': expected a whole number like {values[field]!r}") from None


def _check_sweep(values: dict[str, Any]) -> None:
    dtypes = values["dtypes"]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes or len(set(dtypes)) != len(dtypes):
        shown = bad[0] if bad else ",".join(dtypes)
        raise UserError(f"bad value '{shown}' for 'dtypes'; valid: one or more of {', '.join(DTYPES)}, no repeats")
    if not 1 <= values["min_elements"] <= values["max_elements"]:
        raise UserError(f"bad values for 'min_elements', 'max_elements': need 1 <= min_elements <= max_elements, "
                        f"got {values['min_elements']} and {values['max_elements']}")
    for field, low in (("size_count", 1), ("repeats", 1), ("warmup", 0)):
        if values[field] < low:
            raise UserError(f"bad value {values[field]} for '{field}'; valid: a whole number >= {low}")
