"""SEAM, Algorithm 1 of Zhu et al., "Selective Amnesia" (IEEE S&P 2023).

1. ACC_orig = accuracy on the defender's clean data D.
2. Forget: train on D with a random *wrong* label per sample (uniform over the K-1 other classes, redrawn
   every batch, or drawn once with forget_label_draw="once") until accuracy on D with true labels is
   below alpha (default min(2/K, 0.6)).
3. Recover: with a fresh optimizer, train on D with true labels until accuracy on D reaches
   beta * ACC_orig (or beta, with recover_target="absolute").
4. The model as it is when recovery stops is the output: no epoch is chosen by looking at anything.

Options beyond the paper (SeamConfig documents each): which labels forgetting draws, a frozen classifier
while forgetting, noise on the weights between the phases (`recover_perturb`), a re-initialised classifier,
annealed recovery, augmentation (a strong one for recovery with `recover_augment`), and the guard: a
share of the defender's examples SEAM never trains on, which judges the result (`destroyed`) and chooses
among restarts; restarts kept by a blind score (`echo`) or averaged into one model (`ensemble`).

Blind by construction: this module reads `task.defender` and nothing else of the Task's data. The one
exception is `recovery_score`, which only `seam_oracle` passes (harness/methods/seam_oracle.py).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from harness.config import SeamConfig
from harness.ensemble import ProbabilityAverage
from harness.methods import MethodResult
from harness.methods.common import split_per_class
from harness.metrics import at_least
from harness.task import IGNORE_INDEX, LabelledData, Task
from harness.training import StepClock, data_accuracy, predict, resolve_device, train_epoch


@dataclass
class SeamResult:
    model: nn.Module
    status: str
    forget_reached: bool
    recovery_reached: bool
    alpha: float
    recover_goal: float
    defender_acc_orig: float
    defender_acc_forgotten: float
    defender_acc_final: float
    forget_epochs: int
    recover_epochs: int
    forget_seconds: float
    recover_seconds: float
    seed: int
    forget_step_seconds: float = 0.0  # inside training steps (forward, backward, optimizer step)
    recover_step_seconds: float = 0.0
    forget_epochs_all_runs: int = 0  # over the restarts too: the epochs the step seconds cover
    recover_epochs_all_runs: int = 0
    runs: int = 1
    guard_n: int = 0
    guard_acc_orig: float = math.nan
    guard_acc_final: float = math.nan
    few_shot: bool = False  # few_shot_settings applied
    echo: float = math.nan  # share of the original's errors repeated (restart_policy echo)
    ensemble_members: int = 1  # runs whose class probabilities the model averages (restart_policy ensemble)


FAILED = ("recovery_failed", "destroyed")  # statuses after which a restart runs (restart_policy on_failure)


def forget_alpha(num_classes: int, config: SeamConfig) -> float:
    return config.alpha if config.alpha is not None else min(2.0 / num_classes, 0.6)


def random_wrong_labels(
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    background: int | None = None,
    any_class: bool = False,
) -> torch.Tensor:
    """A label drawn uniformly from the K-1 classes other than the true one (never the true label).

    With `any_class`, uniform over all K classes instead (the true one included, as in the authors'
    TrojAI scripts). Positions labelled IGNORE_INDEX stay ignored; those of the `background` class
    keep their label.
    """
    if any_class:
        wrong = torch.randint(0, num_classes, labels.shape, generator=generator).to(labels.device)
    else:
        shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
        wrong = (labels + shift) % num_classes
    kept = labels == IGNORE_INDEX
    if background is not None:
        kept |= labels == background
    return torch.where(kept, labels, wrong)


def classifier(model: nn.Module) -> nn.Linear | None:
    """The last Linear layer: the classifier of every supported architecture."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def reset_classifier(model: nn.Module) -> None:
    if (layer := classifier(model)) is not None:
        layer.reset_parameters()


