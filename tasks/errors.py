"""Errors a user can fix: bad names, bad numbers, missing data, unusable devices.

The CLI prints them as one line (no traceback) and exits non-zero, so every message must name
the problem and say what would be valid.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""

    exit_code = 2


class DataError(UserError):
    """Dataset missing, corrupt or failing its checksum."""

    exit_code = 3


class ChecksumMismatch(DataError):
    """A downloaded file is not the one its pinned checksum names."""
