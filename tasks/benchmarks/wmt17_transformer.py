"""MLBench task 4b: the Transformer ("big", pre-norm) on WMT17 English->German, scored by corpus BLEU.

Hyperparameters follow MLBench's reference code (mlbench-benchmarks, develop, July 2021); as MLBench,
it validates every 30 % of an epoch and after each epoch. Deviations:
MLBench used MLPerf's fixed subtoken vocabulary (33,708 entries, padded to 33,712), which is not
reproducible offline: the data preparation learns a shared BPE vocabulary of the same size instead;
the goal is checked on a true corpus BLEU (MLBench averaged per-batch BLEU, also reported here).
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

TRANSFORMER_OPTIONS = {"d_model": 1024, "ffn_size": 4096, "heads": 16, "encoder_layers": 6, "decoder_layers": 6,
                       "dropout": 0.1, "attention_dropout": 0.1, "relu_dropout": 0.1}
DEMO_TRANSFORMER = {**TRANSFORMER_OPTIONS, "d_model": 128, "ffn_size": 256, "heads": 4, "encoder_layers": 2,
                    "decoder_layers": 2}
TINY_TRANSFORMER = {**DEMO_TRANSFORMER, "d_model": 32, "ffn_size": 64, "heads": 2, "encoder_layers": 1,
                    "decoder_layers": 1, "dropout": 0.0, "attention_dropout": 0.0, "relu_dropout": 0.0}
# The demo's target and epoch cap (measured: see docs/performance.md).
DEMO_EPOCHS = 12
DEMO_BLEU = 60.0

TASK = TaskSpec(
    name="wmt17-transformer",
    version="1.0",
    mlbench_id="4b",
    description="Machine translation: Transformer (big, pre-norm) on WMT17 English->German, corpus BLEU",
    workload="translation",
    kind="translation",
    model=ModelSpec(name="transformer", options=TRANSFORMER_OPTIONS),
    data=DataSpec(dataset="wmt17-en-de"),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients-sum",
            optimizer=OptimizerSpec(name="adam", lr=1.976e-3, betas=(0.9, 0.98), eps=1e-9),
            schedule=ScheduleSpec(kind="inverse-sqrt", warmup_steps=1000),
            reference=True,
            description="MLBench reference: loss divided by all workers' target tokens, gradients summed",
        ),
    ),
    loss=LossSpec(name="label-smoothed-cross-entropy", label_smoothing=0.1),
    translation=TranslationSpec(
        batching="tokens", global_batch=2**17, max_per_pass=8192, loss_normalization="tokens",
        # MLBench's source + 50 leaves out the EOS, which beam_search counts: + 51
        eval_batch_sentences=64, beam_size=4, max_decode_length=None, max_decode_length_offset=51,
        length_penalty=0.6, length_penalty_constant=5.0, coverage_penalty=0.0, bleu="mlperf-bleu-tokenize",
        loss_scale_start=2.0**7, loss_scale_window=2000, loss_scale_max=None),
    batch_size=0,  # derived: a worker's share of translation.global_batch
    max_epochs=10,
    eval_every_epochs=1,
    mid_epoch_eval_interval=0.3,
    target=TargetSpec(metric="bleu", mode="max", value=25.0),
    seed=42,
    num_classes=None,  # the vocabulary, from the dataset
    presets=presets(
        *quality_presets(light_target="20.0"),
        Preset("demo", "real English/German number phrases (num2words), reaches its BLEU target in under a minute", {
            "data.dataset": "number-phrases-en-de",
            "model.options": json.dumps(DEMO_TRANSFORMER),
            "translation.global_batch": "1024",
            "translation.max_per_pass": "1024",
            "schedule.warmup_steps": "100",
            # the phrases' German is at most 5 subwords longer than their English: source + 10 leaves room,
            # and spares the untrained model's early decodings 40 steps each
            "translation.max_decode_length_offset": "10",
            "max_epochs": str(DEMO_EPOCHS),
            "target_value": str(DEMO_BLEU),
        }),
        Preset("smoke", "tiny generated WMT17-format archives through the real parsers, 2 epochs, for tests", {
            "data.dataset": "synthetic-wmt17-en-de",
            "model.options": json.dumps(TINY_TRANSFORMER),
            "translation.global_batch": "1024",
            "translation.max_per_pass": "512",
            "translation.beam_size": "2",
            "schedule.warmup_steps": "5",
            "max_epochs": "2",
            "target_value": "99.0",
        }),
    ),
)
