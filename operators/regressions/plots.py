"""The trend plot of one configuration: each watched metric over nights (every repeat a dot, a
failed night a red cross at the top), the segment means between change points as lines, and the
change points as dashed verticals (red: regression, green: improvement).

Drawn from the trends of a `RegressionReport` (plain JSON-ready dicts), with `tasks.plots`'s figure
set-up; matplotlib is imported only when a plot is drawn. The x axis is the night's index with a
few dates as labels, and the layout is fixed: date locators and constrained layout made a plot
take seconds, and the nightly draws one per configuration.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tasks.plots import figure, save

_CHANGE_COLOURS = {"regression": "tab:red", "improvement": "tab:green"}
_COLUMNS = 3
_DATE_LABELS = 4  # dates shown under each panel


def plot_all(plots: list[tuple[list[dict[str, Any]], Path, str]]) -> list[Path]:
    """Every (trends, path, title) of `plots`, drawn on all cores: a nightly of 100 configurations
    draws 100 figures. Workers start from a fresh interpreter (forkserver), not a fork of an
    Airflow task process and its threads."""
    workers = min(os.cpu_count() or 1, len(plots))
    if workers <= 1 or len(plots) < 4:
        return [plot_trends(trends, path, title=title) for trends, path, title in plots]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver")) as pool:
        return list(pool.map(_draw, plots, chunksize=max(1, len(plots) // (4 * workers))))


def _draw(job: tuple[list[dict[str, Any]], Path, str]) -> Path:
    trends, path, title = job
    return plot_trends(trends, path, title=title)


def plot_trends(trends: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """One panel per metric of `trends` (as `compare.judge` builds them) in a PNG at `path`."""
    rows = max(1, math.ceil(len(trends) / _COLUMNS))
    columns = min(_COLUMNS, max(1, len(trends)))
    fig = figure(4.2 * columns, 2.9 * rows + 0.5, layout=None)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12 / rows, top=1 - 0.5 / (2.9 * rows + 0.5),
                        wspace=0.25, hspace=0.55)
    fig.suptitle(title)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, trend in zip(axes[: len(trends)], trends, strict=True):
        _panel(ax, trend)
    for ax in axes[len(trends):]:
        ax.set_visible(False)
    return save(fig, path)


def _panel(ax: Any, trend: dict[str, Any]) -> None:
    detection = trend["detection"]
    nights = sorted({time for time, _ in trend["points"]})
    index = {time: position for position, time in enumerate(nights)}
    finite = [(index[t], v) for t, v in trend["points"] if v is not None]
    failed = [index[t] for t, v in trend["points"] if v is None]
    if finite:
        ax.plot([x for x, _ in finite], [v for _, v in finite], "o", ms=3, color="tab:blue")
    for segment in detection["segments"]:
        if segment["mean"] is not None:
            ax.hlines(segment["mean"], index[segment["start"]], index[segment["end"]], colors="black", lw=1.5)
    for change in detection["change_points"]:
        ax.axvline(index[change["time"]] - 0.5, color=_CHANGE_COLOURS.get(change["status"], "grey"), ls="--", lw=1)
    if failed:
        top = max((v for _, v in finite), default=1.0)
        ax.plot(failed, [top] * len(failed), "x", color="tab:red", ms=7)
    step = max(1, math.ceil(len(nights) / _DATE_LABELS))
    ticks = list(range(0, len(nights), step))
    ax.set_xticks(ticks, [nights[i][:10] for i in ticks], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    status = detection["verdict"]["status"]
    ax.set_title(f"{trend['metric']} ({trend['direction']} is better): {status}", fontsize=8,
                 color=_CHANGE_COLOURS.get(status, "black"))
    ax.grid(alpha=0.3)
