"""SEAM's stopping rules and its blindness, on a small real model over real tensors."""

import dataclasses

import pytest
import torch
from torch import nn

import harness.methods.seam as seam_module
from harness.config import SeamConfig
from harness.methods.seam import random_wrong_labels, seam
from harness.model_io import load_model, save_model
from harness.task import IGNORE_INDEX, LabelledData, Task, TriggeredData

K = 4


def cluster_task(seed: int = 0, per_class: int = 12) -> Task:
    """K well-separated Gaussian clusters and an MLP trained on them (ACC 1.0 on the defender's data)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, 8, generator=g) * 4
    labels = torch.arange(K).repeat_interleave(per_class)
    inputs = centres[labels] + torch.randn(len(labels), 8, generator=g) * 0.3
    torch.manual_seed(seed)  # the model's initial weights: the same task in every test and process
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, K))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    model.eval()
    defender = LabelledData(inputs, labels)
    # evaluation data that SEAM must never read: poisoned on purpose (NaN) so any use would show
    poison = torch.full_like(inputs, float("nan"))
    return Task(
        model=model,
        num_classes=K,
        defender=defender,
        eval_clean=LabelledData(poison, labels),
        eval_triggered=TriggeredData(poison, labels, torch.zeros_like(labels)),
        eval_data="test",
    )


def quick_config(**overrides) -> SeamConfig:
    """Settings under which SEAM forgets and recovers the cluster task in a few epochs."""
    settings = dict(forget_lr=1e-2, forget_epochs_below_alpha=2, recover_lr=1e-2, augment=False)
    return SeamConfig(**{**settings, **overrides})


def test_wrong_labels_are_never_the_true_label_and_cover_all_others():
    labels = torch.arange(K).repeat(5000)
    wrong = random_wrong_labels(labels, K, torch.Generator().manual_seed(0))
    assert not bool((wrong == labels).any())
    for c in range(K):
        drawn = wrong[labels == c]
        counts = torch.bincount(drawn, minlength=K).float()
        assert counts[c] == 0
        others = counts[torch.arange(K) != c] / len(drawn)
        assert torch.allclose(others, torch.full_like(others, 1 / (K - 1)), atol=0.03)


def test_any_class_labels_are_uniform_over_all_classes_the_true_one_included():
    labels = torch.arange(K).repeat(5000)
    drawn = random_wrong_labels(labels, K, torch.Generator().manual_seed(0), any_class=True)
    for c in range(K):
        counts = torch.bincount(drawn[labels == c], minlength=K).float() / 5000
        assert torch.allclose(counts, torch.full_like(counts, 1 / K), atol=0.03)


def watch_epochs(monkeypatch, watcher) -> None:
    """Call `watcher(inputs, labels, optimizer, relabel)` before every SEAM training epoch; what it returns,
    if not None, replaces the epoch's relabelling function."""
    real_train_epoch = seam_module.train_epoch

    def spy(model, inputs, labels, optimizer, batch_size, generator, augment=None, relabel=None, *rest, **kw):
        relabel = watcher(inputs, labels, optimizer, relabel) or relabel
        return real_train_epoch(
            model, inputs, labels, optimizer, batch_size, generator, augment, relabel, *rest, **kw
        )

    monkeypatch.setattr(seam_module, "train_epoch", spy)


def forgetting_labels(
    monkeypatch, task: Task, config: SeamConfig
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], seam_module.SeamResult]:
    """(true, trained-on) label pairs of every forgetting batch of one SEAM run, and its result."""
    seen = []

    def record_labels(inputs, labels, optimizer, relabel):
        if relabel is None:
            return None

        def checked(y, g):
            new = relabel(y, g)
            seen.append((y.clone(), new.clone()))
            return new

        return checked

    watch_epochs(monkeypatch, record_labels)
    return seen, seam(task, config)


def test_forgetting_never_trains_on_a_true_label(monkeypatch):
    seen, result = forgetting_labels(monkeypatch, cluster_task(), quick_config(forget_epochs_below_alpha=3))
    assert seen and not any(bool((true == new).any()) for true, new in seen)
    assert result.forget_epochs >= 3


