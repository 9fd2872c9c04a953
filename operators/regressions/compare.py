"""Each configuration of a DAG run against its series' history: one verdict per watched metric
(`operators.regressions.detector`), gathered in a `RegressionReport` that the pipeline writes as
`regressions.json`, tags on the MLflow runs, a report section and what `check` decides on.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from operators.regressions.detector import DetectorSettings, Point, Status, detect
from operators.regressions.series import LoggedRun, SeriesKey, WatchedMetric, points
from operators.regressions.series import Point as SeriesPoint

REGRESSIONS_FILE = "regressions.json"
COMMIT_CHARS = 12  # commits as verdicts name them: unambiguous, and a line stays readable
RECENT_NIGHTS = 7  # the latest night is also shown against the median of this many nights before it


@dataclass(frozen=True)
class MetricVerdict:
    """One configuration's verdict on one watched metric."""

    config_id: str  # the configuration without its repeat: all repeats of a night are one series' points
    run_ids: tuple[str, ...]  # the judged night's configuration runs (one per repeat)
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
    latest_value: float | None = None  # median of the judged night's repeats (inf: failed)
    vs_recent_pct: float | None = None  # latest_value against the median of the RECENT_NIGHTS before it

    @property
    def is_regression(self) -> bool:
        return self.status == Status.REGRESSION.value

    def line(self) -> str:
        """One line for `check` and the logs: configuration, metric, magnitude, p-value, commits."""
        return f"{self.config_id}: {self.metric}: {self.summary}{self.standing()}"

    def standing(self) -> str:
        """How the judged night compares with the nights just before it (what a manual run wants to see)."""
        if self.latest_value is None or self.vs_recent_pct is None:
            return ""
        return f"; this run {self.latest_value:.4g}, {self.vs_recent_pct:+.1f} % vs the median of the nights before"


@dataclass
class RegressionReport:
    """Every verdict of a DAG run, and the trend of each judged series (for its plot)."""

    verdicts: list[MetricVerdict] = field(default_factory=list)
    trends: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<config_id> <metric>" -> detection
    notes: list[str] = field(default_factory=list)  # e.g. a configuration whose config hash changed

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.is_regression]

    @property
    def improvements(self) -> list[MetricVerdict]:
        return [v for v in self.verdicts if v.status == Status.IMPROVEMENT.value]

    def trends_of(self, config_id: str) -> list[dict[str, Any]]:
        """The trends of one configuration's metrics, in the order they were judged."""
        return [trend for trend in self.trends.values() if trend["config_id"] == config_id]

    def trends_to_plot(self, config_id: str) -> list[dict[str, Any]]:
        """What its trend plot shows: the headline metric (the first watched), and every metric
        with a change point. Flat panels of unchanged metrics would only hide the one that moved,
        and each panel costs time in a nightly of many configurations."""
        trends = self.trends_of(config_id)
        return [t for i, t in enumerate(trends) if i == 0 or t["detection"]["change_points"]
                or t["detection"]["verdict"]["status"] in (Status.REGRESSION.value, Status.IMPROVEMENT.value)]

    def by_config(self) -> dict[str, list[MetricVerdict]]:
        grouped: dict[str, list[MetricVerdict]] = {}
        for verdict in self.verdicts:
            grouped.setdefault(verdict.config_id, []).append(verdict)
        return grouped

    def write(self, directory: Path) -> Path:
        path = directory / REGRESSIONS_FILE
        # strict JSON: a failed night's inf is null
        verdicts = [{k: None if isinstance(v, float) and not math.isfinite(v) else v
                     for k, v in asdict(verdict).items()} for verdict in self.verdicts]
        path.write_text(json.dumps({"verdicts": verdicts, "trends": self.trends, "notes": self.notes}, indent=2,
                                   default=str))
        return path

    @classmethod
    def read(cls, directory: Path) -> RegressionReport | None:
        path = directory / REGRESSIONS_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls([MetricVerdict(**{**v, "run_ids": tuple(v["run_ids"])}) for v in data["verdicts"]],
                   data.get("trends", {}), data.get("notes", []))

    def section(self) -> str:
        """The report's "Regressions" section: per configuration, a line per regression and
        improvement, or else one line for its headline metric (the first watched)."""
        if not self.verdicts:
            return "Regressions: no configuration was compared with its history."
        lines = [f"Regressions: {len(self.regressions)} in {len(self.by_config())} configuration(s) "
                 f"x {len({v.metric for v in self.verdicts})} metric(s); {len(self.improvements)} improvement(s)"]
        for verdicts in self.by_config().values():
            changed = [v for v in verdicts if v.status in (Status.REGRESSION.value, Status.IMPROVEMENT.value)]
            lines += [f"  {v.line()}" for v in changed or verdicts[:1]]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def judge(config_id: str, judged: list[LoggedRun], key: SeriesKey, runs: list[LoggedRun],
          watched: tuple[WatchedMetric, ...], settings: DetectorSettings) -> tuple[list[MetricVerdict], dict[str, Any]]:
    """The verdicts of one configuration (`judged`: its runs of the judged night, one per repeat) on
    each watched metric over its series' history (`runs`, the judged night included)."""
    verdicts, trends = [], {}
    judged_ids = {run.run_id for run in judged}
    for metric in watched:
        found = points(runs, metric)
        if not any(p.run_id in judged_ids for p in found):
            continue  # the judged night has no value for it (e.g. a communication share it never logged)
        series = [Point(time=night_label(p.time_ms), value=p.value, commit=p.commit and p.commit[:COMMIT_CHARS])
                  for p in found]
        detection = detect(series, metric.direction, settings)
        verdict = detection.verdict
        latest, recent = _latest_and_recent([p.value for p in found if p.run_id in judged_ids],
                                            found, judged_ids)
        verdicts.append(MetricVerdict(
            config_id=config_id, run_ids=tuple(sorted(judged_ids)), series=key.name, metric=metric.name,
            direction=metric.direction, status=verdict.status.value, summary=verdict.summary(),
            magnitude_pct=verdict.magnitude_pct, p_value=verdict.p_value,
            first_seen=None if verdict.first_seen is None else str(verdict.first_seen),
            commit_before=verdict.commit_before, commit_after=verdict.commit_after, nights=verdict.nights,
            latest_value=latest, vs_recent_pct=_relative_pct(latest, recent)))
        trends[f"{config_id} {metric.name}"] = {  # JSON has no infinity: a failed night's value is null
            "config_id": config_id, "metric": metric.name, "direction": metric.direction,
            "points": [[p.time, p.value if math.isfinite(p.value) else None] for p in series],
            "detection": detection.to_dict()}
    return verdicts, trends


def night_label(time_ms: int) -> str:
    """A night's time as ISO 8601 UTC to the millisecond: readable in reports, sorts in time order."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _latest_and_recent(latest: list[float], found: list[SeriesPoint], judged_ids: set[str]
                       ) -> tuple[float, float | None]:
    """The judged night's median, and the median of the finite nights' medians just before it."""
    before: dict[int, list[float]] = {}
    for point in found:
        if point.run_id not in judged_ids and math.isfinite(point.value):
            before.setdefault(point.time_ms, []).append(point.value)
    nights = [statistics.median(before[time]) for time in sorted(before)][-RECENT_NIGHTS:]
    return statistics.median(latest), statistics.median(nights) if nights else None


def _relative_pct(value: float, reference: float | None) -> float | None:
    if reference is None or reference == 0 or not math.isfinite(value):
        return None
    return 100.0 * (value - reference) / abs(reference)
