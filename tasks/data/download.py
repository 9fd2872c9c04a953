"""Fetching and unpacking dataset archives: checksummed, resumable-by-retry, never half-written.

Every failure is a DataError with one line that names the URL or file and says what to do, because
a benchmark run that dies on a flaky mirror must tell the operator how to fix it without a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tasks.errors import ChecksumMismatch, DataError

CHUNK_BYTES = 1 << 20
PROGRESS_STEP_PERCENT = 5
# Without a Content-Length there is no percentage, so report every this many bytes instead.
PROGRESS_STEP_BYTES_UNKNOWN_TOTAL = 16 << 20
NETWORK_TIMEOUT_S = 60
USER_AGENT = "mlbench-airflow/0.1 (+dataset download)"

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    """Default sink for data messages: stderr keeps them out of stdout, which carries results."""
    print(message, file=sys.stderr, flush=True)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, streamed so multi-GB archives never sit in memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):.1f} MiB"


def _open_source(url: str) -> tuple[BinaryIO, int | None]:
    """Open an http(s) URL, a file:// URL or a plain local path; return the stream and its size if known."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        # Some dataset mirrors refuse Python's default User-Agent (HTTP 403): say who we are.
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        response = urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT_S)  # noqa: S310 (scheme checked)
        length = response.headers.get("Content-Length")
        return response, int(length) if length and length.isdigit() else None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DataError(
                f"cannot read {url}: file:// URLs must name a local path (file:///abs/path), "
                f"not host '{parsed.netloc}'"
            )
        local = Path(urllib.request.url2pathname(parsed.path))
    elif parsed.scheme == "":
        local = Path(url)
    else:
        raise DataError(
            f"cannot download {url}: unsupported scheme '{parsed.scheme}'; "
            "use an https://, http:// or file:// URL, or a local path"
        )
    stream = open(local, "rb")  # noqa: SIM115 (closed by the caller)
    return stream, os.fstat(stream.fileno()).st_size


def _stream_to(source: BinaryIO, total: int | None, part: Path, url: str, log: Log) -> str:
    """Copy source into part, logging progress; return the md5 of what was written."""
    digest = hashlib.md5()
    written = 0
    next_report = (total * PROGRESS_STEP_PERCENT // 100) if total else PROGRESS_STEP_BYTES_UNKNOWN_TOTAL
    with open(part, "wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            if written >= next_report:
                if total:
                    percent = min(100, written * 100 // total)
                    log(f"[data] {url}: {_mib(written)} / {_mib(total)} ({percent}%)")
                    next_report = written + max(1, total * PROGRESS_STEP_PERCENT // 100)
                else:
                    log(f"[data] {url}: {_mib(written)}")
                    next_report = written + PROGRESS_STEP_BYTES_UNKNOWN_TOTAL
        out.flush()
        os.fsync(out.fileno())
    if total is not None and written != total:
        raise DataError(
            f"download of {url} stopped early: got {written} of {total} bytes; retry, "
            "or point data.url at a more reliable mirror"
        )
    return digest.hexdigest()


def download(url: str, dest: Path, *, md5: str | None = None, log: Log = log_to_stderr) -> Path:
    """Fetch url to dest, verifying md5 when given; reuse dest when it is already there and good.

    The bytes land in dest + ".part" first and are renamed only once complete and verified, so an
    interrupted or corrupt download never looks like a finished one.
    """
    dest = Path(dest)
    if dest.exists():
        if md5 is None:
            log(f"[data] using existing {dest} (no checksum to verify)")
            return dest
        actual = file_digest(dest)
        if actual == md5:
            log(f"[data] using existing {dest} (md5 verified)")
            return dest
        log(f"[data] existing {dest} has md5 {actual}, expected {md5}; downloading again")

    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create download folder {dest.parent}: {exc.strerror or exc}; choose a writable data root"
        ) from exc

    log(f"[data] downloading {url} -> {dest}")
    try:
        source, total = _open_source(url)
        with source:
            actual = _stream_to(source, total, part, url, log)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}; check the URL, "
            "or point data.url at a working mirror or a local copy of the archive"
        ) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        part.unlink(missing_ok=True)
        cause = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise DataError(
            f"could not download {url}: {cause}; check the network or path, "
            "or point data.url at a reachable mirror or a local copy of the archive"
        ) from exc

    if md5 is not None and actual != md5:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"checksum mismatch for {dest} (from {url}): expected md5 {md5}, got {actual}; "
            "retry, or point data.url at a good mirror"
        )
    os.replace(part, dest)
    log(f"[data] saved {dest}" + (f" (md5 verified {md5})" if md5 else ""))
    return dest


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why extracting member could write outside the destination or create a special file, if it could."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith("/"):
        return "absolute path"
    if ".." in name.parts:
        return "'..' path component"
    if member.issym() or member.islnk():
        return "link"
    if not (member.isfile() or member.isdir()):
        return "device or special file"
    return None


def safe_extract(tar_path: Path, dest: Path) -> None:
    """Extract a tar archive, refusing any member that could escape dest or is not a plain file or folder.

    Every member is checked before anything is written, so a hostile archive leaves dest untouched.
    """
    dest = Path(dest)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                reason = _unsafe_reason(member)
                if reason is not None:
                    raise DataError(
                        f"refusing to extract {tar_path}: member '{member.name}' is unsafe ({reason}); "
                        "the archive is not a genuine dataset archive — delete it and download again"
                    )
            dest.mkdir(parents=True, exist_ok=True)
            for member in members:
                target = dest.joinpath(*PurePosixPath(member.name).parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # regular files always have a data stream
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK_BYTES)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt archive {tar_path}: {exc}; delete it and download again") from exc
    except OSError as exc:
        raise DataError(f"cannot extract {tar_path} into {dest}: {exc}") from exc
