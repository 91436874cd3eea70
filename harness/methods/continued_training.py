"""Continued training: every layer retrained on the defender's clean data (SGD, half-cosine learning rate;
BackdoorBench calls this `ft`)."""

from __future__ import annotations

import time

from harness.config import ContinuedTrainingConfig
from harness.methods import MethodResult
from harness.methods.common import cosine_lr, sgd, train, working_copy
from harness.task import Task
from harness.training import data_accuracy


def mitigate(task: Task, config: ContinuedTrainingConfig) -> MethodResult:
    model, generator = working_copy(task, config.seed, config.device)
    start = time.perf_counter()
    optimizer = sgd(list(model.parameters()), config.lr, config.momentum, config.weight_decay)
    lr_at = cosine_lr(config.lr, config.epochs)
    train(model, task, optimizer, config.epochs, lr_at, config.batch_size, generator, config.augment)
    figures = {"defender_acc_final": data_accuracy(model, task.defender, task.forward, task.background_class)}
    return MethodResult(model, "ok", {"train": time.perf_counter() - start}, figures)
