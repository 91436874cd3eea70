import math

import numpy as np
import pytest
import torch

from harness.metrics import (
    accuracy,
    attack_success_rate,
    defense_effectiveness_rate,
    fidelity,
    fidelity_interval,
    wilson_interval,
)


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


def test_wilson_interval_matches_published_values():
    # 10 of 20, 0 of 20 and 20 of 20 at 95 %, computed by hand from Wilson's formula
    assert wilson_interval(0.5, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert wilson_interval(0.0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson_interval(1.0, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0))


def test_fidelity_interval_holds_the_true_value_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_before, true_after, true_asr, n_clean, n_triggered = 0.95, 0.9, 0.1, 20, 20
    truth = fidelity(true_before, true_after, true_asr)
    hits = 0
    trials = 2000
    for _ in range(trials):
        before = rng.binomial(n_clean, true_before) / n_clean
        after = rng.binomial(n_clean, true_after) / n_clean
        asr = rng.binomial(n_triggered, true_asr) / n_triggered
        low, high = fidelity_interval(before, after, asr, n_clean, n_triggered)
        hits += low <= truth <= high
    assert hits / trials >= 0.95
    narrow = fidelity_interval(0.95, 0.9, 0.1, 2000, 2000)
    wide = fidelity_interval(0.95, 0.9, 0.1, 20, 20)
    assert wide[0] < narrow[0] <= truth <= narrow[1] < wide[1]
