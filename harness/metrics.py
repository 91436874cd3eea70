"""Metrics on fixed evaluation sets (see README, "Evaluation protocol")."""

from __future__ import annotations

import math

import torch

from harness.task import IGNORE_INDEX

FLOAT32_TOLERANCE = 1e-6  # shares are float32: 36/40 is 0.89999998, 4/40 is 0.10000000149


def at_least(share: float, target: float) -> bool:
    """share >= target, with a tolerance for float32 shares."""
    return share >= target - FLOAT32_TOLERANCE


def accuracy_counted(labels: torch.Tensor, background: int | None = None) -> torch.Tensor:
    """Which positions ACC counts: not IGNORE_INDEX, and not the `background` class if given."""
    counted = labels != IGNORE_INDEX
    if background is not None:
        counted &= labels != background
    return counted


def asr_counted(labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Which triggered positions ASR counts: labelled, and not already of the target class."""
    return (labels != targets) & (labels != IGNORE_INDEX)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor, background: int | None = None) -> float:
    """Share of predictions equal to the labels; NaN for an empty set.

    Positions labelled IGNORE_INDEX never count; nor do those of the `background` class, if given.
    """
    counted = accuracy_counted(labels, background)
    if not bool(counted.any()):
        return math.nan
    return (predictions[counted] == labels[counted]).float().mean().item()


def attack_success_rate(predictions: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of triggered inputs (or labelled positions) whose true class is not the target that land on it.

    Inputs whose true class already is the target (possible in round 3 many-to-one triggers) are
    left out: predicting the target there is correct behaviour, not an attack success.
    """
    counted = asr_counted(labels, targets)
    if not bool(counted.any()):
        return math.nan
    return (predictions[counted] == targets[counted]).float().mean().item()


def fidelity(acc_before: float, acc_after: float, asr_after: float) -> float:
    """(ACC_after - ASR_after) / ACC_before, as in the SEAM paper (a fraction, not percent)."""
    if not acc_before or math.isnan(acc_before) or math.isnan(asr_after):
        return math.nan
    return (acc_after - asr_after) / acc_before


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion measured on n items; NaNs if n is 0."""
    if n <= 0 or math.isnan(share):
        return math.nan, math.nan
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# z of a two-sided 98.33 % interval: three of them hold together with at least 95 % (Bonferroni)
Z_FIDELITY = 2.394


def fidelity_interval(
    acc_before: float, acc_after: float, asr_after: float, n_clean: int, n_triggered: int
) -> tuple[float, float]:
    """An interval for Fidelity that holds with at least 95 %: the formula's extremes over the three
    proportions' Wilson intervals, each at 98.33 %. Conservative (wide), never too narrow."""
    if math.isnan(fidelity(acc_before, acc_after, asr_after)):
        return math.nan, math.nan
    before_low, before_high = wilson_interval(acc_before, n_clean, Z_FIDELITY)
    after_low, after_high = wilson_interval(acc_after, n_clean, Z_FIDELITY)
    asr_low, asr_high = wilson_interval(asr_after, n_triggered, Z_FIDELITY)
    if math.isnan(asr_low) or before_low <= 0:
        return math.nan, math.nan
    low = after_low - asr_high
    high = after_high - asr_low
    return low / (before_high if low >= 0 else before_low), high / (before_low if high >= 0 else before_high)


def defense_effectiveness_rate(
    acc_before: float, acc_after: float, asr_before: float, asr_after: float
) -> float:
    """DER = [max(0, ASR_before - ASR_after) - max(0, ACC_before - ACC_after) + 1] / 2."""
    if math.isnan(asr_before) or math.isnan(asr_after):
        return math.nan
    return (max(0.0, asr_before - asr_after) - max(0.0, acc_before - acc_after) + 1.0) / 2.0
