"""The benchmark pipeline's wiring, shared by the manual and the nightly DAG.

Task bodies are one-line calls into `operators.steps` (imported inside each task, so parsing a
DAG file stays cheap). Steps after the launch run whatever happened upstream (trigger rule
ALL_DONE) and read the run directory, so a failed configuration or a failed gate is still
validated, tracked and reported; the final `check` fails the DAG run if anything failed.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import Param, TriggerRule, get_current_context, task

from operators.kubernetes.pod_operator import SingleNodeTrainingOperator
from operators.training_operator import DistributedTrainingOperator
from tasks.settings import LOCAL_LAUNCH_POOL, Settings

# Local ranks of two configurations on one machine would share its cores and distort both
# timings, so the local launcher's pool has one slot: configurations run one at a time, across
# all DAG runs. On a cluster, point MLBENCH_LAUNCH_POOL at a pool sized to how many
# configurations the GPU quota runs side by side.
SETTINGS = Settings.from_env()  # read once, when the DAG file is parsed
LOCAL_POOL = LOCAL_LAUNCH_POOL
LAUNCH_POOL = SETTINGS.launch_pool
OWNER = "mlbench"
RETRY_DELAY = datetime.timedelta(seconds=SETTINGS.retry_delay_s)
DEFAULT_ARGS = {"owner": OWNER, "retries": 1, "retry_delay": RETRY_DELAY}
TAGS = ["mlbench", "benchmark"]


def benchmark_params() -> dict[str, Param]:
    """The manual trigger form; the request step re-validates everything with clear messages."""
    from operators.kubernetes.pools import load_pools
    from operators.regressions.settings import HISTORY_FIELDS, ON_REGRESSION
    from tasks.registry import BACKENDS, TASKS, algorithm_names, preset_names

    return {
        "tasks": Param(["cifar10-resnet20"], type="array", items={"type": "string", "enum": sorted(TASKS)},
                       minItems=1, title="Benchmark tasks", description="MLBench tasks to run"),
        "preset": Param("demo", type="string", enum=preset_names(), title="Preset",
                        description="full / light: MLBench's targets; demo: bundled data; smoke: tests"),
        "world_sizes": Param([1, 2], type="array", items={"type": "integer", "minimum": 1}, minItems=1,
                             title="Worker counts", description="one configuration per worker count"),
        "backend": Param("gloo", type=["string", "array"], title="Communication backend(s)",
                         description=f"one of {', '.join(BACKENDS)}, or a list to run every configuration on "
                                     "each and compare them (nccl needs accelerator gpu)"),
        # null, not "": the UI's form treats an empty string as a missing required field and
        # keeps its Trigger button disabled (seen in the browser check, tests/stack)
        "algorithm": Param(None, type=["null", "string"], enum=[None, *algorithm_names()], title="Algorithm",
                           description="empty: each task's reference algorithm"),
        "repeats": Param(1, type="integer", minimum=1, maximum=100, title="Repeats",
                         description="runs per configuration (seed + repeat); reported as an olympic mean"),
        "launcher": Param("local", type="string", enum=["local", "kubernetes"], title="Launcher"),
        "accelerator": Param("cpu", type="string", enum=["cpu", "gpu"], title="Accelerator"),
        "pool": Param(None, type=["null", "string"], enum=[None, *load_pools(SETTINGS.pools_file)], title="Node pool",
                      description="kubernetes launcher only: a profile from operators/kubernetes/pools.yaml"),
        "target": Param(None, type=["null", "number"], title="Target override",
                        description="replaces every training task's quality target for this run"),
        "overrides": Param({}, type="object", title="Config overrides",
                           description='extra config fields for every task, e.g. {"max_epochs": "5"}, '
                                       'or for one task: {"wikitext2-lstm": {"max_epochs": "5"}}'),
        "on_regression": Param("warn", type="string", enum=list(ON_REGRESSION), title="On a regression",
                               description="each configuration is compared with its nightly history: warn "
                                           "(report it) or fail (fail the run)"),
        "history": Param({}, type="object", title="History comparison",
                         description=f"optional: {', '.join(HISTORY_FIELDS)} (defaults: 60 nights, p-value "
                                     "0.02, 5 %; docs/regressions.md)"),
    }


def _run_id() -> str:
    return get_current_context()["run_id"]


def _dag_id() -> str:
    return get_current_context()["dag"].dag_id


@task
def prepare_data(request: dict[str, Any]) -> list[dict[str, str]]:
    from operators.steps import prepare_data_step

    return prepare_data_step(request, _run_id())


@task(retries=0)
def validate_data(request: dict[str, Any], _prepared: list[dict[str, str]]) -> list[dict[str, Any]]:
    from operators.steps import validate_data_step

    return validate_data_step(request, _run_id())


@task(retries=0)
def plan(request: dict[str, Any], _validated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from operators.steps import plan_step

    return plan_step(request, _run_id())


@task
def job_configurations(configurations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configurations for `launch`: local ranks, or an Indexed Job spanning nodes."""
    from operators.launch import runs_as_one_pod
    from operators.planning import Configuration

    return [c for c in configurations if not runs_as_one_pod(Configuration.from_dict(c))]