def forgetting_parameters(
    model: nn.Module, freeze_classifier: bool, freeze_share: float = 0.0
) -> list[nn.Parameter]:
    """Every parameter, less the classifier's (`freeze_classifier`: the model cannot then forget by
    flattening its last layer alone, so the layers below have to change) and less the first
    `freeze_share` of the parameter tensors from the input side (the generic first layers kept)."""
    if not 0.0 <= freeze_share < 1.0:
        raise ValueError(
            f"forget_freeze_share is {freeze_share}: use a share from 0 (off) up to, not including, 1"
        )
    parameters = list(model.parameters())
    frozen = {id(p) for p in parameters[: round(freeze_share * len(parameters))]}
    layer = classifier(model) if freeze_classifier else None
    if layer is not None:
        frozen |= {id(p) for p in layer.parameters()}
    return [p for p in parameters if id(p) not in frozen]


def perturb_weights(model: nn.Module, scale: float, generator: torch.Generator) -> None:
    """Add noise of `scale` times each weight matrix's standard deviation (biases and norms untouched)."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                noise = torch.randn(parameter.shape, generator=generator).to(parameter.device)
                parameter.add_(scale * parameter.std() * noise)


def make_optimizer(
    name: str,
    parameters: list[nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    momentum: float,
) -> torch.optim.Optimizer:
    """A fresh optimizer for one phase: "adam" or "sgd" (with momentum)."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use adam or sgd")


def annealed_lr(base_lr: float, epoch_after_goal: int, epochs_after_goal: int) -> float:
    """Half-cosine learning rate for the `epoch_after_goal`-th (1-based) of `epochs_after_goal` epochs.

    It never reaches 0 (the last epoch still trains), and it stays at its last value if the defender's
    accuracy has to climb back to the goal after the planned epochs.
    """
    epoch = min(epoch_after_goal, epochs_after_goal)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / (epochs_after_goal + 1)))


def run_seed(seed: int, restarts: int, run: int) -> int:
    """The seed of run `run` (0: the first) of SEAM seed `seed`: seed x (1 + restarts) + run. Two SEAM
    seeds then share no run (seed 0 runs 0, 1, 2; seed 1 runs 3, 4, 5), so a study's seeds are
    independent draws; with no restarts the run's seed is the SEAM seed."""
    return seed * (1 + restarts) + run


def seam(
    task: Task, config: SeamConfig, recovery_score: Callable[[nn.Module], float] | None = None
) -> SeamResult:
    """SEAM on a copy of `task.model` (left untouched), with the guard and restarts if configured."""
    config, few_shot = few_shot_config(task, config)
    if config.restart_policy not in ("on_failure", "best", "echo", "ensemble"):
        raise ValueError(
            f"restart_policy is {config.restart_policy!r}: use on_failure, best, echo or ensemble"
        )
    if config.restart_policy == "best" and config.restarts and not config.guard_fraction:
        raise ValueError("restart_policy best chooses by guard accuracy: set guard_fraction > 0")
    check_overlay("restart_settings", config.restart_settings, {"guard_fraction", "seed"})
    if not 0 <= config.guard_fraction < 1:
        raise ValueError(f"guard_fraction is {config.guard_fraction}: use 0 (off) or a share below 1")
    echo_of = None
    if config.restart_policy == "echo" and config.restarts:
        echo_of = original_errors(task, config.echo_draws, config.seed, config.echo_augment)
    train_task, guard = task, None
    if config.guard_fraction > 0:
        split = torch.Generator().manual_seed(config.seed)  # one guard part for every restart
        kept, held_out = split_per_class(task.defender.labels, config.guard_fraction, split)
        defender = task.defender
        train_task = dataclasses.replace(
            task, defender=LabelledData(defender.inputs[kept], defender.labels[kept])
        )
        guard = LabelledData(defender.inputs[held_out], defender.labels[held_out])
    guard_acc_orig = guard_accuracy(task, task.model, guard)
    runs: list[SeamResult] = []
    for run in range(1 + config.restarts):
        run_config = dataclasses.replace(config, seed=run_seed(config.seed, config.restarts, run))
        if run > 0:
            run_config = dataclasses.replace(run_config, **config.restart_settings)
        result = seam_once(train_task, run_config, recovery_score)
        result.guard_n = len(guard) if guard is not None else 0
        result.guard_acc_orig = guard_acc_orig
        result.guard_acc_final = guard_accuracy(task, result.model, guard)
        result.status = judged_on_guard(
            result.status, guard_acc_orig, result.guard_acc_final, config.guard_max_drop
        )
        if echo_of is not None:
            result.echo = echo_of(result.model)
        runs.append(result)
        if config.restart_policy == "on_failure" and result.status not in FAILED:
            break
    if config.restart_policy == "ensemble":
        kept_run = averaged_runs(train_task, runs, guard, guard_acc_orig, config.guard_max_drop)
    else:
        kept_run = least_echo(runs) if echo_of is not None else best_run(runs)
    kept_run.runs = len(runs)
    kept_run.few_shot = few_shot
    kept_run.forget_seconds = sum(r.forget_seconds for r in runs)
    kept_run.recover_seconds = sum(r.recover_seconds for r in runs)
    kept_run.forget_step_seconds = sum(r.forget_step_seconds for r in runs)
    kept_run.recover_step_seconds = sum(r.recover_step_seconds for r in runs)
    kept_run.forget_epochs_all_runs = sum(r.forget_epochs for r in runs)
    kept_run.recover_epochs_all_runs = sum(r.recover_epochs for r in runs)
    return kept_run


