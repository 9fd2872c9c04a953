"""The translation workload (MLBench tasks 4a GNMT and 4b Transformer) as the trainer runs it.

Training: a step is a worker's share of a global batch (tasks.runtime.translation_batches), split
into passes whose gradients accumulate; each pass's label-smoothed loss (per target token) is
weighted by its tokens over the step's normalizer, so the accumulated gradient is that of the loss
summed and divided by the worker's sentences (4a) or by all workers' target tokens (4b); the
aggregation then sums the workers' gradients, as MLBench did.
Evaluation: every rank computes the teacher-forced loss on its shard of the validation set and
decodes that shard with beam search; the hypotheses of all ranks are gathered and scored together:
a true corpus BLEU (the target), and MLBench's average of per-batch BLEU under its own name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from tasks.errors import UserError
from tasks.runtime.beam_search import BeamSettings, beam_search
from tasks.runtime.bundle import TRANSLATIONS_FILE
from tasks.runtime.bleu import batch_average_bleu, corpus_bleu
from tasks.runtime.translation_batches import Pass, SentencePairs, Step, TranslationSteps, ValidationBatches
from tasks.runtime.translation_loss import label_smoothed_loss
from tasks.runtime.workload_runtime import WorkloadRuntime, perplexity
from tasks.spec import RunConfig, TranslationSpec
from tasks.text_ids import PAD



def sentence_pairs(arrays: dict[str, np.ndarray], split: str) -> SentencePairs:
    return SentencePairs(arrays[f"{split}_source"], arrays[f"{split}_source_offsets"],
                         arrays[f"{split}_target"], arrays[f"{split}_target_offsets"])


class Translation(WorkloadRuntime):
    summed_metrics = ("loss", "nll")
    extra_validation_metrics = ("bleu_batch_average", "decoded_sentences", "distinct_sentences",
                                "reference_sentences")

    def __init__(self, config: RunConfig) -> None:
        if config.translation is None:
            raise UserError(f"task {config.task} has no translation settings")
        self.config = config
        self.settings: TranslationSpec = config.translation
        self.smoothing = float(config.loss.label_smoothing or 0.0)
        self.vocabulary: list[str] = []
        self.references: list[str] = []
        self.sources: list[str] = []
        self.language = "de"
        self.decoded: list[tuple[int, list[int]]] = []  # (validation index, hypothesis ids) of this rank
        self.latest: dict[str, Any] = {}  # the last evaluation's figures and samples (rank 0)

    def model_options(self, arrays: dict[str, np.ndarray], metadata: dict) -> dict:
        self.vocabulary = list(metadata["vocabulary"])
        self.references = list(metadata["val_references"])
        self.sources = list(metadata.get("val_sources_raw") or [])
        self.language = str(metadata.get("target_language", "de"))
        expected = self.config.model.options.get("vocab_size")
        if expected is not None and expected != len(self.vocabulary):
            raise UserError(f"dataset {self.config.data.dataset} has a vocabulary of {len(self.vocabulary)} subwords "
                            f"but the model expects {expected}; set model.options to match or use the task's dataset")
        return {**self.config.model.options, "vocab_size": len(self.vocabulary)}

    def data(self, arrays, rank: int, world_size: int) -> tuple[TranslationSteps, ValidationBatches, int]:
        s = self.settings
        validation = sentence_pairs(arrays, "val")
        if len(validation) != len(self.references):
            raise UserError(f"dataset {self.config.data.dataset}: {len(validation)} validation pairs but "
                            f"{len(self.references)} references; prepare it again")
        try:
            train = TranslationSteps(sentence_pairs(arrays, "train"), batching=s.batching,
                                     global_batch=s.global_batch, max_per_pass=s.max_per_pass,
                                     loss_normalization=s.loss_normalization, seed=self.config.seed, rank=rank,
                                     world_size=world_size)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return train, ValidationBatches(validation, s.eval_batch_sentences, rank, world_size), len(validation)

    def start_pass(self) -> None:
        self.decoded = []

    def passes(self, inputs: Step, labels: torch.Tensor) -> Iterator[tuple[Pass, torch.Tensor, float]]:
        offset = 0
        for batch in inputs.passes:
            size = batch.target_in.numel()
            outputs = labels[offset:offset + size].view_as(batch.target_in)
            offset += size
            yield batch, outputs, self.sample_count(outputs) / inputs.normalizer

    def sample_count(self, labels: torch.Tensor) -> int:
        return int((labels != PAD).sum())

    def forward(self, model: nn.Module, inputs: Pass) -> torch.Tensor:
        logits = model(inputs.source, inputs.source_lengths, inputs.target_in)
        if not model.training:  # evaluation: this batch's translations too
            hypotheses = beam_search(model, inputs.source, inputs.source_lengths, self.beam_settings())
            self.decoded.extend(zip(inputs.indices.tolist(), hypotheses, strict=True))
        return logits

    def beam_settings(self) -> BeamSettings:
        s = self.settings
        return BeamSettings(beam_size=s.beam_size, max_length=s.max_decode_length,
                            max_length_offset=s.max_decode_length_offset, length_penalty=s.length_penalty,
                            length_penalty_constant=s.length_penalty_constant, coverage_penalty=s.coverage_penalty)

    def lr_factor(self, inputs: Any) -> float:
        return 1.0

    def _losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        return label_smoothed_loss(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1),
                                   self.smoothing, padding_idx=PAD)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """The pass's label-smoothed loss per target token."""
        loss_sum, _, tokens = self._losses(outputs, targets)
        return loss_sum / max(tokens, 1)

    def evaluation_sums(self, outputs: torch.Tensor, targets: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """[label-smoothed loss sum, negative log-likelihood sum] over the batch's target tokens."""
        loss_sum, nll_sum, _ = self._losses(outputs, targets)
        return torch.stack([loss_sum.detach(), nll_sum.detach()])

    def train_metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.zeros(0, device=outputs.device)

    def derived_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """BLEU of every rank's translations together: rank 0 gathers and scores them, and sends every
        rank the figures (scoring the whole validation set once, not once per rank)."""
        chief = dist.get_rank() == 0
        gathered: list[Any] | None = [None] * dist.get_world_size() if chief else None
        dist.gather_object(self.decoded, gathered, dst=0)
        figures: list[dict[str, float] | None] = [self._score(gathered) if gathered is not None else None]
        dist.broadcast_object_list(figures, src=0)
        assert figures[0] is not None
        return {**metrics, **figures[0], "perplexity": perplexity(metrics["nll"])}  # teacher-forced

    def _score(self, gathered: list[Any]) -> dict[str, float]:
        translations: dict[int, list[int]] = {}
        decoded = 0
        for rank_decoded in gathered:
            for index, ids in rank_decoded:
                translations.setdefault(index, ids)
                decoded += 1
        from tasks.data.subword import detokenize

        hypotheses = [detokenize(translations.get(i, []), self.vocabulary, self.language)
                      for i in range(len(self.references))]
        scheme, batch = self.settings.bleu, self.settings.eval_batch_sentences
        figures = {
            "bleu": corpus_bleu(hypotheses, self.references, scheme),
            "bleu_batch_average": batch_average_bleu(hypotheses, self.references, scheme, batch_size=batch),
            "decoded_sentences": float(decoded),
            "distinct_sentences": float(len(translations)),
            "reference_sentences": float(len(self.references)),
        }
        count = min(self.settings.sample_translations, len(hypotheses))
        self.latest = {**figures, "samples": [
            {"index": i, "source": self.sources[i] if i < len(self.sources) else "",
             "reference": self.references[i], "translation": hypotheses[i]} for i in range(count)]}
        return figures

    def write_samples(self, output: Path, epoch: int, step: int | None = None) -> None:
        """The latest evaluation's first validation sentences with their translations (one JSON line each
        after a header line), for people to read beside the BLEU figures; `step`: an evaluation inside
        the epoch, after that step."""
        if not self.latest:
            return
        where = {"epoch": epoch} if step is None else {"epoch": epoch, "step": step}
        header = {**where, **{k: v for k, v in self.latest.items() if k != "samples"}}
        lines = [json.dumps(header, ensure_ascii=False)]
        lines += [json.dumps(sample, ensure_ascii=False) for sample in self.latest["samples"]]
        (output / TRANSLATIONS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
