"""The single-node path: one configuration as one pod, through the cncf-kubernetes provider's
KubernetesPodOperator (mapped over the plan's single-node configurations, so the graph shows it).

The pod is `operators.kubernetes.spec.build_single_node_pod` (the same image, entry point, security
context, volumes and labels as the Indexed Job's pods), handed to the operator as its full pod spec;
the operator adds its own labels and a random name suffix, waits, streams the pod's log (rank 0's
output) into the task log and deletes the pod. Around that, this subclass does what every launch
does: writes config.json into the bundle directory before the pod starts, and reads result.json
back after it ends (a failed record with the reason when the ranks left none), deciding whether
Airflow may retry (a retry resumes from the configuration's checkpoint).

Deferrable by default: while the pod runs, the triggerer waits and no worker slot is held. Provider
behaviour relied on or worked around (apache-airflow-providers-cncf-kubernetes 10.25):
- a worker restart reattaches to the running pod (`durable`, on by default on Airflow 3.3: the pod
  is found through the task state store, then by labels) instead of starting a second one;
- a pod deleted before re-entry after a `success` event makes the provider return without error
  (apache/airflow#73117): the success is not believed here unless the ranks' result.json says so;
- a pod already finished at deferral runs `trigger_reentry` inline and drops its return value
  (apache/airflow#72821): the result is read from the bundle, never from XCom;
- no XCom sidecar (`do_xcom_push=False`): deferrable runs have hung on it (apache/airflow#37298);
- a worker killed by SIGTERM may not run `on_kill` on Airflow 3 (apache/airflow#58936): the pod
  carries the run's labels, so the pipeline's `cleanup` step deletes it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from operators.launch import DEFAULT_RENDEZVOUS_S, DEFAULT_RUN_TIMEOUT_S
from tasks.settings import Settings

TERMINATION_GRACE_S = 30  # ranks get SIGTERM, then this long to stop, when the pod is deleted


class SingleNodeTrainingOperator(KubernetesPodOperator):
    """Runs one configuration (a dict from `operators.planning.plan_configurations`) whose world
    size fits on one node of its pool as one pod; see the module docstring."""

    template_fields = (*KubernetesPodOperator.template_fields, "configuration")
    ui_color = "#c9e7d3"

    def __init__(self, *, configuration: dict[str, Any], run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
                 rendezvous_timeout_s: float = DEFAULT_RENDEZVOUS_S, **kwargs: Any) -> None:
        settings = Settings.from_env()
        defaults = {
            "deferrable": True,
            "kubernetes_conn_id": settings.k8s_conn_id,
            "namespace": settings.k8s_namespace,
            "startup_timeout_seconds": int(settings.k8s_startup_timeout_s),
            "get_logs": True,
            "log_events_on_failure": True,
            "on_finish_action": "delete_pod",
            "on_kill_action": "delete_pod",
            "termination_grace_period": TERMINATION_GRACE_S,
            "do_xcom_push": False,
            "base_container_name": "worker",  # the container spec.py builds; its log and exit code
        }
        super().__init__(**{**defaults, **kwargs})
        self.configuration = configuration
        self.run_timeout_s = run_timeout_s
        self.rendezvous_timeout_s = rendezvous_timeout_s

    # ----------------------------------------------------------------------------------- launch
    def execute(self, context: Any) -> Any:
        self._prepare_pod(context["dag"].dag_id)
        try:
            outcome = super().execute(context)
        except Exception as exc:
            if type(exc).__name__ == "TaskDeferred":
                raise
            self._finish(f"pod failed: {exc}")
            raise
        if not self.deferrable:
            return self._finish(None)
        return outcome  # the pod was already finished: trigger_reentry has run inline

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        try:  # the provider finds the pod by the event's name: the spec need not be rebuilt
            super().trigger_reentry(context, event)
        except Exception as exc:
            if type(exc).__name__ == "TaskDeferred":  # re-deferred: the pod is still running
                raise
            self._finish(f"pod {event.get('name')} {event.get('status')}: {event.get('message') or exc}")
            raise
        return self._finish(None if event.get("status") == "success" else str(event.get("message")))

    def _prepare_pod(self, dag_id: str, *, write_config: bool = True) -> None:
        """The pod this configuration runs in, as the operator's full pod spec; config.json written
        into its bundle directory (on the shared results volume) for the ranks to read."""
        from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

        from operators.kubernetes.spec import build_single_node_pod
        from operators.launch import launch_target, prepare_kubernetes_bundle
        from operators.planning import Configuration

        configuration = Configuration.from_dict(self.configuration)
        if write_config:
            prepare_kubernetes_bundle(configuration)
        target = launch_target(configuration, Settings.from_env(), dag_id=dag_id, run_timeout_s=self.run_timeout_s,
                               rendezvous_timeout_s=self.rendezvous_timeout_s, image=self.image,
                               namespace=self.namespace)
        pod = build_single_node_pod(configuration, target)
        self.full_pod_spec = PodGenerator.deserialize_model_dict(pod)
        self.name = pod["metadata"]["name"]
        self.labels = {**(self.labels or {}), **pod["metadata"]["labels"]}
        self.pod_request_obj = None  # rebuilt from the spec above

    def _exit_code(self) -> int | None:
        """The pod's container exit code (`mlbench node`: the first failed rank's), if it ended."""
        pod = getattr(self, "pod", None) or getattr(self, "remote_pod", None)
        for status in getattr(getattr(pod, "status", None), "container_statuses", None) or ():
            terminated = getattr(getattr(status, "state", None), "terminated", None)
            if status.name == self.base_container_name and terminated is not None:
                return int(terminated.exit_code)
        return None

    def _finish(self, failure: str | None) -> dict[str, Any]:
        """Read the bundle back (writing a failed record with `failure` if the ranks left none) and
        fail the task the way the launcher does: for good, or retryable."""
        from operators.launch import summarize_kubernetes_run
        from operators.planning import Configuration

        configuration = Configuration.from_dict(self.configuration)
        return summarize_kubernetes_run(configuration, failure, self._exit_code()).as_task_result()


def render_single_node_pod(configuration: Any, *, image: str, namespace: str,
                           dag_id: str = "mlbench_benchmark") -> dict[str, Any]:
    """The pod a DAG run's `launch_pod` task would create for `configuration` (an
    `operators.planning.Configuration`), built by the operator's own `build_pod_request_obj` in dry
    run (no cluster): the provider's labels and name suffix included."""
    from kubernetes.client import ApiClient

    operator = SingleNodeTrainingOperator(task_id="launch_pod", configuration=configuration.to_dict(), image=image,
                                          namespace=namespace)
    operator._prepare_pod(dag_id, write_config=False)
    with contextlib.redirect_stdout(sys.stderr):  # the operator logs "Building pod ..." on stdout
        pod = operator.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)
