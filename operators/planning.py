"""Plan the configurations of a request: task × worker count × repeat, each with its own bundle dir.

Pure: the same request and run id always give the same plan, so a retried task finds the same
output directories (and resumes from their checkpoints).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from operators.request import BenchmarkRequest, config_overrides, device_for


def safe_name(text: str) -> str:
    """A path component from a DAG run id (which may hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "run"


def configuration_id(task: str, algorithm: str, world_size: int, repeat: int, backend: str | None = None) -> str:
    """`task__algorithm__w<k>__r<repeat>`; with `backend` (a request comparing several) after the algorithm."""
    variant = f"{algorithm}__{backend}" if backend else algorithm
    return f"{task}__{variant}__w{world_size}__r{repeat}"


def plan_configurations(
    request: BenchmarkRequest, *, run_id: str, runs_root: Path, data_root: Path
) -> list[dict[str, Any]]:
    """One small dict per configuration (it travels as an XCom: ids and paths only)."""
    from tasks.registry import get_task

    plan = []
    run_dir = Path(runs_root) / safe_name(run_id)
    several_backends = len(request.backend) > 1
    for task in request.tasks:
        algorithm = request.algorithm or get_task(task).reference_algorithm.name
        for backend, world_size, repeat in itertools.product(request.backend, request.world_sizes,
                                                            range(request.repeats)):
            config_id = configuration_id(task, algorithm, world_size, repeat,
                                         backend if several_backends else None)
            overrides = config_overrides(request, task)
            if repeat > 0:  # repeats differ by seed (MLPerf), otherwise they would be identical runs
                overrides["seed"] = str(int(overrides.get("seed", get_task(task).seed)) + repeat)
            plan.append(
                {
                    "config_id": config_id,
                    "run_id": run_id,
                    "task": task,
                    "preset": request.preset,
                    "algorithm": algorithm,
                    "world_size": world_size,
                    "repeat": repeat,
                    "backend": backend,
                    "device": device_for(request),
                    "launcher": request.launcher,
                    "accelerator": request.accelerator,
                    "pool": request.pool,
                    "overrides": overrides,
                    "output": str(run_dir / config_id),
                    "data_root": str(data_root),
                }
            )
    return plan
