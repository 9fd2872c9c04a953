"""`mlbench detect`: the change points and the regression verdict of one series in a CSV file.

An entry point of the `mlbench.commands` group (pyproject.toml), like operators/cli.py's commands.
The detection goes to stdout as JSON (`Detection.to_dict()`), the verdict's one-line summary to
stderr. The exit code is 0 whatever the verdict (read `verdict.status`); bad input is one
`error:` line and exit code 2 (`ExitCode.BAD_INPUT`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from operators.regressions.settings import DetectorSettings
from tasks.cli import between_zero_and_one, number_argument
from tasks.errors import ExitCode, UserError

if TYPE_CHECKING:
    from operators.regressions.detector import Point, Time

COLUMNS = "time,value[,commit]"
REQUIRED_COLUMNS = ("time", "value")
OPTIONAL_COLUMNS = ("commit",)
VALID_VALUES = "a number, nan or empty for a missing value, inf (lower is better) or -inf (higher) for a failed run"
_probability = between_zero_and_one("a p-value")
_percent = number_argument("a percentage >= 0", lambda value: value >= 0)  # false for nan


def add_detect_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = DetectorSettings()
    detect = subparsers.add_parser(
        "detect", help=f"find the change points of a nightly metric (CSV {COLUMNS}) and say whether the latest "
                       "is a regression; JSON on stdout, a one-line verdict on stderr")
    detect.add_argument("--series", required=True, type=Path, metavar="FILE.csv",
                        help=f"CSV with a header row, columns {COLUMNS}; rows sharing a time are repeats of one "
                             f"night; value: {VALID_VALUES}")
    detect.add_argument("--direction", choices=("lower", "higher"), default="lower",
                        help="which values are better (default: lower, as for times)")
    detect.add_argument("--p-value", type=_probability, default=defaults.p_value, metavar="P",
                        help=f"significance level of a change point (default {defaults.p_value})")
    detect.add_argument("--min-magnitude", type=_percent, default=defaults.min_magnitude_pct, metavar="PCT",
                        help=f"smallest change of the mean reported, in %% (default {defaults.min_magnitude_pct:g})")
    detect.set_defaults(handler=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> int:
    from operators.regressions.detector import SeriesError, detect

    points = read_series(args.series)
    try:
        settings = DetectorSettings(p_value=args.p_value, min_magnitude_pct=args.min_magnitude)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        detection = detect(points, args.direction, settings)
    except SeriesError as exc:
        raise UserError(f"{args.series}: {exc}") from None
    print(json.dumps(detection.to_dict(), indent=2))
    print(detection.verdict.summary(), file=sys.stderr)
    return ExitCode.OK


def read_series(path: Path) -> list[Point]:
    """The points of a CSV file with a header row and the columns time,value[,commit]."""
    from operators.regressions.detector import Point

    reader = csv.reader(io.StringIO(_read_text(path)))
    header = [name.strip() for name in next(reader, [])]
    _check_header(path, header)
    points = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{path} line {reader.line_num}: {len(row)} cells, the header has {len(header)} "
                            f"({','.join(header)})")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        points.append(Point(_time(path, reader.line_num, cells["time"]), _value(path, reader.line_num, cells["value"]),
                            cells.get("commit") or None))
    if not points:
        raise UserError(f"{path}: no rows after the header; give one row per run: {COLUMNS}")
    return points


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--series {path}: no such file; give a CSV file with the columns {COLUMNS}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--series {path}: cannot read it as UTF-8 text ({exc}); give a CSV file with the columns "
                        f"{COLUMNS}") from None


def _check_header(path: Path, header: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise UserError(f"{path}: the header row must name the columns {COLUMNS}, got "
                        f"{','.join(header) if header else 'an empty file'}")


def _time(path: Path, line: int, text: str) -> Time:
    """A number if the cell is one (night numbers, epoch seconds), else the text (ISO dates sort as text)."""
    if not text:
        raise UserError(f"{path} line {line}: empty time; give the night as an ISO date or a number")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise UserError(f"{path} line {line}: time {text!r} is not a night; give an ISO date or a finite number")
    return number


def _value(path: Path, line: int, text: str) -> float:
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{path} line {line}: value {text!r} is not a number; valid: {VALID_VALUES}") from None
