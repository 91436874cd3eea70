"""The one protocol between adapters and methods.

An adapter turns a model folder into a Task; SEAM, baselines and metrics only ever see a Task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LabelledData:
    """Preprocessed inputs with one class label each (decoded once, reused by every phase)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class TriggeredData:
    """Triggered inputs with their true (source) class and the class the trigger sends them to."""

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
    batch to an augmented batch; `forward` maps (model, inputs) to logits.
    """

    model: nn.Module
    num_classes: int
    defender: LabelledData
    eval_clean: LabelledData
    eval_triggered: TriggeredData | None
    eval_data: str
    info: dict = field(default_factory=dict)
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] = plain_forward
