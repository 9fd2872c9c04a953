"""`mlbench rerun`: one logged configuration run, rebuilt exactly from what was logged.

Pure (no MLflow: `operators.tracking.lookup.logged_configuration` reads the run). The resolved
config comes back from the bundle's result.json (`config`), and must hash to the config hash the
run recorded; a `mlbench_benchmark` request that reproduces it is the request of that task,
preset, world size, backend and algorithm plus, as overrides, every config field whose logged
value differs from what they resolve to today (the seed of a repeat included), checked to resolve
to the same hash before it is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from operators.request import config_overrides, device_for, validate_request
from tasks.errors import UserError
from tasks.registry import TASKS, config_from_dict, get_task, resolve
from tasks.runtime.results import ResultRecord
from tasks.spec import ResolvedConfig

__all__ = ["LoggedConfiguration", "rebuild_config", "reproducing_overrides", "trigger_request", "check_request",
           "drift_warning"]

OPTIONS_FIELDS = ("options",)  # free-form mappings an override replaces whole (tasks.overrides)


@dataclass(frozen=True)
class LoggedConfiguration:
    """A configuration run as MLflow holds it: its result.json, and how and with what it ran."""

    run_id: str
    config_id: str | None
    result: ResultRecord
    config_hash: str  # the run's `config_hash` tag (its result's, when untagged)
    launcher: str  # local | kubernetes
    accelerator: str | None  # cpu | gpu; None: from the config's device
    pool: str | None  # the DAG run's node pool (kubernetes launcher)
    git_sha: str | None
    image: str | None


def rebuild_config(logged: LoggedConfiguration) -> ResolvedConfig:
    """The resolved config that ran, from its result.json, checked against the recorded hash."""
    try:
        config = config_from_dict(logged.result.config)
    except (UserError, TypeError, ValueError) as exc:
        raise UserError(f"run {logged.run_id}: its logged config does not fit this version of the code ({exc}); "
                        f"it ran at git sha {logged.git_sha or 'unknown'}: check that out to rerun it") from None
    if config.config_hash() != logged.config_hash:
        raise UserError(f"run {logged.run_id}: its logged config hashes to {config.config_hash()}, not to its "
                        f"recorded config_hash {logged.config_hash}; it cannot be rebuilt exactly")
    return config


def _override_text(value: Any) -> str:
    """A config value as `--set` writes it (tasks.overrides parses it back typed like the field)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def _differences(base: dict[str, Any], logged: dict[str, Any], derived: dict[str, str],
                 prefix: str = "") -> dict[str, str]:
    """`--set` fields turning `base` into `logged`: each differing leaf, derived fields left out."""
    overrides: dict[str, str] = {}
    for name, value in logged.items():
        path = f"{prefix}{name}"
        if not prefix and name in derived:
            continue
        current = base.get(name)
        if isinstance(value, dict) and isinstance(current, dict) and name not in OPTIONS_FIELDS:
            overrides.update(_differences(current, value, derived, path + "."))
        elif _plain(value) != _plain(current):
            overrides[path] = _override_text(value)
    return overrides


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def reproducing_overrides(config: ResolvedConfig) -> dict[str, str]:
    """The overrides that make the config's task, preset, world size, backend, device and algorithm
    resolve to `config` today."""
    identity = _identity(config)
    base = resolve(identity["task"], identity["preset"], world_size=identity["world_size"],
                   backend=identity["backend"], device=identity["device"], algorithm=identity["algorithm"])
    return _differences(base.to_dict(), config.to_dict(), dict(type(config).DERIVED))


def _identity(config: ResolvedConfig) -> dict[str, Any]:
    """The fields a resolution starts from (every kind of config has them)."""
    return {name: getattr(config, name) for name in ("task", "preset", "world_size", "backend", "device",
                                                     "algorithm")}


def trigger_request(logged: LoggedConfiguration, config: ResolvedConfig) -> dict[str, Any]:
    """The `mlbench_benchmark` request (the DAG's params) that runs `config` once, with the logged
    launcher, accelerator and pool."""
    identity = _identity(config)
    return {
        "tasks": [identity["task"]], "preset": identity["preset"], "world_sizes": [identity["world_size"]],
        "backend": [identity["backend"]], "algorithm": identity["algorithm"], "repeats": 1,
        "launcher": logged.launcher,
        "accelerator": logged.accelerator or ("gpu" if identity["device"] == "cuda" else "cpu"),
        "pool": logged.pool, "target": None, "overrides": {identity["task"]: reproducing_overrides(config)},
    }


def check_request(request: dict[str, Any], config: ResolvedConfig) -> None:
    """The request is valid and resolves to `config` (its one configuration, repeat 0)."""
    valid = validate_request(request)
    (task,) = valid.tasks
    again = resolve(task, valid.preset, world_size=valid.world_sizes[0], backend=valid.backend[0],
                    device=device_for(valid), algorithm=valid.algorithm, overrides=config_overrides(valid, task))
    if again.config_hash() != config.config_hash():
        raise UserError(f"the request for a rerun resolves to config hash {again.config_hash()}, not "
                        f"{config.config_hash()}; the logged config cannot be reproduced by a DAG run")


def _same_sha(recorded: str, today: str) -> bool:
    """Equal, or one an abbreviation of the other (tags may hold a short sha)."""
    return recorded.startswith(today) or today.startswith(recorded)


def drift_warning(logged: LoggedConfiguration, *, git_sha: str | None, image: str | None) -> str | None:
    """One line saying what differs today from what the run recorded (code, image, task version);
    None when nothing does."""
    differences = []
    if (logged.git_sha or git_sha) and not (logged.git_sha and git_sha and _same_sha(logged.git_sha, git_sha)):
        differences.append(f"git sha {git_sha or 'unknown'} (recorded: {logged.git_sha or 'unknown'})")
    if logged.image != image:
        differences.append(f"image {image or 'none'} (recorded: {logged.image or 'none'})")
    task = logged.result.task
    if task in TASKS and get_task(task).version != logged.result.task_version:
        differences.append(f"task {task} version {get_task(task).version} (recorded: {logged.result.task_version})")
    if not differences:
        return None
    return (f"rerun of {logged.run_id} runs the same config on different code: " + "; ".join(differences)
            + "; its results may differ for that reason")
