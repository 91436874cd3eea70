"""`seam-harness compare`: the methods of one run side by side, per round and defender budget (the SEAM
paper's Table IV, for the user's own models): compare.csv, compare.md, compare.png and, for a budget
sweep, budget.png. Rows of a method marked `oracle` are listed apart: it reads the evaluation data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.files import atomic_write
from harness.records import CLEANED_FIDELITY, NO_RESULT, budget_label, load_records, results_table, summarise

REFERENCE_METHOD = "seam"  # times are given relative to it


SHOWN = [
    "n_models", "n_not_ok", "n_not_applicable", "n_poisoned", "mean_fidelity", "median_fidelity",
    "min_fidelity", "share_cleaned", "mean_asr_after", "n_clean", "mean_acc_drop_clean",
]  # fmt: skip


def _row(group: pd.DataFrame) -> dict:
    """The summary figures that compare shows; seconds are the method's own (total for old records)."""
    figures = summarise(group)
    failed = figures["n_errors"] + figures["n_timeouts"]
    seconds = figures["mean_method_seconds"]
    return {key: figures[key] for key in SHOWN} | {
        "n_results": figures["n_models"] - failed - figures["n_not_applicable"],
        "n_errors": failed,
        "mean_seconds": figures["mean_seconds"] if math.isnan(seconds) else seconds,
    }


def comparison_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (round, defender budget, method); `time_vs_seam`: mean seconds over SEAM's there."""
    results = results.copy()
    results["round"] = results["round"].fillna("unknown")
    results["defender_per_class"] = results["defender_per_class"].map(budget_label)
    results["oracle"] = results["oracle"].fillna(False).astype(bool)
    keys = ["round", "defender_per_class", "oracle", "method"]
    rows = [
        dict(zip(keys, key, strict=True)) | _row(group) for key, group in results.groupby(keys, sort=True)
    ]
    table = pd.DataFrame(rows)
    reference = table[table["method"] == REFERENCE_METHOD].set_index(["round", "defender_per_class"])
    table["time_vs_seam"] = [
        row.mean_seconds / reference.loc[(row.round, row.defender_per_class), "mean_seconds"]
        if (row.round, row.defender_per_class) in reference.index
        else math.nan
        for row in table.itertuples()
    ]
    return table


def _as_list(value: object) -> list:
    if isinstance(value, str):
        return json.loads(value)
    return list(value) if isinstance(value, list | tuple) else []


def neural_cleanse_detection(results: pd.DataFrame) -> pd.DataFrame:
    """Per round and trigger type, what Neural Cleanse flagged against the folders' true targets (rows
    without `trigger_targets`, written by older versions, are left out)."""
    rows = results[(results["method"] == "neural_cleanse") & ~results["status"].isin(NO_RESULT)]
    if rows.empty or "trigger_targets" not in rows or "nc_mask_norms" not in rows:
        return pd.DataFrame()
    rows = rows[rows["trigger_targets"].notna()].copy()
    rows["round"] = rows["round"].fillna("unknown")
    found = []
    for (round_, trigger), part in rows.groupby(["round", "trigger_type"], sort=True):
        flagged = part["nc_flagged_classes"].map(_as_list)
        targets = part["trigger_targets"].map(_as_list)
        norms = part["nc_mask_norms"].map(_as_list)
        smallest = norms.map(lambda n: int(min(range(len(n)), key=n.__getitem__)) if n else -1)
        right = [bool(set(f) & set(t)) for f, t in zip(flagged, targets, strict=True)]
        found.append({
            "round": round_,
            "trigger_type": trigger,
            "models": len(part),
            "flagged_right_target": sum(right) if trigger != "none" else None,
            "flagged_other_class_only": sum(bool(f) and not r for f, r in zip(flagged, right, strict=True)),
            "nothing_flagged": int((flagged.map(len) == 0).sum()),
            "smallest_mask_is_target": sum(s in t for s, t in zip(smallest, targets, strict=True))
            if trigger != "none" else None,
        })  # fmt: skip
    return pd.DataFrame(found, dtype=object)  # counts stay whole numbers beside the blanks


def markdown_table(table: pd.DataFrame) -> list[str]:
    """A pipe table, floats to three places."""

    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]


