"""The deferrable multi-node path: the operator creates the Indexed Job and defers to
`IndexedJobTrigger`; the trigger, driven with a fake async client over the same fake cluster as the
launcher's tests (and its fake clock), reaches a verdict; `execute_complete` turns it into the
launcher's outcome, deletes the Job and reads the bundle. A kill of the deferred task deletes it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("kubernetes")
from kubernetes.client.exceptions import ApiException  # noqa: E402

from operators import steps  # noqa: E402
from operators.kubernetes import api as k8s_api  # noqa: E402
from operators.kubernetes.job_trigger import IndexedJobTrigger  # noqa: E402
from tests.unit.operators.kubernetes.fake_cluster import (  # noqa: E402
    PENDING,
    RUNNING,
    SUCCEEDED,
    FakeCluster,
    all_ranks,
    assert_all_deleted,
    failed,
    unschedulable,
)

pytestmark = pytest.mark.unit
DAG_RUN = "manual__deferred"


class FakeAsyncClient:
    """The trigger's three async calls, answered by the fake cluster's sync APIs."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    async def read_job(self, name, namespace):
        try:
            return self.cluster.batch.read_namespaced_job(name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_pods(self, namespace, label_selector):
        return list(self.cluster.core.list_namespaced_pod(namespace=namespace, label_selector=label_selector).items)

    async def delete_job(self, name, service, namespace):
        self.cluster.batch.delete_namespaced_job(name=name, namespace=namespace, propagation_policy="Background")
        self.cluster.core.delete_namespaced_service(name=service, namespace=namespace)


@pytest.fixture()
def planned(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    request = steps.validate_request_step({"launcher": "kubernetes", "pool": "gke-t4", "backend": "nccl",
                                           "accelerator": "gpu", "preset": "smoke", "world_sizes": [2]}, DAG_RUN)
    return steps.plan_step(request, DAG_RUN)[0]


def operator_for(configuration):
    from operators.training_operator import DistributedTrainingOperator

    return DistributedTrainingOperator(task_id="launch", configuration=configuration, run_timeout_s=3600)


def context():
    from types import SimpleNamespace

    return {"dag": SimpleNamespace(dag_id="mlbench_benchmark")}


def deferred(planned, cluster, monkeypatch):
    """Run the operator's first half against `cluster`: the trigger it defers to, rebuilt from its
    serialized form (as the triggerer does) with deadlines on the fake cluster's clock."""
    from airflow.sdk.exceptions import TaskDeferred

    monkeypatch.setattr(k8s_api, "clients_from_hook", lambda conn_id: (cluster.core, cluster.batch))
    with pytest.raises(TaskDeferred) as raised:
        operator_for(planned).execute(context())
    assert raised.value.method_name == "execute_complete"
    path, kwargs = raised.value.trigger.serialize()
    assert path == "operators.kubernetes.job_trigger.IndexedJobTrigger"
    assert kwargs["run_deadline"] - kwargs["created_at"] == pytest.approx(3600)
    kwargs.update(created_at=0.0, startup_deadline=600.0, run_deadline=3600.0)
    trigger = IndexedJobTrigger(**kwargs)
    trigger.__dict__["client"] = FakeAsyncClient(cluster)
    trigger.now = cluster.clock

    async def pause():
        cluster.sleep(5)
    trigger.pause = pause
    return trigger


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(run())


def complete(planned, event):
    return operator_for(planned).execute_complete(context(), event)


def ranks_write_result(planned, status="completed"):
    """What the ranks leave on the shared volume at the end of a run."""
    from tasks.runtime.results import TrainingResult, write_result
    from tasks.spec import RunConfig

    output = Path(planned["output"])
    config = RunConfig.from_dict(json.loads((output / "config.json").read_text()))
    write_result(output, dataclasses.replace(TrainingResult.for_config(config), status=status))


def test_the_operator_creates_the_job_and_defers_holding_no_worker(planned, monkeypatch):
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)])
    trigger = deferred(planned, cluster, monkeypatch)
    assert list(cluster.jobs) == [trigger.job_name] and list(cluster.services) == [trigger.service_name]
    assert trigger.pods == 2 and trigger.job_uid == cluster.jobs[trigger.job_name]["uid"]
    assert trigger.namespace == "mlbench"
    config = json.loads((Path(planned["output"]) / "config.json").read_text())
    assert config["world_size"] == 2


