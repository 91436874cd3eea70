"""Small training and inference helpers shared by SEAM, baselines and the round generators."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.metrics import accuracy
from harness.task import IGNORE_INDEX, LabelledData, plain_forward

# (a batch's inputs, its true labels, the generator) -> (augmented inputs, their labels): an augmentation
# that inserts tokens (round 7) moves the labels with them; the others return the labels unchanged.
Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are; inputs are moved there batch by batch."""
    return next(model.parameters(), torch.empty(0)).device


def resolve_device(name: str) -> torch.device:
    """The requested device; "auto" is CUDA when present, else the CPU. CUDA asked for but absent: the CPU,
    with a warning."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"seam-harness: warning: device {name!r} requested, CUDA is not available: using the CPU",
            file=sys.stderr,
        )
        return torch.device("cpu")
    return torch.device(name)


@torch.inference_mode()
def model_logits(
    model: nn.Module, inputs: torch.Tensor, forward: Forward = plain_forward, batch_size: int = 256
) -> torch.Tensor:
    """Logits per input (on the CPU), in eval mode (BatchNorm running stats, no dropout)."""
    model.eval()
    device = model_device(model)
    outputs = [
        forward(model, inputs[i : i + batch_size].to(device)).cpu() for i in range(0, len(inputs), batch_size)
    ]
    return torch.cat(outputs) if outputs else torch.empty(0)


def predict(
    model: nn.Module, inputs: torch.Tensor, forward: Forward = plain_forward, batch_size: int = 256
) -> torch.Tensor:
    """Predicted class per input."""
    if len(inputs) == 0:
        return torch.empty(0, dtype=torch.long)
    return model_logits(model, inputs, forward, batch_size).argmax(dim=-1)


def data_accuracy(
    model: nn.Module, data: LabelledData, forward: Forward = plain_forward, background: int | None = None
) -> float:
    return accuracy(predict(model, data.inputs, forward), data.labels.cpu(), background)


def set_train_mode(model: nn.Module, train_only: list[nn.Module] | None = None) -> None:
    """Train mode for the whole model, or only for `train_only` (the rest in eval mode)."""
    model.train(train_only is None)
    for module in train_only or []:
        module.train()


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Indices of n examples in shuffled batches of near-equal size.

    Near-equal instead of a short last batch: 100 examples at 32 would leave a batch of 4, whose
    BatchNorm statistics are noise and knock the model about on tiny defender sets.
    """
    order = torch.randperm(n, generator=generator)
    return torch.tensor_split(order, max(1, math.ceil(n / batch_size)))


def check_finite(loss: torch.Tensor) -> float:
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the training loss became {value} (the model's outputs overflow)")
    return value


class NonFiniteLoss(RuntimeError):
    """The training loss became inf or NaN: the model's outputs overflow; nothing learned after is real."""


@dataclass
class StepClock:
    """Seconds spent inside training steps (forward, loss, backward, optimizer step), summed over calls
    to `train_epoch`: what is left of a phase's time went to batching, augmentation, relabelling and the
    checks between epochs. On CUDA each step is synchronised at both ends so that the split is real."""

    seconds: float = 0.0

    def now(self, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()


def train_epoch(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    relabel: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    forward: Forward = plain_forward,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    train_only: list[nn.Module] | None = None,
    extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    clock: StepClock | None = None,
) -> float:
    """One pass over shuffled data in train mode; returns the mean loss.

    `relabel` replaces the labels of each batch (SEAM's forgetting draws fresh wrong labels per batch).
    `train_only`: these modules in train mode, the rest in eval mode (BatchNorm statistics and dropout of
    frozen layers stay as they are). `extra_loss(inputs, logits)` is added to the cross-entropy of each
    batch (SEAM's distillation from the original model). `clock` adds the time spent in the steps.
    """
    set_train_mode(model, train_only)
    device = model_device(model)
    total_loss = torch.zeros((), device=device)  # summed on the device: no host sync per batch
    for index in shuffled_batches(len(labels), batch_size, generator):
        x, y = inputs[index], labels[index]
        if augment is not None:
            x, y = augment(x, y, generator)
        if relabel is not None:
            y = relabel(y, generator)
        x, y = x.to(device), y.to(device)  # a no-op when the data already lives there (SEAM moves it once)
        step_start = clock.now(device) if clock is not None else 0.0
        logits = forward(model, x)  # [N, K], or [N, T, K] for per-position labels [N, T]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
        if extra_loss is not None:
            loss = loss + extra_loss(x, logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if clock is not None:
            clock.seconds += clock.now(device) - step_start
        if scheduler is not None:  # stepped per batch (e.g. OneCycleLR)
            scheduler.step()
        total_loss += loss.detach() * len(index)
    return check_finite(total_loss) / max(1, len(labels))
