"""MLflow logging of a benchmark DAG run: one experiment per task, a parent run per (DAG run,
task) that carries the comparison, and a child run per configuration.

Layout in MLflow:

- experiment `mlbench/<task>` (artifact location `<artifact root>/<task>`);
- parent run (tag `mlbench.role=benchmark`, named after the DAG run): the request as params,
  speedup / efficiency metrics, the comparison tables and plots as artifacts, the comparison
  table as the run's description (`mlflow.note.content`); FAILED if any configuration failed;
- child run per configuration (tag `mlbench.role=configuration`, `mlflow.parentRunId`, named
  after the configuration id): the resolved config as dotted params, per-epoch metrics (step =
  epoch), summary metrics, provenance tags, the bundle files and a curve plot as artifacts;
  FAILED with tag `failure_reason` when it failed, was invalid, or left no result at all.

Task 0 (`allreduce`, no target and no epochs) logs curves over tensor size instead: per dtype,
`latency_median_ms_<dtype>`, `latency_p10_ms_<dtype>`, `latency_p90_ms_<dtype>`,
`algbw_gbps_<dtype>` and `busbw_gbps_<dtype>` with step = tensor size in *elements* (the same
steps for every dtype, so fp32 and fp16 share an x axis), plus `small_message_latency_ms_<dtype>`
and `peak_busbw_gbps_<dtype>`; the plot `plots/allreduce.png` on each child, and on the parent a
table per world size and dtype, `<metric>_<dtype>_w<k>` metrics (the curves with step = elements
too) and `plots/allreduce.png` comparing the world sizes.

The MLflow client is used explicitly (`MlflowClient(uri)`): no global tracking URI and no active
run, since this runs inside Airflow workers. Logging is idempotent per DAG run: runs are found
again by their tags (dag_id, dag_run_id, config_id) and updated, so an Airflow retry of the
tracking task never duplicates a run, a param or a metric point.
"""

from __future__ import annotations

import contextlib

import datetime
import json
import logging
import math
import os
import posixpath
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from operators.report import (
    ConfigurationOutcome,
    communication_curves,
    communication_rows,
    comparison_rows,
    configuration_rows,
    format_communication_table,
    format_table,
    plot_communication,
    plot_curves,
    plot_scaling,
    plot_time_split,
    sweep_summary,
    to_csv,
    to_markdown,
)
from tasks.registry import is_communication_task
from tasks.settings import Settings

__all__ = [
    "MLBENCH_HOME_ENV",
    "mlbench_home",
    "tracking_uri",
    "default_artifact_root",
    "flatten_params",
    "log_benchmark",
    "log_stopped_run",
]

log = logging.getLogger(__name__)

MLBENCH_HOME_ENV = "MLBENCH_HOME"
ROLE_TAG = "mlbench.role"
PARENT_ROLE = "benchmark"
CHILD_ROLE = "configuration"

# MLflow's limits (mlflow.utils.validation): values beyond them are rejected or cut.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_TRUNCATED = "...[truncated]"

# history[] field -> metric key (step = epoch). The per-epoch training time gets its own key so
# that `train_time_s` stays the run's total, as in result.json.
_EPOCH_METRICS = {
    "train_loss": "train_loss",
    "validation_metric": "validation_metric",
    "validation_loss": "validation_loss",
    "validation_top5": "validation_top5",
    "lr": "lr",
    "epoch_time_s": "epoch_time_s",
    "train_time_s": "epoch_train_time_s",
    "cumulative_train_time_s": "cumulative_train_time_s",
}
# Task 0: measurement field -> metric key prefix (step = tensor size in elements), with its unit.
_SWEEP_METRICS = {
    "latency_median_s": ("latency_median_ms", 1e3),
    "latency_p10_s": ("latency_p10_ms", 1e3),
    "latency_p90_s": ("latency_p90_ms", 1e3),
    "algbw_gbps": ("algbw_gbps", 1.0),
    "busbw_gbps": ("busbw_gbps", 1.0),
}
_SUMMARY_METRICS = (
    "time_to_accuracy_s", "wall_time_to_accuracy_s", "compute_s", "communication_s",
    "train_time_s", "wall_time_s", "throughput_samples_per_s", "epochs_run", "steps",
    "final_validation_metric", "best_validation_metric", "resumes",
)


