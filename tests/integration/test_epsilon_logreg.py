"""Task 2a end to end: two gloo ranks, model averaging, tabular data, a valid results bundle."""

import json

import jsonschema
import pytest

from tasks.runtime.results import load_schema
from tests.conftest import run_mlbench, run_pipeline_steps

pytestmark = pytest.mark.integration


def test_two_rank_demo_reaches_its_target_on_real_bundled_data(data_root, tmp_path):
    done = run_mlbench("train", "--task", "epsilon-logreg", "--preset", "demo", "--world-size", "2",
                       "--output", str(tmp_path / "run"), "--data-root", str(data_root))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    jsonschema.validate(result, load_schema())
    assert result["mlbench_id"] == "2a" and result["algorithm"] == "model-averaging"
    assert result["goal_reached"] and result["final_validation_metric"] >= 0.95
    assert result["config"]["scaled_lr"] == 8.0 and result["config"]["loss"]["l2"] == 2.5e-6
    assert result["communication_s"] > 0 and result["model"]["parameters"] == 30  # 30 weights, no bias
    assert result["history"][0]["validation_top5"] is None
    # model averaging: both ranks end with the very same weights although they trained on different shards
    import torch

    epoch = result["epochs_run"]
    weights = [torch.load(tmp_path / "run" / "checkpoints" / f"epoch-{epoch:04d}-rank{r}.pt",
                          weights_only=False)["model"]["weight"] for r in (0, 1)]
    assert torch.equal(weights[0], weights[1])


def test_smoke_preset_parses_generated_libsvm_through_the_real_path(data_root, tmp_path):
    done = run_mlbench("train", "--task", "epsilon-logreg", "--preset", "smoke", "--world-size", "2",
                       "--output", str(tmp_path / "run"), "--data-root", str(data_root))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["config"]["data"]["dataset"] == "synthetic-epsilon" and result["epochs_run"] == 3
    assert all(0.0 <= row["validation_metric"] <= 1.0 for row in result["history"])
    assert result["best_validation_metric"] > 0.6  # it learns the generated signal (chance is 0.5)


def test_pipeline_steps_run_task_2a_with_its_gates(tmp_path, monkeypatch, data_root):
    outcomes = run_pipeline_steps({"tasks": ["epsilon-logreg"], "preset": "demo", "world_sizes": [1, 2]},
                                  "manual__epsilon", home=tmp_path, data_root=data_root, monkeypatch=monkeypatch)
    assert [o.goal_reached for o in outcomes] == [True, True]
