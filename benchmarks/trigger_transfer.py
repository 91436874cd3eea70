"""Probe: does a trigger reverse-engineered on the original model still work on SEAM's result?

    python benchmarks/trigger_transfer.py ROUND_DIR --out probe.csv [--per_class 5] [--seeds 0 1]
    python benchmarks/trigger_transfer.py --rule probe-a.csv probe-b.csv    # rule D over such rows

For every model of the round and SEAM seed: SEAM at the round's YAML on `--per_class` clean examples per
class (the pipeline's nested draw), the model measured before and after on the round's evaluation data,
and a blind candidate signal for a kept backdoor, computed from the defender's examples alone:

1. On the original model, for every class t, two small input transforms are optimised to send the
   defender's examples of the other classes to t: a global colour transform (x -> A x + b per pixel, A
   within +-0.4 of the identity and b within +-0.2 per entry) and a stamp (1 - m) x + m p whose mask m
   covers at most about 6 % of the image (Neural Cleanse's form with a fixed area).
2. Each transform's flip rate (share of those examples sent to t) is measured on the original (`s0`) and
   on SEAM's model (`s1`). A backdoor the original learned should make some t easy to reach; if SEAM
   removed it, the transform should stop working on SEAM's model.

One row per (model, seed): the usual figures, each family's per-class flip rates, and summaries (the
class easiest on the original, its flip rate on SEAM's model, the largest flip rate on SEAM's model).
The trigger's true target class comes from the evaluation data and is written for the analysis only
(`eval_target`); nothing in the signal reads it. Rows are appended as they end, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

# isort: off
import harness  # noqa: F401  before torch: the harness's thread settings
import torch

# isort: on
import torch.nn.functional as F

import adapters
from adapters.common import discover_models
from harness import methods
from harness.config import round_eval_config, round_seam_config
from harness.methods.neural_cleanse import stamp
from harness.metrics import fidelity
from harness.pipeline import defender_subset, drift_check, evaluate, status_after_drift_check
from harness.task import Task

STEPS, LR, PER_TARGET = 80, 0.05, 10  # optimisation steps, Adam's rate, examples per class and step
COLOUR_MATRIX, COLOUR_BIAS = 0.4, 0.2  # bounds of A - I and b
STAMP_AREA, STAMP_PENALTY = 0.06, 10.0  # the mask's mean above this is penalised at this weight


def colour_transform(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """params [12] (unbounded) -> clamp(A x + b) over the channels, A = I + 0.4 tanh, b = 0.2 tanh."""
    matrix = torch.eye(3) + COLOUR_MATRIX * torch.tanh(params[:9]).reshape(3, 3)
    bias = COLOUR_BIAS * torch.tanh(params[9:])
    return (torch.einsum("ij,njhw->nihw", matrix, x) + bias.reshape(1, 3, 1, 1)).clamp(0.0, 1.0)


def stamp_transform(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """params [4, H, W]: a mask logit plane and a pattern (three planes), both squashed to [0, 1]."""
    return stamp(x, torch.sigmoid(params[:1]).unsqueeze(0), torch.sigmoid(params[1:]).unsqueeze(0))


def stamp_penalty(params: torch.Tensor) -> torch.Tensor:
    return STAMP_PENALTY * (torch.sigmoid(params[0]).mean() - STAMP_AREA).clamp(min=0)


FAMILIES = {
    "colour": (lambda shape: torch.zeros(12), colour_transform, lambda params: torch.zeros(())),
    "stamp": (
        lambda shape: torch.cat([torch.full((1, *shape), -3.0), torch.zeros(3, *shape)]),
        stamp_transform,
        stamp_penalty,
    ),
}


def reverse_engineer(task: Task, family: str, generator: torch.Generator) -> list[torch.Tensor]:
    """One transform per class, optimised jointly (one batch holds every class's examples)."""
    init, transform, penalty = FAMILIES[family]
    inputs, labels = task.defender.inputs, task.defender.labels
    model = task.model.eval().requires_grad_(False)  # gradients for the transforms only
    params = [init(inputs.shape[2:]).requires_grad_() for _ in range(task.num_classes)]
    optimizer = torch.optim.Adam(params, lr=LR)
    others = [torch.nonzero(labels != t).flatten() for t in range(task.num_classes)]
    for _ in range(STEPS):
        batch, wanted, loss = [], [], torch.zeros(())
        for t, pool in enumerate(others):
            pick = pool[torch.randperm(len(pool), generator=generator)[:PER_TARGET]]
            batch.append(transform(params[t], inputs[pick]))
            wanted.append(torch.full((len(pick),), t))
            loss = loss + penalty(params[t])
        logits = task.forward(model, torch.cat(batch))
        loss = loss + F.cross_entropy(logits, torch.cat(wanted))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.requires_grad_(True)
    return [p.detach() for p in params]


@torch.inference_mode()
def flip_rates(
    task: Task, model: torch.nn.Module, family: str, params: list[torch.Tensor]
) -> tuple[list[float], list[float]]:
    """Per class t: the share of the other classes' examples the transform sends to t, and the mean
    probability the model gives t on them (which separates classes that all reach a share of 1)."""
    _, transform, _ = FAMILIES[family]
    model.eval()
    inputs, labels = task.defender.inputs, task.defender.labels
    rates, probabilities = [], []
    for t, p in enumerate(params):
        others = labels != t
        logits = task.forward(model, transform(p, inputs[others]))
        rates.append(float((logits.argmax(dim=-1) == t).float().mean()))
        probabilities.append(float(torch.softmax(logits, dim=-1)[:, t].mean()))
    return rates, probabilities


def probe_row(model_dir: Path, per_class: int, seed: int) -> dict:
    task = adapters.load_task(model_dir)
    round_number = int(task.info["round"])
    eval_config = round_eval_config(round_number)
    config = round_seam_config(round_number, seed=seed)
    defender = defender_subset(task.defender, per_class, eval_config.holdout_seed)
    task = dataclasses.replace(task, defender=defender)
    before = evaluate(task.model, task)
    start = time.perf_counter()
    result = methods.method("seam").run(task, config)
    seam_seconds = time.perf_counter() - start
    after = evaluate(result.model, task)
    drift = drift_check(
        task, task.model, result.model, eval_config.drift_min_agreement, None, eval_config.drift_check_members
    )
    status = status_after_drift_check(result.status, drift)
    row = {
        "model_id": model_dir.name,
        **{k: task.info.get(k) for k in ("round", "model_architecture", "poisoned", "trigger_type")},
        "per_class": per_class,
        "seam_seed": seed,
        "status": status,
        "acc_before": before["acc"],
        "acc_after": after["acc"],
        "asr_before": before["asr"],
        "asr_after": after["asr"],
        "fidelity": fidelity(before["acc"], after["acc"], after["asr"]),
        "drift_agreement": drift["drift_agreement"],
        "seam_seconds": seam_seconds,
        # for the analysis only (the signal never reads it); on every row, so appended rows stay aligned
        "eval_target": (
            int(task.eval_triggered.targets.mode().values) if task.eval_triggered is not None else None
        ),
    }
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    for family in FAMILIES:
        params = reverse_engineer(task, family, generator)
        s0, p0 = flip_rates(task, task.model, family, params)
        s1, p1 = flip_rates(task, result.model, family, params)
        easiest = max(range(len(s0)), key=lambda t: (s0[t], p0[t]))
        row.update(
            {
                f"{family}_s0": json.dumps([round(v, 4) for v in s0]),
                f"{family}_s1": json.dumps([round(v, 4) for v in s1]),
                f"{family}_p0": json.dumps([round(v, 4) for v in p0]),
                f"{family}_p1": json.dumps([round(v, 4) for v in p1]),
                f"{family}_t0": easiest,
                f"{family}_s0_max": s0[easiest],
                f"{family}_s1_at_t0": s1[easiest],
                f"{family}_s1_max": max(s1),
            }
        )
    row["probe_seconds"] = time.perf_counter() - start
    return row


THRESHOLDS = (0.2, 0.3, 0.4, 0.5)  # rule D's grid (docs/robust-seam.md)


def rule_d(rows: pd.DataFrame) -> pd.DataFrame:
    """Per threshold: kept runs (poisoned, ASR after > 0.1) and other runs whose signal reaches it."""
    signal = rows[["colour_s1_at_t0", "stamp_s1_at_t0"]].max(axis=1)
    kept = rows["poisoned"].astype(bool) & (rows["asr_after"] > 0.1)
    table = []
    for tau in THRESHOLDS:
        flagged = signal >= tau
        kept_flagged, others_flagged = int((flagged & kept).sum()), int((flagged & ~kept).sum())
        qualifies = kept_flagged >= kept.sum() / 2 and kept_flagged > 0 and 3 * others_flagged <= kept_flagged
        table.append(
            {"tau": tau, "kept": int(kept.sum()), "kept_flagged": kept_flagged, "others": int((~kept).sum()),
             "others_flagged": others_flagged, "qualifies": qualifies}
        )  # fmt: skip
    return pd.DataFrame(table)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("round_dir", type=Path, nargs="?")
    parser.add_argument("--rule", type=Path, nargs="+", help="Rows written by this script: rule D's table.")
    parser.add_argument("--out", type=Path, default=Path("probe.csv"))
    parser.add_argument("--per_class", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    options = parser.parse_args()
    if options.rule:
        print(rule_d(pd.concat([pd.read_csv(path) for path in options.rule])).to_string(index=False))
        return
    torch.set_num_threads(1)
    done = set()
    if options.out.is_file():
        previous = pd.read_csv(options.out)
        done = set(zip(previous["model_id"], previous["seam_seed"], strict=True))
    for seed in options.seeds:
        for model_dir in discover_models(options.round_dir):
            if (model_dir.name, seed) in done:
                continue
            row = probe_row(model_dir, options.per_class, seed)
            pd.DataFrame([row]).to_csv(options.out, mode="a", header=not options.out.is_file(), index=False)
            shown = {k: row[k] for k in ("model_id", "seam_seed", "status", "asr_after")}
            print(json.dumps(shown), flush=True)


if __name__ == "__main__":
    main()
