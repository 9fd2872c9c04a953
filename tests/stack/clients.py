"""The two REST APIs as a user's script talks to them: Airflow's v2 API (a JWT from /auth/token)
and MLflow's tracking API, artifacts downloaded through the tracking server's proxy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEMO_CONF = {"tasks": ["cifar10-resnet20"], "preset": "demo", "world_sizes": [1, 2], "repeats": 1}


def _call(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 60) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class Airflow:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.token = _call("POST", f"{url}/auth/token", {"username": user, "password": password})["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return _call(method, f"{self.url}/api/v2{path}", body, self.token)

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180) -> dict:
        """The DAG once the dag-processor has parsed it (404 until then)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.call("GET", f"/dags/{dag_id}")
            except urllib.error.HTTPError as error:
                if error.code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.wait_for_dag(dag_id)
        self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        """The run's final state (success or failed); raises after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")["state"]
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                tasks = ", ".join(f"{t['task_id']}: {t['state']}" for t in self.task_instances(dag_id, run_id))
                raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout_s:.0f}s ({tasks})")
            time.sleep(5)

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str],
                      timeout_s: float = 600) -> dict:
        """The task instance once it is in one of `states` (polled every second)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [t for t in self.task_instances(dag_id, run_id) if t["task_id"] == task_id]
            if any(t["state"] in states for t in found):
                return next(t for t in found if t["state"] in states)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{task_id} of {run_id} not in {states} after {timeout_s:.0f}s: {found}")
            time.sleep(1)

    def unhealthy(self) -> list[str]:
        """Airflow's components that its health endpoint does not call healthy (with their report)."""
        report = self.call("GET", "/monitor/health")
        return [f"{name}: {value}" for name, value in report.items()
                if isinstance(value, dict) and value.get("status") != "healthy"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances"
                                "?limit=100")["task_instances"]


class MLflow:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, endpoint: str, **query: Any) -> Any:
        return _call("GET", f"{self.url}{endpoint}?{urllib.parse.urlencode(query)}")

    def post(self, endpoint: str, body: dict) -> Any:
        return _call("POST", f"{self.url}{endpoint}", body)

    def experiment(self, name: str) -> dict:
        return self.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)["experiment"]

    def runs_of(self, experiment_id: str, dag_run_id: str) -> list[dict]:
        return self.post("/api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment_id], "max_results": 100,
            "filter": f"tags.dag_run_id = '{dag_run_id}'"}).get("runs", [])

    def artifact_paths(self, run_id: str, path: str = "") -> list[str]:
        listing = self.get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path=path)
        paths = []
        for entry in listing.get("files", []):
            paths += self.artifact_paths(run_id, entry["path"]) if entry["is_dir"] else [entry["path"]]
        return paths

    def download(self, run_id: str, path: str) -> bytes:
        """An artifact's bytes through the tracking server (its artifact proxy)."""
        query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
        with urllib.request.urlopen(f"{self.url}/get-artifact?{query}", timeout=60) as response:
            return response.read()


def tags_of(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


def params_of(run: dict) -> dict[str, str]:
    return {param["key"]: param["value"] for param in run["data"].get("params", [])}


def metrics_of(run: dict) -> dict[str, float]:
    return {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}
