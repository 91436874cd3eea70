"""What the baseline defenses share: a working copy of the model, SGD with its learning-rate schedules, a
training loop over the defender's data, and where a network's convolutional features are."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from harness.methods import NOT_APPLICABLE, MethodResult
from harness.task import Task
from harness.training import model_device, resolve_device, train_epoch


def working_copy(task: Task, seed: int, device: str) -> tuple[nn.Module, torch.Generator]:
    """A copy of the task's model on the device (the original is never changed) and a seeded generator."""
    torch.manual_seed(seed)  # dropout and any layer initialisation
    return copy.deepcopy(task.model).to(resolve_device(device)), torch.Generator().manual_seed(seed)


def sgd(
    parameters: list[nn.Parameter], lr: float, momentum: float, weight_decay: float, nesterov: bool = False
) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def stepped_lr(base_lr: float, drops: tuple[int, ...] | range) -> Callable[[int], float]:
    """Learning rate per (0-based) epoch, ten times smaller at each epoch listed in `drops`."""
    return lambda epoch: base_lr * 0.1 ** sum(epoch >= drop for drop in drops)


def cosine_lr(base_lr: float, epochs: int) -> Callable[[int], float]:
    """Learning rate per (0-based) epoch along a half cosine from base_lr towards 0."""
    return lambda epoch: base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def train(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    lr_at: Callable[[int], float],
    batch_size: int,
    generator: torch.Generator,
    augment: bool,
    inputs: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    train_only: list[nn.Module] | None = None,
) -> None:
    """`epochs` passes over the defender's data (or the given inputs and labels), true labels."""
    device = model_device(model)  # the data moves there once, not batch by batch
    inputs = (task.defender.inputs if inputs is None else inputs).to(device)
    labels = (task.defender.labels if labels is None else labels).to(device)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        train_epoch(
            model,
            inputs,
            labels,
            optimizer,
            batch_size,
            generator,
            task.augment if augment else None,
            forward=task.forward,
            train_only=train_only,
        )
    model.eval()


def is_image_task(task: Task) -> bool:
    """Images are [N, C, H, W]; the text heads' inputs are token ids or embedding vectors."""
    return task.defender.inputs.dim() == 4 and task.defender.inputs.is_floating_point()


def not_applicable(task: Task, reason: str) -> MethodResult:
    """The row of a method that does not apply to this kind of model: the model is left as it is."""
    return MethodResult(task.model, NOT_APPLICABLE, {}, {"reason": reason})


def split_per_class(
    labels: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) indices: `fraction` of each class's examples held out, at least one of every class
    that has two or more. Per-position labels: `fraction` of the examples."""
    order = torch.randperm(len(labels), generator=generator)
    if labels.dim() != 1:
        cut = round(fraction * len(labels))
        return order[cut:].sort().values, order[:cut].sort().values
    held = []
    for label in labels[order].unique():
        members = order[labels[order] == label]
        if len(members) >= 2:
            held.append(members[: max(1, round(fraction * len(members)))])
    held_out = torch.cat(held) if held else torch.empty(0, dtype=torch.long)
    is_kept = torch.ones(len(labels), dtype=torch.bool)
    is_kept[held_out] = False
    return is_kept.nonzero().flatten(), held_out.sort().values


def traced_leaves(model: nn.Module, inputs: torch.Tensor, forward) -> list[tuple[str, nn.Module, object]]:
    """(name, module, output) of every leaf module in the order a forward pass runs them."""
    names = {module: name for name, module in model.named_modules()}
    trace: list[tuple[str, nn.Module, object]] = []
    hooks = [
        module.register_forward_hook(lambda m, _, output: trace.append((names[m], m, output)))
        for module in model.modules()
        if not list(module.children())
    ]
    try:
        with torch.no_grad():
            forward(model.eval(), inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return trace


def feature_units(model: nn.Module, task: Task) -> tuple[str, nn.Linear, int, int]:
    """Where Fine-Pruning prunes: (name, the Linear layer that reads the last convolutional feature map,
    its number of channels, how many of the layer's inputs each channel feeds). For a model without
    convolutional feature maps: the last Linear layer, one unit per input."""
    trace = traced_leaves(model, task.defender.inputs[:2].to(next(model.parameters()).device), task.forward)
    maps = [i for i, (_, _, out) in enumerate(trace) if isinstance(out, torch.Tensor) and out.dim() == 4]
    start = maps[-1] if maps else 0
    linears = [(n, m) for n, m, _ in trace[start:] if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no Linear layer after its features: nothing to prune")
    if not maps:
        name, layer = linears[-1]
        return name, layer, layer.in_features, 1
    name, layer = linears[0]
    channels = trace[maps[-1]][2].shape[1]
    if layer.in_features % channels:
        raise ValueError(f"{name} reads {layer.in_features} features, not a multiple of {channels} channels")
    return name, layer, channels, layer.in_features // channels


def conv_blocks(model: nn.Module, count: int = 3) -> list[str]:
    """Names of the last `count` blocks holding convolutions, at the first depth that has that many:
    resnet layer2-4, shufflenet stage3, stage4, conv5, mobilenet_v2 features.16-18."""

    def has_conv(module: nn.Module) -> bool:
        return any(isinstance(m, nn.Conv2d) for m in module.modules())

    prefix, container = "", model
    while True:
        blocks = [(name, child) for name, child in container.named_children() if has_conv(child)]
        if len(blocks) >= count or not blocks:
            return [prefix + name for name, _ in blocks[-count:]]
        name, container = max(blocks, key=lambda b: sum(p.numel() for p in b[1].parameters()))
        prefix += name + "."
