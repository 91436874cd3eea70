"""Compare SEAM settings over calibration rounds: quality, spread and time, one line per variant.

    python benchmarks/seam_grid.py --round_dir R1 R2 --output_dir O [--seam_seeds 0 1] [--n_jobs 2] \
        --variant base= --variant strong="--seam.forget_lr 3e-3 --seam.forget_epochs_below_alpha 50"

Each (variant, round, SEAM seed) is a full `seam-harness run` (records in O/<variant>/<round>-seed<S>/,
resumable). The line pools every run of a variant; `runs_on_target` counts the runs (one round, one SEAM
seed) that meet the acceptance targets at once: mean Fidelity over poisoned models >= --target_fidelity,
their mean ASR after <= --target_asr, and no clean model losing more than --target_clean_drop of ACC.
Calibrate on rounds made with seeds other than the one you report on: choosing settings on the reported
round's test data is the leak the README's protocol forbids. Figures are wall-clock seconds on this
machine: compare ratios within one invocation only.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd


def split(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    done = results[results["status"] != "error"]
    return done, done[done["poisoned"] == True], done[done["poisoned"] == False]  # noqa: E712


def on_target(results: pd.DataFrame, fidelity: float, asr: float, clean_drop: float) -> bool:
    _, poisoned, clean = split(results)
    drops = clean["acc_before"] - clean["acc_after"]
    return bool(
        poisoned["fidelity"].mean() >= fidelity
        and poisoned["asr_after"].mean() <= asr
        and (drops.max() if len(drops) else 0.0) <= clean_drop
    )


def summarise(name: str, results: pd.DataFrame) -> dict:
    done, poisoned, clean = split(results)
    return {
        "variant": name,
        "models": len(results),
        "not_ok": int((results["status"] != "ok").sum()),
        "fidelity_mean": poisoned["fidelity"].mean(),
        "fidelity_min": poisoned["fidelity"].min(),
        "asr_after_mean": poisoned["asr_after"].mean(),
        "asr_after_max": poisoned["asr_after"].max(),
        "acc_drop_clean": (clean["acc_before"] - clean["acc_after"]).mean(),
        "acc_drop_clean_max": (clean["acc_before"] - clean["acc_after"]).max(),
        "acc_drop_poisoned": (poisoned["acc_before"] - poisoned["acc_after"]).mean(),
        "forget_s_mean": done["forget_seconds"].mean(),
        "recover_s_mean": done["recover_seconds"].mean(),
        "total_s_mean": done["total_seconds"].mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round_dir", type=Path, nargs="+", required=True)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--seam_seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n_jobs", type=int, default=2)
    parser.add_argument("--target_fidelity", type=float, default=0.85)
    parser.add_argument("--target_asr", type=float, default=0.15)
    parser.add_argument("--target_clean_drop", type=float, default=0.03)
    parser.add_argument(
        "--variant", action="append", default=[], help='name="--seam.x 1 --seam.y 2" (repeatable)'
    )
    args = parser.parse_args()
    variants = [v.split("=", 1) for v in (args.variant or ["base="])]
    cli = str(Path(sys.executable).parent / "seam-harness")
    rows = []
    for name, flags in variants:
        runs = []
        for round_dir in args.round_dir:
            for seed in args.seam_seeds:
                output = args.output_dir / name / f"{round_dir.name}-seed{seed}"
                command = [cli, "run", "--round_dir", str(round_dir), "--output_dir", str(output)]
                command += ["--n_jobs", str(args.n_jobs), "--save_models", "false", "--seam.seed", str(seed)]
                subprocess.run([*command, *shlex.split(flags)], check=True, stdout=subprocess.DEVNULL)
                runs.append(pd.read_csv(output / "results.csv"))
        targets = (args.target_fidelity, args.target_asr, args.target_clean_drop)
        hits = sum(on_target(run, *targets) for run in runs)
        rows.append({**summarise(name, pd.concat(runs)), "runs_on_target": f"{hits}/{len(runs)}"})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