OVERLAYS = {"restarts", "restart_policy", "restart_settings", "few_shot_per_class", "few_shot_settings"}


def check_overlay(name: str, settings: dict, also_excluded: set[str]) -> None:
    """Settings laid over the config (restart_settings, few_shot_settings) must be SEAM settings, and not
    the ones that lay settings over others."""
    allowed = set(SeamConfig.__dataclass_fields__) - OVERLAYS - also_excluded
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"{name}: {unknown} cannot be set there (or are not SEAM settings)")


def few_shot_config(task: Task, config: SeamConfig) -> tuple[SeamConfig, bool]:
    """`config` with `few_shot_settings` on top when some class of the defender's data has at most
    `few_shot_per_class` examples (0: never), and whether it applied. It reads the defender's labels only."""
    check_overlay("few_shot_settings", config.few_shot_settings, set())
    if config.few_shot_per_class <= 0:
        return config, False
    task.defender.require_one_label_per_example("few_shot_per_class")
    labels = task.defender.labels
    counts = torch.bincount(labels)
    if int(counts[counts > 0].min()) > config.few_shot_per_class:
        return config, False
    return dataclasses.replace(config, **config.few_shot_settings), True


def guard_fell(before: float, after: float, max_drop: float) -> bool:
    """The guard accuracy fell by `max_drop` or more (compared with a tolerance: accuracies are float32
    shares such as 9/10, and 0.9 in float32 is below 1.0 - 0.1 in float64)."""
    drop = before - after
    return drop > 0 and at_least(drop, max_drop)


def judged_on_guard(status: str, before: float, after: float, max_drop: float) -> str:
    """`destroyed` for a result that had not failed otherwise but fell on the guard; else `status`."""
    return "destroyed" if status not in FAILED and guard_fell(before, after, max_drop) else status


def guard_accuracy(task: Task, model: nn.Module, guard: LabelledData | None) -> float:
    if guard is None or len(guard) == 0:
        return math.nan
    return data_accuracy(model, guard, task.forward, task.background_class)


def best_run(runs: list[SeamResult]) -> SeamResult:
    """Among the runs that passed (else all): the best guard accuracy, then the best accuracy on the
    examples SEAM trained on; the earliest on a tie."""
    return max(passed_or_all(runs), key=lambda r: (nan_low(r.guard_acc_final), r.defender_acc_final))


def least_echo(runs: list[SeamResult]) -> SeamResult:
    """Among the runs that passed (else all): the fewest of the original's errors repeated; the earliest on
    a tie."""
    return min(passed_or_all(runs), key=lambda r: r.echo)


