"""The WMT archives of tasks 4a and 4b: where they are, their pinned checksums, and reading them in place.

Training text is read line by line straight from the .tgz members (aligned `.en`/`.de` files, one
sentence per line); test sets from WMT's SGML-like `.sgm` files (`<seg id="N">text</seg>`, one per
line). Nothing is extracted. A writer produces small archives in exactly these formats, read back by
the same code, for the offline look-alike datasets.

Checksums: TensorFlow Datasets pins each training archive's size and sha256 in
`tensorflow_datasets/url_checksums/wmt16_translate.txt` and `wmt17_translate.txt`; sacrebleu (2.6.0,
`sacrebleu/dataset/__init__.py`, entries "wmt16/dev" and "wmt14/full") pins the test-set archives' md5.
"""

from __future__ import annotations

import gzip
import html
import io
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import IO

from tasks.data.download import Log, download, file_digest
from tasks.errors import ChecksumMismatch, DataError

NEWSTEST2014_SEGMENTS = 3003  # newstest2014 (the full English-German set, both directions)


@dataclass(frozen=True)
class Archive:
    """A downloadable archive and its pinned identity (sha256 and size, or md5 where only that is published)."""

    url: str
    filename: str  # its name in the download folder
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ParallelText:
    """Two aligned line files (source language, target language) inside an archive."""

    archive: Archive
    source_member: str
    target_member: str


@dataclass(frozen=True)
class ValidationSet:
    """A source and a reference .sgm file inside an archive, and how many segments each must hold."""

    archive: Archive
    source_member: str
    target_member: str
    segments: int


# Europarl v7 as WMT13 packaged it, which TFDS's wmt16/wmt17 builders and MLBench's WMT17 preprocessing
# download. MLPerf GNMT fetched the release's German-English file, statmt.org/europarl/v7/de-en.tgz,
# instead; we found no published checksum for that one.
EUROPARL_V7 = Archive(
    "https://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz", "training-parallel-europarl-v7.tgz",
    sha256="0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7", size=657_632_379)
COMMONCRAWL = Archive(
    "https://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz", "training-parallel-commoncrawl.tgz",
    sha256="c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5", size=918_311_367)
NEWS_COMMENTARY_V11 = Archive(
    "https://data.statmt.org/wmt16/translation-task/training-parallel-nc-v11.tgz", "training-parallel-nc-v11.tgz",
    sha256="cfe8ab047e05043476e498ee765c98e939c7b7d6d294e856344c84476b619d6a", size=75_178_032)
NEWS_COMMENTARY_V12 = Archive(
    "https://data.statmt.org/wmt17/translation-task/training-parallel-nc-v12.tgz", "training-parallel-nc-v12.tgz",
    sha256="2b45f30ef1d550d302fd17dd3a5cbe19134ccc4c2cf50c2dae534aee600101a2", size=168_591_139)
WMT16_DEV = Archive("https://data.statmt.org/wmt16/translation-task/dev.tgz", "wmt16-dev.tgz",
                    md5="4a3dc2760bb077f4308cce96b06e6af6")
WMT14_TEST_FULL = Archive("https://statmt.org/wmt14/test-full.tgz", "wmt14-test-full.tgz",
                          md5="a8cd784e006feb32ac6f3d9ec7eb389a")

# Member names as MLPerf's download_dataset.sh (WMT16), tensor2tensor's translate_ende.py (WMT17 training)
# and sacrebleu ("wmt14/full") read them.
EUROPARL_DE_EN = ParallelText(EUROPARL_V7, "training/europarl-v7.de-en.en", "training/europarl-v7.de-en.de")
COMMONCRAWL_DE_EN = ParallelText(COMMONCRAWL, "commoncrawl.de-en.en", "commoncrawl.de-en.de")
NEWS_COMMENTARY_V11_DE_EN = ParallelText(
    NEWS_COMMENTARY_V11, "training-parallel-nc-v11/news-commentary-v11.de-en.en",
    "training-parallel-nc-v11/news-commentary-v11.de-en.de")
NEWS_COMMENTARY_V12_DE_EN = ParallelText(
    NEWS_COMMENTARY_V12, "training/news-commentary-v12.de-en.en", "training/news-commentary-v12.de-en.de")
# MLPerf GNMT took newstest2014's English from the de-en reference and its German from the de-en source.
WMT16_NEWSTEST2014 = ValidationSet(
    WMT16_DEV, "dev/newstest2014-deen-ref.en.sgm", "dev/newstest2014-deen-src.de.sgm", NEWSTEST2014_SEGMENTS)