def test_background_labels_are_kept_while_forgetting_unless_relabelled(monkeypatch):
    task = cluster_task()
    task.background_class = 0
    seen, _ = forgetting_labels(monkeypatch, task, quick_config())
    kept = torch.cat([new[true == 0] for true, new in seen])
    assert len(kept) and bool((kept == 0).all())
    assert not any(bool((true == new)[true != 0].any()) for true, new in seen)
    relabelled, _ = forgetting_labels(monkeypatch, task, quick_config(relabel_background=True))
    assert not any(bool((true == new).any()) for true, new in relabelled)


def test_forget_labels_any_also_draws_the_true_label(monkeypatch):
    task = cluster_task()
    seen, _ = forgetting_labels(monkeypatch, task, quick_config(forget_labels="any"))
    assert any(bool((true == new).any()) for true, new in seen)
    with pytest.raises(ValueError, match="forget_labels"):
        seam(task, quick_config(forget_labels="sometimes"))


def test_forget_label_draw_once_keeps_one_wrong_labelling_for_the_whole_phase(monkeypatch):
    task = cluster_task()
    trained_on = []
    watch_epochs(
        monkeypatch, lambda inputs, labels, optimizer, relabel: trained_on.append((labels.clone(), relabel))
    )
    result = seam(task, quick_config(forget_label_draw="once", forget_epochs_below_alpha=3))
    forgetting = trained_on[: result.forget_epochs]
    first = forgetting[0][0]
    assert len(forgetting) >= 3 and all(relabel is None for _, relabel in forgetting)
    assert all(torch.equal(labels, first) for labels, _ in forgetting)
    assert not bool((first == task.defender.labels).any())  # every label wrong, drawn once
    assert all(torch.equal(labels, task.defender.labels) for labels, _ in trained_on[result.forget_epochs :])
    with pytest.raises(ValueError, match="forget_label_draw"):
        seam(task, quick_config(forget_label_draw="twice"))


def test_forget_freeze_classifier_leaves_the_last_layer_untouched_while_forgetting():
    task = cluster_task()
    forget_only = dict(recover_max_epochs=0, forget_epochs_below_alpha=2)
    frozen = seam(task, quick_config(forget_freeze_classifier=True, **forget_only))
    moved = seam(task, quick_config(**forget_only))
    assert frozen.forget_reached and moved.forget_reached
    original_head, original_body = task.model[2], task.model[0]
    assert torch.equal(frozen.model[2].weight, original_head.weight)
    assert torch.equal(frozen.model[2].bias, original_head.bias)
    assert not torch.equal(frozen.model[0].weight, original_body.weight)  # the layers below did change
    assert not torch.equal(moved.model[2].weight, original_head.weight)


def test_forget_freeze_share_keeps_the_first_layers_fixed_while_forgetting():
    task = cluster_task()
    forget_only = dict(recover_max_epochs=0, forget_epochs_below_alpha=2)
    frozen = seam(task, quick_config(forget_freeze_share=0.5, **forget_only))
    assert frozen.forget_reached
    original = list(task.model.parameters())  # first Linear's weight and bias, then the head's
    after = list(frozen.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(after[:2], original[:2], strict=True))  # first half
    assert not torch.equal(after[2], original[2])  # the head forgot
    assert all(p.requires_grad for p in after)  # fixed only while forgetting
    with pytest.raises(ValueError, match="forget_freeze_share"):
        seam(task, quick_config(forget_freeze_share=1.0))


def test_forgetting_runs_the_required_epochs_below_alpha_then_recovers():
    task = cluster_task()
    config = SeamConfig(forget_lr=1e-2, forget_epochs_below_alpha=4, recover_lr=1e-2, augment=False)
    result = seam(task, config)
    assert result.alpha == min(2 / K, 0.6)
    assert result.defender_acc_orig == 1.0
    assert result.forget_reached and result.defender_acc_forgotten < result.alpha
    assert result.forget_epochs >= 4
    assert result.recovery_reached and result.defender_acc_final >= 0.97 * result.defender_acc_orig
    assert result.recover_epochs >= 1
    assert result.status == "ok"
    # the time inside training steps is measured per phase, and is part of the phase's time
    assert 0 < result.forget_step_seconds <= result.forget_seconds
    assert 0 < result.recover_step_seconds <= result.recover_seconds
    # the task's own model is untouched
    assert torch.equal(task.model(task.defender.inputs).argmax(1), task.defender.labels)


