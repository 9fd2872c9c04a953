"""MLBench task 4a: GNMT v2 on WMT16 English->German, all-reduce Adam, scored by corpus BLEU.

Hyperparameters follow MLBench's reference code (mlbench-benchmarks, develop, July 2021) and the
MLPerf GNMT v2 model it used; as MLBench, it validates every 30 % of an epoch and after each epoch, and
stops at the first validation that reaches the goal. Deviation: the goal is checked on a true corpus
BLEU (MLBench averaged per-batch BLEU, also reported here as `bleu_batch_average`).
"""

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
    TranslationSpec,
    presets,
    quality_presets,
)

GNMT_OPTIONS = {"hidden_size": 1024, "num_layers": 4, "dropout": 0.2, "share_embedding": True, "init_weight": 0.1}
DEMO_GNMT = {**GNMT_OPTIONS, "hidden_size": 128, "num_layers": 2, "dropout": 0.1}
TINY_GNMT = {**GNMT_OPTIONS, "hidden_size": 32, "num_layers": 2, "dropout": 0.0}
# The demo's target and epoch cap (measured: see docs/performance.md).
DEMO_EPOCHS = 20
DEMO_BLEU = 60.0

TASK = TaskSpec(
    name="wmt16-gnmt",
    version="1.0",
    mlbench_id="4a",
    description="Machine translation: GNMT v2 on WMT16 English->German, all-reduce Adam, corpus BLEU",
    workload="translation",
    kind="translation",
    model=ModelSpec(name="gnmt", options=GNMT_OPTIONS),
    data=DataSpec(dataset="wmt16-en-de"),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients-sum",
            optimizer=OptimizerSpec(name="adam", lr=2e-3, betas=(0.9, 0.999), eps=1e-8, grad_clip_norm=5.0),
            schedule=ScheduleSpec(kind="exponential-warmup-step-decay", warmup_steps=200, warmup_start_factor=0.01,
                                  decay_start_fraction=0.4, decay_interval_fraction=0.05, factor=0.5, max_decays=4),
            reference=True,
            description="MLBench reference: each worker's loss per sentence, gradients summed by one all-reduce",
        ),
    ),
    loss=LossSpec(name="label-smoothed-cross-entropy", label_smoothing=0.1),
    translation=TranslationSpec(
        batching="sentences", global_batch=2048, max_per_pass=128, loss_normalization="sentences",
        # MLBench's 150 counts the BOS: 149 generated tokens, the EOS among them (as beam_search counts)
        eval_batch_sentences=64, beam_size=5, max_decode_length=149, length_penalty=0.6,
        length_penalty_constant=5.0, coverage_penalty=0.1, bleu="sacrebleu-intl-lowercase",
        loss_scale_start=2.0**10, loss_scale_window=128, loss_scale_max=2.0**13),
    batch_size=0,  # derived: a worker's share of translation.global_batch
    max_epochs=8,
    eval_every_epochs=1,
    mid_epoch_eval_interval=0.3,
    target=TargetSpec(metric="bleu", mode="max", value=24.0),
    seed=42,
    num_classes=None,  # the vocabulary, from the dataset
    presets=presets(
        *quality_presets(light_target="20.0"),
        # The small GNMT's attention needs many steps before it locks on (its decoder sees the source only
        # through it): small batches, a high rate and a late decay get it there in ~1,400 steps.
        Preset("demo", "real English/German number phrases (num2words), reaches its BLEU target in under a minute", {
            "data.dataset": "number-phrases-en-de",
            "model.options": json.dumps(DEMO_GNMT),
            "translation.global_batch": "32",
            "translation.max_per_pass": "32",
            "translation.max_decode_length": "30",
            "optimizer.lr": "0.01",
            "schedule.warmup_steps": "50",
            "schedule.decay_start_fraction": "0.9",
            "max_epochs": str(DEMO_EPOCHS),
            "target_value": str(DEMO_BLEU),
        }),
        Preset("smoke", "tiny generated WMT16-format archives through the real parsers, 2 epochs, for tests", {
            "data.dataset": "synthetic-wmt16-en-de",
            "model.options": json.dumps(TINY_GNMT),
            "translation.global_batch": "64",
            "translation.max_per_pass": "32",
            "translation.beam_size": "2",
            "translation.max_decode_length": "40",
            "schedule.warmup_steps": "5",
            "max_epochs": "2",
            "target_value": "99.0",
        }),
    ),
)