# Task 4b's newstest2014 (MLBench shipped it as plain text) from WMT14's full release of the test sets.
WMT17_NEWSTEST2014 = ValidationSet(
    WMT14_TEST_FULL, "test-full/newstest2014-deen-src.en.sgm", "test-full/newstest2014-deen-ref.de.sgm",
    NEWSTEST2014_SEGMENTS)

# Training corpora in the order each reference concatenated them.
WMT16_TRAINING = (EUROPARL_DE_EN, COMMONCRAWL_DE_EN, NEWS_COMMENTARY_V11_DE_EN)  # MLPerf GNMT (task 4a)
WMT17_TRAINING = (NEWS_COMMENTARY_V12_DE_EN, COMMONCRAWL_DE_EN, EUROPARL_DE_EN)  # MLBench's WMT17 (task 4b)


# ------------------------------------------------------------------------------------- download


def fetch(archive: Archive, folder: Path, log: Log) -> Path:
    """The archive in folder, downloaded (or a verified copy reused); ChecksumMismatch unless it is the pinned one."""
    dest = Path(folder) / archive.filename
    if archive.sha256 is None:
        return download(archive.url, dest, md5=archive.md5, log=log)
    if dest.exists():
        if file_digest(dest, "sha256") == archive.sha256:
            log(f"[data] using existing {dest} (sha256 verified)")
            return dest
        log(f"[data] existing {dest} is not the pinned archive; downloading again")
        dest.unlink()
    download(archive.url, dest, log=log)
    actual, size = file_digest(dest, "sha256"), dest.stat().st_size
    if actual != archive.sha256:
        dest.unlink()
        expected_size = f" ({archive.size} bytes)" if archive.size else ""
        raise ChecksumMismatch(
            f"checksum mismatch for {dest} (from {archive.url}): expected sha256 {archive.sha256}{expected_size}, "
            f"got {actual} ({size} bytes); retry, or the host no longer serves this archive"
        )
    log(f"[data] {dest}: sha256 verified {actual}")
    return dest


# ------------------------------------------------------------------------------------- reading


def _open_member(tar: tarfile.TarFile, archive: Path, name: str) -> IO[bytes]:
    """A member's byte stream, found by reading headers forward only (a gzip stream cannot seek back cheaply)."""
    for info in tar:
        if info.name.removeprefix("./") == name and info.isfile():
            stream = tar.extractfile(info)
            assert stream is not None  # regular files always have a data stream
            return stream
    raise DataError(
        f"{archive} lacks member {name}; this is not the expected WMT archive — delete it and download again"
    )


def _member_lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines split at "\\n" only, as the reference scripts' line tools do; bytes that are not UTF-8 become U+FFFD."""
    for line in io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n"):
        yield line.rstrip("\n")


def read_parallel_text(text: ParallelText, archive: Path) -> Iterator[tuple[str, str]]:
    """(source line, target line) pairs of two aligned members, streamed; DataError if their line counts differ.

    Each member is read through its own handle on the archive, so both streams only move forward.
    """
    try:
        with tarfile.open(archive, "r:gz") as source_tar, tarfile.open(archive, "r:gz") as target_tar:
            source = _member_lines(_open_member(source_tar, archive, text.source_member))
            target = _member_lines(_open_member(target_tar, archive, text.target_member))
            for number, (source_line, target_line) in enumerate(zip_longest(source, target), start=1):
                if source_line is None or target_line is None:
                    raise DataError(
                        f"{archive}: {text.source_member} and {text.target_member} differ in length (line {number} "
                        "is missing from one); the archive is damaged — delete it and download again"
                    )
                yield source_line, target_line
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}; delete it and download again") from exc


_SEG = re.compile(r'<seg\s+id\s*=\s*"?([^"\s>]+)"?\s*>(.*)</seg>', re.IGNORECASE)
# XML's five named entities and numeric references; a bare "&" (WMT writes most text raw) stays as it is.
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|#[0-9]+|#[xX][0-9a-fA-F]+);")


def parse_sgm(text: str) -> list[tuple[str, str]]:
    """(segment id, sentence) of every `<seg>` line, as Moses' input-from-sgm.perl reads them.

    Whitespace is collapsed and trimmed; XML entities are unescaped.
    """
    segments = []
    for line in text.split("\n"):
        seg = _SEG.search(line)
        if seg:
            sentence = " ".join(_ENTITY.sub(lambda m: html.unescape(m.group(0)), seg.group(2)).split())
            segments.append((seg.group(1), sentence))
    return segments