def markdown(table: pd.DataFrame, detection: pd.DataFrame) -> str:
    """compare.md: per round and budget, the defenses, then the oracle reference apart; Neural Cleanse's
    detection against the true targets."""
    shown = [
        "method", "n_poisoned", "mean_fidelity", "median_fidelity", "min_fidelity", "share_cleaned",
        "mean_asr_after", "n_clean", "mean_acc_drop_clean", "mean_seconds", "time_vs_seam", "n_not_ok",
        "n_not_applicable", "n_errors",
    ]  # fmt: skip
    lines = [
        "# Defenses compared",
        "",
        "Fidelity = (ACC after - ASR after) / ACC before over poisoned models; `share_cleaned`: Fidelity >="
        f" {CLEANED_FIDELITY}; ACC drop over clean models; seconds: the method's own time per model.",
    ]
    for (round_, budget), part in table.groupby(["round", "defender_per_class"], sort=True):
        lines += ["", f"## Round {round_}, defender examples per class: {budget}", ""]
        for oracle, rows in part.groupby("oracle", sort=True):
            if oracle:
                lines += ["", "Reference only, not a defense (selects on the evaluation data):", ""]
            lines += markdown_table(rows[shown])
    if not detection.empty:
        lines += ["", "## Neural Cleanse detection (clean models: trigger type none)", ""]
        lines += markdown_table(detection)
    return "\n".join(lines) + "\n"


def _plot_per_round(table: pd.DataFrame, path: Path, draw, xlabel: str, title: str) -> None:
    """One panel per round: `draw(ax, rows of that round)`, then axes, labels, legend; a PNG at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted(table["round"].unique(), key=str)
    figure, axes = plt.subplots(1, len(rounds), figsize=(5.5 * len(rounds), 4.5), squeeze=False)
    for ax, round_ in zip(axes[0], rounds, strict=True):
        ax.set_xscale("log")  # before drawing, which may set its own ticks
        draw(ax, table[table["round"] == round_])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean Fidelity over poisoned models")
        ax.set_title(f"round {round_}: {title}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


def label(method: str, oracle: bool) -> str:
    return method + (" (oracle)" if oracle else "")


def _plot_time(table: pd.DataFrame, path: Path) -> None:
    """compare.png: Fidelity against seconds per model, one marker per method (all examples' rows)."""
    default = table[table["defender_per_class"] == "all"]
    markers = dict(zip(sorted(table["method"].unique()), "os^vDP*Xh<>", strict=False))

    def draw(ax, rows: pd.DataFrame) -> None:
        for row in rows.itertuples():
            if not (math.isnan(row.mean_fidelity) or math.isnan(row.mean_seconds)):
                marker = markers[row.method]
                ax.scatter(
                    row.mean_seconds,
                    row.mean_fidelity,
                    marker=marker,
                    s=70,
                    label=label(row.method, row.oracle),
                )

    shown = default if len(default) else table
    _plot_per_round(shown, path, draw, "seconds per model (method only, log scale)", "Fidelity against time")


def _plot_budget(table: pd.DataFrame, path: Path) -> None:
    """budget.png: Fidelity against the defender's examples per class, one line per method."""
    swept = table[table["defender_per_class"] != "all"].copy()
    swept["budget"] = swept["defender_per_class"].astype(int)
    ticks = sorted(swept["budget"].unique())

    def draw(ax, rows: pd.DataFrame) -> None:
        for (method, oracle), part in rows.groupby(["method", "oracle"]):
            part = part.sort_values("budget")
            style = "--" if oracle else "-"
            ax.plot(part["budget"], part["mean_fidelity"], style, marker="o", label=label(method, oracle))
        ax.set_xticks(ticks, [str(t) for t in ticks])

    _plot_per_round(swept, path, draw, "defender's clean examples per class", "Fidelity against the budget")


def compare(output_dir: Path) -> list[Path]:
    """Write the comparison of every method in output_dir's records; returns the files written."""
    output_dir = Path(output_dir)
    records = load_records(output_dir)
    if not records:
        raise FileNotFoundError(f"{output_dir / 'records'}: no valid records to compare")
    results = results_table(records)
    table = comparison_table(results)
    written = [output_dir / "compare.csv", output_dir / "compare.md", output_dir / "compare.png"]
    atomic_write(written[0], lambda tmp: table.to_csv(tmp, index=False))
    text = markdown(table, neural_cleanse_detection(results))
    atomic_write(written[1], lambda tmp: Path(tmp).write_text(text))
    atomic_write(written[2], lambda tmp: _plot_time(table, Path(tmp)))
    if (table["defender_per_class"] != "all").any():
        written.append(output_dir / "budget.png")
        atomic_write(written[3], lambda tmp: _plot_budget(table, Path(tmp)))
    return written
