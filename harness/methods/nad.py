"""Neural Attention Distillation (Li et al., ICLR 2021), image models.

1. Teacher: a copy of the model with every layer fine-tuned on the defender's clean data.
2. Student: the original model trained on the same data with cross-entropy plus, for each of its last three
   convolutional blocks, beta times the distance between its attention map and the teacher's.

An attention map is the mean over channels of |activation|^p, flattened and scaled to unit length.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import NadConfig
from harness.methods import MethodResult
from harness.methods.common import (
    conv_blocks,
    is_image_task,
    not_applicable,
    sgd,
    stepped_lr,
    train,
    working_copy,
)
from harness.task import LabelledData, Task
from harness.training import check_finite, data_accuracy, model_device, shuffled_batches


def attention_map(features: torch.Tensor, power: float) -> torch.Tensor:
    return F.normalize(features.abs().pow(power).mean(dim=1).flatten(1), dim=1)


def distillation_loss(
    student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor], betas: tuple[float, ...], power: float
) -> torch.Tensor:
    """Sum over blocks of beta * mean squared difference of the attention maps."""
    return sum(
        beta * (attention_map(s, power) - attention_map(t, power)).pow(2).mean()
        for beta, s, t in zip(betas, student_maps, teacher_maps, strict=True)
    )


class BlockOutputs:
    """Collects the outputs of named blocks during a forward pass."""

    def __init__(self, model: nn.Module, names: list[str]):
        modules = dict(model.named_modules())
        self.outputs: dict[str, torch.Tensor] = {}
        self.hooks = [
            modules[name].register_forward_hook(
                lambda _, __, out, name=name: self.outputs.__setitem__(name, out)
            )
            for name in names
        ]
        self.names = names

    def take(self) -> list[torch.Tensor]:
        maps = [self.outputs[name] for name in self.names]
        self.outputs = {}
        return maps

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def mitigate(task: Task, config: NadConfig) -> MethodResult:
    if not is_image_task(task):
        return not_applicable(
            task, "NAD distils the attention maps of convolutional blocks: image models only"
        )
    student, generator = working_copy(task, config.seed, config.device)
    blocks = conv_blocks(student, len(config.betas))
    if len(blocks) < len(config.betas):
        return not_applicable(
            task, f"NAD needs {len(config.betas)} convolutional blocks, the model has {len(blocks)}"
        )

    start = time.perf_counter()
    teacher = copy.deepcopy(student)
    optimizer = sgd(list(teacher.parameters()), config.teacher_lr, config.momentum, config.weight_decay)
    teacher_lr = lambda _: config.teacher_lr  # noqa: E731
    train(
        teacher,
        task,
        optimizer,
        config.teacher_epochs,
        teacher_lr,
        config.batch_size,
        generator,
        config.augment,
    )
    teacher.requires_grad_(False)
    teacher_seconds = time.perf_counter() - start

    start = time.perf_counter()
    device = model_device(student)
    data = LabelledData(task.defender.inputs.to(device), task.defender.labels.to(device))  # moved once
    student_blocks, teacher_blocks = BlockOutputs(student, blocks), BlockOutputs(teacher, blocks)
    optimizer = sgd(
        list(student.parameters()), config.lr, config.momentum, config.weight_decay, nesterov=True
    )
    lr_at = stepped_lr(config.lr, config.lr_drops)
    try:
        for epoch in range(config.epochs):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch)
            student.train()
            for index in shuffled_batches(len(data), config.batch_size, generator):
                x, y = data.inputs[index], data.labels[index]
                if config.augment and task.augment is not None:
                    x, y = task.augment(x, y, generator)
                with torch.no_grad():
                    task.forward(teacher, x)
                logits = task.forward(student, x)
                loss = F.cross_entropy(logits, y) + distillation_loss(
                    student_blocks.take(), teacher_blocks.take(), config.betas, config.power
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                check_finite(loss)
    finally:
        student_blocks.remove()
        teacher_blocks.remove()
    student.eval()
    figures = {
        "attention_blocks": blocks,
        "teacher_defender_acc": data_accuracy(teacher, data, task.forward),
        "defender_acc_final": data_accuracy(student, data, task.forward),
    }
    seconds = {"teacher": teacher_seconds, "distil": time.perf_counter() - start}
    return MethodResult(student, "ok", seconds, figures)
