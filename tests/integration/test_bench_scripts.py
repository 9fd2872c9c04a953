"""The benchmark scripts still run (tiny settings): figures in docs/performance.md stay reproducible."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("script, args", [
    ("step_overhead.py", ["--rounds", "2", "--steps", "1", "--warmup", "1", "--batch-size", "8"]),
    ("allreduce_vs_raw.py", ["--max-elements", "1000", "--count", "3", "--repeats", "2", "--warmup", "1"]),
])
def test_bench_script_runs_and_ends_with_a_ratio(script, args):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio=") and float(last.split("=")[1]) > 0
