"""What task 4a's data preparation costs, measured at scales this machine can hold and without the
real archives (statmt.org cannot be reached here): time per stage and peak memory of the real code
(`tasks.data.wmt.encode_translation_corpus` over pairs streamed by `read_parallel_text` from
.tgz archives in WMT16's layout), with WMT16's settings (32,000 BPE merges, 73 / 148 subwords).

The text is generated to look like WMT's to the preparation, not to a reader: sentence lengths
log-normal around 22 words (some past the cleaning's 80), words drawn Zipf-like from a lexicon of
syllable strings (English letters; German with umlauts and ß, so the Latin-1 filter reads real
accents), commas and a full stop for Moses to split, and German a little shorter than its English.
So the number of word types grows with the corpus as real text's does, and BPE learns real merges.
It says nothing about BLEU.

Each scale runs in two fresh processes: one writes the archives, the other prepares them and reports
its own peak resident memory (`ru_maxrss`), so the generator's memory is not counted.

    python bench/wmt_preparation.py [--pairs 20000 80000] [--merges 32000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.data.wmt import CORPORA, encode_translation_corpus  # noqa: E402
from tasks.data.wmt_sources import (  # noqa: E402
    NEWSTEST2014_SEGMENTS,
    read_parallel_text,
    read_test_set,
    write_test_archive,
    write_training_archive,
)

CORPUS = CORPORA["wmt16"]
SHARES = (0.42, 0.53, 0.05)  # of the pairs, per archive in CORPUS.training order
LEXICON = 400_000  # word types per language to draw from (--lexicon)
# "encode": the training pairs' second pass, then newstest2014's pairs, then the arrays; the last stage
# gathers the metadata
STAGES = ("read, tokenize and clean", "learn BPE", "encode", "metadata")


# ------------------------------------------------------------------------------------ the text

def _syllables(rng: np.random.Generator, onsets: str, vowels: list[str], codas: str) -> list[str]:
    return sorted({o + v + c for o in ["", *onsets] for v in vowels for c in ["", *codas]
                   if rng.random() < 0.6})


def _lexicon(rng: np.random.Generator, syllables: list[str], size: int) -> np.ndarray:
    """`size` distinct words of 1-4 syllables, shortest first (so the frequent ranks are short)."""
    words: set[str] = set()
    while len(words) < size:
        counts = rng.choice([1, 2, 3, 4], size=size, p=[0.2, 0.4, 0.3, 0.1])
        for count in counts:
            words.add("".join(syllables[i] for i in rng.integers(len(syllables), size=count)))
            if len(words) == size:
                break
    return np.array(sorted(words, key=lambda word: (len(word), word)), dtype=object)


def _zipf(size: int) -> np.ndarray:
    ranks = np.arange(1, size + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 2.7) ** 1.07  # Zipf-Mandelbrot, as word frequencies
    return weights / weights.sum()


def _sentence(rng: np.random.Generator, words: np.ndarray) -> str:
    text = ""
    for index, word in enumerate(words):
        text += (" " if index else "") + (word.capitalize() if index == 0 else word)
        if index + 1 < len(words) and rng.random() < 0.08:
            text += ","
    return text + "."


def generated_pairs(pairs: int, lexicon: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    english = _lexicon(rng, _syllables(rng, "bcdfghklmnprstvw", ["a", "e", "i", "o", "u", "ea", "ou"], "nrstl"),
                       lexicon)
    german = _lexicon(rng, _syllables(rng, "bdfghklmnprstwz", ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "au"],
                                      "nrstlß"), lexicon)
    probabilities = _zipf(lexicon)
    lengths = np.clip(np.rint(rng.lognormal(np.log(22.0), 0.55, size=pairs)), 1, 120).astype(int)
    german_lengths = np.clip(np.rint(lengths * rng.normal(0.93, 0.08, size=pairs)), 1, 120).astype(int)
    english_ids = rng.choice(lexicon, size=int(lengths.sum()), p=probabilities)
    german_ids = rng.choice(lexicon, size=int(german_lengths.sum()), p=probabilities)
    result, at_en, at_de = [], 0, 0
    for length, german_length in zip(lengths, german_lengths, strict=True):
        result.append((_sentence(rng, english[english_ids[at_en:at_en + length]]),
                       _sentence(rng, german[german_ids[at_de:at_de + german_length]])))
        at_en, at_de = at_en + length, at_de + german_length
    return result


# ------------------------------------------------------------------------------- the two steps

def write_archives(folder: Path, pairs: int, lexicon: int) -> dict:
    """The training archives (WMT16's three, split by SHARES) and newstest2014's, in the real layout."""
    training = generated_pairs(pairs, lexicon)
    validation = generated_pairs(NEWSTEST2014_SEGMENTS, lexicon, seed=1)
    cuts = np.cumsum([0, *(round(share * pairs) for share in SHARES[:-1]), pairs - sum(
        round(share * pairs) for share in SHARES[:-1])])
    archives = [write_training_archive(folder, text, training[cuts[i]:cuts[i + 1]])
                for i, text in enumerate(CORPUS.training)]
    test = write_test_archive(folder, CORPUS.validation, validation)
    return {"training": [a.url for a in archives], "validation": test.url,
            "archive_bytes": sum(a.size or 0 for a in [*archives, test])}


def prepare(layout: dict, merges: int) -> dict:
    """The real preparation over the written archives: seconds per stage, peak memory, sizes."""
    marks: list[tuple[float, str]] = []

    def log(message: str) -> None:
        marks.append((time.perf_counter(), message))

    settings = replace(CORPUS.settings, max_merges=merges)
    def training():
        for text, path in zip(CORPUS.training, layout["training"], strict=True):
            yield from read_parallel_text(text, Path(path))

    start = time.perf_counter()
    validation = read_test_set(CORPUS.validation, Path(layout["validation"]))
    work = Path(layout["validation"]).parent / "work.tsv"
    arrays, metadata = encode_translation_corpus(training(), validation, settings=settings, work_file=work, log=log,
                                                 log_every=10 ** 9)
    end = time.perf_counter()

    def logged(text: str) -> tuple[float, str]:  # when the preparation logged the end of a stage, and what
        return next((t, m) for t, m in marks if text in m)

    (read_done, read_line), (bpe_done, _), (encoded, _) = (
        logged("training pairs read"), logged("BPE merges, vocabulary"), logged("validation pairs within"))
    return {
        "seconds": dict(zip(STAGES, (read_done - start, bpe_done - read_done, encoded - bpe_done, end - encoded),
                            strict=True)),
        "total_s": end - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "pairs_read": metadata["filtering"]["train_pairs_read"],
        "pairs_kept": metadata["train_size"],
        "word_types": int(read_line.split("learning BPE on ")[1].split()[0]),
        "bpe_merges": len(metadata["bpe_merges"]),
        "vocabulary": metadata["vocab_size"],
        "array_bytes": sum(int(a.nbytes) for a in arrays.values()),
        "metadata_bytes": len(json.dumps(metadata)),
    }


# ---------------------------------------------------------------------------------- the driver

def _child(step: str, folder: Path, pairs: int, merges: int, lexicon: int) -> dict:
    """One step in a fresh interpreter, so each reports its own memory."""
    done = subprocess.run([sys.executable, __file__, "--step", step, "--folder", str(folder), "--pairs", str(pairs),
                           "--merges", str(merges), "--lexicon", str(lexicon)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} of {pairs} pairs failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure(pairs: int, merges: int, lexicon: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="wmt-bench-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        layout = _child("write", folder, pairs, merges, lexicon)
        written_s = time.perf_counter() - started
        print(f"[bench] {pairs} pairs written in {written_s:.0f} s ({layout['archive_bytes'] / 2**20:.1f} MiB of "
              "archives); preparing", file=sys.stderr, flush=True)
        return {"pairs": pairs, "archive_bytes": layout["archive_bytes"],
                **_child("prepare", folder, pairs, merges, lexicon)}


def _cpu() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {os.cpu_count()} CPUs"


def report(rows: list[dict], merges: int) -> str:
    lines = [f"WMT16-layout preparation, {merges} BPE merges; {_cpu()}, Python {platform.python_version()}",
             "| pairs | archives | word types | " + " | ".join(STAGES) + " | total | peak memory | arrays |",
             "|---|---|---|" + "---|" * len(STAGES) + "---|---|---|"]
    for row in rows:
        stages = " | ".join(f"{row['seconds'][stage]:.1f} s" for stage in STAGES)
        lines.append(f"| {row['pairs']:,} | {row['archive_bytes'] / 2**20:.1f} MiB | {row['word_types']:,} | "
                     f"{stages} | {row['total_s']:.1f} s | {row['peak_rss_mib']:.0f} MiB | "
                     f"{row['array_bytes'] / 2**20:.1f} MiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[20_000, 80_000])
    parser.add_argument("--merges", type=int, default=CORPUS.settings.max_merges)
    parser.add_argument("--lexicon", type=int, default=LEXICON, help="word types per language to draw from")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--step", choices=("write", "prepare"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "write":
        print(json.dumps(write_archives(args.folder, args.pairs[0], args.lexicon)))
        return
    if args.step == "prepare":
        layout = write_layout(args.folder)
        print(json.dumps(prepare(layout, args.merges)))
        return
    rows = [measure(pairs, args.merges, args.lexicon) for pairs in args.pairs]
    print(report(rows, args.merges))
    if args.json:
        args.json.write_text(json.dumps({"merges": args.merges, "rows": rows}, indent=1))


def write_layout(folder: Path) -> dict:
    """The archives `write_archives` left in folder, by the real file names."""
    return {"training": [str(folder / text.archive.filename) for text in CORPUS.training],
            "validation": str(folder / CORPUS.validation.archive.filename)}


if __name__ == "__main__":
    main()