def test_forgetting_stops_at_its_epoch_cap_and_says_so():
    task = cluster_task()
    config = SeamConfig(
        forget_lr=0.0, forget_max_epochs=3, recover_lr=0.0, recover_epochs_after_goal=0, augment=False
    )
    result = seam(task, config)
    assert result.forget_epochs == 3 and not result.forget_reached
    # nothing was forgotten, so the recovery target holds at once
    assert result.recover_epochs == 0 and result.recovery_reached
    assert result.status == "forget_incomplete"


def test_a_recovery_that_never_reaches_its_target_is_reported():
    task = cluster_task()
    config = SeamConfig(
        forget_lr=1e-2, forget_epochs_below_alpha=2, recover_lr=0.0, recover_max_epochs=4, augment=False
    )
    result = seam(task, config)
    assert result.recover_epochs == 4
    assert not result.recovery_reached
    assert result.status == "recovery_failed"


def test_absolute_recovery_target():
    task = cluster_task()
    result = seam(
        task, SeamConfig(forget_lr=1e-2, recover_lr=1e-2, recover_target="absolute", beta=0.5, augment=False)
    )
    assert result.recover_goal == 0.5
    assert result.defender_acc_final >= 0.5


def test_one_defender_check_per_epoch_and_none_repeated(monkeypatch):
    """The accuracy check on the defender's data runs once before SEAM and once after every epoch; the
    forgotten model is measured again before recovery only if reinit or noise changed it."""
    import harness.methods.seam as seam_module

    calls = []
    measure = seam_module.data_accuracy
    monkeypatch.setattr(seam_module, "data_accuracy", lambda *args: calls.append(1) or measure(*args))
    task = cluster_task()
    result = seam(task, quick_config())
    assert len(calls) == 1 + result.forget_epochs + result.recover_epochs
    calls.clear()
    noisy = seam(task, quick_config(recover_perturb=0.1))
    assert len(calls) == 2 + noisy.forget_epochs + noisy.recover_epochs


def test_same_seed_same_result():
    task = cluster_task()
    config = quick_config(seed=3)
    first, second = seam(task, config), seam(task, config)
    assert (first.forget_epochs, first.recover_epochs) == (second.forget_epochs, second.recover_epochs)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_recovery_can_run_a_fixed_number_of_epochs_past_its_goal():
    task = cluster_task()
    bare = seam(task, quick_config(recover_epochs_after_goal=0))
    longer = seam(task, quick_config(recover_epochs_after_goal=5))
    assert longer.recover_epochs == bare.recover_epochs + 5
    assert longer.recovery_reached and longer.status == "ok"


def test_annealed_lr_falls_along_a_half_cosine_and_never_reaches_zero():
    rates = [seam_module.annealed_lr(1.0, epoch, 4) for epoch in range(1, 7)]
    assert rates[:4] == sorted(rates[:4], reverse=True)
    assert all(rate > 0 for rate in rates)
    assert rates[4] == rates[5] == rates[3]  # past the planned epochs it stays at the last value
    assert abs(seam_module.annealed_lr(1.0, 2, 3) - 0.5) < 1e-12  # the midpoint of 3 epochs is half


def test_annealed_recovery_trains_the_epochs_past_its_goal_at_falling_rates(monkeypatch):
    task = cluster_task()
    config = quick_config(recover_epochs_after_goal=4, recover_anneal=True)
    rates = []

    def recovery_rate(inputs, labels, optimizer, relabel):
        if relabel is None:  # a recovery epoch
            rates.append(optimizer.param_groups[0]["lr"])

    watch_epochs(monkeypatch, recovery_rate)
    result = seam(task, config)
    assert result.status == "ok"
    before_goal = result.recover_epochs - 4
    assert rates[:before_goal] == [1e-2] * before_goal
    expected = [seam_module.annealed_lr(1e-2, epoch, 4) for epoch in range(1, 5)]
    assert rates[before_goal:] == expected


