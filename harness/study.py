"""The robustness study: SEAM variants over several rounds, defender budgets and SEAM seeds.

Every (round, variant, seed) is one ordinary batch output folder (`<output_dir>/runs/<round>/<variant>/
seed-<s>`, one record per model and budget), so a study resumes like `run` and its records read like any
other. The study adds the pooled view: per round type, variant and budget, the distribution of Fidelity
over every poisoned model and seed, the share cleaned, what clean models lose, and which rows were
flagged. docs/robust-seam.md explains how its figures are used to choose settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.config import MODEL_THREADS, round_eval_config, round_seam_config
from harness.files import atomic_write, ensure_folder
from harness.metrics import FLOAT32_TOLERANCE
from harness.records import (
    CLEANED_FIDELITY,
    budget_label,
    load_records,
    results_table,
    share_cleaned,
    with_result,
)

CLEAN_ASR = 0.1  # a poisoned model's backdoor counts as gone at or below this ASR after
RUINED_DROP = 0.1  # an `ok` row whose ACC fell by more than this is a silent failure
KEPT_DROP = 0.05  # a row whose ACC fell by this or less kept the primary task (for judging a flag)


@dataclass
class StudyRun:
    round_dir: Path
    variant: str
    seed: int
    output_dir: Path


def study_runs(
    round_dirs: list[Path], variants: dict[str, dict], seeds: list[int], output_dir: Path
) -> list[StudyRun]:
    return [
        StudyRun(
            Path(round_dir),
            variant,
            seed,
            Path(output_dir) / "runs" / Path(round_dir).name / variant / f"seed-{seed}",
        )
        for round_dir in round_dirs
        for variant in variants
        for seed in seeds
    ]


def run_study(
    round_dirs: list[Path],
    output_dir: Path,
    variants: dict[str, dict],
    budgets: list[int | None],
    seeds: list[int],
    eval_overrides: dict | None = None,
    n_jobs: int = 1,
    model_timeout_s: float | None = None,
    threads: int = MODEL_THREADS,
) -> pd.DataFrame:
    """Run what is missing, then write study_rows.csv, study_summary.csv and fidelity.png; returns the
    summary. `variants` maps a name to SEAM settings laid over each round's YAML ({} = the defaults);
    `eval_overrides` (None values ignored) go over each round's YAML eval settings."""
    from adapters import detect_round
    from harness.pipeline import Job
    from harness.scheduler import run_batch

    if not variants:
        raise ValueError("the study needs at least one variant (an empty mapping {} runs the defaults)")
    for run in study_runs(round_dirs, variants, seeds, output_dir):
        round_number = detect_round(run.round_dir)
        config = round_seam_config(round_number, **{**variants[run.variant], "seed": run.seed})
        jobs = [Job("seam", config, budget) for budget in budgets]
        run_batch(
            run.round_dir,
            run.output_dir,
            jobs,
            round_eval_config(round_number, **(eval_overrides or {})),
            n_jobs,
            save_models=False,
            round_number=round_number,
            model_timeout_s=model_timeout_s,
            threads=threads,
        )
    return write_study_tables(round_dirs, output_dir, variants, seeds)


def study_rows(
    round_dirs: list[Path], output_dir: Path, variants: dict[str, dict], seeds: list[int]
) -> pd.DataFrame:
    """Every record of the study, with the round folder, variant and SEAM seed it belongs to."""
    frames = []
    for run in study_runs(round_dirs, variants, seeds, output_dir):
        records = load_records(run.output_dir) if run.output_dir.is_dir() else []
        if records:
            rows = results_table(records)
            rows.insert(0, "round_name", run.round_dir.name)
            rows.insert(1, "variant", run.variant)
            rows.insert(2, "seam_seed", run.seed)
            frames.append(rows)
    if not frames:
        raise FileNotFoundError(f"{output_dir}: the study has no records yet")
    rows = pd.concat(frames, ignore_index=True)
    rows["defender_per_class"] = rows["defender_per_class"].map(budget_label)
    return rows


