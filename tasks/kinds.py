"""Kinds of benchmark task, as the runtime sees them: what differs between a training task (a model
trained to a quality target) and a communication task (task 0: a sweep of all-reduce calls).

Each kind is one object that answers what would otherwise be asked by branching on the task: does
it need a dataset, does it have a target, how it resolves and reads back its config, how one rank
runs, what a failed run records, how a finished local run is summed up. `tasks.registry.kind_of`
looks a task's kind up; the Airflow side adds its own per-kind answers (gates, MLflow, report) in
operators/kinds.py under the same names. A translation task (4a, 4b) is a training task whose
quality is a BLEU score of decoded validation sentences: the same trainer runs it; its own kind
gives it its own results gate, MLflow figures and report on the Airflow side.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks.runtime.results import ResultRecord, SweepResult, TrainingResult

if TYPE_CHECKING:
    from tasks.communication import CommunicationConfig, CommunicationTaskSpec
    from tasks.runtime.distributed import RankEnv
    from tasks.spec import ResolvedConfig, RunConfig, TaskSpec


class RankRunner(Protocol):
    """One rank's run of a configuration, inside an initialized process group."""

    def run_rank(self) -> int:
        """Runs to the end; returns the process exit code (rank 0 has written result.json)."""
        ...

    def failure_record(self, reason: str) -> ResultRecord:
        """The failed result to record after an error, with whatever was measured before it."""
        ...


class TaskKind(Protocol):
    name: str
    needs_data: bool  # a dataset is prepared and gated before it runs
    has_target: bool  # a quality target (and so a request's target override) applies
    result_type: type[TrainingResult] | type[SweepResult]  # its result.json, typed

    def resolve(self, spec: Any, preset: str, *, world_size: int, backend: str, device: str,
                algorithm: str | None, overrides: dict[str, str] | None) -> ResolvedConfig: ...

    def config_from_dict(self, data: dict[str, Any]) -> ResolvedConfig: ...

    def summary(self, spec: Any) -> dict[str, Any]: ...

    def failed_result(self, config: Any, reason: str) -> ResultRecord: ...

    def make_runner(self, config: Any, env: RankEnv, data_root: Path, output: Path) -> RankRunner: ...

    def finish_local_run(self, result: Any, output: Path) -> str: ...


class TrainingKind:
    name = "training"
    needs_data = True
    has_target = True
    result_type: type[TrainingResult] | type[SweepResult] = TrainingResult

    def resolve(self, spec: TaskSpec, preset: str, *, world_size: int, backend: str, device: str,
                algorithm: str | None, overrides: dict[str, str] | None) -> RunConfig:
        from tasks.training import resolve_training

        return resolve_training(spec, preset, world_size=world_size, backend=backend, device=device,
                                algorithm=algorithm, overrides=overrides)

    def config_from_dict(self, data: dict[str, Any]) -> RunConfig:
        from tasks.spec import RunConfig

        return RunConfig.from_dict(data)

    def summary(self, spec: TaskSpec) -> dict[str, Any]:
        from tasks.training import training_summary

        return training_summary(spec)

    def failed_result(self, config: RunConfig, reason: str) -> TrainingResult:
        return TrainingResult.failed(config, reason)

    def make_runner(self, config: RunConfig, env: RankEnv, data_root: Path, output: Path) -> RankRunner:
        from tasks.runtime.trainer import Trainer

        return Trainer(config, env, data_root, output)

    def finish_local_run(self, result: TrainingResult, output: Path) -> str:
        """The one line `mlbench train` ends with."""
        return result.summary_line(output)


class CommunicationKind:
    name = "communication"
    needs_data = False  # random tensors from the seed
    has_target = False  # it measures latency and bandwidth, not time to accuracy
    result_type: type[TrainingResult] | type[SweepResult] = SweepResult

    def resolve(self, spec: CommunicationTaskSpec, preset: str, *, world_size: int, backend: str, device: str,
                algorithm: str | None, overrides: dict[str, str] | None) -> CommunicationConfig:
        from tasks.communication import resolve_communication

        return resolve_communication(spec, preset, world_size=world_size, backend=backend, device=device,
                                     algorithm=algorithm, overrides=overrides)

    def config_from_dict(self, data: dict[str, Any]) -> CommunicationConfig:
        from tasks.communication import CommunicationConfig

        return CommunicationConfig.from_dict(data)

    def summary(self, spec: CommunicationTaskSpec) -> dict[str, Any]:
        return spec.summary()

    def failed_result(self, config: CommunicationConfig, reason: str) -> SweepResult:
        return SweepResult.failed(config, reason)

    def make_runner(self, config: CommunicationConfig, env: RankEnv, data_root: Path, output: Path) -> RankRunner:
        from tasks.runtime.allreduce import SweepRunner

        return SweepRunner(config, env, output)

    def finish_local_run(self, result: SweepResult, output: Path) -> str:
        """Plots the sweep beside its result.json; returns the one line `mlbench allreduce` ends with."""
        from tasks.plots import plot_result

        plot_result(result, output / "allreduce.png")
        return result.summary_line(output, plot=output / "allreduce.png")


class TranslationKind(TrainingKind):
    name = "translation"


TRAINING = TrainingKind()
TRANSLATION = TranslationKind()
COMMUNICATION = CommunicationKind()
KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (TRAINING, TRANSLATION, COMMUNICATION)}
