"""The saved runs-table view of each benchmark experiment, "Benchmark comparison": the runs table
with the metrics that configurations are compared by, and what tells them apart, as columns.

Without it, MLflow 3.17's runs table shows no metric column: a person has to find them one by one
under "Columns". MLflow keeps a saved view as an experiment tag `mlflow.sharedViewState.<key>`
whose value is an envelope (`name`, `createdAt`, `updatedAt`, `state`), the state being the page's
search and layout as JSON, zlib-compressed and base64-encoded after a `deflate;` prefix: what the
UI's "Views > Save as new view" writes. The view is listed under "Views" on the experiment's page,
and `?viewStateShareKey=<key>` opens it (`experiment_url`). Which runs are unfolded or pinned is
not part of a view in MLflow, so it cannot be preset.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Iterable

from operators.report.points import now_ms

__all__ = ["SHARED_VIEW_TAG_PREFIX", "VIEW_KEY", "VIEW_NAME", "runs_view_state", "view_envelope",
           "read_view_state", "save_runs_view"]

SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "mlbench-comparison"
VIEW_NAME = "Benchmark comparison"
_COMPRESSED = "deflate;"
# Wide enough for a parent run's name and a column's full title (MLflow cuts both at ~150 px)
_RUN_NAME_WIDTH_PX, _MIN_WIDTH_PX, _CHAR_PX = 260, 90, 7
_MLFLOW_FIXED_COLUMNS = ("runDateAndNestInfo", "duration")  # the ids of "Created" and "Duration"


def _column(kind: str, name: str) -> str:
    """A runs-table column id as MLflow's UI writes it (`metrics.\\`time_to_accuracy_s\\``)."""
    return f"{kind}.`{name}`"


def runs_view_state(*, metrics: Iterable[str], params: Iterable[str]) -> dict:
    """The page state of the view: the fields MLflow 3.17's UI saves (the newest runs first; as
    columns, our params and metrics instead of the UI's Source, Models and Dataset, which our runs
    leave empty; the metrics first)."""
    names = {_column("metrics", name): name for name in metrics} | {_column("params", name): name for name in params}
    columns = list(names)
    # MLflow applies stored widths only to the columns named in `columnOrder`, so both are given
    run_name = _column("attributes", "Run Name")
    order = [run_name, *_MLFLOW_FIXED_COLUMNS, *columns]
    widths = {column: max(_MIN_WIDTH_PX, _CHAR_PX * len(name) + 16) for column, name in names.items()}
    widths[run_name] = _RUN_NAME_WIDTH_PX
    return {
        "searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": columns, "columnOrder": order, "columnWidths": widths,
        "runsHiddenMode": "FIRST_10_RUNS", "viewMaximized": False, "runListHidden": False,
        "isAccordionReordered": False, "useGroupedValuesInCharts": True, "hideEmptyCharts": True,
        "groupBy": None, "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def view_envelope(state: dict, *, created_at: int, updated_at: int) -> str:
    """The tag value of a saved view holding `state`."""
    packed = base64.b64encode(zlib.compress(json.dumps(state, separators=(",", ":")).encode())).decode()
    return json.dumps({"name": VIEW_NAME, "createdAt": created_at, "updatedAt": updated_at,
                       "state": _COMPRESSED + packed}, separators=(",", ":"))


def read_view_state(envelope: str) -> dict:
    """The page state inside a saved view's tag value."""
    state = json.loads(envelope)["state"]
    if state.startswith(_COMPRESSED):
        state = zlib.decompress(base64.b64decode(state[len(_COMPRESSED):])).decode()
    return json.loads(state)


def save_runs_view(mlflow_client, experiment_id: str, *, metrics: Iterable[str], params: Iterable[str]) -> str:
    """Save (or update) the experiment's "Benchmark comparison" view; returns its key. An existing
    view keeps its creation time; it is rewritten only when its columns change."""
    key = SHARED_VIEW_TAG_PREFIX + VIEW_KEY
    state = runs_view_state(metrics=metrics, params=params)
    existing = mlflow_client.get_experiment(experiment_id).tags.get(key)
    now = now_ms()
    created = now
    if existing is not None:
        try:
            if read_view_state(existing) == state:
                return VIEW_KEY
            created = int(json.loads(existing)["createdAt"])
        except (ValueError, KeyError, TypeError, zlib.error):
            pass  # a view we cannot read is replaced
    mlflow_client.set_experiment_tag(experiment_id, key, view_envelope(state, created_at=created, updated_at=now))
    return VIEW_KEY
