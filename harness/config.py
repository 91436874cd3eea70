"""Settings as plain dataclasses (no torch import here, so the CLI starts fast).

Per-round defaults live in round_configs/roundN.yaml; every field can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROUND_CONFIG_DIR = Path(__file__).resolve().parent.parent / "round_configs"

# torch threads per model, for SEAM and the generators alike. Fixed rather than cores / n_jobs: float sums
# in another order change SEAM's path, and whether a backdoor survives turned on it (the same demo round
# gave mean Fidelity 0.671 with two threads per model, 0.942 with one; docs/performance.md). One thread
# per model also ran 1.9x faster than two on these small models; use --n_jobs for the other cores.
MODEL_THREADS = 1


@dataclass
class SeamConfig:
    """SEAM hyper-parameters (defaults per round live in round_configs/roundN.yaml).

    Forgetting keeps going until `forget_epochs_below_alpha` epochs have ended below alpha
    (1 = stop at the first crossing, as the paper prints it; more is the authors' "patience"),
    because a shallow forgetting lets the backdoor come back during recovery. Recovery stops when
    the defender's accuracy reaches its goal, or `recover_epochs_after_goal` epochs after that (a fixed,
    blind number: more training on the clean data than the bare goal needs). With `recover_anneal`, the
    learning rate falls along a half cosine over those further epochs, so that training settles instead of
    stopping at whatever point of its epoch-to-epoch swing the last epoch happens to hit.

    Tasks with a background class (NER's O) keep its labels while forgetting unless
    `relabel_background`, which gives those positions random wrong labels too.

    `forget_labels`: "wrong" draws each forgetting label uniformly from the K-1 classes other than the
    true one (the paper's rule); "any" draws from all K, the true one included, as the authors' TrojAI
    scripts do. With "wrong" the loss is lowest when the model avoids the true class, which it can only
    do by still telling the classes apart; with "any" it is lowest when the model cannot.
    `forget_label_draw`: "batch" draws fresh labels for every batch (the paper and the authors' code);
    "once" draws one random labelling of the defender's data and keeps it for the whole phase, so the
    model has to memorise it instead of just flattening its outputs. `forget_freeze_classifier` keeps the
    last Linear layer fixed while forgetting (recovery trains everything), for the same reason.
    `forget_freeze_share` (0 to 1) keeps that share of the model's parameter tensors, counted from the input
    side in the order the model registers them, fixed while forgetting (recovery trains everything): the
    first layers compute generic features (edges, colours) that a few clean examples cannot teach again,
    while the mapping from features to classes, where forgetting has to reach, lies above them.
    `recover_perturb` (> 0) adds Gaussian noise to every weight matrix (embeddings included) between the
    phases, `recover_perturb` times that matrix's own standard deviation: forgetting on clean data only
    reaches what clean inputs use, and noise also blurs what only a trigger uses, which recovery on clean
    data cannot rebuild.

    `recover_distill` (> 0) adds that weight times the distillation loss (KL divergence at
    `distill_temperature`, scaled by its square) between the recovering model and the original one on each
    recovery batch: the defender's augmented examples carry the primary task and no trigger, so the
    original's outputs there teach the primary task beyond the hard labels of a few examples. With
    `distill_inputs` "mixup" the distillation inputs are instead each batch's examples blended pairwise
    with uniform weights (images and embedding vectors only): inputs between the defender's examples, where
    a few hard labels say nothing and the original's outputs still carry the primary task.

    `recover_augment` "strong" (image rounds) trains recovery on the round's strong augmentation instead
    of its standard one: colour jitter and a randomly erased patch on top of the shifts, so that recovery
    teaches, with true labels, that a patch or a colour cast does not decide the class (the ways in that
    clean images never exercise and a trigger may use). Forgetting keeps the standard augmentation.

    The guard (`guard_fraction` > 0) sets that share of the defender's examples of each class apart:
    SEAM never trains on them, and a result whose accuracy there falls `guard_max_drop` or more below
    the original model's is `destroyed` (memorising the few training examples passes the recovery goal,
    it does not pass this). `restarts` further SEAM runs (seeds below) follow a run that failed
    (`restart_policy` "on_failure": recovery_failed or destroyed) or always ("best"); the run kept is,
    among those that passed (else among all), the one with the best guard accuracy. "best" needs the guard.
    "echo" also runs every restart and keeps, among the runs that passed (else among all), the one that
    repeats the fewest of the original model's errors: on `echo_draws` draws of the round's strong
    augmentation of every defender example (`echo_augment` "standard": its standard one, for round types
    without a strong one), seeded by `seed`, the share of the inputs (round 7: of the positions that
    accuracy counts) the original misclassifies on which the run predicts the same wrong class. A
    trigger-like patch, colour cast or inserted word that pulls the original towards a class it should
    not predict is the original's behaviour that SEAM should not keep; the row's `echo` gives the kept
    run's share. It reads the defender's examples only.
    "ensemble" runs every restart and keeps them all: the mitigated model averages the class
    probabilities of the runs that passed (else of all runs), `harness.ensemble.ProbabilityAverage`; no
    run is chosen. The saved model holds every run (that many times the inference cost and file size);
    the row's `ensemble_members` says how many.
    `restart_settings` (SEAM settings by name, e.g. {recover_augment: standard}) are laid over the
    restarts only: a retry with safer settings after a failed run, the first run unchanged. The row's
    `seed_kept` tells which run was kept: run r of SEAM seed s has seed s x (1 + restarts) + r, so two
    SEAM seeds share no run (`harness.methods.seam.run_seed`).

    `few_shot_settings` are laid over the whole run when some class of the defender's data has at most
    `few_shot_per_class` examples (0: never; one label per example only): settings that adapt to the
    budget, read from the defender's labels alone. The row's `few_shot` says whether they applied.
    """

    alpha: float | None = None
    forget_optimizer: str = "adam"
    forget_lr: float = 2e-3
    forget_weight_decay: float = 5e-4
    forget_max_epochs: int = 100
    forget_epochs_below_alpha: int = 30
    recover_optimizer: str = "adam"
    recover_lr: float = 5e-4
    recover_betas: tuple[float, float] = (0.9, 0.5)
    recover_weight_decay: float = 5e-5
    sgd_momentum: float = 0.9
    recover_max_epochs: int = 200
    recover_target: str = "relative"
    recover_epochs_after_goal: int = 30
    recover_anneal: bool = False
    beta: float = 0.97
    reinit_classifier: bool = False
    relabel_background: bool = False
    forget_labels: Literal["wrong", "any"] = "wrong"
    forget_label_draw: Literal["batch", "once"] = "batch"
    forget_freeze_classifier: bool = False
    forget_freeze_share: float = 0.0
    recover_perturb: float = 0.0
    recover_distill: float = 0.0
    distill_temperature: float = 2.0
    distill_inputs: Literal["batch", "mixup"] = "batch"
    recover_augment: Literal["standard", "strong"] = "standard"
    guard_fraction: float = 0.0
    guard_max_drop: float = 0.1
    restarts: int = 0
    restart_policy: Literal["on_failure", "best", "echo", "ensemble"] = "on_failure"
    echo_draws: int = 20
    echo_augment: Literal["standard", "strong"] = "strong"
    restart_settings: dict[str, Any] = field(default_factory=dict)
    few_shot_per_class: int = 0
    few_shot_settings: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    augment: bool = True
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else the CPU


@dataclass
class EvalConfig:
    """How ACC/ASR data is chosen when a model folder has no clean_test_data/ (see README).

    `cross_fit`: the method runs on each part of the split and is measured on the other (ACC pooled over
    both, ASR averaged), then once more on all the clean examples: that model is the one saved, and the
    row's figures are the cross-fitted estimate for it. Three runs instead of one.

    `drift_min_agreement`: where the round has a drift check (rounds 3-6), a result that agrees with the
    original on less than this share of the check's inputs is `drifted` (rounds 5/6: 0.75, rounds 3/4:
    0.80, in the round YAMLs; docs/robust-seam.md; 0 turns the agreement condition off).

    `drift_check_members`: for a result that averages several models (SEAM's `restart_policy:
    ensemble`), the agreement condition applies to each member too (`drift_agreement_members_min`, which
    every row reports), not only to the average. Off in every round YAML: on the calibration rounds a
    single run agreed 0.02-0.14 less than the average, and the check flagged 10 cleaned models for 7 bad
    ones (docs/robust-seam.md, "Twelfth calibration").
    """

    holdout_fraction: float = 0.5
    holdout_seed: int = 0
    cross_fit: bool = False
    drift_min_agreement: float = 0.75
    drift_check_members: bool = False


def round_config_path(round_number: int) -> Path:
    return ROUND_CONFIG_DIR / f"round{round_number}.yaml"


def round_section(round_number: int, section: str, overrides: dict) -> dict:
    """One section of the round's YAML ({} if it has none), with the `overrides` that are not None on top."""
    import yaml

    path = round_config_path(round_number)
    settings = (yaml.safe_load(path.read_text()) or {}).get(section, {}) if path.is_file() else {}
    return {**settings, **{k: v for k, v in overrides.items() if v is not None}}


def round_eval_config(round_number: int, **overrides: object) -> EvalConfig:
    """The round's YAML eval settings (dataclass defaults if it has none), then `overrides` on top."""
    return EvalConfig(**round_section(round_number, "eval", overrides))


def round_seam_config(round_number: int, **overrides: object) -> SeamConfig:
    """The round's YAML SEAM settings (dataclass defaults if it has none), then `overrides` on top."""
    settings = round_section(round_number, "seam", overrides)
    if isinstance(settings.get("recover_betas"), list):
        settings["recover_betas"] = tuple(settings["recover_betas"])
    return SeamConfig(**settings)


# Baseline defenses. Defaults are the literature's (../shared/SEAM_NOTES.md §6; docs/baselines.md gives the
# source of each), fixed before any comparison run. Every one reads the defender's clean data only.


@dataclass
class TrainingSettings:
    """What every baseline's training has: epochs, SGD's learning rate, momentum and weight decay, batch
    size, augmentation, seed, device."""

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    augment: bool = True
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else the CPU


@dataclass
class FinetuneConfig(TrainingSettings):
    """Fine-tuning (the SEAM paper's FT): the last two layers with weights, everything else frozen."""

    lr: float = 0.02
    lr_step_epochs: int = 2  # the learning rate falls tenfold every this many epochs


@dataclass
class ContinuedTrainingConfig(TrainingSettings):
    """Continued training: every layer on the clean data, SGD with a cosine learning rate."""

    epochs: int = 100
    batch_size: int = 256


@dataclass
class FinePruningConfig(TrainingSettings):
    """Fine-Pruning (Liu et al. 2018): prune the most dormant units of the last convolutional feature map
    (heads without convolutions: the features entering the last Linear layer), then fine-tune for
    `epochs` at `lr`.

    Pruning goes in steps of `prune_step` of the units, at most `max_prune_ratio` of them, and keeps the
    largest amount at which accuracy on `holdout_fraction` of the defender's examples (per class, set
    apart before ranking) is still at least (1 - max_acc_drop) of the unpruned model's.
    """

    holdout_fraction: float = 0.2
    prune_step: float = 0.01
    max_prune_ratio: float = 0.95
    max_acc_drop: float = 0.1


@dataclass
class NadConfig(TrainingSettings):
    """Neural Attention Distillation (Li et al. 2021): a teacher fine-tuned on the clean data, then the
    original trained (`epochs`, `lr`, nesterov) with cross-entropy plus `betas`-weighted attention
    distillation on its last three convolutional blocks (image models only)."""

    epochs: int = 20
    lr: float = 0.1
    weight_decay: float = 1e-4
    batch_size: int = 64
    teacher_epochs: int = 10
    teacher_lr: float = 0.01
    lr_drops: tuple[int, ...] = (2, 20)  # the learning rate falls tenfold, then a hundredfold more
    betas: tuple[float, float, float] = (500.0, 1000.0, 1000.0)
    power: float = 2.0


@dataclass
class NeuralCleanseConfig(TrainingSettings):
    """Neural Cleanse (Wang et al. 2019): per class, the smallest mask and pattern that send clean inputs
    there (Adam, `lr`, at most `epochs`); classes whose mask norm is below the median with anomaly index >
    `anomaly_threshold` are flagged, and the model unlearns them (SGD, `unlearn_lr`, `momentum`,
    `weight_decay`) on clean data stamped with their reversed trigger, true labels kept (image models
    only)."""

    epochs: int = 80
    lr: float = 0.1
    betas: tuple[float, float] = (0.5, 0.9)
    init_cost: float = 1e-3
    cost_multiplier: float = 2.0
    patience: int = 5
    attack_success_threshold: float = 0.99
    early_stop_patience: int = 25
    anomaly_threshold: float = 2.0
    unlearn_share: float = 0.2
    unlearn_epochs: int = 100
    unlearn_lr: float = 0.01
