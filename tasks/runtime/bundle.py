"""The results bundle directory around a launch, whatever launches the ranks (local processes, pods):
before they start, the resolved config they read; after they are gone, their result.json or a
failed record of why there is none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.runtime.results import RESULT_FILE, ResultError, ResultRecord, failed_result, read_result, write_result

if TYPE_CHECKING:
    from tasks.communication import CommunicationConfig
    from tasks.spec import RunConfig

CONFIG_FILE = "config.json"  # in the output directory: the resolved config every rank reads
TRANSLATIONS_FILE = "translations.txt"  # translation runs: sample translations of the last evaluation


def prepare_output(config: RunConfig | CommunicationConfig, output: Path) -> None:
    """Before any launcher starts ranks: refuse another configuration's checkpoints, record the config
    (the config.json every rank reads: `mlbench worker --config`)."""
    from tasks.runtime.checkpoint import check_resumable  # imports torch: not at the Airflow side's import

    check_resumable(output / "checkpoints", config.config_hash())  # before touching anything there
    (output / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    (output / RESULT_FILE).unlink(missing_ok=True)


def collect_result(config: RunConfig | CommunicationConfig, output: Path, launcher_message: str, *,
                   root_cause: str | None = None) -> ResultRecord:
    """After the ranks are gone: their result.json, or a failed record with the launcher's reason.

    `root_cause`: what only the launcher saw (a rank killed by a signal, or stopped); it leads a
    failed record's reason, since the record's writer, rank 0, then only saw a peer vanish.
    A result.json that is not a record of its kind stays on disk as the ranks left it; the run is
    reported failed with what is wrong with it."""
    if not (output / RESULT_FILE).exists():
        write_result(output, failed_result(config, root_cause or launcher_message))
    try:
        record = read_result(output)
    except ResultError as exc:
        return failed_result(config, f"unreadable result.json: {exc}")
    return lead_with_root_cause(output, record, root_cause)


def lead_with_root_cause(output: Path, record: ResultRecord, root_cause: str | None) -> ResultRecord:
    """A failed record whose reason starts with what its launcher saw first, the ranks' own
    reason after it (rewritten in place, once)."""
    if root_cause and not record.completed and not (record.reason or "").startswith(root_cause):
        record.reason = f"{root_cause} (then: {record.reason})" if record.reason else root_cause
        write_result(output, record)
    return record
