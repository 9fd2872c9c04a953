"""The launcher operator: one planned configuration as one distributed job.

The job itself is run by `operators.launch.launch_configuration` with the launcher the
configuration names; this operator only adapts that to Airflow: small XComs, failure semantics,
and stopping the ranks when the task is killed.

A kubernetes configuration (one spanning nodes: single-node ones go to `SingleNodeTrainingOperator`)
is deferrable by default: the task creates the Indexed Job and its Service, then defers to
`IndexedJobTrigger`; the triggerer, not a worker slot, waits out the hours of training, and the task
comes back to a worker to read the reasons, show rank 0's last log lines and delete the Job.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from airflow.sdk import BaseOperator

from operators.launch import DEFAULT_RENDEZVOUS_S, DEFAULT_RUN_TIMEOUT_S


class DistributedTrainingOperator(BaseOperator):
    """Runs one configuration (a dict from `operators.planning.plan_configurations`).

    Bad input, bad data and divergence fail for good (a retry would fail the same way); crashes,
    timeouts and kills are retried, and the retry resumes from the configuration's last checkpoint.
    """

    template_fields = ("configuration",)
    ui_color = "#d7ecf9"

    def __init__(
        self,
        *,
        configuration: dict[str, Any],
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
        rendezvous_timeout_s: float = DEFAULT_RENDEZVOUS_S,
        deferrable: bool = True,
        poll_interval_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.configuration = configuration
        self.run_timeout_s = run_timeout_s
        self.rendezvous_timeout_s = rendezvous_timeout_s
        self.deferrable = deferrable
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, Any]:
        from operators.launch import launch_configuration
        from operators.planning import Configuration

        configuration = Configuration.from_dict(self.configuration)
        if self.deferrable and configuration.launcher == "kubernetes":
            return self._start_job(configuration, context["dag"].dag_id)
        summary = launch_configuration(
            configuration,
            run_timeout_s=self.run_timeout_s,
            rendezvous_timeout_s=self.rendezvous_timeout_s,
            stop=self._stop,
            dag_id=context["dag"].dag_id,
        )
        return summary.as_task_result()

    def _start_job(self, c: Any, dag_id: str) -> dict[str, Any]:
        """Create the Job and defer to the trigger (or finish now if it could not start)."""
        from operators.kubernetes.job_trigger import IndexedJobTrigger
        from operators.launch import job_summary, open_kubernetes_job, recording_failures, refused
        from tasks.errors import UserError
        from tasks.settings import Settings

        settings = Settings.from_env()
        try:
            with recording_failures(c):
                launcher, manifests = open_kubernetes_job(c, settings, dag_id=dag_id, run_timeout_s=self.run_timeout_s,
                                                          rendezvous_timeout_s=self.rendezvous_timeout_s)
                started = launcher.start(manifests, stop=self._stop)
        except UserError as exc:
            return refused(c, exc).as_task_result()
        if started.outcome is not None:
            return job_summary(c, started.outcome).as_task_result()
        service, job = manifests
        now = time.time()
        self.defer(trigger=IndexedJobTrigger(
            job_name=job["metadata"]["name"], service_name=service["metadata"]["name"], namespace=launcher.namespace,
            pods=job["spec"]["completions"], job_uid=started.uid, created_at=now,
            startup_deadline=now + settings.k8s_startup_timeout_s, run_deadline=now + self.run_timeout_s,
            kubernetes_conn_id=settings.k8s_conn_id, poll_interval_s=self.poll_interval_s,
        ), method_name="execute_complete")
        raise AssertionError("unreachable: defer raises TaskDeferred")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the trigger: the outcome with its reasons, the Job deleted, the bundle read."""
        from operators.kubernetes.job_trigger import verdict_of
        from operators.launch import job_summary, kubernetes_job, recording_failures
        from operators.planning import Configuration
        from tasks.settings import Settings

        c = Configuration.from_dict(self.configuration)
        with recording_failures(c):
            launcher, manifests = kubernetes_job(c, Settings.from_env(), dag_id=context["dag"].dag_id,
                                                 run_timeout_s=self.run_timeout_s,
                                                 rendezvous_timeout_s=self.rendezvous_timeout_s)
            outcome = launcher.conclude(manifests, uid=event.get("job_uid"), verdict=verdict_of(event),
                                        startup_waited_s=float(event.get("startup_waited_s") or 0.0),
                                        lost=event.get("message"))
        return job_summary(c, outcome).as_task_result()

    def on_kill(self) -> None:
        self._stop.set()  # the launcher stops every rank of the job