def test_recover_perturb_adds_noise_scaled_to_each_weight_matrix_before_recovery():
    task = cluster_task()
    # no learning in either phase, so the output shows exactly what happened between them
    frozen = dict(forget_lr=0.0, forget_max_epochs=1, recover_lr=0.0, recover_max_epochs=1)
    unchanged = seam(task, quick_config(**frozen)).model
    perturbed = seam(task, quick_config(**frozen, recover_perturb=0.5)).model
    again = seam(task, quick_config(**frozen, recover_perturb=0.5)).model
    models = (unchanged, perturbed, again)
    for (name, original), same, noisy, noisy_again in zip(
        task.model.named_parameters(), *(m.parameters() for m in models), strict=True
    ):
        assert torch.equal(same, original)
        assert torch.equal(noisy, noisy_again)  # drawn from the SEAM seed
        if original.dim() >= 2:  # weight matrices: noise of 0.5 of their own spread
            ratio = float((noisy - original).detach().std() / original.detach().std())
            assert 0.4 < ratio < 0.6, name
        else:  # biases untouched
            assert torch.equal(noisy, original), name


def test_the_guard_part_is_never_trained_on_and_passes_a_good_run(monkeypatch):
    task = cluster_task()
    sizes = []
    watch_epochs(monkeypatch, lambda inputs, labels, optimizer, relabel: sizes.append(len(inputs)))
    result = seam(task, quick_config(guard_fraction=0.25))
    assert result.guard_n == K * 3 and set(sizes) == {K * 9}
    assert result.status == "ok" and result.runs == 1
    assert result.guard_acc_final >= result.guard_acc_orig - 0.1


def test_a_run_that_only_memorises_its_examples_is_destroyed_and_restarted():
    # an absolute goal of 0 ends recovery at once: the forgotten model passes the goal, not the guard
    destroy = dict(recover_target="absolute", beta=0.0, recover_epochs_after_goal=0, guard_fraction=0.25)
    result = seam(cluster_task(), quick_config(**destroy, restarts=2))
    assert result.status == "destroyed" and result.runs == 3
    assert result.guard_acc_final < result.guard_acc_orig - 0.1


def test_restart_settings_apply_to_the_restarts_only():
    destroy = dict(recover_target="absolute", beta=0.0, recover_epochs_after_goal=0, guard_fraction=0.25)
    safer = dict(recover_target="relative", beta=0.97, recover_epochs_after_goal=5)
    result = seam(cluster_task(), quick_config(**destroy, restarts=2, restart_settings=safer))
    # the first run is destroyed as above; the safer restart passes, and no third run follows
    assert result.runs == 2 and result.seed == 1 and result.status == "ok"
    assert result.guard_acc_final >= result.guard_acc_orig - 0.1
    not_per_restart = {"recover_speed": 1, "guard_fraction": 0.5}
    with pytest.raises(ValueError, match=r"restart_settings: \['guard_fraction', 'recover_speed'\]"):
        seam(cluster_task(), quick_config(restarts=1, restart_settings=not_per_restart))


def test_few_shot_settings_apply_when_a_class_has_at_most_that_many_examples():
    task = cluster_task()  # 12 examples per class
    short = {"recover_epochs_after_goal": 1}
    direct = seam(task, quick_config(**short))
    applied = seam(task, quick_config(few_shot_per_class=12, few_shot_settings=short))
    not_applied = seam(task, quick_config(few_shot_per_class=11, few_shot_settings=short))
    assert applied.few_shot and not not_applied.few_shot
    assert applied.recover_epochs == direct.recover_epochs < not_applied.recover_epochs
    for ours, theirs in zip(applied.model.parameters(), direct.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match=r"few_shot_settings: \['restarts'\]"):
        seam(task, quick_config(few_shot_per_class=12, few_shot_settings={"restarts": 1}))
    per_position = dataclasses.replace(task, defender=LabelledData(task.defender.inputs, torch.zeros(48, 3)))
    with pytest.raises(ValueError, match="one label per example"):
        seam_module.few_shot_config(per_position, quick_config(few_shot_per_class=5))


