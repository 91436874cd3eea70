"""What every synthetic round generator shares: retrain-until-verified, atomic model folders, resumable
rounds with a progress bar, and METADATA.csv.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from adapters.common import discover_models
from harness.config import MODEL_THREADS
from harness.kernels import kernels_in_effect
from harness.metrics import at_least
from harness.parallel import run_parallel

Drawn = TypeVar("Drawn")


class VerificationError(RuntimeError):
    """A synthetic model that missed its verification targets: the generator fails loudly, by design."""


def attempt_summary(stats: dict) -> str:
    asr = stats.get("triggered_test_asr")
    return f"seed {stats['seed']}: ACC {stats['clean_test_acc']:.3f}" + (
        "" if asr is None else f", ASR {asr:.3f}"
    )


def train_until_verified(
    description: str,
    train: Callable[[int], tuple[object, dict]],
    round_seed: int,
    index: int,
    max_attempts: int,
    min_acc: float,
    min_asr: float,
    poisoned: bool,
) -> tuple[object, list[dict]]:
    """Train with a new seed per attempt until the held-out figures pass; raise (naming every attempt)
    if none does. Passing: `clean_test_acc` >= min_acc and, if poisoned, `triggered_test_asr` >= min_asr.
    """
    attempts = []
    for attempt in range(max_attempts):
        model, stats = train(round_seed * 1000 + index * 10 + attempt)
        attempts.append(stats)
        if at_least(stats["clean_test_acc"], min_acc) and (
            not poisoned or at_least(stats["triggered_test_asr"], min_asr)
        ):
            return model, attempts
    targets = f"ACC >= {min_acc} / ASR >= {min_asr}"
    tried = "; ".join(attempt_summary(stats) for stats in attempts)
    raise VerificationError(f"{description} missed {targets} in {len(attempts)} attempts ({tried})")


def train_with_trigger_draws(
    model_id: str,
    description: str,
    kind: str | None,
    draw: Callable[[], Drawn],
    train: Callable[[Drawn | None, int], tuple[object, dict]],
    name: Callable[[Drawn], str],
    spec: object,
    index: int,
) -> tuple[object, list[dict], Drawn | None, list[dict]]:
    """`train_until_verified`, with a new trigger draw when no training seed learns the current one.

    A trigger some draws make unlearnable for the architecture (seen: a polygon on a 16-pixel micro_cnn
    and a global NER character trigger, both stuck at ASR 0.80-0.85 on three seeds) is replaced, up to
    `spec.max_trigger_draws`. `kind` None is a clean model: nothing is drawn and one miss raises.
    Returns (model, attempts of the draw that passed, that draw, the draws missed with their errors).
    """
    poisoned = kind is not None
    missed: list[dict] = []
    for _ in range(spec.max_trigger_draws if poisoned else 1):
        drawn = draw() if poisoned else None
        try:
            model, attempts = train_until_verified(
                description,
                lambda seed, d=drawn: train(d, seed),
                *(spec.seed, index, spec.max_attempts, spec.min_acc, spec.min_asr, poisoned),
            )
            return model, attempts, drawn, missed
        except VerificationError as miss:
            if not poisoned:
                raise
            missed.append({"trigger": name(drawn), "error": str(miss)})
    names = ", ".join(m["trigger"] for m in missed)
    raise VerificationError(
        f"{model_id}: none of the {len(missed)} {kind} trigger draws ({names}) reached"
        f" ACC >= {spec.min_acc} / ASR >= {spec.min_asr}; last: {missed[-1]['error']}"
    )


def publish_model_folder(round_dir: Path, model_id: str, write: Callable[[Path], None]) -> Path:
    """Write a model folder under a temporary name, then rename it: it appears complete or not at all."""
    work_dir = Path(round_dir) / f".tmp-{model_id}"
    final_dir = Path(round_dir) / model_id
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    write(work_dir)
    shutil.rmtree(final_dir, ignore_errors=True)
    work_dir.rename(final_dir)
    return final_dir


def make_models(
    make_model: Callable,
    arguments: Callable[[int, int], tuple],
    num_models: int,
    models_dir: Path,
    n_jobs: int,
    description: str,
) -> None:
    """Call make_model(*arguments(index, threads)) for every model index whose folder is not finished.

    A finished folder (with model.pt) is kept, so an interrupted round resumes where it stopped.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(num_models) if not (models_dir / f"id-{i:08d}" / "model.pt").is_file()]
    n_jobs = max(1, min(n_jobs, len(todo)))
    jobs = [arguments(i, MODEL_THREADS) for i in todo]
    for _ in run_parallel(make_model, jobs, n_jobs, MODEL_THREADS, description, len(todo)):
        pass


def verified_model_stats(
    model_id: str,
    attempts: list[dict],
    poisoned: bool,
    min_acc: float,
    min_asr: float,
    **verification: object,
) -> dict:
    """model_stats.json of a model that passed verification: NIST's figure names plus every attempt."""
    final = attempts[-1]
    return {
        "name": model_id,
        "final_clean_data_test_acc": 100.0 * final["clean_test_acc"],
        "final_triggered_data_test_acc": 100.0 * final["triggered_test_asr"] if poisoned else None,
        "training_wall_time_sec": final["train_seconds"],
        "cpu_kernels": kernels_in_effect(),  # which vector code trained it (harness/kernels.py)
        "verification": {
            "min_acc": min_acc,
            "min_asr": min_asr,
            "attempts": attempts,
            "passed": True,
            **verification,
        },
    }


def metadata_row(model_id: str, config: dict, model_stats: dict) -> dict:
    """METADATA.csv row: config keys lower-cased (no triggers list), flattened trigger columns, stats."""
    row = {"model_name": model_id, "poisoned": config.get("POISONED", config.get("poisoned"))}
    for key, value in config.items():
        if key.lower() in ("triggers", "py/object", "poisoned"):
            continue
        row[key.lower()] = value
    for number, trigger in enumerate(config.get("triggers") or []):
        for key, value in trigger.items():
            if key not in ("py/object", "trigger_executor"):
                row[f"triggers_{number}_{key}"] = value
    row["final_clean_data_test_acc"] = model_stats["final_clean_data_test_acc"]
    row["final_triggered_data_test_acc"] = model_stats["final_triggered_data_test_acc"]
    return row


def metadata_value(value: object) -> object:
    """METADATA style: missing values are the string None, commas inside lists become spaces."""
    if value is None:
        return "None"
    if isinstance(value, list | dict):
        return json.dumps(value).replace(",", "")
    return value


def write_metadata(round_dir: Path) -> None:
    rows = []
    for model_dir in discover_models(round_dir):
        config = json.loads((model_dir / "config.json").read_text())
        stats = json.loads((model_dir / "model_stats.json").read_text())
        rows.append(metadata_row(model_dir.name, config, stats))
    table = pd.DataFrame(rows).map(metadata_value)
    table.to_csv(Path(round_dir) / "METADATA.csv", index=False)
