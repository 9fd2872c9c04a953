"""Task 0's results bundle (`result.json`) and its plot, without torch: the Airflow side writes a
failed record when no rank could, and plots what the ranks measured.

Its schema is `allreduce_result.schema.json` beside this module (documented in the README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.communication import CommunicationConfig
from tasks.runtime.results import run_identity, utc_now

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("allreduce_result.schema.json")


def base_result(config: CommunicationConfig) -> dict[str, Any]:
    """The fields known before measuring; a sweep that fails early still records these."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": config.kind,
        "status": "failed",
        "reason": None,
        **run_identity(config),
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "provenance": {},
        "measurements": [],
        "ranks": [],
        "wall_time_s": 0.0,
        "started_at": utc_now(),
        "finished_at": utc_now(),
    }


def failed_result(config: CommunicationConfig, reason: str, provenance: dict | None = None) -> dict[str, Any]:
    return {**base_result(config), "reason": reason, "provenance": provenance or {}}


def plot_series(series: dict[str, list[dict]], path, title: str):
    """Latency (median, p10-p90 band) and bus bandwidth over tensor size in bytes, one line per series.

    `series` maps a label (a dtype, or world size and dtype) to its measurement rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    latency_axis, bandwidth_axis = figure.subplots(1, 2)
    any_traffic = False
    for label, rows in series.items():
        rows = sorted(rows, key=lambda r: r["bytes"])
        sizes = [r["bytes"] for r in rows]
        line, = latency_axis.plot(sizes, [r["latency_median_s"] * 1e3 for r in rows], marker=".", label=label)
        latency_axis.fill_between(sizes, [r["latency_p10_s"] * 1e3 for r in rows],
                                  [r["latency_p90_s"] * 1e3 for r in rows], alpha=0.2, color=line.get_color())
        moving = [r for r in rows if r["busbw_gbps"] > 0]  # one rank moves no data: no bus bandwidth
        if moving:
            any_traffic = True
            bandwidth_axis.plot([r["bytes"] for r in moving], [r["busbw_gbps"] for r in moving], marker=".",
                                label=label)
    for axis, label, drawn, empty in (
        (latency_axis, "latency, ms (median, p10-p90)", bool(series), "nothing measured"),
        (bandwidth_axis, "bus bandwidth, GB/s", any_traffic,
         "one rank: no bus traffic" if series else "nothing measured"),
    ):
        axis.set_xscale("log")
        axis.set_xlabel("tensor size, bytes")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if drawn:
            axis.set_yscale("log")
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, empty, transform=axis.transAxes, ha="center", va="center", color="grey")
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return Path(path)


def by_dtype(measurements: list[dict]) -> dict[str, list[dict]]:
    series: dict[str, list[dict]] = {}
    for row in measurements:
        series.setdefault(row["dtype"], []).append(row)
    return series


def plot_result(result: dict[str, Any], path) -> Path:
    """One sweep's curves per dtype, titled with its backend, world size and device."""
    title = (f"all-reduce ({result.get('config', {}).get('op', 'sum')}), {result.get('backend')}, "
             f"{result.get('world_size')} ranks, {result.get('device')}: {result.get('status')}")
    return plot_series(by_dtype(result.get("measurements") or []), path, title)
