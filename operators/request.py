"""A benchmark request (the DAG's params, or a sweep file entry), validated before any work.

Validation fails with one message naming the bad field and what is valid, so the run stops at its
first step instead of deep inside training.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from operators.regressions.settings import HISTORY_FIELDS, ON_REGRESSION, RegressionPolicy
from tasks.errors import UserError, quoted
from tasks.registry import BACKENDS, TASKS, get_preset, get_task, kind_of

LAUNCHERS = ("local", "kubernetes")
ACCELERATORS = ("cpu", "gpu")
MAX_WORLD_SIZE = 1024
MAX_REPEATS = 100


class InvalidRequest(UserError):
    """The request cannot run; the message names the field."""


@dataclass(frozen=True)
class BenchmarkRequest:
    tasks: tuple[str, ...]
    preset: str = "demo"
    world_sizes: tuple[int, ...] = (1, 2)
    backend: tuple[str, ...] = ("gloo",)  # several: every configuration runs on each (task 0 compares them)
    algorithm: str | None = None  # None: each task's reference algorithm
    repeats: int = 1
    launcher: str = "local"
    accelerator: str = "cpu"
    target: float | None = None  # overrides every task's target for this request (task 0 has none)
    pool: str | None = None  # node-pool profile, for the kubernetes launcher
    overrides: dict[str, Any] = field(default_factory=dict)  # field -> value for every task; task -> {field: value}
    on_regression: str = "warn"  # what `check` does when the run regressed against its history: fail | warn
    history: dict[str, float] = field(default_factory=dict)  # nights, p_value, min_magnitude_pct (defaults otherwise)

    @property
    def regression_policy(self) -> RegressionPolicy:
        return RegressionPolicy.from_fields(self.on_regression, self.history)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        data["world_sizes"] = list(self.world_sizes)
        data["backend"] = list(self.backend)
        return data


def _fail(field_name: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"invalid request field {quoted(field_name)}: {problem}")


def _as_list(field_name: str, value: Any) -> list:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(field_name, f"expected a non-empty list, got {value!r}")
    return list(value)


def validate_request(params: dict[str, Any]) -> BenchmarkRequest:
    """Check every field of a request, in order; the first problem found is raised as InvalidRequest."""
    known = {f.name for f in dataclasses.fields(BenchmarkRequest)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise _fail(unknown[0], f"unknown field; valid fields: {', '.join(sorted(known))}")
    defaults = BenchmarkRequest(tasks=("cifar10-resnet20",))
    tasks = _check_tasks(params.get("tasks", list(defaults.tasks)))
    preset = _check_preset(params.get("preset", defaults.preset), tasks)
    world_sizes = _check_world_sizes(params.get("world_sizes", list(defaults.world_sizes)))
    accelerator = params.get("accelerator", defaults.accelerator)
    backends = _check_backends(params.get("backend", list(defaults.backend)), accelerator)
    algorithm = _check_algorithm(params.get("algorithm") or None, tasks)
    repeats = _check_repeats(params.get("repeats", defaults.repeats))
    launcher = params.get("launcher", defaults.launcher)
    if not isinstance(launcher, str) or launcher not in LAUNCHERS:
        raise _fail("launcher", f"{quoted(launcher)} is not a launcher; valid: {', '.join(LAUNCHERS)}")
    target = _check_target(params.get("target"))
    overrides = _check_overrides(params.get("overrides") or {}, tasks)
    pool = _check_pool_field(params.get("pool") or None, launcher, backends, accelerator, world_sizes)
    on_regression, history = _check_regression_policy(params.get("on_regression", defaults.on_regression),
                                                      params.get("history") or {})
    request = BenchmarkRequest(
        tasks=tuple(tasks), preset=preset, world_sizes=tuple(world_sizes), backend=tuple(backends),
        algorithm=algorithm, repeats=repeats, launcher=launcher, accelerator=accelerator,
        target=target, overrides=overrides, pool=pool, on_regression=on_regression, history=history,
    )
    _check_resolves(request)
    return request


def _check_tasks(value: Any) -> list[str]:
    tasks = _as_list("tasks", value)
    for name in tasks:
        if not isinstance(name, str) or name not in TASKS:
            raise _fail("tasks", f"unknown task {quoted(name)}; valid tasks: {', '.join(TASKS)}")
    return tasks


def _check_preset(preset: Any, tasks: list[str]) -> str:
    if not isinstance(preset, str):
        raise _fail("preset", f"must be the name of a preset, got {preset!r}")
    for name in tasks:
        try:
            get_preset(get_task(name), preset)
        except UserError as exc:
            raise _fail("preset", str(exc)) from None
    return str(preset)


def _check_world_sizes(value: Any) -> list[int]:
    world_sizes = []
    for item in _as_list("world_sizes", value):
        try:
            size = int(item)
        except (TypeError, ValueError):
            raise _fail("world_sizes", f"{quoted(item)} is not a whole number") from None
        if not 1 <= size <= MAX_WORLD_SIZE or str(size) != str(item).strip():
            raise _fail("world_sizes", f"each worker count must be a whole number from 1 to {MAX_WORLD_SIZE}, "
                                       f"got {item!r}")
        world_sizes.append(size)
    if len(set(world_sizes)) != len(world_sizes):
        raise _fail("world_sizes", f"duplicate worker counts in {world_sizes}")
    return world_sizes


def _check_backends(value: Any, accelerator: Any) -> list[str]:
    backends = _as_list("backend", value)
    for backend in backends:
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise _fail("backend", f"{quoted(backend)} is not a backend; valid: {', '.join(BACKENDS)}")
    if len(set(backends)) != len(backends):
        raise _fail("backend", f"duplicate backends in {backends}")
    if not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
        raise _fail("accelerator", f"{quoted(accelerator)} is not valid; valid: {', '.join(ACCELERATORS)}")
    if "nccl" in backends and accelerator != "gpu":
        raise _fail("backend", "nccl needs accelerator 'gpu'; use gloo for CPU runs")
    return backends


def _check_algorithm(algorithm: Any, tasks: list[str]) -> str | None:
    if algorithm is not None and not isinstance(algorithm, str):
        raise _fail("algorithm", f"must be the name of an algorithm, got {algorithm!r}")
    if algorithm is not None:
        for name in tasks:
            try:
                get_task(name).algorithm(algorithm)
            except UserError as exc:
                raise _fail("algorithm", str(exc)) from None
    return algorithm


def _check_repeats(repeats: Any) -> int:
    if isinstance(repeats, str) and repeats.strip().isdigit():
        repeats = int(repeats)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise _fail("repeats", f"must be a whole number from 1 to {MAX_REPEATS}, got {repeats!r}")
    return repeats


def _check_target(target: Any) -> float | None:
    if target in ("", None):
        return None
    try:
        if isinstance(target, bool):
            raise ValueError(target)
        value = float(target)
    except (TypeError, ValueError):
        raise _fail("target", f"must be a number, got {target!r}") from None
    if not math.isfinite(value):
        raise _fail("target", f"must be a finite number, got {target!r}")
    return value


def _check_pool_field(pool: Any, launcher: str, backends: list[str], accelerator: str,
                      world_sizes: list[int]) -> str | None:
    if pool is not None and not isinstance(pool, str):
        raise _fail("pool", f"must be the name of one pool profile, got {pool!r}")
    if launcher == "kubernetes":
        for backend in backends:
            pool = _check_pool(pool, backend, accelerator, world_sizes)
    elif pool is not None:
        raise _fail("pool", "a node pool only applies to launcher 'kubernetes'")
    return pool


def _check_regression_policy(on_regression: Any, history: Any) -> tuple[str, dict[str, float]]:
    if not isinstance(on_regression, str) or on_regression not in ON_REGRESSION:
        raise _fail("on_regression", f"{on_regression!r} is not valid; valid: {', '.join(ON_REGRESSION)}")
    if not isinstance(history, dict):
        raise _fail("history", f"must be a mapping with any of {', '.join(HISTORY_FIELDS)}, got {history!r}")
    try:
        policy = RegressionPolicy.from_fields(on_regression, history)
    except ValueError as exc:
        raise _fail("history", str(exc)) from None
    checked = {"nights": policy.nights, "p_value": policy.detector.p_value,
               "min_magnitude_pct": policy.detector.min_magnitude_pct}
    return on_regression, {name: checked[name] for name in history}  # only what was set: defaults may change


def _check_overrides(overrides: Any, tasks: list[str]) -> dict[str, Any]:
    """{field: value} for every task of the request, and {task: {field: value}} for one task only
    (tasks of different kinds have different fields: task 0 has no max_epochs)."""
    if not isinstance(overrides, dict):
        raise _fail("overrides", f"must be a mapping of config field to value, got {overrides!r}")
    checked: dict[str, Any] = {}
    for key, value in overrides.items():
        key = str(key)
        if isinstance(value, dict):
            if key not in tasks:
                raise _fail("overrides", f"{quoted(key)} holds per-task fields but is not a task of this request; "
                                         f"valid: {', '.join(tasks)}")
            checked[key] = {str(k): str(v) for k, v in value.items()}
        else:
            checked[key] = str(value)
    return checked


def _check_pool(pool: str | None, backend: str, accelerator: str, world_sizes: list[int]) -> str:
    from operators.kubernetes.pools import load_pools, placement
    from tasks.settings import Settings

    pools = load_pools(Settings.from_env().pools_file)
    if pool not in pools:
        shown = "none given" if pool is None else f"unknown pool {quoted(pool)}"
        raise _fail("pool", f"{shown}; the kubernetes launcher needs one of: {', '.join(pools)}")
    profile = pools[pool]
    if profile.accelerator != accelerator:
        raise _fail("pool", f"pool '{pool}' has {profile.accelerator} nodes but the request's accelerator is "
                            f"{accelerator}")
    if backend == "nccl" and profile.gpus_per_pod == 0:
        raise _fail("pool", f"pool '{pool}' has no GPUs; nccl needs a GPU pool")
    for size in world_sizes:
        try:
            placement(size, profile)
        except UserError as exc:
            raise _fail("world_sizes", str(exc)) from None
    return pool


def _check_resolves(request: BenchmarkRequest) -> None:
    """Every configuration must resolve (overrides typed right, ranges valid) before anything runs."""
    from tasks.registry import resolve

    for name, size, backend in itertools.product(request.tasks, request.world_sizes, request.backend):
        try:
            resolve(name, request.preset, world_size=size, backend=backend,
                    device=device_for(request), algorithm=request.algorithm,
                    overrides=config_overrides(request, name))
        except UserError as exc:
            hint = ""
            if len(request.tasks) > 1 and request.overrides:
                hint = '; to set a field for one task only, nest it under that task: {"TASK": {"FIELD": "VALUE"}}'
            raise _fail("overrides" if request.overrides else "tasks", f"{exc}{hint}") from None


def device_for(request: BenchmarkRequest) -> str:
    return "cuda" if request.accelerator == "gpu" else "cpu"


def config_overrides(request: BenchmarkRequest, task: str) -> dict[str, str]:
    """The request's config fields for one task: the shared ones, then the task's own; the target
    override skips a task without a target (task 0)."""
    overrides = {k: v for k, v in request.overrides.items() if not isinstance(v, dict)}
    overrides.update(request.overrides.get(task) or {})
    if request.target is not None and kind_of(task).has_target:
        overrides["target_value"] = repr(request.target)
    return overrides
