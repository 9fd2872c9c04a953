"""WMT sources: pinned archives, reading .tgz members and .sgm test sets in place, the look-alikes end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tasks.data import catalog
from tasks.data.download import file_digest
from tasks.data.subword import detokenize
from tasks.data.wmt import CORPORA, build_wmt, generated_corpus, generated_pair
from tasks.data.wmt_sources import (
    Archive,
    ParallelText,
    ValidationSet,
    fetch,
    format_sgm,
    parse_sgm,
    read_parallel_text,
    read_test_set,
    write_tgz,
)
from tasks.errors import ChecksumMismatch, DataError, UserError
from tasks.text_ids import SPECIAL_TOKENS

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
SGM = """<refset setid="newstest2014" srclang="any" trglang="de">
<doc sysid="ref" docid="1012-bbc" genre="news" origlang="en">
<p>
<seg id="1">Tom &amp; Jerry   sagten &quot;Hallo&quot; &#228; &#x263A;</seg>
<seg id=2> AT&T kauft &lt;nichts&gt; </seg>
</p>
</doc>
<doc sysid="ref" docid="1013-bbc" genre="news" origlang="de">
<seg id="1">Zweites Dokument.</seg>
</doc>
</refset>
"""


def _quiet(message: str) -> None:
    pass


def test_sgm_segments_are_unescaped_and_trimmed() -> None:
    assert parse_sgm(SGM) == [
        ("1", 'Tom & Jerry sagten "Hallo" ä ☺'),
        ("2", "AT&T kauft <nichts>"),  # a bare "&" is raw text, kept
        ("1", "Zweites Dokument."),
    ]
    sentences = ["A & B <c>", "plain", "third one", "R&D"]
    written = format_sgm(sentences, set_id="t", language="en", reference=False, per_document=3)
    assert parse_sgm(written) == [("1", "A & B <c>"), ("2", "plain"), ("3", "third one"), ("1", "R&D")]
    assert written.count("<doc ") == 2  # segment ids restart in each document


def test_parallel_members_are_streamed_from_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.tgz"
    members = {
        "training/europarl-v7.fr-en.en": b"not this one\n",
        "training/europarl-v7.de-en.en": "Hello.\nResumption of the session\n\n".encode(),
        "training/europarl-v7.de-en.de": "Hallo.\nWiederaufnahme der Sitzungsperiode\n\n".encode(),
    }
    md5 = write_tgz(archive, members)
    assert write_tgz(tmp_path / "again.tgz", members) == md5  # deterministic bytes
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["training", *members]
    text = ParallelText(Archive("unused", archive.name), "training/europarl-v7.de-en.en",
                        "training/europarl-v7.de-en.de")
    assert list(read_parallel_text(text, archive)) == [
        ("Hello.", "Hallo."), ("Resumption of the session", "Wiederaufnahme der Sitzungsperiode"), ("", "")]

    short = tmp_path / "short.tgz"
    write_tgz(short, {text.source_member: b"a\nb\nc\n", text.target_member: b"a\nb\n"})
    with pytest.raises(DataError, match="differ in length"):
        list(read_parallel_text(text, short))
    missing = tmp_path / "missing.tgz"
    write_tgz(missing, {text.source_member: b"a\n"})
    with pytest.raises(DataError, match="lacks member training/europarl-v7.de-en.de"):
        list(read_parallel_text(text, missing))
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="corrupt archive"):
        list(read_parallel_text(text, broken))


def test_test_sets_need_matching_segments_and_the_pinned_count(tmp_path: Path) -> None:
    def archive(source: list[str], target: list[str]) -> Path:
        path = tmp_path / f"dev{len(list(tmp_path.iterdir()))}.tgz"
        write_tgz(path, {
            "dev/src.en.sgm": format_sgm(source, set_id="s", language="en", reference=False, per_document=2).encode(),
            "dev/ref.de.sgm": format_sgm(target, set_id="s", language="de", reference=True, per_document=2).encode(),
        })
        return path

    test = ValidationSet(Archive("unused", "dev.tgz"), "dev/src.en.sgm", "dev/ref.de.sgm", segments=3)
    good = archive(["one", "two", "three"], ["eins", "zwei", "drei"])
    assert read_test_set(test, good) == [("one", "eins"), ("two", "zwei"), ("three", "drei")]
    with pytest.raises(DataError, match="do not list the same segments"):
        read_test_set(test, archive(["one", "two", "three"], ["eins", "zwei"]))
    with pytest.raises(DataError, match="has 2 segments, the test set has 3"):
        read_test_set(test, archive(["one", "two"], ["eins", "zwei"]))


def test_fetch_verifies_the_pinned_checksum_and_refuses_another_file(tmp_path: Path) -> None:
    served = tmp_path / "mirror" / "data.tgz"
    served.parent.mkdir()
    write_tgz(served, {"a.txt": b"payload\n"})
    sha256, md5 = file_digest(served, "sha256"), file_digest(served)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    url = served.as_uri()  # file:// URLs go through the downloader like https ones

    with pytest.raises(ChecksumMismatch, match=f"expected sha256 {'0' * 64}, got {sha256}"):
        fetch(Archive(url, "data.tgz", sha256="0" * 64), downloads, _quiet)
    assert not (downloads / "data.tgz").exists()  # a wrong file is never left to be reused
    with pytest.raises(ChecksumMismatch, match="expected md5"):
        fetch(Archive(url, "data.tgz", md5="0" * 32), downloads, _quiet)

    lines: list[str] = []
    path = fetch(Archive(url, "data.tgz", sha256=sha256), downloads, lines.append)
    assert file_digest(path, "sha256") == sha256 and lines[-1].endswith(f"sha256 verified {sha256}")
    fetch(Archive(url, "data.tgz", sha256=sha256), downloads, lines.append)
    assert lines[-1] == f"[data] using existing {path} (sha256 verified)"
    path.write_bytes(b"truncated")  # a damaged copy is fetched again
    assert file_digest(fetch(Archive(url, "data.tgz", sha256=sha256), downloads, _quiet)) == md5
    assert fetch(Archive(url, "data2.tgz", md5=md5), downloads, _quiet).read_bytes() == served.read_bytes()


def test_real_corpora_are_pinned_to_the_published_archives() -> None:
    for corpus in CORPORA.values():
        archives = [text.archive for text in corpus.training] + [corpus.validation.archive]
        for archive in archives:
            assert archive.url.startswith(("https://www.statmt.org/", "https://data.statmt.org/", "https://statmt.org/"))
            assert (archive.sha256 and len(archive.sha256) == 64 and archive.size) or len(archive.md5 or "") == 32
        assert corpus.validation.segments == 3003
    assert CORPORA["wmt16"].settings.max_merges == 32_000 and CORPORA["wmt17"].settings.target_vocabulary == 33_708
    assert [text.source_member for text in CORPORA["wmt16"].training] == [
        "training/europarl-v7.de-en.en", "commoncrawl.de-en.en",
        "training-parallel-nc-v11/news-commentary-v11.de-en.en"]
    with pytest.raises(UserError, match="unknown WMT corpus 'wmt18'; valid: wmt16, wmt17"):
        build_wmt(Path("unused"), corpus="wmt18")


def test_look_alike_sentences_reorder_like_german() -> None:
    rng = np.random.default_rng(1)
    pairs = [generated_pair(rng) for _ in range(300)]
    fronted = [(en, de) for en, de in pairs if en.startswith("Today, ")]
    verbs = {"sieht", "findet", "mag", "kauft", "liest", "besucht"}
    assert fronted and all(de.split()[1] in verbs for _, de in fronted)
    perfect = [(en, de) for en, de in pairs if en.startswith("Yesterday, ")]
    assert perfect and all(de.startswith("Gestern hat ") for _, de in perfect)
    subordinate = [de for en, de in pairs if en.startswith("I think that")]
    assert subordinate and all(de.rstrip(".").split()[-1] in verbs for de in subordinate)
    training, validation = generated_corpus(3, train_pairs=90, val_pairs=10)
    assert (training, validation) == generated_corpus(3, train_pairs=90, val_pairs=10)
    assert [len(part) for part in training] == [30, 35, 30]  # the five junk lines sit in the CommonCrawl part
    assert not set(validation) & {pair for part in training for pair in part}


@pytest.mark.parametrize(("name", "max_subwords"), [("synthetic-wmt16-en-de", 73), ("synthetic-wmt17-en-de", 79)])
def test_look_alikes_prepare_through_the_catalog(tmp_path: Path, name: str, max_subwords: int) -> None:
    directory = catalog.prepare(name, tmp_path, log=_quiet)
    arrays, metadata = catalog.load(name, tmp_path), catalog.metadata(name, tmp_path)
    vocabulary = metadata["vocabulary"]
    assert catalog.kind(name) == "translation" and directory.name == "v1"
    assert vocabulary[:4] == list(SPECIAL_TOKENS) and len(vocabulary) % 8 == 0 == metadata["vocab_size"] % 8
    assert metadata["train_size"] == 600 and metadata["val_size"] == 60
    assert metadata["filtering"] == {
        "train_pairs_read": 605, "train_dropped_by_clean": 3, "train_dropped_not_latin1": 1,
        "train_dropped_too_long": 1, "val_pairs_read": 60, "val_dropped_too_long": 0}
    for split, size in (("train", 600), ("val", 60)):
        for side in ("source", "target"):
            ids, offsets = arrays[f"{split}_{side}"], arrays[f"{split}_{side}_offsets"]
            assert ids.dtype == np.int32 and offsets.dtype == np.int64 and offsets.shape == (size + 1,)
            assert offsets[0] == 0 and offsets[-1] == ids.size and np.all(np.diff(offsets) >= 1)
            assert np.diff(offsets).max() <= max_subwords and 4 <= ids.min() and ids.max() < len(vocabulary)
    hypotheses = [detokenize(arrays["val_target"][a:b], vocabulary, "de")
                  for a, b in zip(arrays["val_target_offsets"][:-1], arrays["val_target_offsets"][1:], strict=True)]
    assert hypotheses == metadata["val_references"]  # the ids give back the raw references exactly
    assert len(metadata["val_sources_raw"]) == 60 and metadata["val_sources_raw"][0].endswith(".")
    assert any(token.endswith("@@") for token in vocabulary)  # words are split into subwords
    sources = {Path(source["file"]).name: source for source in metadata["sources"]}
    assert "training-parallel-commoncrawl.tgz" in sources
    assert all(("sha256" in source) != ("md5" in source) for source in sources.values())
    assert metadata["separator"] == "@@" and metadata["target_language"] == "de" and metadata["synthetic"]
    if name == "synthetic-wmt17-en-de":  # learning stopped at the target vocabulary, not at the merge limit
        assert metadata["vocab_size"] == 128 and len(metadata["bpe_merges"]) < 1000
    else:
        assert len(metadata["bpe_merges"]) == 120


def test_translation_datasets_are_listed_and_take_no_url_override(tmp_path: Path) -> None:
    assert catalog.names("translation") == [
        "number-phrases-en-de", "synthetic-wmt16-en-de", "synthetic-wmt17-en-de", "wmt16-en-de", "wmt17-en-de"]
    assert catalog.describe("wmt16-en-de")["validation_sentences"] == 3003
    assert len(catalog.describe("wmt17-en-de")["urls"]) == 4
    with pytest.raises(UserError, match="dataset 'wmt16-en-de' takes no data url/md5 override"):
        catalog.prepare("wmt16-en-de", tmp_path, url="https://example.org/mirror/")


def test_catalog_import_needs_neither_sacremoses_nor_num2words() -> None:
    """The Airflow image lists datasets without the train extra."""
    probe = "import sys, tasks.data.catalog; print(sorted(m for m in ('sacremoses', 'num2words') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "[]"
