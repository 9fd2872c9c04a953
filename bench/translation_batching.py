"""What building the translation tasks' passes costs on the host, per pass: the `data` phase's
work before the copy to the device (`SentencePairs.batch`: padding, BOS/EOS framing, target
outputs) for 4a's passes of 128 sentences and 4b's passes of up to 8,192 tokens.

The corpus is random token ids with WMT-like lengths (1-80 subword tokens, mean ~29, as after the
tasks' cleaning); ids and lengths do not change the work beyond their count. Each round times
every pass of one epoch (`TranslationSteps.epoch`, rank 0 of one: the plan, the passes, the
concatenated target outputs) and reports the median microseconds per pass over ROUNDS rounds,
beside the passes per second one core sustains.

    python bench/translation_batching.py [--sentences 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.runtime.translation_batches import SentencePairs, TranslationSteps  # noqa: E402

SETTINGS = {  # as tasks 4a and 4b declare them (tasks/benchmarks/wmt16_gnmt.py, wmt17_transformer.py)
    "4a (128 sentences per pass)": {"batching": "sentences", "global_batch": 2048, "max_per_pass": 128,
                                     "loss_normalization": "sentences"},
    "4b (8,192 tokens per pass)": {"batching": "tokens", "global_batch": 2 ** 17, "max_per_pass": 8192,
                                    "loss_normalization": "tokens"},
}


def corpus(sentences: int, seed: int = 0) -> SentencePairs:
    rng = np.random.default_rng(seed)
    source_lengths = np.clip(rng.gamma(3.0, 9.5, sentences).astype(np.int64) + 1, 1, 80)
    target_lengths = np.clip(source_lengths + rng.integers(-4, 5, sentences), 1, 80)
    source = rng.integers(4, 32_000, int(source_lengths.sum())).astype(np.int32)
    target = rng.integers(4, 32_000, int(target_lengths.sum())).astype(np.int32)
    return SentencePairs(source, np.concatenate([[0], np.cumsum(source_lengths)]),
                         target, np.concatenate([[0], np.cumsum(target_lengths)]))


def time_epoch(pairs: SentencePairs, settings: dict) -> tuple[float, int]:
    """Seconds to build every pass of one epoch, and the number of passes."""
    steps = TranslationSteps(pairs, seed=1, rank=0, world_size=1, **settings)
    started = time.perf_counter()
    passes = sum(len(step.passes) for step, _ in steps.epoch(0))
    return time.perf_counter() - started, passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pairs = corpus(args.sentences)
    print(f"{platform.processor() or platform.machine()}, {args.sentences} sentence pairs "
          f"(mean target length {pairs.target_lengths.mean():.1f} with EOS), {args.rounds} rounds")
    for name, settings in SETTINGS.items():
        per_pass = []
        for _ in range(args.rounds):
            seconds, passes = time_epoch(pairs, settings)
            per_pass.append(seconds / passes * 1e6)
        median = statistics.median(per_pass)
        print(f"{name}: {passes} passes per epoch, median {median:.0f} us per pass "
              f"({1e6 / median:.0f} passes/s on one core)")


if __name__ == "__main__":
    main()