def averaged_runs(
    task: Task,
    runs: list[SeamResult],
    guard: LabelledData | None,
    guard_acc_orig: float,
    guard_max_drop: float,
) -> SeamResult:
    """The runs that passed (else all) as one model that averages their class probabilities. The figures
    are the first such run's, but for the model, the accuracies (those of the average, on the examples
    SEAM trained on and on the guard), the status (the first member's that is not `ok`; `destroyed` if
    the average fell on the guard) and the number of members."""
    members = passed_or_all(runs)
    if len(members) == 1:
        return members[0]
    model = ProbabilityAverage([r.model for r in members]).eval()
    status = next((r.status for r in members if r.status != "ok"), "ok")
    guard_acc_final = guard_accuracy(task, model, guard)
    status = judged_on_guard(status, guard_acc_orig, guard_acc_final, guard_max_drop)
    return dataclasses.replace(
        members[0],
        model=model,
        status=status,
        forget_reached=all(r.forget_reached for r in members),
        recovery_reached=all(r.recovery_reached for r in members),
        defender_acc_final=data_accuracy(model, task.defender, task.forward, task.background_class),
        guard_acc_final=guard_acc_final,
        ensemble_members=len(members),
    )


def passed_or_all(runs: list[SeamResult]) -> list[SeamResult]:
    return [r for r in runs if r.status not in FAILED] or runs


def original_errors(
    task: Task, draws: int, seed: int, augment: str = "strong"
) -> Callable[[nn.Module], float]:
    """A scorer: the share of the original model's errors on augmented defender examples (the round's
    strong augmentation, or its standard one with `augment` "standard") that a model repeats (same wrong
    class). With per-position labels (round 7) the positions that accuracy counts are scored. The inputs
    are drawn once, so every run is scored on the same ones."""
    if augment not in ("standard", "strong"):
        raise ValueError(f"echo_augment is {augment!r}: use standard or strong")
    augmentation = task.strong_augment if augment == "strong" else task.augment
    if augmentation is None:
        raise ValueError(f"restart_policy echo: this round type has no {augment} augmentation")
    generator = torch.Generator().manual_seed(seed)
    drawn = [augmentation(task.defender.inputs, task.defender.labels, generator) for _ in range(draws)]
    inputs = torch.cat([x for x, _ in drawn])
    labels = torch.cat([y for _, y in drawn])
    original = predict(task.model, inputs, task.forward)
    counted = labels != IGNORE_INDEX
    if task.background_class is not None:  # as accuracy counts them
        counted &= labels != task.background_class
    wrong = (original != labels) & counted
    misled = wrong if wrong.dim() == 1 else wrong.any(dim=1)  # the inputs with at least one error
    misled_inputs, where, misled_to = inputs[misled], wrong[misled], original[misled]

    def echo(model: nn.Module) -> float:
        if len(misled_inputs) == 0:
            return 0.0
        repeated = predict(model, misled_inputs, task.forward)[where] == misled_to[where]
        return float(repeated.float().mean())

    return echo


