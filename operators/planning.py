"""Plan the configurations of a request: task × worker count × repeat, each with its own bundle dir.

Pure: the same request and run id always give the same plan, so a retried task finds the same
output directories (and resumes from their checkpoints).
"""

from __future__ import annotations

import dataclasses
import itertools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.request import BenchmarkRequest, config_overrides, device_for


SAFE_NAME_MAX = 120  # well under a file name's 255 bytes, with room for suffixes


def safe_name(text: str) -> str:
    """A path component from a DAG run id (which may hold ':' and '+', or anything a REST client
    sends): never a separator, never `.` or `..`, at most SAFE_NAME_MAX characters (a longer one
    keeps its start and gains a hash of the whole, so two long ids stay apart)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "run"
    if len(cleaned) <= SAFE_NAME_MAX:
        return cleaned
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned[:SAFE_NAME_MAX - 11].rstrip('._')}_{digest}"


def configuration_id(task: str, algorithm: str, world_size: int, repeat: int, backend: str | None = None) -> str:
    """`task__algorithm__w<k>__r<repeat>`; with `backend` (a request comparing several) after the algorithm."""
    variant = f"{algorithm}__{backend}" if backend else algorithm
    return f"{task}__{variant}__w{world_size}__r{repeat}"


@dataclass(frozen=True)
class Configuration:
    """One planned configuration of a DAG run: what to run, where, and where its bundle goes.

    It travels between Airflow tasks as a small dict (`to_dict`/`from_dict`): ids and paths only.
    """

    config_id: str
    run_id: str
    task: str
    preset: str
    algorithm: str
    world_size: int
    repeat: int
    backend: str
    device: str
    launcher: str
    accelerator: str
    pool: str | None
    output: str  # the configuration's bundle directory
    data_root: str
    overrides: dict[str, str] = field(default_factory=dict)  # config fields, as `--set` takes them

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Configuration:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"not a planned configuration: unknown field '{unknown[0]}'")
        return cls(**{**data, "overrides": dict(data.get("overrides") or {})})


def plan_configurations(
    request: BenchmarkRequest, *, run_id: str, runs_root: Path, data_root: Path
) -> list[Configuration]:
    """One configuration per task x backend x worker count x repeat, in that order."""
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
            plan.append(Configuration(
                config_id=config_id, run_id=run_id, task=task, preset=request.preset, algorithm=algorithm,
                world_size=world_size, repeat=repeat, backend=backend, device=device_for(request),
                launcher=request.launcher, accelerator=request.accelerator, pool=request.pool,
                output=str(run_dir / config_id), data_root=str(data_root), overrides=overrides,
            ))
    return plan