def summarise_study(group: pd.DataFrame) -> dict:
    """Pooled figures over every (model, seed) of one round type, variant and budget."""
    done, poisoned, clean = with_result(group)
    fidelity = poisoned["fidelity"].astype(float)
    drop = done["acc_before"].astype(float) - done["acc_after"].astype(float)
    clean_drop = drop[clean.index]
    return {
        "rounds": group["round_name"].nunique(),
        "seeds": group["seam_seed"].nunique(),
        "poisoned_runs": len(poisoned),
        "clean_runs": len(clean),
        "no_result": len(group) - len(done),
        "mean_fidelity": fidelity.mean(),
        "min_fidelity": fidelity.min(),
        "p10_fidelity": fidelity.quantile(0.1) if len(fidelity) else math.nan,
        "share_cleaned": share_cleaned(poisoned),
        # the issue's own measure, whatever the status: flagged runs count if their Fidelity is high
        "share_high_fidelity": float((fidelity >= CLEANED_FIDELITY).mean()) if len(poisoned) else math.nan,
        "share_asr_gone": float((poisoned["asr_after"].astype(float) <= CLEAN_ASR + FLOAT32_TOLERANCE).mean())
        if len(poisoned)
        else math.nan,
        "mean_acc_drop_clean": clean_drop.mean(),
        "worst_acc_drop_clean": clean_drop.max(),
        "flagged": int((done["status"] != "ok").sum()),
        "destroyed": int((done["status"] == "destroyed").sum()),
        "silent_ruined": int(((done["status"] == "ok") & (drop > RUINED_DROP)).sum()),
        # how well the flags track damage: of the runs that lost > 10 points, how many were flagged; of
        # those that lost <= 5, how many were flagged for nothing
        "ruined": int((drop > RUINED_DROP).sum()),
        "ruined_flagged": int(((drop > RUINED_DROP) & (done["status"] != "ok")).sum()),
        "kept": int((drop <= KEPT_DROP).sum()),
        "kept_flagged": int(((drop <= KEPT_DROP) & (done["status"] != "ok")).sum()),
        "mean_seconds": done["method_seconds"].astype(float).mean(),
    }


def study_summary(rows: pd.DataFrame) -> pd.DataFrame:
    keys = ["round", "variant", "defender_per_class"]
    summary = [
        dict(zip(keys, values, strict=True)) | summarise_study(group)
        for values, group in rows.groupby(keys, sort=True)
    ]
    return pd.DataFrame(summary)


def write_study_tables(
    round_dirs: list[Path], output_dir: Path, variants: dict[str, dict], seeds: list[int]
) -> pd.DataFrame:
    output_dir = ensure_folder(output_dir)
    rows = study_rows(round_dirs, output_dir, variants, seeds)
    summary = study_summary(rows)
    atomic_write(output_dir / "study_rows.csv", lambda tmp: rows.to_csv(tmp, index=False))
    atomic_write(output_dir / "study_summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    plot_fidelity(rows, output_dir / "fidelity.png")
    return summary


def plot_fidelity(rows: pd.DataFrame, path: Path) -> None:
    """One panel per round type: Fidelity of every poisoned (model, seed) per budget, a box per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, poisoned, _ = with_result(rows)
    rounds = sorted(poisoned["round"].dropna().unique())
    variants = sorted(poisoned["variant"].unique())
    figure, axes = plt.subplots(1, max(1, len(rounds)), figsize=(5 * max(1, len(rounds)), 4), squeeze=False)
    width = 0.8 / max(1, len(variants))
    for axis, round_ in zip(axes[0], rounds, strict=False):
        part = poisoned[poisoned["round"] == round_]
        budgets = sorted(
            part["defender_per_class"].unique(), key=lambda b: (b == "all", int(b) if b != "all" else 0)
        )
        for v, variant in enumerate(variants):
            values = [
                part[(part["variant"] == variant) & (part["defender_per_class"] == b)]["fidelity"]
                .astype(float)
                .dropna()
                for b in budgets
            ]
            positions = [i + (v - (len(variants) - 1) / 2) * width for i in range(len(budgets))]
            boxes = axis.boxplot(
                values,
                positions=positions,
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
                medianprops={"color": "black"},
            )
            for box in boxes["boxes"]:
                box.set_facecolor(f"C{v}")
            axis.plot([], [], color=f"C{v}", linewidth=6, label=variant)
        axis.axhline(CLEANED_FIDELITY, color="grey", linestyle="--", linewidth=1)
        axis.set_xticks(range(len(budgets)), budgets)
        axis.set_xlabel("defender examples per class")
        axis.set_ylabel("Fidelity (poisoned models, every seed)")
        axis.set_title(f"round {round_}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=max(1, len(variants)), fontsize=8)
    figure.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels
    figure.savefig(path, dpi=120)
    plt.close(figure)
