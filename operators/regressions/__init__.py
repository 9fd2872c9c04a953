"""Performance regressions across nights.

- `detector.py`: change points in one metric's series and the verdict on its latest night (pure
  numpy and scipy); `settings.py` its defaults; `cli.py` adds `mlbench detect` (an entry point);
- `series.py`: what a series is and the metrics it watches, each with its better direction;
- `history.py`: a series' history read from MLflow; `compare.py`: verdicts per configuration and
  metric (`regressions.json`); `nightly.py`: a DAG run judged against its history, through MLflow.
"""
