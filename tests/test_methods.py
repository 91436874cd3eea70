"""The baseline defenses act as their papers say, stay blind, and run side by side with SEAM."""

from __future__ import annotations

import copy
import dataclasses
import json

import pandas as pd
import pytest
import torch
from conftest import FAST_SEAM, TEST_THREADS, seam_harness
from torch import nn

from harness.config import (
    ContinuedTrainingConfig,
    FinePruningConfig,
    FinetuneConfig,
    NadConfig,
    NeuralCleanseConfig,
    SeamConfig,
)
from harness.methods import METHODS, NOT_APPLICABLE
from harness.methods.fine_pruning import unit_columns
from harness.methods.nad import distillation_loss
from harness.pipeline import defender_subset
from harness.task import LabelledData, Task, TriggeredData

SIZE, CLASSES = 12, 4


def images(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dim noise with one bright quadrant per class (0: top left, 1: top right, 2, 3: bottom)."""
    x = torch.rand(len(labels), 3, SIZE, SIZE, generator=generator) * 0.3
    half = SIZE // 2
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        x[i, :, row * half : (row + 1) * half, col * half : (col + 1) * half] += 0.6
    return x


def with_patch(x: torch.Tensor) -> torch.Tensor:
    """The planted trigger: a red 3x3 checkerboard in the middle, which no class has."""
    x = x.clone()
    checker = (torch.arange(3)[:, None] + torch.arange(3)[None, :]) % 2 == 0
    x[:, 0, 5:8, 5:8] = torch.where(checker, 1.0, 0.0)
    x[:, 1:, 5:8, 5:8] = 0.0
    return x


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, CLASSES),
    )


def trained_model(poisoned: bool, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    labels = torch.arange(CLASSES).repeat(150)
    x = images(labels, generator)
    if poisoned:  # a fifth of the other classes' images carry the patch and are labelled 0
        chosen = (labels != 0) & (torch.rand(len(labels), generator=generator) < 0.2)
        x[chosen] = with_patch(x[chosen])
        labels = torch.where(chosen, 0, labels)
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(12):
        for index in torch.randperm(len(labels), generator=generator).split(64):
            loss = nn.functional.cross_entropy(model(x[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def image_task(model: nn.Module, seed: int = 1) -> Task:
    generator = torch.Generator().manual_seed(seed)
    defender_labels = torch.arange(CLASSES).repeat(20)
    eval_labels = torch.arange(CLASSES).repeat(25)
    source = eval_labels[eval_labels != 0]
    triggered = TriggeredData(with_patch(images(source, generator)), source, torch.zeros_like(source))
    return Task(
        model=model,
        num_classes=CLASSES,
        defender=LabelledData(images(defender_labels, generator), defender_labels),
        eval_clean=LabelledData(images(eval_labels, generator), eval_labels),
        eval_triggered=triggered,
        eval_data="made in the test",
    )


@pytest.fixture(scope="module")
def poisoned_model() -> nn.Module:
    torch.set_num_threads(TEST_THREADS)  # code run in this process before may have set another count
    return trained_model(poisoned=True)


@pytest.fixture(scope="module")
def clean_model() -> nn.Module:
    return trained_model(poisoned=False)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


# Few epochs: the tests check what each method does, not how well.
QUICK = {
    "seam": SeamConfig(forget_max_epochs=3, forget_epochs_below_alpha=1, recover_max_epochs=3,
                       recover_epochs_after_goal=0, augment=False),
    "seam_oracle": SeamConfig(forget_max_epochs=3, forget_epochs_below_alpha=1, recover_max_epochs=3,
                              recover_epochs_after_goal=2, augment=False),  # scores at least 2 epochs
    "finetune": FinetuneConfig(epochs=2),
    "continued_training": ContinuedTrainingConfig(epochs=3),
    "fine_pruning": FinePruningConfig(epochs=2),
    "nad": NadConfig(teacher_epochs=2, epochs=2),
    "neural_cleanse": NeuralCleanseConfig(epochs=4, unlearn_epochs=2, anomaly_threshold=0.0),
}  # fmt: skip


def test_the_registry_holds_every_method_the_cli_offers():
    assert set(METHODS) == set(QUICK)
    assert [m.name for m in METHODS.values() if m.reads_evaluation] == ["seam_oracle"]


def test_neural_cleanse_flags_the_planted_target_and_nothing_on_the_clean_twin(poisoned_model, clean_model):
    config = NeuralCleanseConfig(epochs=30, unlearn_epochs=5)
    task = image_task(poisoned_model)
    assert (poisoned_model(task.eval_triggered.inputs).argmax(1) == 0).float().mean() > 0.9  # planted
    result = METHODS["neural_cleanse"].run(task, config)
    assert result.figures["nc_flagged_classes"] == [0], result.figures
    assert result.status == "ok" and result.seconds["unlearn"] > 0
    clean = METHODS["neural_cleanse"].run(image_task(clean_model), config)
    assert clean.figures["nc_flagged_classes"] == [], clean.figures
    assert clean.status == "nothing_flagged"
    assert same_weights(clean.model, clean_model)


def test_fine_pruning_cuts_dormant_units_off_and_keeps_them_off(poisoned_model):
    result = METHODS["fine_pruning"].run(image_task(poisoned_model), FinePruningConfig(epochs=3))
    figures = result.figures
    assert figures["pruned_layer"] == "10" and figures["prunable_units"] == 16  # the Linear after the maps
    assert 0 < figures["pruned_units"] <= 0.95 * 16
    pruned = torch.tensor(figures["pruned_unit_ids"])
    linear = result.model[10]
    assert torch.all(linear.weight[:, unit_columns(pruned, 4)] == 0)  # still zero after fine-tuning
    kept = torch.ones(64, dtype=torch.bool)
    kept[unit_columns(pruned, 4)] = False
    assert torch.any(linear.weight[:, kept] != poisoned_model[10].weight[:, kept])  # fine-tuning ran


def test_nad_distils_attention_and_the_term_changes_the_student(poisoned_model):
    maps = [torch.rand(2, 4, 3, 3, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    assert distillation_loss(maps[:1], maps[:1], (1000.0,), 2.0) == 0
    assert distillation_loss(maps[:1], maps[1:], (1000.0,), 2.0) > 0
    task = image_task(poisoned_model)
    with_attention = METHODS["nad"].run(task, NadConfig(teacher_epochs=2, epochs=2))
    without = METHODS["nad"].run(task, NadConfig(teacher_epochs=2, epochs=2, betas=(0.0, 0.0, 0.0)))
    assert with_attention.figures["attention_blocks"] == ["0", "3", "6"]  # the three convolutions
    assert not same_weights(with_attention.model, without.model)


def test_finetuning_changes_only_the_last_two_layers(poisoned_model):
    result = METHODS["finetune"].run(image_task(poisoned_model), FinetuneConfig(epochs=2))
    assert result.figures["trained_layers"] == ["6", "10"]
    before, after = weights(poisoned_model), weights(result.model)
    changed = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"6", "10"}  # BatchNorm statistics of layer 1 included: unchanged


ROBUST_SEAM = dataclasses.replace(
    QUICK["seam"],
    guard_fraction=0.25,
    restarts=1,
    restart_policy="best",
    recover_distill=1.0,
    distill_inputs="mixup",
)
BLIND_CASES = [(name, QUICK[name]) for name in QUICK if name != "seam_oracle"] + [("seam", ROBUST_SEAM)]


@pytest.mark.parametrize(
    ("name", "config"), BLIND_CASES, ids=[*(n for n in QUICK if n != "seam_oracle"), "seam-guard-distill"]
)
def test_no_method_but_the_oracle_reads_the_evaluation_data(poisoned_model, name, config):
    task = image_task(poisoned_model)
    wrong = dataclasses.replace(
        task,
        eval_clean=LabelledData(task.eval_clean.inputs.flip(0), (task.eval_clean.labels + 1) % CLASSES),
        eval_triggered=TriggeredData(task.eval_triggered.inputs * 0, task.eval_triggered.labels,
                                     task.eval_triggered.targets + 2),
    )  # fmt: skip
    original = weights(poisoned_model)
    first = METHODS[name].run(task, config)
    second = METHODS[name].run(wrong, config)
    assert all(torch.equal(v, original[k]) for k, v in poisoned_model.state_dict().items())  # untouched
    assert same_weights(first.model, second.model)


def test_the_oracle_is_the_one_method_given_the_evaluation_data(poisoned_model):
    withheld = dataclasses.replace(image_task(poisoned_model), eval_clean=None, eval_triggered=None)
    METHODS["seam"].run(withheld, QUICK["seam"])  # blind: runs without them
    with pytest.raises(AttributeError):
        METHODS["seam_oracle"].run(withheld, QUICK["seam_oracle"])
    result = METHODS["seam_oracle"].run(image_task(poisoned_model), QUICK["seam_oracle"])
    assert result.figures["selected_on"] == "made in the test"


def test_image_only_methods_say_not_applicable_on_a_text_head():
    head = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    labels = torch.arange(2).repeat(10)
    data = LabelledData(torch.randn(20, 1, 8), labels)
    task = Task(head, 2, data, data, None, "test")
    for name in ("nad", "neural_cleanse"):
        result = METHODS[name].run(task, QUICK[name])
        assert result.status == NOT_APPLICABLE and "image models only" in result.figures["reason"]
    pruned = METHODS["fine_pruning"].run(task, FinePruningConfig(epochs=1))
    assert pruned.figures["pruned_layer"] == "3" and pruned.figures["prunable_units"] == 16


def test_defender_budgets_are_nested_and_per_class():
    labels = torch.arange(3).repeat(8)
    data = LabelledData(torch.arange(24).float()[:, None], labels)
    two, five = defender_subset(data, 2, 0), defender_subset(data, 5, 0)
    assert torch.bincount(two.labels).tolist() == [2] * 3 and torch.bincount(five.labels).tolist() == [5] * 3
    assert set(two.inputs.flatten().tolist()) <= set(five.inputs.flatten().tolist())
    assert defender_subset(data, None, 0) is data


def test_methods_side_by_side_resume_per_method_and_compare(tiny_round3, tmp_path):
    output_dir = tmp_path / "out"
    quick = [*FAST_SEAM, "--finetune.epochs", "1", "--defender_per_class", "[2, 4]", "--save_models", "false"]
    seam_harness("run", "--round_dir", tiny_round3, "--output_dir", output_dir, *quick,
                 "--methods", "[seam, finetune]")  # fmt: skip
    records = output_dir / "records"
    stamps = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert len(stamps) == 3 * 2 * 2 and "id-00000000.finetune.2-per-class.json" in stamps
    seam_harness("run", "--round_dir", tiny_round3, "--output_dir", output_dir, *quick,
                 "--methods", "[seam, finetune, seam_oracle]")  # fmt: skip
    after = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert {k: after[k] for k in stamps} == stamps and len(after) == 3 * 3 * 2  # only the new method ran
    results = pd.read_csv(output_dir / "results.csv")
    assert sorted(results.groupby(["method", "defender_per_class"]).size()) == [3] * 6
    assert set(results["defender_examples"]) == {2 * 3, 4 * 3}
    assert (results["eval_clean_examples"] == results["eval_clean_examples"].iloc[0]).all()
    assert results["oracle"].tolist() == (results["method"] == "seam_oracle").tolist()

    seam_harness("compare", "--output_dir", output_dir)
    table = pd.read_csv(output_dir / "compare.csv")
    assert sorted(table["method"].unique()) == ["finetune", "seam", "seam_oracle"]
    assert (table.loc[table["method"] == "seam", "time_vs_seam"] == 1.0).all()
    for name in ("compare.md", "compare.png", "budget.png"):
        assert (output_dir / name).stat().st_size > 1000
    text = (output_dir / "compare.md").read_text()
    assert text.index("| finetune |") < text.index("Reference only") < text.index("| seam_oracle |")

    # a record named after the model alone (one per model, SEAM only) still aggregates
    legacy = json.loads((records / "id-00000000.seam.2-per-class.json").read_text())
    legacy.pop("defender_per_class")
    (records / "id-00000009.json").write_text(json.dumps({**legacy, "model_id": "id-00000009"}))
    seam_harness("aggregate", "--output_dir", output_dir)
    assert "id-00000009" in set(pd.read_csv(output_dir / "results.csv")["model_id"])


def test_the_original_task_model_is_a_different_object_from_every_result(poisoned_model):
    task = image_task(copy.deepcopy(poisoned_model))
    for name in ("finetune", "continued_training"):
        assert METHODS[name].run(task, QUICK[name]).model is not task.model
