"""The launcher operator: one planned configuration as one distributed job.

The job itself is run by `operators.launch.launch_configuration` with the launcher the
configuration names; this operator only adapts that to Airflow: small XComs, failure semantics,
and stopping the ranks when the task is killed.
"""

from __future__ import annotations

import threading
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.configuration = configuration
        self.run_timeout_s = run_timeout_s
        self.rendezvous_timeout_s = rendezvous_timeout_s
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, Any]:
        from operators.launch import launch_configuration
        from operators.planning import Configuration

        summary = launch_configuration(
            Configuration.from_dict(self.configuration),
            run_timeout_s=self.run_timeout_s,
            rendezvous_timeout_s=self.rendezvous_timeout_s,
            stop=self._stop,
            dag_id=context["dag"].dag_id,
        )
        return summary.as_task_result()

    def on_kill(self) -> None:
        self._stop.set()  # the launcher stops every rank of the job
