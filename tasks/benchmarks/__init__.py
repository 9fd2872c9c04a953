"""One module per benchmark task, each exporting `TASK`: the whole declaration (spec and presets).

`tasks.registry` finds them here; adding a task is adding a module (docs/adding-a-task.md).
"""
