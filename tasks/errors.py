"""Errors a user can fix: bad names, bad numbers, missing data, unusable devices.

The CLI prints them as one line (no traceback) and exits non-zero, so every message must name
the problem and say what would be valid.
"""

from enum import IntEnum


def quoted(value: object) -> str:
    """A value from the user inside a one-line message: `'name'`, or Python's escaped form when it
    holds line breaks or other unprintable characters (so the message stays one line)."""
    text = str(value)
    return f"'{text}'" if text.isprintable() else repr(text)


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""

    exit_code: int = 2  # ExitCode.BAD_INPUT (the enum is defined below)


class DataError(UserError):
    """Dataset missing, corrupt or failing its checksum."""

    exit_code: int = 3  # ExitCode.DATA


class ChecksumMismatch(DataError):
    """A downloaded file is not the one its pinned checksum names."""


class ExitCode(IntEnum):
    """What every `mlbench` command and every rank exits with."""

    OK = 0
    BAD_INPUT = 2  # UserError: fix the command, request or config
    DATA = 3  # DataError: a dataset is missing, corrupt or fails its checksum
    RUN_FAILED = 4  # the run itself failed: diverged, crashed, wrong sums
    TIMEOUT = 124
    INTERRUPTED = 130
    TERMINATED = 143
