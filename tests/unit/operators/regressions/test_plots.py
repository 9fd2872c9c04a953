"""The trend plot draws every kind of point a history holds: repeats, failed nights, change points."""

import pytest

from operators.regressions.compare import judge
from operators.regressions.detector import DetectorSettings
from operators.regressions.plots import plot_trends
from operators.regressions.series import TRAINING_METRICS, LoggedRun, SeriesKey

pytestmark = pytest.mark.unit


def test_a_trend_with_a_change_point_and_a_failed_night_is_drawn(tmp_path):
    runs = [LoggedRun(f"r{i}", f"d{i}", i * 86_400_000, i != 12, True, {"time_to_accuracy_s": 100.0 + 30 * (i > 16)
                                                                       + (i % 3), "epochs_run": 4.0}, f"{i:07x}")
            for i in range(1, 21)]
    _, trends = judge("c", [runs[-1]], SeriesKey("t", "h", "cpu", "x"), runs, TRAINING_METRICS, DetectorSettings())
    path = plot_trends(list(trends.values()), tmp_path / "c" / "trend.png", title="c")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
