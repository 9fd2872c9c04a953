"""The benchmark-task registry: every task declared under tasks/benchmarks/, looked up by name.

Each module there exports `TASK`, the whole declaration of one task (spec and presets); a task's
kind (tasks.kinds: training or communication) answers everything that differs between kinds, so
callers never branch on a task's name or type. Task hyperparameters follow MLBench's reference
*code* (not its docs where the two differ); see the README's task table.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from tasks import benchmarks
from tasks.communication import CommunicationConfig, CommunicationTaskSpec
from tasks.errors import UserError, quoted
from tasks.kinds import KINDS, TaskKind
from tasks.spec import Preset, ResolvedConfig, RunConfig, TaskSpec

BACKENDS = ("gloo", "nccl")
DEVICES = ("cpu", "cuda")

AnyTaskSpec = TaskSpec | CommunicationTaskSpec


def _discover() -> dict[str, AnyTaskSpec]:
    """Every `tasks.benchmarks.<module>.TASK`: training and translation tasks in MLBench's order (1a,
    2a, 3a, 4a, 4b), then the communication task (task 0), as `mlbench tasks` and the trigger form list them."""
    specs = [importlib.import_module(f"{benchmarks.__name__}.{module.name}").TASK
             for module in pkgutil.iter_modules(benchmarks.__path__)]
    ordered = sorted(specs, key=lambda spec: (spec.kind == "communication", spec.mlbench_id, spec.name))
    return {spec.name: spec for spec in ordered}


TASKS: dict[str, AnyTaskSpec] = _discover()


def get_task(name: str) -> AnyTaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {quoted(name)}; valid tasks: {', '.join(TASKS)}") from None


def kind_of(task: str | AnyTaskSpec) -> TaskKind:
    """The kind of a task (by name or spec): how it runs, is validated, logged and reported."""
    spec = get_task(task) if isinstance(task, str) else task
    return KINDS[spec.kind]


def get_preset(spec: AnyTaskSpec, name: str) -> Preset:
    if name not in spec.presets:
        raise UserError(f"unknown preset {quoted(name)} for task {spec.name}; valid presets: {', '.join(spec.presets)}")
    return spec.presets[name]


def preset_names() -> list[str]:
    """Every preset some task has, in declaration order (full, light, demo, smoke)."""
    return list(dict.fromkeys(name for spec in TASKS.values() for name in spec.presets))


def algorithm_names() -> list[str]:
    """Every algorithm some task has, in declaration order."""
    return list(dict.fromkeys(a.name for spec in TASKS.values() for a in spec.algorithms))


def resolve(
    task: str,
    preset: str = "full",
    *,
    world_size: int = 1,
    backend: str = "gloo",
    device: str | None = None,
    algorithm: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> RunConfig | CommunicationConfig:
    """Resolve a task + preset for one world size and backend into the config that will run."""
    spec = get_task(task)
    get_preset(spec, preset)
    if not isinstance(world_size, int) or world_size < 1:
        raise UserError(f"world size must be a whole number >= 1, got {world_size!r}")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {quoted(backend)}; valid backends: {', '.join(BACKENDS)}")
    device = device or ("cuda" if backend == "nccl" else "cpu")
    if device not in DEVICES:
        raise UserError(f"unknown device {quoted(device)}; valid devices: {', '.join(DEVICES)}")
    if backend == "nccl" and device != "cuda":
        raise UserError("backend 'nccl' needs device 'cuda'; use backend 'gloo' for CPU training")
    config = kind_of(spec).resolve(spec, preset, world_size=world_size, backend=backend, device=device,
                                   algorithm=algorithm, overrides=dict(overrides or {}))
    assert isinstance(config, (RunConfig, CommunicationConfig))
    return config


def config_from_dict(data: dict[str, Any]) -> ResolvedConfig:
    """A resolved config back from its plain form (config.json, result.json's `config`)."""
    return kind_of(str(data.get("task"))).config_from_dict(data)


def task_summary(spec: AnyTaskSpec) -> dict[str, Any]:
    """The row `mlbench tasks` lists."""
    return kind_of(spec).summary(spec)
