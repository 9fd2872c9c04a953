"""The benchmark scripts still run (tiny settings): figures in docs/performance.md stay reproducible."""

import subprocess
import sys
from pathlib import Path

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


def test_translation_batching_bench_reports_both_tasks_passes():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "translation_batching.py"), "--sentences", "3000",
                           "--rounds", "1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["4a (128 sentences per pass)", "4b (8,192 tokens per pass)"]
    assert all(float(line.split("median ")[1].split(" us")[0]) > 0 for line in lines[1:])


def test_gpu_session_script_runs_through_without_a_gpu(tmp_path):
    """Without a GPU every check ends with its one-line reason and the run still leaves its summary and archive."""
    import os
    import tarfile

    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is visible: the real checks belong to a device session")
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_session.sh")], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "== pytest_gpu: exit 0" in summary  # the GPU tests skip cleanly
    assert "error: --device cuda needs a CUDA GPU" in summary
    assert summary.count("needs a CUDA GPU") + summary.count("has no NCCL") >= 5
    with tarfile.open(tmp_path / "gpu-results.tar.gz") as archive:
        assert "./lm_demo_cuda.log" in archive.getnames()


def test_wmt_preparation_bench_prepares_generated_archives_and_reports_each_stage(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "wmt_preparation.py"), "--pairs", "300",
                           "--merges", "200", "--lexicon", "3000", "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    (row,) = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert row["pairs"] == row["pairs_read"] == 300 and 0 < row["pairs_kept"] <= 300
    assert row["bpe_merges"] == 200 and row["word_types"] > 200 and row["peak_rss_mib"] > 0
    assert all(seconds >= 0 for seconds in row["seconds"].values()) and row["array_bytes"] > 0
    assert done.stdout.splitlines()[-1].startswith("| 300 | ")
