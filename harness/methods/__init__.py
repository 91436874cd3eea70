"""Mitigation methods as peers: one file each, one signature, `mitigate(task, config) -> MethodResult`.

The registry below maps a method's name to its module, its settings class and the YAML section (and CLI
group) that holds those settings. The pipeline, scheduler and records only ever handle names taken from
it. Importing this package imports no torch: a method's module is imported when it is first run.

Blind by construction: the pipeline hands every method `defender_view(task)`, in which the evaluation
data and the drift-check data are None, so a method that reads them fails at once. `seam_oracle`, which
selects its output on the evaluation data on purpose, is the one method marked `reads_evaluation`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.config import (
    ContinuedTrainingConfig,
    FinePruningConfig,
    FinetuneConfig,
    NadConfig,
    NeuralCleanseConfig,
    SeamConfig,
)

if TYPE_CHECKING:
    from torch import nn

    from harness.task import Task


@dataclass
class MethodResult:
    """What a method hands back: the mitigated model (a copy; the task's model is never changed), its
    status, seconds per phase, and figures of its own that go into the record as they are."""

    model: nn.Module
    status: str
    seconds: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class Method:
    name: str
    module: str  # harness.methods.<module> holds `mitigate`
    config_class: type
    section: str  # the YAML section and CLI group of its settings
    reads_evaluation: bool = False  # True only for the oracle: its rows say so (`oracle` column)

    def run(self, task: Task, config: object) -> MethodResult:
        mitigate: Callable[[Task, object], MethodResult] = importlib.import_module(
            f"harness.methods.{self.module}"
        ).mitigate
        return mitigate(task if self.reads_evaluation else defender_view(task), config)


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("seam", "seam", SeamConfig, "seam"),
        Method("finetune", "finetune", FinetuneConfig, "finetune"),
        Method("continued_training", "continued_training", ContinuedTrainingConfig, "continued_training"),
        Method("fine_pruning", "fine_pruning", FinePruningConfig, "fine_pruning"),
        Method("nad", "nad", NadConfig, "nad"),
        Method("neural_cleanse", "neural_cleanse", NeuralCleanseConfig, "neural_cleanse"),
        # SEAM's own settings; recovery keeps the epoch with the best ACC - ASR on the evaluation data
        Method("seam_oracle", "seam_oracle", SeamConfig, "seam", reads_evaluation=True),
    )
}
DEFAULT_METHODS = ["seam"]


def method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: use one of {', '.join(METHODS)}")
    return METHODS[name]


def sections() -> dict[str, type]:
    """YAML section -> settings class, each once (seam_oracle shares `seam`)."""
    return {m.section: m.config_class for m in METHODS.values()}


def defender_view(task: Task) -> Task:
    """The task as a blind method may see it: no evaluation data, no drift-check data."""
    return dataclasses.replace(
        task, eval_clean=None, eval_triggered=None, drift_check=None, eval_data="withheld from the method"
    )
