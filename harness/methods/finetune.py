"""Fine-tuning, the SEAM paper's FT baseline: the last two layers with weights retrained on the defender's
clean data; every other weight, BatchNorm statistic and dropout stays as it was."""

from __future__ import annotations

import time

from torch import nn

from harness.config import FinetuneConfig
from harness.methods import MethodResult
from harness.methods.common import sgd, stepped_lr, train, working_copy
from harness.task import Task
from harness.training import data_accuracy

# Layers that count: those with their own weights, not the normalisation after them.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase, nn.Embedding)


def last_layers(model: nn.Module, count: int = 2) -> list[tuple[str, nn.Module]]:
    """The last `count` layers with weights, in registration order (the classifier is last)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)][-count:]


def mitigate(task: Task, config: FinetuneConfig) -> MethodResult:
    model, generator = working_copy(task, config.seed, config.device)
    layers = last_layers(model)
    trained = [p for _, layer in layers for p in layer.parameters()]
    model.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    start = time.perf_counter()
    optimizer = sgd(trained, config.lr, config.momentum, config.weight_decay)
    drops = range(config.lr_step_epochs, config.epochs, config.lr_step_epochs)
    train(
        model,
        task,
        optimizer,
        config.epochs,
        stepped_lr(config.lr, drops),
        config.batch_size,
        generator,
        config.augment,
        train_only=[layer for _, layer in layers],
    )
    model.requires_grad_(True)
    figures = {
        "trained_layers": [name for name, _ in layers],
        "defender_acc_final": data_accuracy(model, task.defender, task.forward, task.background_class),
    }
    return MethodResult(model, "ok", {"finetune": time.perf_counter() - start}, figures)