def nan_low(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def distillation_loss(
    task: Task,
    weight: float,
    temperature: float,
    student: nn.Module,
    inputs: str = "batch",
    generator: torch.Generator | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """weight * T^2 * KL(original || student) at temperature T, per batch of (augmented) inputs, or, with
    `inputs` "mixup", on the batch's examples blended pairwise (the student sees them in one more pass)."""
    if inputs not in ("batch", "mixup"):
        raise ValueError(f"distill_inputs is {inputs!r}: use batch or mixup")
    teacher = copy.deepcopy(task.model).to(next(student.parameters()).device).eval()

    def loss(batch: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if inputs == "mixup":
            if not batch.is_floating_point():
                raise ValueError("distill_inputs mixup needs real-valued inputs (images, embedding vectors)")
            share = torch.rand(len(batch), generator=generator).to(batch.device)
            share = share.reshape(-1, *([1] * (batch.dim() - 1)))
            partner = torch.randperm(len(batch), generator=generator).to(batch.device)
            batch = share * batch + (1 - share) * batch[partner]
            logits = task.forward(student, batch)
        with torch.no_grad():
            target = torch.log_softmax(task.forward(teacher, batch) / temperature, dim=-1)
        log_student = torch.log_softmax(logits / temperature, dim=-1)
        kl = torch.nn.functional.kl_div(
            log_student.reshape(-1, logits.shape[-1]),
            target.reshape(-1, logits.shape[-1]),
            reduction="batchmean",
            log_target=True,
        )
        return weight * temperature**2 * kl

    return loss


def seam_once(
    task: Task, config: SeamConfig, recovery_score: Callable[[nn.Module], float] | None = None
) -> SeamResult:
    """One SEAM run on a copy of `task.model`, with `config.seed`.

    `recovery_score` (the oracle only): score the model after every recovery epoch and return the
    best-scoring one instead of the last.
    """
    torch.manual_seed(config.seed)  # dropout and any layer init inside the model
    generator = torch.Generator().manual_seed(config.seed)
    device = resolve_device(config.device)
    model = copy.deepcopy(task.model).to(device)
    data = LabelledData(task.defender.inputs.to(device), task.defender.labels.to(device))  # moved once
    k = task.num_classes
    augment = task.augment if config.augment else None
    if config.recover_augment not in ("standard", "strong"):
        raise ValueError(f"recover_augment is {config.recover_augment!r}: use standard or strong")
    recover_augment = augment
    if config.recover_augment == "strong":
        if task.strong_augment is None:
            raise ValueError("recover_augment strong: this round type has no strong augmentation")
        recover_augment = task.strong_augment

    def defender_accuracy() -> float:
        return data_accuracy(model, data, task.forward, task.background_class)

    forget_clock, recover_clock = StepClock(), StepClock()

    def one_epoch(
        optimizer: torch.optim.Optimizer,
        labels: torch.Tensor,
        clock: StepClock,
        relabel=None,
        extra_loss=None,
        augmentation=augment,
    ) -> None:
        train_epoch(
            model,
            data.inputs,
            labels,
            optimizer,
            config.batch_size,
            generator,
            augmentation,
            relabel,
            task.forward,
            extra_loss=extra_loss,
            clock=clock,
        )

    # Background positions keep their label while forgetting unless relabel_background.
    kept_class = None if config.relabel_background else task.background_class
    if config.forget_labels not in ("wrong", "any"):
        raise ValueError(f"forget_labels is {config.forget_labels!r}: use wrong or any")
    any_class = config.forget_labels == "any"
    if config.forget_label_draw not in ("batch", "once"):
        raise ValueError(f"forget_label_draw is {config.forget_label_draw!r}: use batch or once")
    if config.recover_perturb < 0:
        raise ValueError(f"recover_perturb is {config.recover_perturb}: use 0 (off) or a positive scale")
    acc_orig = defender_accuracy()
    alpha = forget_alpha(k, config)

    start = time.perf_counter()
    forgetting = forgetting_parameters(model, config.forget_freeze_classifier, config.forget_freeze_share)
    trained = {id(p) for p in forgetting}
    fixed = [(p, p.requires_grad) for p in model.parameters() if id(p) not in trained]
    for parameter, _ in fixed:  # no gradients for fixed layers: the backward pass stops above the first ones
        parameter.requires_grad_(False)
    optimizer = make_optimizer(
        config.forget_optimizer,
        forgetting,
        config.forget_lr,
        config.forget_weight_decay,
        (0.9, 0.999),
        config.sgd_momentum,
    )
    if config.forget_label_draw == "once":  # one random labelling of D, kept for the whole phase
        forget_targets, relabel = random_wrong_labels(data.labels, k, generator, kept_class, any_class), None
    else:
        forget_targets = data.labels
        relabel = lambda y, g: random_wrong_labels(y, k, g, kept_class, any_class)  # noqa: E731
    forget_epochs, epochs_below = 0, 0
    acc_forgotten = acc_orig
    while forget_epochs < config.forget_max_epochs and epochs_below < config.forget_epochs_below_alpha:
        one_epoch(optimizer, forget_targets, forget_clock, relabel)
        forget_epochs += 1
        acc_forgotten = defender_accuracy()
        if acc_forgotten < alpha:  # counted, not reset: forgetting always ends
            epochs_below += 1
    forget_reached = epochs_below >= config.forget_epochs_below_alpha
    for parameter, requires_grad in fixed:
        parameter.requires_grad_(requires_grad)
    forget_seconds = time.perf_counter() - start

    start = time.perf_counter()
    if config.reinit_classifier:
        reset_classifier(model)
    if config.recover_perturb > 0:
        perturb_weights(model, config.recover_perturb, generator)
    goal = config.beta * acc_orig if config.recover_target == "relative" else config.beta
    optimizer = make_optimizer(
        config.recover_optimizer,
        list(model.parameters()),
        config.recover_lr,
        config.recover_weight_decay,
        config.recover_betas,
        config.sgd_momentum,
    )
    distill = None
    if config.recover_distill > 0:
        distill = distillation_loss(
            task, config.recover_distill, config.distill_temperature, model, config.distill_inputs, generator
        )
    recover_epochs, epochs_after_goal = 0, 0
    # Unless reinit or noise changed it, the model is the one the last forgetting check measured.
    changed = config.reinit_classifier or config.recover_perturb > 0
    acc_final = defender_accuracy() if changed else acc_forgotten
    best_score, best_state = -math.inf, None
    while recover_epochs < config.recover_max_epochs and (
        acc_final < goal or epochs_after_goal < config.recover_epochs_after_goal
    ):
        if acc_final >= goal:
            epochs_after_goal += 1
            if config.recover_anneal:
                for group in optimizer.param_groups:
                    group["lr"] = annealed_lr(
                        config.recover_lr, epochs_after_goal, config.recover_epochs_after_goal
                    )
        one_epoch(optimizer, data.labels, recover_clock, extra_loss=distill, augmentation=recover_augment)
        recover_epochs += 1
        acc_final = defender_accuracy()
        if recovery_score is not None and (score := recovery_score(model)) > best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
        acc_final = defender_accuracy()
    recovery_reached = acc_final >= goal
    recover_seconds = time.perf_counter() - start

    model.eval()
    if not recovery_reached:
        status = "recovery_failed"
    elif not forget_reached:
        status = "forget_incomplete"
    else:
        status = "ok"
    return SeamResult(
        model=model,
        status=status,
        forget_reached=forget_reached,
        recovery_reached=recovery_reached,
        alpha=alpha,
        recover_goal=goal,
        defender_acc_orig=acc_orig,
        defender_acc_forgotten=acc_forgotten,
        defender_acc_final=acc_final,
        forget_epochs=forget_epochs,
        recover_epochs=recover_epochs,
        forget_seconds=forget_seconds,
        recover_seconds=recover_seconds,
        seed=config.seed,
        forget_step_seconds=forget_clock.seconds,
        recover_step_seconds=recover_clock.seconds,
    )


def mitigate(task: Task, config: SeamConfig) -> MethodResult:
    """SEAM as a method among peers (harness/methods/__init__.py)."""
    return as_method_result(seam(task, config))


def as_method_result(result: SeamResult) -> MethodResult:
    figures = {
        "forget_epochs": result.forget_epochs,
        "recover_epochs": result.recover_epochs,
        "forget_reached": result.forget_reached,
        "recovery_reached": result.recovery_reached,
        "alpha": result.alpha,
        "recover_goal": result.recover_goal,
        "defender_acc_orig": result.defender_acc_orig,
        "defender_acc_forgotten": result.defender_acc_forgotten,
        "defender_acc_final": result.defender_acc_final,
        "runs": result.runs,
        "seed_kept": result.seed,
        "few_shot": result.few_shot,
        "echo": result.echo,
        "ensemble_members": result.ensemble_members,
        "guard_n": result.guard_n,
        "guard_acc_orig": result.guard_acc_orig,
        "guard_acc_final": result.guard_acc_final,
        "forget_step_seconds": result.forget_step_seconds,
        "recover_step_seconds": result.recover_step_seconds,
        "forget_epochs_all_runs": result.forget_epochs_all_runs,
        "recover_epochs_all_runs": result.recover_epochs_all_runs,
    }
    seconds = {"forget": result.forget_seconds, "recover": result.recover_seconds}
    return MethodResult(result.model, result.status, seconds, figures)
