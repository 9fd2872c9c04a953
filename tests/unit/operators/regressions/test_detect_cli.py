"""`mlbench detect`: a CSV series in, the detection as JSON on stdout and the verdict on stderr out;
bad input is one error line and exit code 2.

The command comes from the `mlbench.commands` entry point that pyproject.toml declares. An
installed `mlbench` only has it after `pip install -e .`, so these tests hand that same entry
point to `tasks.cli.main` (the path the installed script takes, minus the package metadata).
"""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import tasks.cli
from operators.regressions.settings import DetectorSettings
from tasks.errors import ExitCode
from tests.conftest import REPO

pytestmark = pytest.mark.unit

ENTRY_POINT = EntryPoint(name="detect", value="operators.regressions.cli:add_detect_command",
                         group=tasks.cli.COMMAND_GROUP)


@pytest.fixture
def mlbench(monkeypatch, capsys):
    """Run `mlbench ARGS` in-process with the detect entry point; (exit code, stdout, stderr)."""
    monkeypatch.setattr(tasks.cli, "entry_points", lambda group: [ENTRY_POINT])

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = tasks.cli.main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def write_csv(tmp_path, text: str, name: str = "series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def step_csv(tmp_path, *, commit: bool = True):
    rng = np.random.default_rng(0)
    values = list(100 * (1 + 0.03 * rng.standard_normal(30))) + list(110 * (1 + 0.03 * rng.standard_normal(4)))
    rows = [f"2026-11-{1 + night // 2:02d}T0{night % 2}:00,{value:.3f}" + (f",{night:07x}" if commit else "")
            for night, value in enumerate(values)]
    return write_csv(tmp_path, "time,value" + (",commit" if commit else "") + "\n" + "\n".join(rows) + "\n")


def test_pyproject_registers_the_command_as_this_entry_point():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"][tasks.cli.COMMAND_GROUP]["detect"] == ENTRY_POINT.value


def test_a_step_gives_its_change_point_as_json_and_the_verdict_on_stderr(mlbench, tmp_path):
    code, out, err = mlbench("detect", "--series", str(step_csv(tmp_path)))
    assert code == ExitCode.OK
    detection = json.loads(out)
    verdict = detection["verdict"]
    assert verdict["status"] == "regression" and verdict["first_seen"] == "2026-11-16T00:00"
    assert (verdict["commit_before"], verdict["commit_after"]) == ("000001d", "000001e")
    assert [point["time"] for point in detection["change_points"]] == ["2026-11-16T00:00"]
    assert [segment["nights"] for segment in detection["segments"]] == [30, 4]
    assert err.count("\n") == 1 and err.startswith("regression: mean +")
    assert "since 2026-11-16T00:00 (commit 000001d -> 000001e)" in err


def test_the_options_reach_the_detector(mlbench, tmp_path):
    path = step_csv(tmp_path, commit=False)
    code, out, err = mlbench("detect", "--series", str(path), "--direction", "higher", "--p-value", "0.05",
                             "--min-magnitude", "20")
    verdict = json.loads(out)["verdict"]
    assert code == 0 and (verdict["status"], verdict["direction"]) == ("ok", "higher")
    assert err == "ok: no change in 34 nights\n"
    code, out, _ = mlbench("detect", "--series", str(path), "--direction", "higher")
    assert json.loads(out)["verdict"]["status"] == "improvement"
    assert json.loads(out)["verdict"]["commit_before"] is None


def test_numbered_nights_repeats_missing_and_failed_values(mlbench, tmp_path):
    rows = [f"{night},{100 + night % 3}" for night in range(25)] + ["25,101", "25,nan", "25,", "26,inf", "26,inf"]
    code, out, err = mlbench("detect", "--series", str(write_csv(tmp_path, "value,time\n" + "\n".join(
        ",".join(reversed(row.split(","))) for row in rows) + "\n")))
    verdict = json.loads(out)["verdict"]
    assert code == 0 and (verdict["status"], verdict["failed_nights"], verdict["first_seen"]) == ("regression", 1, 26)
    assert verdict["nights"] == 26 and err == "regression: the last 1 night(s) failed, since 26 (commit None -> None)\n"


def test_too_little_history_says_how_many_nights_are_needed(mlbench, tmp_path):
    needed = DetectorSettings().min_history_nights
    code, out, err = mlbench("detect", "--series", str(write_csv(tmp_path, "time,value\n1,2.0\n2,2.1\n")))
    assert code == 0 and json.loads(out)["verdict"]["nights_needed"] == needed
    assert err == f"insufficient history: 2 of {needed} nights needed\n"


@pytest.mark.parametrize(("text", "message"), [
    (None, "--series {path}: no such file; give a CSV file with the columns time,value[,commit]"),
    ("", "{path}: the header row must name the columns time,value[,commit], got an empty file"),
    ("night,value\n1,2\n", "{path}: the header row must name the columns time,value[,commit], got night,value"),
    ("time,value,commit,host\n1,2,a,b\n", "{path}: the header row must name the columns time,value[,commit], got "
                                          "time,value,commit,host"),
    ("time,value,value\n1,2,3\n", "{path}: the header row must name the columns time,value[,commit], got "
                                   "time,value,value"),
    ("time,value\n", "{path}: no rows after the header; give one row per run: time,value[,commit]"),
    ("time,value\n1,2\n2,fast\n", "{path} line 3: value 'fast' is not a number; valid: a number, nan or empty for a "
                                  "missing value, inf (lower is better) or -inf (higher) for a failed run"),
    ("time,value\n1,2\n2,3,4\n", "{path} line 3: 3 cells, the header has 2 (time,value)"),
    ("time,value\n,2\n", "{path} line 2: empty time; give the night as an ISO date or a number"),
    ("time,value\nnan,2\n", "{path} line 2: time 'nan' is not a night; give an ISO date or a finite number"),
    ("time,value\n1,2\n2026-01-02,3\n", "{path}: times mix numbers and text; use one kind (ISO dates, or numbers)"),
    ("time,value\n1,2\n2,-inf\n", "{path}: night 2: value -inf is the best possible for a metric where lower is "
                                  "better; a failed run is inf, a missing one nan"),
])
def test_bad_input_is_one_error_line_naming_the_problem_and_what_is_valid(mlbench, tmp_path, text, message):
    path = tmp_path / "series.csv" if text is None else write_csv(tmp_path, text)
    code, out, err = mlbench("detect", "--series", str(path))
    assert code == ExitCode.BAD_INPUT and out == ""
    assert err == f"error: {message.format(path=path)}\n"


def test_an_unreadable_file_is_one_error_line(mlbench, tmp_path):
    path = tmp_path / "series.csv"
    path.write_bytes(b"time,value\n1,\xff\n")
    code, _, err = mlbench("detect", "--series", str(path))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: --series {path}: cannot read it as UTF-8 text (")


@pytest.mark.parametrize(("args", "message"), [
    (("--p-value", "1.5"), "argument --p-value: expected a p-value between 0 and 1, got 1.5"),
    (("--p-value", "often"), "argument --p-value: expected a p-value between 0 and 1, got 'often'"),
    (("--min-magnitude", "-3"), "argument --min-magnitude: expected a percentage >= 0, got -3"),
    (("--min-magnitude", "nan"), "argument --min-magnitude: expected a percentage >= 0, got nan"),
    (("--direction", "up"), "argument --direction: invalid choice: 'up' (choose from "),
])
def test_bad_options_are_one_usage_line(mlbench, tmp_path, args, message):
    code, out, err = mlbench("detect", "--series", str(step_csv(tmp_path)), *args)
    assert code == ExitCode.BAD_INPUT and out == ""
    assert err.startswith(f"mlbench detect: error: {message}") and err.count("\n") == 1


def test_a_p_value_finer_than_the_permutations_can_resolve_is_refused(mlbench, tmp_path):
    code, _, err = mlbench("detect", "--series", str(step_csv(tmp_path)), "--p-value", "0.0001")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: p_value must be in [1/(permutations + 1), 1) = [0.002, 1)")