def _read_member_text(archive: Path, name: str) -> str:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return "\n".join(_member_lines(_open_member(tar, archive, name)))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}; delete it and download again") from exc


def read_test_set(test: ValidationSet, archive: Path) -> list[tuple[str, str]]:
    """(source, reference) sentences of a test set.

    DataError unless both files list the same segments, as many as the test set has.
    """
    source = parse_sgm(_read_member_text(archive, test.source_member))
    target = parse_sgm(_read_member_text(archive, test.target_member))
    if [segment for segment, _ in source] != [segment for segment, _ in target]:  # ids restart per document
        raise DataError(f"{archive}: {test.source_member} and {test.target_member} do not list the same segments")
    if len(source) != test.segments:
        raise DataError(
            f"{archive}: {test.source_member} has {len(source)} segments, the test set has {test.segments}; "
            "this is not the expected archive — delete it and download again"
        )
    return [(src, tgt) for (_, src), (_, tgt) in zip(source, target, strict=True)]


# ------------------------------------------------------------------------------------- writing


def format_sgm(sentences: Sequence[str], *, set_id: str, language: str, reference: bool, per_document: int) -> str:
    """A test-set file in WMT's layout: a srcset/refset of documents whose segment ids restart at 1.

    "&", "<" and ">" are escaped, which parse_sgm undoes (WMT's own files mostly carry raw text, which
    it keeps as it is).
    """
    tag = "refset" if reference else "srcset"
    languages = f'srclang="any" trglang="{language}"' if reference else f'srclang="{language}"'
    lines = [f'<{tag} setid="{set_id}" {languages}>']
    for start in range(0, len(sentences), per_document):
        lines += [f'<doc sysid="ref" docid="{set_id}-{start // per_document + 1}" genre="news" origlang="en">', "<p>"]
        for number, sentence in enumerate(sentences[start : start + per_document], start=1):
            lines.append(f'<seg id="{number}">{html.escape(sentence, quote=False)}</seg>')
        lines += ["</p>", "</doc>"]
    lines.append(f"</{tag}>")
    return "".join(line + "\n" for line in lines)


def write_tgz(path: Path, members: Mapping[str, bytes]) -> str:
    """A gzipped tar of the given files (their folders listed first, as tar does); byte-for-byte deterministic.

    Returns its md5.
    """
    folders = sorted({str(Path(name).parent) + "/" for name in members if "/" in name})
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for folder in folders:
                info = tarfile.TarInfo(folder.rstrip("/"))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return file_digest(path)


def _lines(texts: Iterable[str]) -> bytes:
    return "".join(f"{text}\n" for text in texts).encode("utf-8")


def write_training_archive(folder: Path, text: ParallelText, pairs: Sequence[tuple[str, str]]) -> Archive:
    """Write text's archive into folder with the given (source, target) lines; return it pinned to its sha256."""
    members = {}
    if text in (EUROPARL_DE_EN, COMMONCRAWL_DE_EN):  # the real archives hold other language pairs first
        decoy = text.source_member.replace("de-en", "fr-en")
        members[decoy] = _lines(["This is not the German-English file."])
    members[text.source_member] = _lines(source for source, _ in pairs)
    members[text.target_member] = _lines(target for _, target in pairs)
    path = folder / text.archive.filename
    write_tgz(path, members)
    return Archive(str(path), text.archive.filename, sha256=file_digest(path, "sha256"), size=path.stat().st_size)


def write_test_archive(folder: Path, test: ValidationSet, pairs: Sequence[tuple[str, str]]) -> Archive:
    """Write test's archive into folder, the pairs as its two .sgm files; return it pinned to its md5."""

    def language(member: str) -> str:
        return member.rsplit(".", 2)[-2]

    def sgm(member: str, sentences: list[str]) -> bytes:
        return format_sgm(sentences, set_id="newstest2014", language=language(member),
                          reference="-ref." in member, per_document=10).encode("utf-8")

    members = {  # the real archives hold other language pairs' test sets too
        test.source_member.replace("deen", "csen"): sgm(test.source_member, ["Not the German-English set."]),
        test.source_member: sgm(test.source_member, [source for source, _ in pairs]),
        test.target_member: sgm(test.target_member, [target for _, target in pairs]),
    }
    path = folder / test.archive.filename
    md5 = write_tgz(path, members)
    return Archive(str(path), test.archive.filename, md5=md5)
