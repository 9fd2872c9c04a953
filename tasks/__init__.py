"""MLBench benchmark tasks and the training runtime that runs them.

This package runs inside training pods and local rank processes: it never imports airflow.
"""
