"""SEAM as the authors' published scripts report it: recovery keeps the epoch with the best ACC - ASR on
the **evaluation data**. Not a defense anyone can run (it reads triggered test data); it exists to show
how much that choice flatters the figures. Its rows say `oracle` = True and `compare` lists it apart.
"""

from __future__ import annotations

import math

from torch import nn

from harness.config import SeamConfig
from harness.methods import MethodResult
from harness.methods.seam import as_method_result, seam
from harness.metrics import accuracy, attack_success_rate
from harness.task import Task
from harness.training import predict


def evaluation_score(task: Task, model: nn.Module) -> float:
    """ACC - ASR on the task's evaluation data (ACC alone for a model without triggered data)."""
    clean = task.eval_clean
    score = accuracy(predict(model, clean.inputs, task.forward), clean.labels, task.background_class)
    triggered = task.eval_triggered
    if triggered is not None:
        predictions = predict(model, triggered.inputs, task.forward)
        asr = attack_success_rate(predictions, triggered.labels, triggered.targets)
        score -= 0.0 if math.isnan(asr) else asr
    return score


def mitigate(task: Task, config: SeamConfig) -> MethodResult:
    result = as_method_result(seam(task, config, lambda model: evaluation_score(task, model)))
    result.figures["selected_on"] = task.eval_data
    return result
