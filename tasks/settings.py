"""The deployment's settings, read from the environment in one place, each with one default.

Every process (a CLI command, an Airflow step, the embedded demo) builds one `Settings` with
`Settings.from_env()` at its start and passes it down; nothing else reads these variables.

| variable                        | setting                 | default                                   |
|---------------------------------|-------------------------|-------------------------------------------|
| MLBENCH_HOME                    | home                    | `.mlbench` in the current directory       |
| MLBENCH_DATA_ROOT               | data_root               | `<home>/data`                             |
| MLBENCH_RUNS_ROOT               | runs_root               | `<home>/runs`                             |
| MLFLOW_TRACKING_URI             | tracking_uri            | `sqlite:///<home>/mlflow.db`              |
| MLBENCH_K8S_NAMESPACE           | k8s_namespace           | `mlbench`                                 |
| MLBENCH_K8S_CONN_ID             | k8s_conn_id             | `kubernetes_default`                      |
| MLBENCH_K8S_STARTUP_TIMEOUT_S   | k8s_startup_timeout_s   | 1200 (autoscaled GPU pools add nodes slowly) |
| MLBENCH_IMAGE                   | image_template          | `mlbench-airflow/train:0.1.0-{variant}`   |
| MLBENCH_POOLS_FILE              | pools_file              | none: the bundled operators/kubernetes/pools.yaml |
| MLBENCH_LAUNCH_POOL             | launch_pool             | `mlbench_local`                           |
| MLBENCH_RETRY_DELAY_S           | retry_delay_s           | 30                                        |
| MLBENCH_NIGHTLY_SWEEP           | nightly_sweep           | none: the bundled dags/sweeps/nightly.yaml |

A rank's own environment (RANK, WORLD_SIZE, MASTER_ADDR, ..., set by a launcher for one process)
is not a setting: `tasks.runtime.distributed.RankEnv` reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import UserError

LOCAL_LAUNCH_POOL = "mlbench_local"
DEFAULT_IMAGE_TEMPLATE = "mlbench-airflow/train:0.1.0-{variant}"


@dataclass(frozen=True)
class Settings:
    home: Path
    data_root: Path
    runs_root: Path
    tracking_uri: str
    k8s_namespace: str = "mlbench"
    k8s_conn_id: str = "kubernetes_default"
    k8s_startup_timeout_s: float = 1200.0
    image_template: str = DEFAULT_IMAGE_TEMPLATE
    pools_file: Path | None = None
    launch_pool: str = LOCAL_LAUNCH_POOL
    retry_delay_s: float = 30.0
    nightly_sweep: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = _path(env.get("MLBENCH_HOME")) or (Path.cwd() / ".mlbench").resolve()
        return cls(
            home=home,
            data_root=_path(env.get("MLBENCH_DATA_ROOT")) or home / "data",
            runs_root=_path(env.get("MLBENCH_RUNS_ROOT")) or home / "runs",
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home}/mlflow.db",
            k8s_namespace=env.get("MLBENCH_K8S_NAMESPACE") or "mlbench",
            k8s_conn_id=env.get("MLBENCH_K8S_CONN_ID") or "kubernetes_default",
            k8s_startup_timeout_s=_seconds(env, "MLBENCH_K8S_STARTUP_TIMEOUT_S", 1200.0),
            image_template=env.get("MLBENCH_IMAGE") or DEFAULT_IMAGE_TEMPLATE,
            pools_file=_path(env.get("MLBENCH_POOLS_FILE")),
            launch_pool=env.get("MLBENCH_LAUNCH_POOL") or LOCAL_LAUNCH_POOL,
            retry_delay_s=_seconds(env, "MLBENCH_RETRY_DELAY_S", 30.0),
            nightly_sweep=_path(env.get("MLBENCH_NIGHTLY_SWEEP")),
        )

    @property
    def artifact_root(self) -> Path:
        """Where a local (file or database) MLflow store keeps artifacts."""
        return self.home / "artifacts"

    @property
    def locks_dir(self) -> Path:
        return self.home / "locks"


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds, got '{raw}'") from None
    if value < 0:
        raise UserError(f"{name} must be >= 0 seconds, got {value:g}")
    return value
