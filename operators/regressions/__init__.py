"""Performance regressions across nights: `detector.py` finds change points in one metric's series
and gives its verdict; `cli.py` adds `mlbench detect` (an entry point). Pure numpy and scipy: no
Airflow, no MLflow.
"""
