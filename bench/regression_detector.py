"""False-alarm rate and detection delay of the regression detector on synthetic nightly series.

Noise-only series (60 nights of Gaussian noise, 3 % of the mean by default) measure false alarms:
the fraction whose verdict on the last night is `regression`, and, as the nightly sees it, the
fraction flagged on at least one night when the detector runs after every night from the first
with enough history to the last. Step series (40 nights, then a step of +STEP % that
stays) measure detection: for each number of nights after the step, the fraction flagged
`regression` with the change at the step night +-1; the delay of a series is the first of those
night counts at which it is flagged. Seeds are 0..SEEDS-1, so every figure is reproducible.
Last, the time of one `detect` on 60, 180 and 365 nights, without and with a step.

    python bench/regression_detector.py                          # the defaults
    python bench/regression_detector.py --p-value 0.05 --min-magnitude 3 --seeds 300
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np

from operators.regressions.detector import DetectorSettings, Point, Status, detect

BEFORE_NIGHTS = 40
MAX_NIGHTS_AFTER = 6


def parse_args() -> argparse.Namespace:
    defaults = DetectorSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=3.0, help="noise, %% of the mean (Gaussian)")
    parser.add_argument("--step", type=float, default=10.0, help="step, %% of the mean")
    parser.add_argument("--nights", type=int, default=60, help="nights of a noise-only series")
    parser.add_argument("--p-value", type=float, default=defaults.p_value)
    parser.add_argument("--min-magnitude", type=float, default=defaults.min_magnitude_pct)
    parser.add_argument("--min-segment", type=int, default=defaults.min_segment_nights)
    parser.add_argument("--permutations", type=int, default=defaults.permutations)
    return parser.parse_args()


def noisy(rng: np.random.Generator, nights: int, noise_pct: float, level: float = 100.0) -> list[float]:
    return list(level * (1 + noise_pct / 100 * rng.standard_normal(nights)))


def false_alarms(seed: int, args: argparse.Namespace, settings: DetectorSettings) -> tuple[bool, bool]:
    """(flagged on the last night, flagged on any night) of one noise-only series."""
    values = noisy(np.random.default_rng(seed), args.nights, args.noise)
    points = [Point(i, v) for i, v in enumerate(values)]
    flagged = [detect(points[:nights], "lower", settings).verdict.status is Status.REGRESSION
               for nights in range(settings.min_history_nights, args.nights + 1)]
    return flagged[-1], any(flagged)


def delay(seed: int, args: argparse.Namespace, settings: DetectorSettings) -> tuple[int | None, bool]:
    """(nights after the step until the series is flagged at the step night +-1, None if not by
    MAX_NIGHTS_AFTER; whether it is flagged at all, anywhere, MAX_NIGHTS_AFTER nights after)."""
    rng = np.random.default_rng(1_000_000 + seed)
    values = noisy(rng, BEFORE_NIGHTS, args.noise) + noisy(rng, MAX_NIGHTS_AFTER, args.noise, 100 + args.step)
    points = [Point(i, v) for i, v in enumerate(values)]
    for after in range(1, MAX_NIGHTS_AFTER + 1):
        verdict = detect(points[:BEFORE_NIGHTS + after], "lower", settings).verdict
        if verdict.status is Status.REGRESSION and abs(int(verdict.first_seen or 0) - BEFORE_NIGHTS) <= 1:
            return after, True
    return None, verdict.status is Status.REGRESSION


def time_per_series(settings: DetectorSettings, nights: int, step_pct: float) -> float:
    """Median seconds of one `detect` on a series of `nights` nights, with a step 10 nights from its end."""
    rng = np.random.default_rng(0)
    values = noisy(rng, nights - 10, 3.0) + noisy(rng, 10, 3.0, 100 + step_pct)
    points = [Point(i, v) for i, v in enumerate(values)]
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        detect(points, "lower", settings)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    args = parse_args()
    settings = DetectorSettings(p_value=args.p_value, min_magnitude_pct=args.min_magnitude,
                                min_segment_nights=args.min_segment, permutations=args.permutations)
    seeds = range(args.seeds)
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        alarms = list(pool.map(partial(false_alarms, args=args, settings=settings), seeds, chunksize=20))
        delays = list(pool.map(partial(delay, args=args, settings=settings), seeds, chunksize=20))
    elapsed = time.perf_counter() - started
    print(f"{settings}; noise {args.noise} %, step {args.step} %, {args.seeds} seeds; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {elapsed:.0f} s")
    last, any_night = (sum(flags) for flags in zip(*alarms, strict=True))
    print(f"false alarms, {args.nights}-night noise-only series: on the last night {last}/{args.seeds} "
          f"= {last / args.seeds:.2%}; on any night {any_night}/{args.seeds} = {any_night / args.seeds:.2%}")
    for after in range(1, MAX_NIGHTS_AFTER + 1):
        found = sum(1 for d, _ in delays if d is not None and d <= after)
        print(f"flagged {after} night(s) after the step: {found / args.seeds:.1%}")
    found_delays = [d for d, _ in delays if d is not None]
    elsewhere = sum(1 for d, flagged in delays if d is None and flagged)
    print(f"delay: median {statistics.median(found_delays)} nights, max {max(found_delays)} nights; "
          f"{MAX_NIGHTS_AFTER} nights after the step, {elsewhere}/{args.seeds} flagged 2 or more nights away from "
          f"it, {args.seeds - len(found_delays) - elsewhere}/{args.seeds} not flagged")
    for nights in (60, 180, 365):
        print(f"one detect, {nights} nights: {time_per_series(settings, nights, 0.0) * 1000:.0f} ms without a change, "
              f"{time_per_series(settings, nights, args.step) * 1000:.0f} ms with the step")


if __name__ == "__main__":
    main()
