"""download(), file_digest() and safe_extract(): checksums, local and http sources, hostile archives."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.data.download import download, file_digest, safe_extract
from tasks.errors import DataError

pytestmark = pytest.mark.unit

PAYLOAD = bytes(range(256)) * 12_000  # ~3 MiB: several 1 MiB chunks, so progress is reported


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "archive.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture
def good_md5() -> str:
    return hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def http_root(source: Path) -> Iterator[str]:
    """An in-process http server for source's folder; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(source.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_file_digest_matches_hashlib(source: Path, good_md5: str) -> None:
    assert file_digest(source) == good_md5
    assert file_digest(source, "sha256") == hashlib.sha256(PAYLOAD).hexdigest()


def test_download_from_file_url_verifies_and_logs_progress(tmp_path: Path, source: Path, good_md5: str) -> None:
    messages: list[str] = []
    dest = tmp_path / "out" / "archive.bin"
    result = download(source.as_uri(), dest, md5=good_md5, log=messages.append)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("archive.bin.part").exists()
    assert all(m.startswith("[data] ") for m in messages)
    assert any("(100%)" in m for m in messages)


def test_download_from_plain_path(tmp_path: Path, source: Path, good_md5: str) -> None:
    dest = download(str(source), tmp_path / "archive.bin", md5=good_md5, log=lambda m: None)
    assert dest.read_bytes() == PAYLOAD


def test_download_over_http_reports_percentages(tmp_path: Path, http_root: str, good_md5: str) -> None:
    messages: list[str] = []
    dest = download(f"{http_root}/archive.bin", tmp_path / "archive.bin", md5=good_md5, log=messages.append)
    assert dest.read_bytes() == PAYLOAD
    assert any("%)" in m for m in messages)


def test_http_error_names_url_and_status(tmp_path: Path, http_root: str) -> None:
    with pytest.raises(DataError, match=r"could not download .*/missing\.bin: HTTP 404"):
        download(f"{http_root}/missing.bin", tmp_path / "x.bin", log=lambda m: None)


def test_unreachable_host_names_url_and_cause(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/archive.bin"
    with pytest.raises(DataError, match=rf"could not download {url}: .*refused"):
        download(url, tmp_path / "x.bin", log=lambda m: None)
    assert not (tmp_path / "x.bin.part").exists()


def test_existing_file_with_good_md5_is_reused_without_reading_source(tmp_path: Path, good_md5: str) -> None:
    dest = tmp_path / "archive.bin"
    dest.write_bytes(PAYLOAD)
    messages: list[str] = []
    download(str(tmp_path / "gone.bin"), dest, md5=good_md5, log=messages.append)
    assert any("using existing" in m for m in messages)


def test_existing_file_with_bad_md5_is_fetched_again(tmp_path: Path, source: Path, good_md5: str) -> None:
    dest = tmp_path / "archive.bin"
    dest.write_bytes(b"truncated")
    download(str(source), dest, md5=good_md5, log=lambda m: None)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_names_file_and_md5_and_leaves_nothing(tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "archive.bin"
    with pytest.raises(DataError, match=r"checksum mismatch for .*archive\.bin.*expected md5 0{32}, got [0-9a-f]{32}"):
        download(str(source), dest, md5="0" * 32, log=lambda m: None)
    assert not dest.exists()
    assert not dest.with_name("archive.bin.part").exists()


def test_missing_local_source_and_bad_scheme_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"could not download .*nowhere\.bin: No such file"):
        download(str(tmp_path / "nowhere.bin"), tmp_path / "x.bin", log=lambda m: None)
    with pytest.raises(DataError, match="unsupported scheme 'ftp'"):
        download("ftp://example.org/x.bin", tmp_path / "x.bin", log=lambda m: None)


def _tar_with(tmp_path: Path, *members: tarfile.TarInfo) -> Path:
    path = tmp_path / "test.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _file_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def test_safe_extract_extracts_plain_files(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path, _file_member("top/a.txt"), _file_member("top/sub/b.txt"))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "sub" / "b.txt").read_bytes() == b"x"


@pytest.mark.parametrize("bad_name", ["../escape.txt", "/etc/evil.txt", "top/../../escape.txt"])
def test_safe_extract_refuses_escaping_paths(tmp_path: Path, bad_name: str) -> None:
    archive = _tar_with(tmp_path, _file_member("top/fine.txt"), _file_member(bad_name))
    with pytest.raises(DataError, match=f"member '{bad_name}' is unsafe"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_safe_extract_refuses_links_and_devices(tmp_path: Path) -> None:
    link = tarfile.TarInfo("top/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DataError, match=r"member 'top/link' is unsafe \(link\)"):
        safe_extract(_tar_with(tmp_path, link), tmp_path / "out")
    device = tarfile.TarInfo("top/dev")
    device.type = tarfile.CHRTYPE
    with pytest.raises(DataError, match=r"member 'top/dev' is unsafe \(device"):
        safe_extract(_tar_with(tmp_path, device), tmp_path / "out")


def test_safe_extract_reports_corrupt_archive(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"corrupt archive .*broken\.tar\.gz"):
        safe_extract(archive, tmp_path / "out")
