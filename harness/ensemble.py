"""A model that averages the class probabilities of several models (SEAM's `restart_policy: ensemble`).

It is saved and loaded like any other model: the safe loader admits this module's class by rule
(harness/model_io.py), and unpickling restores it without calling anything.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ProbabilityAverage(nn.Module):
    """log of the mean of the members' softmax outputs: argmax, cross-entropy and softmax read it as
    logits. Every member takes the same inputs and returns a logits tensor ([N, K] or [N, T, K])."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an average of no models")
        self.members = nn.ModuleList(members)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        log_probabilities = []
        for member in self.members:
            logits = member(*args, **kwargs)
            if not isinstance(logits, torch.Tensor):
                raise TypeError(
                    f"{type(member).__name__} returns {type(logits).__name__}, not a logits tensor"
                )
            log_probabilities.append(torch.log_softmax(logits, dim=-1))
        return torch.logsumexp(torch.stack(log_probabilities), dim=0) - math.log(len(log_probabilities))
