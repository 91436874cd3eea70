"""Do few-example figures and their intervals hold on held-out data? One round with clean_test_data/.

    python benchmarks/interval_coverage.py ROUND_DIR [--out coverage.csv] [--seeds 0 1 2]

For every model, SEAM runs as it would on a real round folder (no test data: a seeded half of the clean
examples held back for ACC, ASR from poisoned_example_data/), with the round's YAML settings. The
original and the mitigated model are then scored twice: on the held-back examples, as the harness
reports them, with their 95 % Wilson interval, and on the round's held-out test folders. The table says
whether each held-out figure lies inside the few-example interval; the last lines count how often not.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd

import adapters
from adapters.common import discover_models
from harness.config import round_seam_config
from harness.methods.seam import seam
from harness.metrics import fidelity, fidelity_interval, wilson_interval
from harness.pipeline import drift_check, evaluate

TEST_FOLDERS = ("clean_test_data", "poisoned_test_data")


def without_test_data(model_dir: Path, scratch: Path) -> Path:
    """A view of the round in which this model's folder has no test folders (links, no copies)."""
    round_dir = model_dir.parent.parent if model_dir.parent.name == "models" else model_dir.parent
    view = scratch / model_dir.name
    for shared in ("embeddings", "tokenizers"):
        if (round_dir / shared).is_dir() and not (view / shared).exists():
            view.mkdir(parents=True, exist_ok=True)
            os.symlink((round_dir / shared).resolve(), view / shared)
    folder = view / "models" / model_dir.name
    folder.mkdir(parents=True, exist_ok=True)
    for entry in model_dir.iterdir():
        if entry.name not in TEST_FOLDERS:
            os.symlink(entry.resolve(), folder / entry.name)
    return folder


def figures(prefix: str, before: dict, after: dict) -> dict:
    row = {}
    for stage, values in (("before", before), ("after", after)):
        for metric in ("acc", "asr"):
            low, high = wilson_interval(values[metric], values[f"{metric}_n"])
            row |= {f"{prefix}_{metric}_{stage}": values[metric]}
            row |= {f"{prefix}_{metric}_{stage}_low": low, f"{prefix}_{metric}_{stage}_high": high}
    row[f"{prefix}_fidelity"] = fidelity(before["acc"], after["acc"], after["asr"])
    low, high = fidelity_interval(before["acc"], after["acc"], after["asr"], before["acc_n"], after["asr_n"])
    return row | {f"{prefix}_fidelity_low": low, f"{prefix}_fidelity_high": high}


def measure(model_dir: Path, scratch: Path, seed: int) -> dict:
    few_task = adapters.load_task(without_test_data(model_dir, scratch))
    test_task = adapters.load_task(model_dir)
    config = round_seam_config(int(few_task.info["round"]), seed=seed)
    result = seam(few_task, config)
    row = {"model_id": model_dir.name, "seed": seed, "poisoned": few_task.info["poisoned"]}
    row |= {"status": result.status, **drift_check(few_task, few_task.model, result.model)}
    row |= figures("few", evaluate(few_task.model, few_task), evaluate(result.model, few_task))
    before, after = evaluate(test_task.model, test_task), evaluate(result.model, test_task)
    row |= {"few_acc_n": len(few_task.eval_clean), "test_acc_n": before["acc_n"]}
    return row | figures("test", before, after)


def inside(table: pd.DataFrame, figure: str) -> pd.Series:
    """True/False where the held-out figure exists (ASR and Fidelity: poisoned models), else NA."""
    test, low, high = table[f"test_{figure}"], table[f"few_{figure}_low"], table[f"few_{figure}_high"]
    return ((test >= low) & (test <= high)).astype("boolean").mask(test.isna())


FIGURES = ["acc_before", "acc_after", "asr_before", "asr_after", "fidelity"]


def report(table: pd.DataFrame, out: Path) -> None:
    for figure in FIGURES:
        table[f"inside_{figure}"] = inside(table, figure)
    table.to_csv(out, index=False)
    shown = ["model_id", "seed", "status", "drifted", "few_acc_after", "test_acc_after", "few_fidelity",
             "test_fidelity"]  # fmt: skip
    print(table[shown].to_string(index=False))
    for figure in FIGURES:
        checked = table[f"inside_{figure}"].dropna()
        print(f"{figure}: held-out figure inside the few-example interval in {int(checked.sum())} of"
              f" {len(checked)} rows")  # fmt: skip
    print(f"table: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("round_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("coverage.csv"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model_dir in discover_models(options.round_dir):
            for seed in options.seeds:
                rows.append(measure(model_dir, Path(scratch), seed))
                print(f"{model_dir.name} seed {seed}: done", flush=True)
    report(pd.DataFrame(rows), options.out)


if __name__ == "__main__":
    main()
