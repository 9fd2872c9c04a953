"""The results bundle's `result.json`: one file per run that every later step reads.

Its schema is `result.schema.json` beside this module (and documented in the README).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

from tasks.communication import CommunicationConfig
from tasks.runtime.timing import PHASES
from tasks.spec import RunConfig

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None: None, bools, strings, NaN and infinities are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_identity(config: RunConfig | CommunicationConfig) -> dict[str, Any]:
    """What ran and how: the fields every results bundle (training or task 0) opens with."""
    return {
        "task": config.task,
        "task_version": config.task_version,
        "mlbench_id": config.mlbench_id,
        "preset": config.preset,
        "algorithm": config.algorithm,
        "reference_implementation": config.reference_implementation,
        "world_size": config.world_size,
        "backend": config.backend,
        "device": config.device,
        "seed": config.seed,
    }


def base_result(config: RunConfig) -> dict[str, Any]:
    """The fields known before training starts; a run that fails early still records these."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "failed",
        "reason": None,
        **run_identity(config),
        "target": {"metric": config.target_metric, "mode": config.target_mode, "value": config.target_value},
        "goal_reached": False,
        "time_to_accuracy_s": None,
        "wall_time_to_accuracy_s": None,
        "train_time_s": 0.0,
        "wall_time_s": 0.0,
        "compute_s": 0.0,
        "communication_s": 0.0,
        "phases_s": dict.fromkeys(PHASES, 0.0),
        "epochs_run": 0,
        "steps": 0,
        "final_validation_metric": None,
        "best_validation_metric": None,
        "throughput_samples_per_s": None,
        "history": [],
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "model": {"name": config.model.name, "parameters": None},
        "provenance": {},
        "ranks": [],
        "resumes": 0,
        "started_at": utc_now(),
        "finished_at": utc_now(),
    }


def failed_training_result(config: RunConfig, reason: str, provenance: dict | None = None) -> dict[str, Any]:
    return {**base_result(config), "reason": reason, "provenance": provenance or {}}


def failed_result(config: RunConfig | CommunicationConfig, reason: str,
                  provenance: dict | None = None) -> dict[str, Any]:
    """The record of a run that failed before (or without) its ranks writing one, in its kind's layout."""
    from tasks.registry import kind_of

    return kind_of(config.task).failed_result(config, reason, provenance)


def write_result(output: Path, result: dict[str, Any]) -> Path:
    path = output / "result.json"
    tmp = output / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False, allow_nan=False, default=_jsonable))
    os.replace(tmp, path)
    return path


def read_result(output: Path) -> dict[str, Any]:
    return json.loads((output / "result.json").read_text())


def load_schema(name: str = SCHEMA_PATH.name) -> dict[str, Any]:
    """A results bundle's JSON schema: `result.schema.json` (training) or `allreduce_result.schema.json`."""
    return json.loads(SCHEMA_PATH.with_name(name).read_text())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
