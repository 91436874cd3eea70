"""When does a kept backdoor come back? ASR and ACC on a model's evaluation data after SEAM's forgetting and
after every recovery epoch, per SEAM seed.

    python benchmarks/recovery_trace.py MODEL_DIR [--per_class 10] [--seeds 0 1] [--every 10]
        [--set key=value ...]

A probe for calibration rounds, not a method: it reads the evaluation data (through the oracle's
per-epoch hook, `seam(..., recovery_score=...)`, whose score it never lets choose an epoch), so it must not
be used to choose settings on rounds that are reported. SEAM runs with the model's round YAML settings,
`--set` overrides (values parsed as YAML), on the defender's examples cut to `--per_class`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pandas as pd
import torch
import yaml

import adapters
from harness.config import round_seam_config
from harness.methods.seam import seam
from harness.pipeline import defender_subset, evaluate


def trace(model_dir: Path, per_class: int | None, seed: int, overrides: dict, every: int) -> list[dict]:
    task = adapters.load_task(model_dir)
    task = dataclasses.replace(task, defender=defender_subset(task.defender, per_class, 0))
    rows: list[dict] = []
    epochs = 0

    def record(model: torch.nn.Module) -> float:
        nonlocal epochs
        epochs += 1
        if epochs == 1 or epochs % every == 0:
            figures = evaluate(model, task)
            rows.append({"seed": seed, "recover_epoch": epochs, "acc": figures["acc"], "asr": figures["asr"]})
        return -math.inf  # never better than the last: the model SEAM returns is unchanged

    result = seam(
        task, round_seam_config(int(task.info["round"]), seed=seed, **overrides), recovery_score=record
    )
    final = evaluate(result.model, task)
    rows.append(
        {
            "seed": seed,
            "recover_epoch": f"{result.recover_epochs} (end)",
            "acc": final["acc"],
            "asr": final["asr"],
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--per_class", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--every", type=int, default=10, help="Measure every this many recovery epochs.")
    parser.add_argument("--set", nargs="*", default=[], help="SEAM settings over the round YAML: key=value.")
    options = parser.parse_args()
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in options.set)}
    rows = [
        row
        for seed in options.seeds
        for row in trace(options.model_dir, options.per_class, seed, overrides, options.every)
    ]
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
