"""What a kind of training workload is, without torch: the facts the resolver, the trainer and the
data gate all ask, in one place.

A workload names the kind of dataset it trains on (the catalog's kinds), its loss, the validation
metrics it reports (the candidates for a task's target), the arrays it reads, and how a dataset is
split across ranks (`shard_plan`: what each rank will see, computed by the same functions the
training loader uses). The torch side (batches, forward, loss, evaluation sums) lives in
tasks.runtime.workload_runtime and is looked up by the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tasks.errors import UserError

if TYPE_CHECKING:
    from tasks.spec import RunConfig


class Workload(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def data_kind(self) -> str:
        """The tasks.data.catalog kind it trains on: "image", "tabular", "text" or "translation"."""
        ...

    @property
    def loss(self) -> str:
        """The only loss.name this workload trains with."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """The validation metrics it reports ("loss" among them): a target's candidates."""
        ...

    @property
    def split_keys(self) -> tuple[str, ...]:
        """The prepared arrays it reads."""
        ...

    def shard_plan(self, config: RunConfig, arrays: Mapping[str, Any], world_size: int) -> dict[str, list[int]]:
        """Samples (or predicted tokens) each rank sees per epoch, per split; ValueError when the
        data cannot be split across world_size ranks."""
        ...


@dataclass(frozen=True)
class _WorkloadFacts:
    name: str
    data_kind: str
    loss: str
    metrics: tuple[str, ...]
    split_keys: tuple[str, ...]


@dataclass(frozen=True)
class SampleWorkload(_WorkloadFacts):
    """Independent samples (images, tabular rows): shards of one seeded permutation."""

    @staticmethod
    def sample_counts(config: RunConfig, arrays: Mapping[str, Any]) -> tuple[int, int]:
        """(training, validation) samples used: each split's size, capped by data.max_*_samples."""
        num_train, num_val = len(arrays["train_labels"]), len(arrays["val_labels"])
        return (min(num_train, config.data.max_train_samples or num_train),
                min(num_val, config.data.max_val_samples or num_val))

    def shard_plan(self, config: RunConfig, arrays: Mapping[str, Any], world_size: int) -> dict[str, list[int]]:
        from tasks.runtime.sharding import shard_plan

        num_train, num_val = self.sample_counts(config, arrays)
        return shard_plan(num_train, num_val, world_size, config.seed)


@dataclass(frozen=True)
class TokenStreamWorkload(_WorkloadFacts):
    """A token stream cut into columns: each rank trains on its block, validation is not sharded."""

    def shard_plan(self, config: RunConfig, arrays: Mapping[str, Any], world_size: int) -> dict[str, list[int]]:
        from tasks.runtime.token_stream import column_plan

        return column_plan(len(arrays["train_tokens"]), len(arrays["val_tokens"]), world_size,
                           config.batch_size, config.eval_batch_size or config.batch_size)


@dataclass(frozen=True)
class TranslationWorkload(_WorkloadFacts):
    """Sentence pairs: each rank trains on its share of every step and decodes its validation shard."""

    def shard_plan(self, config: RunConfig, arrays: Mapping[str, Any], world_size: int) -> dict[str, list[int]]:
        from tasks.runtime.translation import sentence_pairs
        from tasks.runtime.translation_batches import TranslationSteps, validation_shard

        settings = config.translation
        assert settings is not None  # a translation config always has them (tasks.training)
        train = sentence_pairs(dict(arrays), "train")
        num_val = len(arrays["val_source_offsets"]) - 1
        steps = TranslationSteps(train, batching=settings.batching, global_batch=settings.global_batch,
                                 max_per_pass=settings.max_per_pass, loss_normalization=settings.loss_normalization,
                                 seed=config.seed, rank=0, world_size=world_size)
        return {
            "train": steps.samples_per_rank(),
            "validation": [len(validation_shard(num_val, rank, world_size)) for rank in range(world_size)],
        }


IMAGE_CLASSIFICATION = SampleWorkload(
    name="image-classification", data_kind="image", loss="cross-entropy", metrics=("top1", "top5", "loss"),
    split_keys=("train_images", "train_labels", "val_images", "val_labels"),
)
BINARY_CLASSIFICATION = SampleWorkload(
    name="binary-classification", data_kind="tabular", loss="binary-cross-entropy", metrics=("accuracy", "loss"),
    split_keys=("train_features", "train_labels", "val_features", "val_labels"),
)
LANGUAGE_MODEL = TokenStreamWorkload(
    name="language-model", data_kind="text", loss="cross-entropy", metrics=("perplexity", "loss"),
    split_keys=("train_tokens", "val_tokens"),
)

TRANSLATION = TranslationWorkload(
    name="translation", data_kind="translation", loss="label-smoothed-cross-entropy",
    metrics=("bleu", "bleu_batch_average", "loss", "perplexity"),
    split_keys=("train_source", "train_source_offsets", "train_target", "train_target_offsets",
                "val_source", "val_source_offsets", "val_target", "val_target_offsets"),
)

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (IMAGE_CLASSIFICATION, BINARY_CLASSIFICATION, LANGUAGE_MODEL, TRANSLATION)}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload '{name}'; valid: {', '.join(WORKLOADS)}") from None


def check_arrays(workload: Workload, arrays: Mapping[str, Any], dataset: str, root: object) -> None:
    missing = [key for key in workload.split_keys if key not in arrays]
    if missing:
        raise UserError(f"dataset '{dataset}' under {root} lacks {', '.join(missing)}: it is not "
                        f"{workload.data_kind} data for a {workload.name} workload")
