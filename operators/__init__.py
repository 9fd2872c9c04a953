"""Airflow-facing code: request validation, planning, the launcher operator, the Great
Expectations gates, MLflow tracking and the pipeline wiring.

Everything except `pipeline.py` and `launch.py` is importable and testable without Airflow. The
launchers reuse `tasks.runtime.local_job.worker_args` and `rank_environment`, so a pod runs exactly
the command a local rank runs. `cli.py` adds `mlbench pools` and `mlbench render` to the `mlbench`
command (an entry point); nothing under tasks/ imports this package.
"""