# ---------------------------------------------------------------------------------------------
# Where things go
# ---------------------------------------------------------------------------------------------

def mlbench_home() -> Path:
    """The settings' home (`$MLBENCH_HOME`, default `<cwd>/.mlbench`): the local store lives here."""
    return Settings.from_env().home


def tracking_uri() -> str:
    """The settings' tracking URI (`$MLFLOW_TRACKING_URI`, else `$MLBENCH_HOME/mlflow.db`; dir created)."""
    settings = Settings.from_env()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return settings.tracking_uri


def default_artifact_root() -> str:
    """The settings' artifact root (`$MLBENCH_HOME/artifacts`) as a file URI (created)."""
    path = Settings.from_env().artifact_root
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def _is_remote(uri: str) -> bool:
    """A tracking server chooses (and may proxy) artifact locations itself."""
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("databricks") else ""
    return scheme in ("http", "https") or scheme.startswith("databricks")


def _as_uri(location: str) -> str:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", location):
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


# ---------------------------------------------------------------------------------------------
# Values MLflow accepts
# ---------------------------------------------------------------------------------------------

def _key(name: str) -> str:
    """A valid MLflow param/metric/tag key: alphanumerics _ - . space : / only, no path tricks."""
    key = re.sub(r"[^\w.\- :/]", "_", str(name))[:_MAX_KEY] or "_"
    if posixpath.normpath(key) != key or key in (".", "..") or key.startswith(("/", "..")):
        key = ("_" + key.replace("/", "_"))[:_MAX_KEY]
    return key


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if len(text) > limit:
        text = text[: limit - len(_TRUNCATED)] + _TRUNCATED
    return text