def test_a_successful_job_is_waited_out_then_deleted_and_its_bundle_read(planned, monkeypatch, capsys):
    cluster = FakeCluster([{}, all_ranks(2, PENDING), all_ranks(2, RUNNING), all_ranks(2, RUNNING),
                           all_ranks(2, SUCCEEDED)],
                          logs={0: ["epoch 1 loss 2.30", "goal reached"]})
    trigger = deferred(planned, cluster, monkeypatch)
    event = first_event(trigger)
    assert event["verdict"] == "succeeded" and event["job"] == trigger.job_name
    ranks_write_result(planned)
    summary = complete(planned, event)
    assert summary["status"] == "completed"
    out = capsys.readouterr().out
    assert "[rank 0] goal reached" in out and f"job {trigger.job_name}: all 2 ranks succeeded" in out
    assert_all_deleted(cluster, trigger.job_name)


def test_a_failed_rank_is_named_with_its_log_and_retried(planned, monkeypatch):
    cluster = FakeCluster([all_ranks(2, RUNNING), all_ranks(2, RUNNING), {0: RUNNING, 1: failed(1)}],
                          logs={1: ["step 3", "RuntimeError: CUDA error: an illegal memory access"]})
    trigger = deferred(planned, cluster, monkeypatch)
    event = first_event(trigger)
    assert event["verdict"] == "failed"
    with pytest.raises(RuntimeError, match=r"rank 1 failed \(exit code 1, Error\): RuntimeError: CUDA error"):
        complete(planned, event)  # retryable: a crash; the retry resumes from the checkpoint
    result = json.loads((Path(planned["output"]) / "result.json").read_text())
    assert result["status"] == "failed" and "rank 1 failed" in result["reason"]
    assert_all_deleted(cluster, trigger.job_name)


def test_a_rank_pending_forever_times_out_naming_why(planned, monkeypatch):
    cluster = FakeCluster([{0: RUNNING, 1: unschedulable()}])
    trigger = deferred(planned, cluster, monkeypatch)
    event = first_event(trigger)
    assert event["verdict"] == "startup_timeout" and event["startup_waited_s"] >= 600
    with pytest.raises(RuntimeError, match=r"1 of 2 ranks not running after 600s: rank 1 Pending "
                                           r"\(Unschedulable: 0/3 nodes are available"):
        complete(planned, event)
    assert_all_deleted(cluster, trigger.job_name)


def test_a_job_running_past_its_deadline_is_stopped(planned, monkeypatch):
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    trigger = deferred(planned, cluster, monkeypatch)
    event = first_event(trigger)
    assert event["verdict"] == "run_timeout" and cluster.clock() >= 3600
    with pytest.raises(RuntimeError, match="timed out after 3600s"):
        complete(planned, event)
    assert_all_deleted(cluster, trigger.job_name)


def test_killing_the_deferred_task_deletes_the_job_and_its_service(planned, monkeypatch):
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    trigger = deferred(planned, cluster, monkeypatch)
    asyncio.run(trigger.on_kill())
    assert_all_deleted(cluster, trigger.job_name)


def test_an_api_the_trigger_cannot_read_ends_the_wait_with_the_reason(planned, monkeypatch):
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    trigger = deferred(planned, cluster, monkeypatch)
    cluster.fail("list_namespaced_pod", lambda: ApiException(status=403, reason="Forbidden"))
    event = first_event(trigger)
    assert event["verdict"] == "error" and "HTTP 403" in event["message"]
    with pytest.raises(RuntimeError, match="stopped waiting: could not watch job"):
        complete(planned, event)
    assert_all_deleted(cluster, trigger.job_name)


def test_transient_api_errors_are_polled_through(planned, monkeypatch):
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    trigger = deferred(planned, cluster, monkeypatch)
    cluster.fail("read_namespaced_job", lambda: ApiException(status=503, reason="Unavailable"), times=2)
    assert first_event(trigger)["verdict"] == "succeeded"
