"""Airflow-facing code: launcher operators, spec builders, validation and tracking steps.

Not built yet (pipeline and Kubernetes issues). They reuse `tasks.runtime.launcher.worker_args`
and `rank_environment`, so a pod runs exactly the command a local rank runs.
"""
