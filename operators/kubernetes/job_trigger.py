"""The deferrable wait of a multi-node configuration: the triggerer polls its Indexed Job through the
provider's async Kubernetes hook until the Job ends or a deadline passes, while no worker slot is held.

The trigger decides with the launcher's own rules (`job_pods.JobWatch`: every pod running by the
startup deadline, the run over by the run deadline, a failed pod fails the Job) and fires one event,
`{"verdict": ..., "startup_waited_s": ...}`; back on a worker, `KubernetesJobLauncher.conclude` reads
the reasons (which rank failed first and how, why a pod is still pending), shows rank 0's last log
lines and deletes the Job and its Service. Deadlines are wall-clock times, so they hold when the
trigger moves to another triggerer.

The provider's own KubernetesJobTrigger is not used: it has no startup or run deadline, cannot tell
which pod failed, and does nothing when the task is killed. Here `on_kill` (run by the triggerer on
Airflow 3.3 when a user marks the deferred task failed or clears it) deletes the Job and its Service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from operators.kubernetes.api import describe_error, is_not_found, is_transient
from operators.kubernetes.job_pods import JOB_LABEL, JobWatch, Verdict, observe, owned_by

PROGRESS_EVERY_S = 300.0  # the triggerer's log is shared by every deferred task: say less, less often
MAX_CONSECUTIVE_API_ERRORS = 5
ERROR = "error"  # the event's verdict when the trigger could not watch the Job


class AsyncJobClient:
    """The three calls the trigger makes, through the provider's AsyncKubernetesHook (credentials from
    the Airflow connection, as for every other call)."""

    def __init__(self, conn_id: str) -> None:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        self.hook = AsyncKubernetesHook(conn_id=conn_id)

    async def read_job(self, name: str, namespace: str) -> Any:
        """The Job with its status, None when it no longer exists."""
        try:
            return await self.hook.get_job_status(name=name, namespace=namespace)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    async def list_pods(self, namespace: str, label_selector: str) -> list[Any]:
        from kubernetes_asyncio import client

        async with self.hook.get_conn() as api:
            pods = await client.CoreV1Api(api).list_namespaced_pod(namespace=namespace, label_selector=label_selector)
        return list(pods.items or [])

    async def delete_job(self, name: str, service: str, namespace: str) -> None:
        """The Job (its pods go with it) and the Service; already gone is fine."""
        from kubernetes_asyncio import client

        async with self.hook.get_conn() as api:
            for delete in (client.BatchV1Api(api).delete_namespaced_job(
                               name=name, namespace=namespace, propagation_policy="Background"),
                           client.CoreV1Api(api).delete_namespaced_service(name=service, namespace=namespace)):
                try:
                    await delete
                except Exception as exc:
                    if not is_not_found(exc):
                        raise


class IndexedJobTrigger(BaseTrigger):
    """Waits for one Indexed Job (created by `KubernetesJobLauncher.start`); see the module docstring."""

    def __init__(self, *, job_name: str, service_name: str, namespace: str, pods: int, job_uid: str | None,
                 created_at: float, startup_deadline: float, run_deadline: float,
                 kubernetes_conn_id: str = "kubernetes_default", poll_interval_s: float = 10.0) -> None:
        super().__init__()
        self.job_name = job_name
        self.service_name = service_name
        self.namespace = namespace
        self.pods = int(pods)
        self.job_uid = job_uid
        self.startup_deadline = float(startup_deadline)
        self.run_deadline = float(run_deadline)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval_s = float(poll_interval_s)
        self.created_at = float(created_at)
        self.fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "job_name": self.job_name, "service_name": self.service_name, "namespace": self.namespace,
            "pods": self.pods, "job_uid": self.job_uid, "created_at": self.created_at,
            "startup_deadline": self.startup_deadline,
            "run_deadline": self.run_deadline, "kubernetes_conn_id": self.kubernetes_conn_id,
            "poll_interval_s": self.poll_interval_s,
        })

    @cached_property
    def client(self) -> AsyncJobClient:
        return AsyncJobClient(self.kubernetes_conn_id)

    # -- seams the tests replace (a fake clock); wall time in production
    def now(self) -> float:
        return time.time()

    async def pause(self) -> None:
        await asyncio.sleep(self.poll_interval_s)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = JobWatch(self.pods, startup_deadline=self.startup_deadline, run_deadline=self.run_deadline)
        errors = 0
        next_progress = self.now() + PROGRESS_EVERY_S
        while True:
            seen = None
            try:
                job = await self.client.read_job(self.job_name, self.namespace)
                pods = await self.client.list_pods(self.namespace, f"{JOB_LABEL}={self.job_name}")
                seen = observe(job, [pod for pod in pods if owned_by(pod, self.job_uid)], self.pods)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - one event with the reason, never a silent hang
                errors += 1
                if not is_transient(exc) or errors > MAX_CONSECUTIVE_API_ERRORS:
                    yield self._event(ERROR, f"could not watch job {self.job_name}: {describe_error(exc)}")
                    return
                self.log.warning("job %s: API error while polling (%s); retrying (%d/%d)", self.job_name,
                                 describe_error(exc), errors, MAX_CONSECUTIVE_API_ERRORS)
            was_running = watch.all_running
            now = self.now()
            verdict = watch.judge(seen, now)
            if watch.all_running and not was_running:
                self.log.info("job %s: all %d pods running", self.job_name, self.pods)
            if verdict is not None:
                yield self._event(verdict.value, None, startup_waited_s=now - self.created_at)
                return
            if now >= next_progress and seen is not None:
                next_progress = now + PROGRESS_EVERY_S
                self.log.info("job %s: %d/%d pods running", self.job_name, seen.running, self.pods)
            await self.pause()

    def _event(self, verdict: str, message: str | None, *, startup_waited_s: float = 0.0) -> TriggerEvent:
        self.fired = True
        return TriggerEvent({"verdict": verdict, "message": message, "job": self.job_name, "job_uid": self.job_uid,
                             "startup_waited_s": round(startup_waited_s, 1)})

    async def on_kill(self) -> None:
        """The user killed the deferred task: delete the Job (with its pods) and its Service."""
        if self.fired:  # the worker that takes the event deletes them
            return
        self.log.info("deleting job %s and service %s in namespace %s", self.job_name, self.service_name,
                      self.namespace)
        try:
            await self.client.delete_job(self.job_name, self.service_name, self.namespace)
        except Exception as exc:  # noqa: BLE001 - the pipeline's cleanup step deletes leftovers by label
            self.log.error("could not delete job %s: %s", self.job_name, describe_error(exc))


def verdict_of(event: dict[str, Any]) -> Verdict | None:
    """The event's verdict; None for an `error` event (the trigger lost track of the Job)."""
    value = event.get("verdict")
    return None if value == ERROR else Verdict(value)