def test_best_of_restarts_runs_them_all_and_needs_the_guard():
    result = seam(cluster_task(), quick_config(guard_fraction=0.25, restarts=1, restart_policy="best"))
    assert result.runs == 2 and result.status == "ok" and result.seed in (0, 1)
    with pytest.raises(ValueError, match="guard_fraction"):
        seam(cluster_task(), quick_config(restarts=1, restart_policy="best"))


@pytest.mark.parametrize("inputs", ["batch", "mixup"])
def test_distillation_pulls_recovery_towards_the_original_outputs(inputs):
    """The distillation term lowers what it measures: KL to the original's outputs at its temperature,
    whether it is taken on the recovery batches or on their pairwise blends."""
    task = cluster_task()
    x = task.defender.inputs

    def kl_to_original(weight: float) -> float:
        config = quick_config(recover_epochs_after_goal=20, recover_distill=weight, distill_inputs=inputs)
        model = seam(task, config).model
        with torch.no_grad():
            ours, original = (model(x) / 2).log_softmax(-1), (task.model(x) / 2).log_softmax(-1)
        return torch.nn.functional.kl_div(ours, original, reduction="batchmean", log_target=True).item()

    assert kl_to_original(5.0) < 0.1 * kl_to_original(0.0)  # hard labels alone grow overconfident


def test_mixup_distillation_refuses_token_ids():
    task = cluster_task()
    loss = seam_module.distillation_loss(task, 1.0, 2.0, task.model, "mixup", torch.Generator())
    with pytest.raises(ValueError, match="real-valued inputs"):
        loss(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2))


def test_the_guard_fires_at_its_drop_exactly_whatever_the_float_rounding():
    nine_tenths = torch.tensor(9 / 10).item()  # float32 0.9 lies below float64 1.0 - 0.1
    eight_tenths = torch.tensor(8 / 10).item()  # and float32 0.8 above 0.9 - 0.1
    assert seam_module.guard_fell(1.0, nine_tenths, 0.1) and seam_module.guard_fell(0.9, eight_tenths, 0.1)
    assert not seam_module.guard_fell(1.0, 0.95, 0.1) and not seam_module.guard_fell(0.5, 0.6, 0.1)


