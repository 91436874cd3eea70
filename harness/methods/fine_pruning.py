"""Fine-Pruning (Liu, Dolan-Gavitt and Garg, RAID 2018), blind.

1. Set apart `holdout_fraction` of the defender's examples of each class.
2. Rank the units of the last convolutional feature map (heads without one: the features entering the last
   Linear layer) by their mean absolute activation on the rest; ReLU features are never negative, so for
   them this is the mean activation of the paper.
3. Prune the most dormant units in steps of `prune_step` of them, and keep the largest amount at which the
   held-out accuracy is still at least (1 - max_acc_drop) of the unpruned model's. A pruned unit is cut
   off: the weights through which the next Linear layer reads it are set to zero.
4. Fine-tune every layer on all the defender's examples, the pruned weights held at zero.

No decision reads anything but the defender's examples.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from harness.config import FinePruningConfig
from harness.methods import MethodResult
from harness.methods.common import feature_units, sgd, split_per_class, train, working_copy
from harness.metrics import accuracy
from harness.task import Task
from harness.training import data_accuracy, predict


def unit_activity(
    layer: nn.Linear, model: nn.Module, task: Task, inputs: torch.Tensor, group: int
) -> torch.Tensor:
    """Mean absolute input of `layer` per unit (each unit feeds `group` consecutive inputs)."""
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().abs().cpu()))
    try:
        predict(model, inputs, task.forward)
    finally:
        hook.remove()
    features = torch.cat([s.reshape(-1, layer.in_features) for s in seen])
    return features.reshape(len(features), -1, group).mean(dim=(0, 2))


def unit_columns(units: torch.Tensor, group: int) -> torch.Tensor:
    """The input columns of the Linear layer that these units feed."""
    return (units[:, None] * group + torch.arange(group)).reshape(-1)


def mitigate(task: Task, config: FinePruningConfig) -> MethodResult:
    model, generator = working_copy(task, config.seed, config.device)
    data = task.defender
    kept, held_out = split_per_class(data.labels, config.holdout_fraction, generator)

    def held_out_accuracy() -> float:
        predictions = predict(model, data.inputs[held_out], task.forward)
        return accuracy(predictions, data.labels[held_out], task.background_class)

    start = time.perf_counter()
    name, layer, units, group = feature_units(model, task)
    order = unit_activity(layer, model, task, data.inputs[kept], group).argsort()  # most dormant first
    acc_unpruned = held_out_accuracy()
    floor = (1.0 - config.max_acc_drop) * acc_unpruned
    step = max(1, round(config.prune_step * units))
    pruned, acc_pruned = 0, acc_unpruned
    if not math.isnan(acc_unpruned):  # no held-out examples: nothing to measure a drop on, prune nothing
        for amount in range(step, math.floor(config.max_prune_ratio * units) + 1, step):
            columns = unit_columns(order[pruned:amount], group)
            saved = layer.weight.data[:, columns].clone()
            layer.weight.data[:, columns] = 0.0
            acc = held_out_accuracy()
            if acc < floor:
                layer.weight.data[:, columns] = saved
                break
            pruned, acc_pruned = amount, acc
    prune_seconds = time.perf_counter() - start

    start = time.perf_counter()
    keep = torch.ones_like(layer.weight)
    keep[:, unit_columns(order[:pruned], group)] = 0.0
    hook = layer.weight.register_hook(lambda grad: grad * keep)  # zero weights get no gradient: stay zero
    try:
        optimizer = sgd(list(model.parameters()), config.lr, config.momentum, config.weight_decay)
        constant = lambda _: config.lr  # noqa: E731
        train(model, task, optimizer, config.epochs, constant, config.batch_size, generator, config.augment)
    finally:
        hook.remove()
    figures = {
        "pruned_layer": name,
        "pruned_units": pruned,
        "prunable_units": units,
        "pruned_unit_ids": order[:pruned].tolist(),
        "holdout_examples": len(held_out),
        "holdout_acc_unpruned": acc_unpruned,
        "holdout_acc_pruned": acc_pruned,
        "defender_acc_final": data_accuracy(model, data, task.forward, task.background_class),
    }
    seconds = {"prune": prune_seconds, "finetune": time.perf_counter() - start}
    return MethodResult(model, "ok", seconds, figures)
