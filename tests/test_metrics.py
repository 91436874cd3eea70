import math

import torch

from harness.metrics import accuracy, attack_success_rate, defense_effectiveness_rate, fidelity


def test_accuracy_hand_computed():
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    assert math.isnan(accuracy(torch.tensor([]), torch.tensor([])))


def test_asr_counts_only_sources_other_than_the_target():
    predictions = torch.tensor([4, 4, 0, 4, 4])
    labels = torch.tensor([0, 3, 3, 4, 0])  # the fourth input's true class is the target: left out
    targets = torch.tensor([4, 4, 4, 4, 4])
    assert attack_success_rate(predictions, labels, targets) == 0.75


def test_asr_with_per_input_targets():
    # round 4: two triggers, 1 -> 2 and 3 -> 0
    predictions = torch.tensor([2, 1, 0, 0])
    labels = torch.tensor([1, 1, 3, 3])
    targets = torch.tensor([2, 2, 0, 0])
    assert attack_success_rate(predictions, labels, targets) == 0.75


def test_asr_is_nan_without_a_population():
    assert math.isnan(attack_success_rate(torch.tensor([1]), torch.tensor([1]), torch.tensor([1])))


def test_fidelity_and_der():
    assert fidelity(0.9, 0.855, 0.045) == (0.855 - 0.045) / 0.9
    assert math.isnan(fidelity(0.9, 0.8, math.nan))
    # ASR 1.0 -> 0.1 and ACC 0.9 -> 0.8: (0.9 - 0.1 + 1) / 2
    assert abs(defense_effectiveness_rate(0.9, 0.8, 1.0, 0.1) - 0.9) < 1e-12
    # an ACC gain is not rewarded
    assert defense_effectiveness_rate(0.8, 0.9, 0.5, 0.5) == 0.5
