"""Neural Cleanse (Wang et al., IEEE S&P 2019), image models, on the defender's clean data only.

1. For every class t, find a mask m (one value per pixel, in [0, 1]) and a pattern p (an image) such that
   the stamped inputs (1 - m) * x + m * p go to t, with the smallest L1 norm of m: minimise the
   cross-entropy towards t plus cost * |m|_1, where the cost rises (x `cost_multiplier`) after `patience`
   epochs at or above the attack-success threshold and falls (/ multiplier^1.5) after `patience` below it.
   The smallest mask that reached the threshold is kept.
2. Anomaly index of each class = |norm - median| / (1.4826 * MAD) over the classes' mask norms; classes
   whose norm is below the median and whose index exceeds `anomaly_threshold` are flagged.
3. If any is flagged, unlearn: stamp `unlearn_share` of the defender's examples with the flagged classes'
   reversed triggers, keep their true labels, and train every layer on the result. Otherwise the model
   is returned unchanged with the status `nothing_flagged`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import NeuralCleanseConfig
from harness.methods import MethodResult
from harness.methods.common import cosine_lr, is_image_task, not_applicable, sgd, train, working_copy
from harness.task import Task
from harness.training import data_accuracy, model_device, shuffled_batches

NOTHING_FLAGGED = "nothing_flagged"
MAD_CONSISTENCY = 1.4826  # makes the median absolute deviation estimate a normal distribution's sigma
EARLY_STOP_GAIN = 1e-3  # the best norm must shrink by this share to count as progress


@dataclass
class ReversedTrigger:
    mask: torch.Tensor  # [1, 1, H, W] in [0, 1]
    pattern: torch.Tensor  # [1, C, H, W] in [0, 1]
    norm: float  # L1 norm of the mask
    success: float  # share of the defender's inputs the stamp sends to the class
    reached: bool  # the success reached the threshold at least once (else: the last mask)
    epochs: int


def stamp(inputs: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    return (1 - mask) * inputs + mask * pattern


def to_unit(raw: torch.Tensor) -> torch.Tensor:
    """An unconstrained tensor squashed into [0, 1]."""
    return torch.tanh(raw) / 2 + 0.5


def reverse_engineer(
    model: nn.Module, task: Task, target: int, config: NeuralCleanseConfig, generator: torch.Generator
) -> ReversedTrigger:
    device = model_device(model)
    inputs = task.defender.inputs.to(device)  # moved once
    _, channels, height, width = inputs.shape
    mask_raw = (torch.rand(1, 1, height, width, generator=generator) * 2 - 1).to(device).requires_grad_()
    pattern_raw = (
        (torch.rand(1, channels, height, width, generator=generator) * 2 - 1).to(device).requires_grad_()
    )
    optimizer = torch.optim.Adam([mask_raw, pattern_raw], lr=config.lr, betas=tuple(config.betas))
    cost, above, below, raised, lowered = config.init_cost, 0, 0, False, False
    best: ReversedTrigger | None = None
    stale, epoch = 0, 0
    for epoch in range(1, config.epochs + 1):
        hits = 0
        for index in shuffled_batches(len(inputs), config.batch_size, generator):
            x = inputs[index]
            mask, pattern = to_unit(mask_raw), to_unit(pattern_raw)
            logits = task.forward(model, stamp(x, mask, pattern))
            wanted = torch.full((len(x),), target, device=device)
            loss = F.cross_entropy(logits, wanted) + cost * mask.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            hits += int((logits.argmax(dim=1) == target).sum())
        success = hits / len(inputs)
        with torch.no_grad():
            mask, pattern = to_unit(mask_raw), to_unit(pattern_raw)
            norm = float(mask.sum())
        if success >= config.attack_success_threshold and (best is None or norm < best.norm):
            stale = 0 if best is None or norm < (1 - EARLY_STOP_GAIN) * best.norm else stale + 1
            best = ReversedTrigger(mask.detach().cpu(), pattern.detach().cpu(), norm, success, True, epoch)
        else:
            stale += 1
        if best is not None and raised and lowered and stale >= config.early_stop_patience:
            break
        above, below = (above + 1, 0) if success >= config.attack_success_threshold else (0, below + 1)
        if above >= config.patience:
            above, cost, raised = 0, cost * config.cost_multiplier, True
        elif below >= config.patience:
            below, cost, lowered = 0, cost / config.cost_multiplier**1.5, True
    if best is None:
        return ReversedTrigger(mask.detach().cpu(), pattern.detach().cpu(), norm, success, False, epoch)
    return best


def anomaly_indices(norms: list[float]) -> list[float]:
    values = torch.tensor(norms)
    median = values.median()
    mad = MAD_CONSISTENCY * (values - median).abs().median()
    if float(mad) == 0.0:
        return [0.0 if float(v) == float(median) else math.inf for v in values]
    return ((values - median).abs() / mad).tolist()


def flagged_classes(norms: list[float], indices: list[float], threshold: float) -> list[int]:
    median = float(torch.tensor(norms).median())
    return [
        k
        for k, (norm, index) in enumerate(zip(norms, indices, strict=True))
        if norm < median and index > threshold
    ]


def mitigate(task: Task, config: NeuralCleanseConfig) -> MethodResult:
    if not is_image_task(task):
        return not_applicable(task, "Neural Cleanse reverse-engineers pixel masks: image models only")
    model, generator = working_copy(task, config.seed, config.device)
    model.eval().requires_grad_(False)
    start = time.perf_counter()
    triggers = [reverse_engineer(model, task, k, config, generator) for k in range(task.num_classes)]
    norms = [t.norm for t in triggers]
    indices = anomaly_indices(norms)
    flagged = flagged_classes(norms, indices, config.anomaly_threshold)
    model.requires_grad_(True)
    reverse_seconds = time.perf_counter() - start
    figures = {
        "nc_flagged_classes": flagged,
        "nc_anomaly_index": indices,
        "nc_mask_norms": norms,
        "nc_reached_threshold": [t.reached for t in triggers],
    }
    if not flagged:
        return MethodResult(model, NOTHING_FLAGGED, {"reverse": reverse_seconds}, figures)

    start = time.perf_counter()
    data = task.defender
    inputs = data.inputs.clone()
    chosen = torch.randperm(len(data), generator=generator)[: max(1, round(config.unlearn_share * len(data)))]
    for i, index in enumerate(chosen.tolist()):
        trigger = triggers[flagged[i % len(flagged)]]
        inputs[index] = stamp(inputs[index], trigger.mask[0], trigger.pattern[0])
    optimizer = sgd(list(model.parameters()), config.unlearn_lr, config.momentum, config.weight_decay)
    lr_at = cosine_lr(config.unlearn_lr, config.unlearn_epochs)
    train(
        model, task, optimizer, config.unlearn_epochs, lr_at, config.batch_size, generator, config.augment,
        inputs=inputs,
    )  # fmt: skip
    figures["defender_acc_final"] = data_accuracy(model, data, task.forward)
    seconds = {"reverse": reverse_seconds, "unlearn": time.perf_counter() - start}
    return MethodResult(model, "ok", seconds, figures)