def flatten_params(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested dict -> `{"a.b.c": "value"}`: valid keys, lists (and empty dicts) as JSON strings,
    other scalars as `str()` (MLflow's own convention), values cut at MLflow's 6000 characters."""
    flat: dict[str, str] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, key + "."))
        else:
            flat[_key(key)] = _text(value, _MAX_PARAM_VALUE)
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _millis(stamp: Any) -> int | None:
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp() * 1000)


def _now() -> int:
    return int(time.time() * 1000)


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------------------------------------
# What a configuration logs
# ---------------------------------------------------------------------------------------------

def _accelerator(outcome: ConfigurationOutcome, request: dict) -> str:
    """The request's accelerator (cpu/gpu); without one, what the run used (or its backend)."""
    if request.get("accelerator"):
        return str(request["accelerator"])
    device = (outcome.result or {}).get("device")
    return "gpu" if device == "cuda" or (device is None and outcome.backend == "nccl") else "cpu"


def _child_params(outcome: ConfigurationOutcome, request: dict) -> dict[str, str]:
    result = outcome.result or {}
    params = flatten_params(result.get("config") or {})
    for key, value in (("task", outcome.task), ("algorithm", outcome.algorithm),
                       ("world_size", outcome.world_size), ("backend", outcome.backend),
                       ("launcher", outcome.launcher), ("accelerator", _accelerator(outcome, request)),
                       ("repeat", outcome.repeat)):
        params.setdefault(key, _text(value, _MAX_PARAM_VALUE))
    return params


def _child_tags(outcome: ConfigurationOutcome, *, dag_id: str, dag_run_id: str,
                parent_id: str) -> dict[str, str]:
    result = outcome.result or {}
    provenance = result.get("provenance") or {}
    tags: dict[str, Any] = {
        ROLE_TAG: CHILD_ROLE,
        "mlflow.parentRunId": parent_id,
        "mlflow.runName": outcome.config_id,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "config_id": outcome.config_id,
        "task": outcome.task,
        "algorithm": outcome.algorithm,
        "world_size": outcome.world_size,
        "repeat": outcome.repeat,
        "launcher": outcome.launcher,
        "output": outcome.output,
        "status": result.get("status") if outcome.result is not None else "missing",
        "outcome": "succeeded" if outcome.succeeded else "failed",
        # Task 0 has no target, so no goal to reach.
        "goal_reached": None if is_communication_task(outcome.task) else "true" if outcome.goal_reached else "false",
        "config_hash": result.get("config_hash"),
        "mlbench_id": result.get("mlbench_id"),
        "preset": result.get("preset"),
        "git_sha": provenance.get("git_sha"),
        "mlflow.source.git.commit": provenance.get("git_sha"),
        "image": provenance.get("image"),
        "hardware": provenance.get("device_name"),
        "node_type": provenance.get("node_type"),
        "hostname": provenance.get("hostname"),
        "torch": provenance.get("torch"),
        "cuda": provenance.get("cuda"),
        "nccl": provenance.get("nccl"),
        "failure_reason": outcome.failure_summary,
    }
    for backend, why in (provenance.get("backends_unavailable") or {}).items():  # task 0: what it could not measure
        tags[f"backend_unavailable.{backend}"] = why
    if outcome.validation is not None:
        tags["validation_suite"] = outcome.validation.get("suite")
        tags["validation_success"] = "true" if outcome.validation.get("success") is True else "false"
    return {_key(k): _text(v, _MAX_TAG_VALUE) for k, v in tags.items() if v is not None}


def _child_metrics(result: dict | None) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step) of a result: per epoch (step = epoch), then summary (step 0).

    The validation metric is logged twice per epoch: as `validation_metric` (whatever the task) and
    under its own name (`validation_top1`, `validation_accuracy`, `validation_perplexity`).

    Timestamps come from the run's own clock (started_at + wall time of the epochs), so the same
    result always produces the same points.
    """
    if result is None:
        return []
    start = _millis(result.get("started_at")) or _now()
    end = _millis(result.get("finished_at")) or start
    metric_name = (result.get("target") or {}).get("metric")
    points: list[tuple[str, float, int, int]] = []
    elapsed = 0.0
    for entry in result.get("history") or []:
        step = entry.get("epoch")
        if not isinstance(step, int):
            continue
        elapsed += _number(entry.get("epoch_time_s")) or 0.0
        stamp = start + int(elapsed * 1000)
        for field, key in _EPOCH_METRICS.items():
            value = _number(entry.get(field))
            if value is not None:
                points.append((key, value, stamp, step))
        metric = _number(entry.get("validation_metric"))
        if metric is not None and metric_name:  # also by its own name, for charts across tasks
            points.append((_key(f"validation_{metric_name}"), metric, stamp, step))
    for key in _SUMMARY_METRICS:
        value = _number(result.get(key))
        if value is not None:
            points.append((key, value, end, 0))
    for phase, seconds in (result.get("phases_s") or {}).items():
        value = _number(seconds)
        if value is not None:
            points.append((_key(f"phase_{phase}_s"), value, end, 0))
    return points


def _sweep_metrics(result: dict | None) -> list[tuple[str, float, int, int]]:
    """Task 0's points: each measurement per dtype with step = its size in elements, then the
    summary (step 0): small-message latency, peak bus bandwidth per dtype, and the wall time."""
    if result is None:
        return []
    end = _millis(result.get("finished_at")) or _now()
    points: list[tuple[str, float, int, int]] = []
    for row in result.get("measurements") or []:
        for field, (key, scale) in _SWEEP_METRICS.items():
            value = _number(row.get(field))
            if value is not None:
                points.append((_key(f"{key}_{row['dtype']}"), value * scale, end, int(row["elements"])))
    points += [(_key(key), value, end, 0) for key, value in sweep_summary(result.get("measurements") or []).items()]
    wall = _number(result.get("wall_time_s"))
    if wall is not None:
        points.append(("wall_time_s", wall, end, 0))
    return points


# ---------------------------------------------------------------------------------------------
# The comparison a parent run logs
# ---------------------------------------------------------------------------------------------

def _primary_algorithm(outcomes: list[ConfigurationOutcome]) -> str | None:
    """The algorithm whose metrics also get the unprefixed names (`speedup_w2`): the task's
    reference implementation if it ran, else the only algorithm that ran, else none."""
    references = {o.series for o in outcomes
                  if o.result is not None and o.result.get("reference_implementation") is True}
    if len(references) == 1:
        return references.pop()
    algorithms = {o.series for o in outcomes}
    return algorithms.pop() if len(algorithms) == 1 else None


def _parent_metrics(rows: list[dict], primary: str | None,
                    outcomes: list[ConfigurationOutcome]) -> dict[str, float]:
    """`speedup_<algorithm>_w<k>` (and the rest) for every algorithm, plus the unprefixed
    `speedup_w<k>` ... for the primary algorithm; counts of configurations."""
    metrics: dict[str, float] = {}
    fields = ("speedup", "efficiency", "compute_speedup", "compute_efficiency", "hit_rate",
              "comm_share", "tta_s", "compute_s", "communication_s")
    for row in rows:
        k = row["world_size"]
        for field in fields:
            value = _number(row.get(field))
            if value is None:
                continue
            metrics[_key(f"{field}_{row['algorithm']}_w{k}")] = value
            if row["algorithm"] == primary:
                metrics[_key(f"{field}_w{k}")] = value
    metrics.update(_configuration_counts(outcomes))
    metrics["goal_reached_configurations"] = float(sum(1 for o in outcomes if o.goal_reached))
    return metrics


def _configuration_counts(outcomes: list[ConfigurationOutcome]) -> dict[str, float]:
    return {"configurations": float(len(outcomes)),
            "failed_configurations": float(sum(1 for o in outcomes if not o.succeeded))}


def _sweep_parent_metrics(rows: list[dict], outcomes: list[ConfigurationOutcome],
                          now: int) -> list[tuple[str, float, int, int]]:
    """Task 0's comparison: `<figure>_<dtype>_w<k>` per row (step 0), each world size's curves as
    `latency_median_ms_<dtype>_w<k>` and `busbw_gbps_<dtype>_w<k>` (step = size in elements), and
    the configuration counts. A run comparing backends names them: `busbw_gbps_<dtype>_<backend>_w<k>`."""
    backend_of = {o.series: o.backend for o in outcomes if o.compares_backends}

    def name(figure: str, dtype: str, series: str, world_size: int) -> str:
        backend = f"_{backend_of[series]}" if series in backend_of else ""
        return _key(f"{figure}_{dtype}{backend}_w{world_size}")

    points = []
    for row in rows:
        for field in ("small_message_latency_ms", "large_message_latency_ms", "peak_busbw_gbps"):
            value = _number(row.get(field))
            if value is not None:
                points.append((name(field, row["dtype"], row["algorithm"], row["world_size"]), value, now, 0))
    for (_task, series, world_size, dtype), curve in communication_curves(outcomes).items():
        for point in curve:
            for field in ("latency_median_s", "busbw_gbps"):
                key, scale = _SWEEP_METRICS[field]
                points.append((name(key, dtype, series, world_size), point[field] * scale, now,
                               int(point["elements"])))
    return points + [(key, value, now, 0) for key, value in _configuration_counts(outcomes).items()]


# ---------------------------------------------------------------------------------------------
# MLflow plumbing
# ---------------------------------------------------------------------------------------------

def _quote(value: str) -> str | None:
    if "\\" in value:
        return None
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _find_runs(client, experiment_id: str, tags: dict[str, str]) -> list:
    """Active runs of the experiment carrying all these tags, oldest first."""
    clauses = [f"tags.`{key}` = {quoted}" for key, value in tags.items()
               if (quoted := _quote(value)) is not None]
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=" and ".join(clauses),
                                  max_results=1000, order_by=["attributes.start_time ASC"],
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [run for run in runs if all(run.data.tags.get(k) == v for k, v in tags.items())]


def _experiment(client, task: str, artifact_root: str | None) -> str:
    from mlflow.exceptions import MlflowException

    name = f"mlbench/{task}"
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    location = None
    if artifact_root is not None:
        location = f"{artifact_root}/{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}"
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlbench.task": task})
    except MlflowException:
        existing = client.get_experiment_by_name(name)  # created meanwhile by a concurrent task
        if existing is None:
            raise
        return existing.experiment_id


def _open_run(client, experiment_id: str, found: list, *, tags: dict[str, str], name: str,
              start_time: int | None):
    """Reuse the oldest run found (set back to RUNNING while it is updated), or create one.
    Returns (run, reused)."""
    if found:
        if len(found) > 1:
            log.warning("%d runs named %r match; updating the oldest, %s", len(found), name,
                        found[0].info.run_id)
        run = found[0]
        client.update_run(run.info.run_id, status="RUNNING")
        return run, True
    run = client.create_run(experiment_id, start_time=start_time, tags=tags, run_name=name)
    return run, False


def _log(client, run, *, params: dict[str, str], tags: dict[str, str],
         metrics: list[tuple[str, float, int, int]], drop_tags: Iterable[str] = ()) -> None:
    """Batch-log params, tags and metrics, skipping what the run already holds (Airflow retries):
    params already set (a different value is kept and reported: MLflow params are immutable),
    tags already at that value, and metric points whose step already has that value as its
    latest. `run` is the run as read (or created) before this update."""
    from mlflow.entities import Metric, Param, RunTag

    run_id = run.info.run_id
    old_params, old_tags = run.data.params, run.data.tags
    new_params = []
    conflicts = []
    for key, value in params.items():
        if key not in old_params:
            new_params.append(Param(key, value))
        elif old_params[key] != value:
            conflicts.append(key)
    if conflicts:
        log.warning("run %s keeps its earlier values of params %s (MLflow params are immutable)",
                    run_id, ", ".join(sorted(conflicts)))
        tags = {**tags, "mlbench.param_conflicts": _text(",".join(sorted(conflicts)), _MAX_TAG_VALUE)}
    new_tags = [RunTag(k, v) for k, v in tags.items() if old_tags.get(k) != v]

    latest: dict[tuple[str, int], tuple[int, float]] = {}
    for key in {m[0] for m in metrics} & set(run.data.metrics):  # only a reused run has any
        for point in client.get_metric_history(run_id, key):
            current = latest.get((key, point.step))
            if current is None or point.timestamp >= current[0]:
                latest[(key, point.step)] = (point.timestamp, point.value)
    new_metrics = []
    for key, value, stamp, step in metrics:
        current = latest.get((key, step))
        if current is not None:
            if current[1] == value:
                continue
            stamp = max(stamp, current[0] + 1)  # the new value becomes the step's latest
        new_metrics.append(Metric(key, value, stamp, step))

    for chunk in _chunks(new_params, _MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(new_tags, _MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk)
    for chunk in _chunks(new_metrics, _MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    for key in drop_tags:
        if key in old_tags:
            client.delete_tag(run_id, key)


@contextlib.contextmanager
def _failed_on_error(client, run_id: str):
    """A run this step opened never stays RUNNING: any error marks it FAILED with the reason."""
    try:
        yield
    except Exception as error:
        with contextlib.suppress(Exception):
            reason = _text(f"tracking failed: {type(error).__name__}: {error}", _MAX_TAG_VALUE)
            client.set_tag(run_id, "failure_reason", reason)
            client.set_terminated(run_id, status="FAILED")
        raise


def _log_configuration(client, experiment_id: str, outcome: ConfigurationOutcome, found: list, *,
                       dag_id: str, dag_run_id: str, parent_id: str, request: dict) -> str:
    from tasks.runtime.allreduce_results import plot_result

    communication = is_communication_task(outcome.task)
    result = outcome.result
    tags = _child_tags(outcome, dag_id=dag_id, dag_run_id=dag_run_id, parent_id=parent_id)
    start = _millis((result or {}).get("started_at"))
    run, _ = _open_run(client, experiment_id, found, tags=tags, name=outcome.config_id,
                            start_time=start)
    run_id = run.info.run_id
    with _failed_on_error(client, run_id):
        _log(client, run, params=_child_params(outcome, request), tags=tags,
             metrics=_sweep_metrics(result) if communication else _child_metrics(result),
             drop_tags=() if outcome.failure_summary else ("failure_reason",))

        output = Path(outcome.output) if outcome.output else None
        with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
            scratch = Path(scratch)
            bundle_result = output / "result.json" if output else None
            if bundle_result is not None and bundle_result.is_file():
                client.log_artifact(run_id, str(bundle_result))
            elif result is not None:
                (scratch / "result.json").write_text(json.dumps(result, indent=2, default=str))
                client.log_artifact(run_id, str(scratch / "result.json"))
            if output is not None:
                for name in ("mllog.log", "config.json"):
                    if (output / name).is_file():
                        client.log_artifact(run_id, str(output / name))
                if (output / "logs").is_dir() and any((output / "logs").iterdir()):
                    client.log_artifacts(run_id, str(output / "logs"), "logs")
            if outcome.validation is not None:
                (scratch / "validation.json").write_text(
                    json.dumps(outcome.validation, indent=2, sort_keys=True, default=str))
                client.log_artifact(run_id, str(scratch / "validation.json"))
            if result is not None and result.get("history"):
                client.log_artifact(run_id, str(plot_curves(result, scratch / "curves.png")), "plots")
            if result is not None and communication:
                client.log_artifact(run_id, str(plot_result(result, scratch / "allreduce.png")), "plots")

        end = _millis((result or {}).get("finished_at"))
        client.set_terminated(run_id, status="FINISHED" if outcome.succeeded else "FAILED",
                              end_time=end if end is not None and (start is None or end >= start) else None)
    return run_id


def _log_task(client, task: str, outcomes: list[ConfigurationOutcome], *, dag_id: str,
              dag_run_id: str, request: dict,
              artifact_root: str | None) -> tuple[str, str, dict[str, str], list[str]]:
    experiment_id = _experiment(client, task, artifact_root)
    identity = {ROLE_TAG: PARENT_ROLE, "dag_id": dag_id, "dag_run_id": dag_run_id}
    results = [o.result for o in outcomes if o.result is not None]
    primary = _primary_algorithm(outcomes)
    shas = {(r.get("provenance") or {}).get("git_sha") for r in results} - {None}
    failed = [o.config_id for o in outcomes if not o.succeeded]
    parent_tags = {
        **identity,
        "mlflow.runName": dag_run_id,
        "task": task,
        "mlbench_id": next((r.get("mlbench_id") for r in results if r.get("mlbench_id")), None),
        "primary_algorithm": primary,
        "git_sha": shas.pop() if len(shas) == 1 else None,
        "status": "failed" if failed else "completed",
        "failed_configurations": ",".join(failed) if failed else None,
        "failure_reason": f"{len(failed)} of {len(outcomes)} configuration(s) failed" if failed else None,
    }
    parent_tags = {_key(k): _text(v, _MAX_TAG_VALUE) for k, v in parent_tags.items() if v is not None}
    parent, _ = _open_run(
        client, experiment_id, _find_runs(client, experiment_id, identity),
        tags=parent_tags, name=dag_run_id, start_time=None)
    parent_id = parent.info.run_id
    with _failed_on_error(client, parent_id):
        _log(client, parent, params=flatten_params(request or {}), tags=parent_tags,
             metrics=[],
             drop_tags=("stopped",) if failed else ("stopped", "failed_configurations", "failure_reason"))

        # Looked up even for a new parent: children outlive a parent deleted by hand, and are
        # re-attached to the new one (their mlflow.parentRunId tag is rewritten).
        existing: dict[str, list] = {}
        for run in _find_runs(client, experiment_id, {ROLE_TAG: CHILD_ROLE, "dag_id": dag_id,
                                                       "dag_run_id": dag_run_id}):
            existing.setdefault(run.data.tags.get("config_id"), []).append(run)

        child_runs: dict[str, str] = {}
        errors: list[str] = []
        for outcome in outcomes:
            try:
                child_runs[outcome.config_id] = _log_configuration(
                    client, experiment_id, outcome, existing.get(outcome.config_id, []),
                    dag_id=dag_id, dag_run_id=dag_run_id, parent_id=parent_id, request=request or {})
            except Exception as error:  # log the others, then fail the task so Airflow retries
                log.exception("could not log configuration %s", outcome.config_id)
                errors.append(f"{outcome.config_id}: {type(error).__name__}: {error}")

        now = _now()
        if is_communication_task(task):
            rows = communication_rows(outcomes)
            text = format_communication_table(rows)
            metrics = _sweep_parent_metrics(rows, outcomes, now)
            plots = {"allreduce.png": lambda path: plot_communication(outcomes, path)}
        else:
            rows = comparison_rows(outcomes)
            text = format_table(rows)
            metrics = [(k, v, now, 0) for k, v in _parent_metrics(rows, primary, outcomes).items()]
            plots = {"scaling.png": lambda path: plot_scaling(rows, path),
                     "time_split.png": lambda path: plot_time_split(outcomes, path)}
        table = to_markdown(rows)
        note = f"Benchmark `{task}`, DAG run `{dag_run_id}`\n\n{table}"
        _log(client, client.get_run(parent_id), params={},
             tags={"mlflow.note.content": _text(note, _MAX_TAG_VALUE)}, metrics=metrics)
        with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
            scratch = Path(scratch)
            comparison = scratch / "comparison"
            comparison.mkdir()
            (comparison / "comparison.csv").write_text(to_csv(rows))
            (comparison / "comparison.md").write_text(table)
            (comparison / "comparison.txt").write_text(text)
            configurations = configuration_rows(outcomes, child_runs)
            (comparison / "configurations.csv").write_text(to_csv(configurations))
            (comparison / "configurations.md").write_text(to_markdown(configurations))
            plot_dir = scratch / "plots"
            for name, plot in plots.items():
                plot(plot_dir / name)
            (scratch / "request.json").write_text(
                json.dumps(request or {}, indent=2, sort_keys=True, default=str))
            client.log_artifacts(parent_id, str(comparison), "comparison")
            client.log_artifacts(parent_id, str(plot_dir), "plots")
            client.log_artifact(parent_id, str(scratch / "request.json"))
        client.set_terminated(parent_id, status="FAILED" if failed or errors else "FINISHED")
    return experiment_id, parent_id, child_runs, errors


def _client(uri: str | None, artifact_root: str | None):
    """The MLflow client of `uri` (default: `tracking_uri()`) and the artifact root of new
    experiments (None: the tracking server decides)."""
    import mlflow

    uri = uri or _default_tracking_uri()
    if artifact_root is not None:
        root: str | None = _as_uri(artifact_root)
    elif _is_remote(uri):
        root = None
    else:
        root = default_artifact_root()
    return mlflow.MlflowClient(tracking_uri=uri), root


def log_benchmark(outcomes: list[ConfigurationOutcome], *, dag_id: str, dag_run_id: str,
                  request: dict, tracking_uri: str | None = None,
                  artifact_root: str | None = None) -> dict:
    """Log a DAG run's configurations to MLflow; safe to call again for the same DAG run.

    `tracking_uri`: default `tracking_uri()` ($MLFLOW_TRACKING_URI, else the local SQLite store).
    `artifact_root`: where new experiments keep artifacts (`<root>/<task>`; a path or a URI).
    Default: `$MLBENCH_HOME/artifacts` for a local or database store, the server's choice for an
    http(s)/Databricks tracking server. Existing experiments keep their location.

    Returns `{"experiments": {task: experiment_id}, "parent_runs": {task: run_id},
    "child_runs": {config_id: run_id}}`. Raises ValueError on duplicate config ids, and
    RuntimeError after logging everything else if some configuration could not be logged.
    """
    ids = [o.config_id for o in outcomes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate configuration ids: {', '.join(duplicates)}")
    client, root = _client(tracking_uri, artifact_root)

    by_task: dict[str, list[ConfigurationOutcome]] = {}
    for outcome in outcomes:
        by_task.setdefault(outcome.task, []).append(outcome)
    answer: dict[str, dict[str, str]] = {"experiments": {}, "parent_runs": {}, "child_runs": {}}
    errors: list[str] = []
    for task, group in by_task.items():
        experiment_id, parent_id, child_runs, task_errors = _log_task(
            client, task, group, dag_id=dag_id, dag_run_id=dag_run_id, request=request,
            artifact_root=root)
        answer["experiments"][task] = experiment_id
        answer["parent_runs"][task] = parent_id
        answer["child_runs"].update(child_runs)
        errors += task_errors
    if errors:
        raise RuntimeError("could not log to MLflow: " + "; ".join(errors))
    return answer


def log_stopped_run(request: dict, *, dag_id: str, dag_run_id: str, reason: str,
                    artifacts: Iterable[str | os.PathLike] = (), tracking_uri: str | None = None,
                    artifact_root: str | None = None, experiments: list[str] | None = None,
                    stopped: str = "before planning") -> dict:
    """Record a DAG run that stopped before any configuration was planned (a failed data gate, an
    invalid request).

    For each task of the request (or each name of `experiments`: an invalid request's task names
    may not be tasks): the parent run of (DAG run, task), as `log_benchmark` would make
    it (and found again the same way, so a later `log_benchmark` for the same DAG run updates it),
    with the request as params, status FAILED, tag `failure_reason`, and `artifacts` (the data
    validation reports) under `validation/`. Returns the same shape as `log_benchmark`, with no
    child runs.
    """
    client, root = _client(tracking_uri, artifact_root)
    tasks = experiments or [str(t) for t in (request or {}).get("tasks") or []] or ["unknown"]
    files = [Path(a) for a in artifacts]
    answer: dict[str, dict[str, str]] = {"experiments": {}, "parent_runs": {}, "child_runs": {}}
    for task in dict.fromkeys(tasks):
        experiment_id = _experiment(client, task, root)
        identity = {ROLE_TAG: PARENT_ROLE, "dag_id": dag_id, "dag_run_id": dag_run_id}
        tags = {**identity, "mlflow.runName": dag_run_id, "task": task, "status": "failed",
                "failure_reason": reason, "stopped": stopped}
        tags = {_key(k): _text(v, _MAX_TAG_VALUE) for k, v in tags.items() if v is not None}
        parent, _ = _open_run(client, experiment_id, _find_runs(client, experiment_id, identity),
                              tags=tags, name=dag_run_id, start_time=None)
        run_id = parent.info.run_id
        _log(client, parent, params=flatten_params(request or {}), tags=tags,
             metrics=[("configurations", 0.0, _now(), 0)])
        with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
            request_file = Path(scratch) / "request.json"
            request_file.write_text(json.dumps(request or {}, indent=2, sort_keys=True, default=str))
            client.log_artifact(run_id, str(request_file))
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path), "validation")
        client.set_terminated(run_id, status="FAILED")
        answer["experiments"][task] = experiment_id
        answer["parent_runs"][task] = run_id
    return answer


_default_tracking_uri = tracking_uri
