"""MLBench task 3a: AWD-LSTM on WikiText-2, synchronous SGD then averaged SGD (NT-ASGD)."""

import json

from tasks.spec import (
    AlgorithmSpec,
    DataSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    Preset,
    ScheduleSpec,
    TargetSpec,
    TaskSpec,
    presets,
    quality_presets,
)

# AWD-LSTM as MLBench task 3a configured it (tasks.models.awd_lstm holds the architecture's defaults).
AWD_LSTM_OPTIONS = {
    "vocab_size": 33_278,
    "embedding_size": 400,
    "hidden_size": 1150,
    "num_layers": 3,
    "dropout": 0.4,
    "dropouth": 0.2,
    "dropouti": 0.65,
    "dropoute": 0.1,
    "weight_drop": 0.5,
    "tie_weights": True,
}
# A small AWD-LSTM for the demo and smoke presets: the same architecture and regularisation, sized
# for a CPU and a vocabulary of a few hundred to a few thousand words (which comes from the data).
SMALL_AWD_LSTM = {
    "embedding_size": 64, "hidden_size": 256, "num_layers": 2,
    "dropout": 0.3, "dropouth": 0.2, "dropouti": 0.3, "dropoute": 0.05, "weight_drop": 0.3, "tie_weights": True,
}  # fmt: skip
TINY_AWD_LSTM = {**SMALL_AWD_LSTM, "embedding_size": 16, "hidden_size": 32}
# The demo's target and epoch cap (measured: see docs/performance.md).
DEMO_LM_EPOCHS = 40
DEMO_LM_PERPLEXITY = 150.0

TASK = TaskSpec(
    name="wikitext2-lstm",
    version="1.1",  # 1.1: the averaged phase runs at lr 15, not 15·√k (see README, "Task versions")
    mlbench_id="3a",
    description="Language modelling: AWD-LSTM on WikiText-2 (word level), synchronous SGD, then averaged SGD",
    workload="language-model",
    model=ModelSpec(name="awd-lstm", options=AWD_LSTM_OPTIONS),
    data=DataSpec(dataset="wikitext2", sequence_length=70),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients",
            # lr 15·√k, each step's rate scaled by its sequence length / 70; gradient norm clipped to 0.25
            # after the all-reduce; averaged SGD after the NT-ASGD switch runs at the unscaled 15.
            optimizer=OptimizerSpec(lr=15.0, lr_scaling="sqrt", momentum=0.0, weight_decay=1.2e-6,
                                    grad_clip_norm=0.25),
            schedule=ScheduleSpec(kind="nt-asgd", nonmonotone_interval=5),
            reference=True,
            description="MLBench reference: gradients all-reduced and averaged, clipped, SGD then averaged SGD",
        ),
    ),
    loss=LossSpec(name="cross-entropy", activation_alpha=2.0, temporal_activation_beta=1.0),
    batch_size=20,  # columns of the token stream per worker
    eval_batch_size=10,
    max_epochs=750,
    eval_every_epochs=1,
    target=TargetSpec(metric="perplexity", mode="min", value=70.0),
    seed=43,
    num_classes=None,  # the vocabulary, from the dataset
    presets=presets(
        *quality_presets(light_target="90.0"),
        # The Python language reference that ships with CPython: real English text, offline.
        Preset("demo", "real text bundled with CPython, reaches its target in under a minute on CPU", {
            "data.dataset": "python-reference-text",
            "data.sequence_length": "35",
            "model.options": json.dumps(SMALL_AWD_LSTM),
            "max_epochs": str(DEMO_LM_EPOCHS),
            "target_value": str(DEMO_LM_PERPLEXITY),
        }),
        # A generated WikiText-2-format archive, through the same parser as the real one; the target is
        # not reached in 2 epochs: the smoke run exercises every epoch.
        Preset("smoke", "tiny generated data in the real file format, a few epochs, for tests", {
            "data.dataset": "synthetic-wikitext2",
            "data.sequence_length": "20",
            "model.options": json.dumps(TINY_AWD_LSTM),
            "max_epochs": "2",
            "target_value": "1.5",
        }),
    ),
)