def test_strong_augmentation_is_used_by_recovery_only_and_refused_where_the_round_has_none():
    task = cluster_task()
    with pytest.raises(ValueError, match="no strong augmentation"):
        seam(task, quick_config(recover_augment="strong"))
    batches: list[int] = []

    def counting(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        batches.append(len(x))
        return x, y

    config = quick_config(recover_augment="strong", recover_epochs_after_goal=2)
    result = seam(dataclasses.replace(task, strong_augment=counting), config)
    per_epoch = -(-len(task.defender) // config.batch_size)
    assert len(batches) == result.recover_epochs * per_epoch and sum(batches) % len(task.defender) == 0


def test_echo_keeps_the_restart_that_repeats_fewest_of_the_original_errors():
    def noisy(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        return x + 4 * torch.randn(x.shape, generator=generator), y  # far enough that the original errs

    task = dataclasses.replace(cluster_task(), strong_augment=noisy)
    config = quick_config(restarts=2, restart_policy="echo", echo_draws=5)
    kept = seam(task, config)
    score = seam_module.original_errors(task, 5, seed=0)
    alone = [seam(task, quick_config(seed=s)) for s in range(3)]
    echoes = [score(run.model) for run in alone]
    assert kept.runs == 3 and len(set(echoes)) > 1  # the runs differ, so the choice means something
    assert kept.seed == echoes.index(min(echoes)) and kept.echo == min(echoes)
    assert kept.forget_epochs_all_runs == sum(run.forget_epochs for run in alone)
    assert kept.recover_epochs_all_runs == sum(run.recover_epochs for run in alone)
    for ours, theirs in zip(kept.model.parameters(), alone[kept.seed].model.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="no strong augmentation"):
        seam(cluster_task(), config)


def test_ensemble_averages_the_probabilities_of_the_runs_and_loads_safely(tmp_path):
    task = cluster_task()
    averaged = seam(task, quick_config(restarts=2, restart_policy="ensemble"))
    alone = [seam(task, quick_config(seed=s)) for s in range(3)]
    assert averaged.ensemble_members == 3 and averaged.runs == 3 and averaged.status == "ok"
    probe = torch.randn(64, 8) * 4
    assert_averages(averaged, alone, probe)
    assert averaged.recover_epochs_all_runs == sum(run.recover_epochs for run in alone)
    path = tmp_path / "model.pt"
    save_model(averaged.model, path)
    with torch.no_grad():  # loaded through the allowlist, not trust_pickles
        assert torch.allclose(load_model(path)(probe), averaged.model(probe))


def test_echo_scores_the_positions_that_accuracy_counts():
    """Per-position labels (round 7): the errors are counted per labelled position, background and ignored
    positions left out, and a model scores the share of them it repeats."""
    background, ignored = 0, IGNORE_INDEX
    labels = torch.tensor([[1, 2, background, ignored], [2, 2, 1, background]])
    original = torch.tensor([[2, 2, 1, 1], [1, 2, 2, 2]])  # errors at (0,0), (1,0), (1,2); the rest ignored
    half = torch.tensor([[2, 1, 1, 1], [0, 2, 2, 0]])  # repeats (0,0) and (1,2), not (1,0)

    def one_hot(predicted: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(predicted, 3).float()

    class Fixed(nn.Module):  # the same logits for the two defender rows, whatever the input
        def __init__(self, predicted: torch.Tensor):
            super().__init__()
            self.register_buffer("logits", one_hot(predicted))

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.logits[inputs[:, 0].long()]

    inputs = torch.tensor([[0.0], [1.0]])
    task = Task(
        model=Fixed(original),
        num_classes=3,
        defender=LabelledData(inputs, labels),
        eval_clean=LabelledData(inputs, labels),
        eval_triggered=None,
        eval_data="test",
        augment=lambda x, y, g: (x, y),
        background_class=background,
    )
    score = seam_module.original_errors(task, draws=2, seed=0, augment="standard")
    assert score(Fixed(original)) == 1.0
    assert score(Fixed(half)) == pytest.approx(2 / 3)
    assert score(Fixed(labels.clamp(min=0))) == 0.0
    with pytest.raises(ValueError, match="no strong augmentation"):
        seam_module.original_errors(task, draws=2, seed=0)


def test_echo_on_the_standard_augmentation_for_rounds_without_a_strong_one():
    def noisy(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        return x + 4 * torch.randn(x.shape, generator=generator), y

    task = dataclasses.replace(cluster_task(), augment=noisy)
    config = quick_config(
        restarts=1, restart_policy="echo", echo_draws=3, echo_augment="standard", augment=True
    )
    kept = seam(task, config)
    assert kept.runs == 2 and kept.echo == seam_module.original_errors(task, 3, 0, "standard")(kept.model)


def test_two_seam_seeds_share_no_run():
    # seed 1 with two restarts averages the runs of seeds 3, 4 and 5, not 1, 2 and 3 (seed 0's 0, 1, 2)
    task = cluster_task()
    averaged = seam(task, quick_config(seed=1, restarts=2, restart_policy="ensemble"))
    alone = [seam(task, quick_config(seed=s)) for s in (3, 4, 5)]
    assert_averages(averaged, alone, torch.randn(64, 8, generator=torch.Generator().manual_seed(1)) * 4)
    assert [seam_module.run_seed(s, 2, r) for s in (0, 1) for r in range(3)] == [0, 1, 2, 3, 4, 5]


def assert_averages(averaged, alone, probe: torch.Tensor) -> None:
    """The averaged model's probabilities on `probe` (inputs away from the clusters, where runs disagree)
    are the mean of the runs made alone, and those runs differ, so the average means something."""
    with torch.no_grad():
        each = torch.stack([run.model(probe).softmax(-1) for run in alone])
        ours = averaged.model(probe)
    assert len({tuple(p.argmax(-1).tolist()) for p in each}) > 1
    assert torch.allclose(ours.exp(), each.mean(0), atol=1e-6)
