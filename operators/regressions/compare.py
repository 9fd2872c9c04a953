"""Each configuration of a DAG run against its series' history: one verdict per watched metric
(`operators.regressions.detector`), gathered in a `RegressionReport` that the pipeline writes as
`regressions.json`, tags on the MLflow runs, a report section and what `check` decides on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from operators.regressions.detector import DetectorSettings, Point, Status, detect
from operators.regressions.series import LoggedRun, SeriesKey, WatchedMetric, points

REGRESSIONS_FILE = "regressions.json"
ON_REGRESSION = ("fail", "warn")  # what `check` does when a regression is found


@dataclass(frozen=True)
class MetricVerdict:
    """One configuration's verdict on one watched metric."""

    config_id: str
    run_id: str
    series: str
    metric: str
    direction: str
    status: str  # ok | regression | improvement | insufficient history
    summary: str
    magnitude_pct: float | None = None
    p_value: float | None = None
    first_seen: str | None = None
    commit_before: str | None = None
    commit_after: str | None = None
    nights: int = 0

    @property
    def is_regression(self) -> bool:
        return self.status == Status.REGRESSION.value

    def line(self) -> str:
        """One line for `check` and the logs: configuration, metric, magnitude, p-value, commits."""
        return f"{self.config_id}: {self.metric}: {self.summary}"


@dataclass
class RegressionReport:
    """Every verdict of a DAG run, and the trend of each judged series (for its plot)."""

    verdicts: list[MetricVerdict] = field(default_factory=list)
    trends: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<config_id> <metric>" -> detection

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.is_regression]

    def by_config(self) -> dict[str, list[MetricVerdict]]:
        grouped: dict[str, list[MetricVerdict]] = {}
        for verdict in self.verdicts:
            grouped.setdefault(verdict.config_id, []).append(verdict)
        return grouped

    def write(self, directory: Path) -> Path:
        path = directory / REGRESSIONS_FILE
        path.write_text(json.dumps({"verdicts": [asdict(v) for v in self.verdicts], "trends": self.trends},
                                   indent=2, default=str))
        return path

    @classmethod
    def read(cls, directory: Path) -> RegressionReport | None:
        path = directory / REGRESSIONS_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls([MetricVerdict(**v) for v in data["verdicts"]], data.get("trends", {}))

    def section(self) -> str:
        """The report's "Regressions" section: one line per regression, improvement and short history."""
        if not self.verdicts:
            return "Regressions: no configuration was compared with its history."
        lines = [f"Regressions: {len(self.regressions)} in {len(self.by_config())} configuration(s) "
                 f"x {len({v.metric for v in self.verdicts})} metric(s)"]
        notable = [v for v in self.verdicts if v.status != Status.OK.value]
        lines += [f"  {v.status:<20} {v.line()}" for v in notable]
        if not notable:
            lines.append("  every watched metric is in line with its history")
        return "\n".join(lines)


def judge(config_id: str, current: LoggedRun, key: SeriesKey, runs: list[LoggedRun],
          watched: tuple[WatchedMetric, ...], settings: DetectorSettings) -> tuple[list[MetricVerdict], dict[str, Any]]:
    """The verdicts of one configuration run on each watched metric over its series' history."""
    verdicts, trends = [], {}
    for metric in watched:
        series = [Point(time=p.time_ms, value=p.value, commit=p.commit) for p in points(runs, metric)]
        if not series:
            continue
        detection = detect(series, metric.direction, settings)
        verdict = detection.verdict
        verdicts.append(MetricVerdict(
            config_id=config_id, run_id=current.run_id, series=key.name, metric=metric.name,
            direction=metric.direction, status=verdict.status.value, summary=verdict.summary(),
            magnitude_pct=verdict.magnitude_pct, p_value=verdict.p_value,
            first_seen=None if verdict.first_seen is None else str(verdict.first_seen),
            commit_before=verdict.commit_before, commit_after=verdict.commit_after, nights=verdict.nights))
        trends[f"{config_id} {metric.name}"] = {  # JSON has no infinity: a failed night's value is null
            "points": [[p.time, p.value if math.isfinite(p.value) else None] for p in series],
            "detection": detection.to_dict()}
    return verdicts, trends
