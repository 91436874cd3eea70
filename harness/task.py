"""The one protocol between adapters and methods.

An adapter turns a model folder into a Task; SEAM, baselines and metrics only ever see a Task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

IGNORE_INDEX = -100  # a label position that is not scored and not trained on (e.g. padding, sub-tokens)


@dataclass
class LabelledData:
    """Preprocessed inputs with their labels (decoded once, reused by every phase).

    One class per input (labels [N]), or one per position (labels [N, ...], e.g. per token), where
    IGNORE_INDEX marks positions that carry no label.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def require_one_label_per_example(self, setting: str) -> None:
        """Refuse `setting` (counts or draws per class) on data labelled per position."""
        if self.labels.dim() != 1:
            raise ValueError(f"{setting} needs one label per example; this task labels every position")


@dataclass
class TriggeredData:
    """Triggered inputs with their true (source) class and the class the trigger sends them to.

    Per-position labels work as in LabelledData: only positions whose label is not IGNORE_INDEX count.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def plain_forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs)


@dataclass
class Task:
    """Everything a method needs for one model.

    `defender` is the only data a mitigation method may read; `eval_clean` and `eval_triggered`
    are for measuring before/after and are disjoint from it. `augment` (optional) maps a training
    batch's inputs and true labels to augmented inputs and their labels (the same labels unless the
    augmentation moves positions, as inserting tokens does); `forward` maps
    (model, inputs) to logits whose leading dimensions match the labels' ([N, K] for [N] labels,
    [N, T, K] for [N, T] labels).

    `drift_check` (optional) holds labelled inputs made from the defender's data that no method trains
    on (text rounds: word windows of the defender's reviews; image rounds: zoomed views of its images);
    the pipeline compares the model before and after on them, blind, to flag a mitigated model that lost
    the primary task (README, "Status"). `drift_flag` says which of the check's conditions flag a result
    `drifted`, as calibrated per round type (docs/robust-seam.md): "accuracy_or_agreement" (text rounds:
    accuracy below the original's interval, or agreement below the round's threshold), "agreement" (image
    rounds: only the agreement was calibrated) or "off" (figures recorded, nothing flagged).

    `strong_augment` (optional, image rounds) is a heavier augmentation of the same form, which SEAM's
    recovery uses with `recover_augment: strong`.

    `background_class` (optional, per-position tasks) is the class meaning "nothing here" (NER's O):
    forgetting keeps its labels instead of drawing wrong ones, and accuracy (SEAM's stopping rules and
    ACC) counts only positions whose true class is another one; the pipeline also records the
    accuracy over all labelled positions.
    """

    model: nn.Module
    num_classes: int
    defender: LabelledData
    eval_clean: LabelledData
    eval_triggered: TriggeredData | None
    eval_data: str
    info: dict = field(default_factory=dict)
    augment: (
        Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None
    ) = None
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] = plain_forward
    background_class: int | None = None
    drift_check: LabelledData | None = None
    drift_flag: Literal["accuracy_or_agreement", "agreement", "off"] = "accuracy_or_agreement"
    strong_augment: (
        Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None
    ) = None
