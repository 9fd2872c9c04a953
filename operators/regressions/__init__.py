"""The nightly's regression detection: series and their history from MLflow, change points per
watched metric, and what the pipeline does with a verdict."""