@task
def pod_configurations(configurations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configurations for `launch_pod`: kubernetes ones that fit on one node of their pool."""
    from operators.launch import runs_as_one_pod
    from operators.planning import Configuration

    return [c for c in configurations if runs_as_one_pod(Configuration.from_dict(c))]


# The recording steps run whatever happened upstream: a failed configuration or gate is still
# validated, tracked, reported and cleaned up; `check` then fails the DAG run.
@task(retries=0, trigger_rule=TriggerRule.ALL_DONE)
def validate_results() -> list[dict[str, Any]]:
    from operators.steps import validate_results_step

    return validate_results_step(_run_id())


# The tracking server may be down for a while (a restart, a deploy): retried with growing delays;
# logging is idempotent, so a retry (or `mlbench track --run-id`) never duplicates a run.
@task(trigger_rule=TriggerRule.ALL_DONE, retries=4, retry_exponential_backoff=True)
def track() -> dict[str, Any]:
    from operators.steps import track_step

    return track_step(_run_id(), dag_id=_dag_id())


@task(trigger_rule=TriggerRule.ALL_DONE)
def compare_history() -> dict[str, int]:
    from operators.steps import compare_history_step

    return compare_history_step(_run_id())


@task(retries=0, trigger_rule=TriggerRule.ALL_DONE)
def report() -> str:
    from operators.steps import report_step

    return report_step(_run_id())


@task(trigger_rule=TriggerRule.ALL_DONE)
def cleanup() -> int:
    from operators.steps import cleanup_step

    return cleanup_step(_run_id(), dag_id=_dag_id())


@task(retries=0, trigger_rule=TriggerRule.ALL_DONE)
def check() -> None:
    from operators.steps import check_step

    check_step(_run_id())


def build_pipeline(request_from: str) -> None:
    """Add the pipeline's tasks to the DAG being defined. `request_from`: "params" or a sweep file."""

    @task(retries=0)
    def validate_request() -> dict[str, Any]:
        from operators.steps import validate_request_step

        if request_from == "params":
            return validate_request_step(dict(get_current_context()["params"]), _run_id())
        return validate_request_step(None, _run_id(), sweep_file=request_from)

    request = validate_request()
    configurations = plan(request, validate_data(request, prepare_data(request)))
    launched = DistributedTrainingOperator.partial(
        task_id="launch", pool=LAUNCH_POOL, retries=1,
    ).expand(configuration=job_configurations(configurations))
    # One pod per configuration that fits on one node, deferrable: the triggerer waits, not a worker.
    pods = SingleNodeTrainingOperator.partial(
        task_id="launch_pod", pool=LAUNCH_POOL, retries=1,
    ).expand(configuration=pod_configurations(configurations))
    gate = validate_results()
    [launched, pods] >> gate
    configurations >> gate  # runs (and records the failure) even when planning never happened
    gate >> track() >> compare_history() >> report() >> cleanup() >> check()
