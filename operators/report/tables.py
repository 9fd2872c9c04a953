"""Rows of dicts as text: a fixed-width table for a terminal or a task log (`render_table`, which
each task kind's table builds on), markdown and CSV of any rows (`to_markdown`, `to_csv`)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

__all__ = ["render_table", "to_markdown", "to_csv"]


def render_table(header: list[str], body: list[list[str]], first_left: int = 1) -> str:
    """Columns padded to their widest cell: the first `first_left` left-aligned, the rest right."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        padded = [cell.ljust(width) if index < first_left else cell.rjust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    lines = [render(header), "  ".join("-" * w for w in widths)]
    lines += [render(cells) for cells in body]
    if not body:
        lines.append("(no configurations)")
    return "\n".join(lines) + "\n"


def _columns(rows: list[dict]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def to_markdown(rows: list[dict]) -> str:
    """Markdown table of any rows (comparison or configuration rows): every column, in order.

    Floats are shown with 6 significant digits; an empty cell is a value that does not exist.
    """
    if not rows:
        return "_no configurations_\n"
    columns = _columns(rows)

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(escape(_cell(row.get(c))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    """CSV of any rows: a header of every column, full float precision, None as an empty cell."""
    buffer = io.StringIO()
    columns = _columns(rows)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([
            "" if row.get(c) is None else (repr(row[c]) if isinstance(row.get(c), float) else _cell(row[c]))
            for c in columns
        ])
    return buffer.getvalue()
