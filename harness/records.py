"""Per-model JSON records (the source of truth) and the CSV tables rebuilt from them."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from harness.files import atomic_write, remove_stale_temp_files

# The results.csv contract (see README); extra record fields follow these columns.
RESULT_COLUMNS = [
    "model_id", "round", "model_architecture", "poisoned", "trigger_type", "num_classes", "method",
    "defender_per_class", "oracle", "acc_before", "asr_before", "acc_after", "asr_after", "fidelity",
    "forget_epochs", "recover_epochs", "forget_seconds", "recover_seconds", "eval_seconds", "total_seconds",
    "eval_data", "status", "error",
]  # fmt: skip
REQUIRED_FIELDS = ("model_id", "method", "status")
FAILED = ("error", "timeout")  # statuses of models without a result; --retry_errors recomputes them
FLAGGED = (
    "recovery_failed",
    "destroyed",
    "forget_incomplete",
    "drifted",
)  # a result, but not trusted: not saved
NO_RESULT = (*FAILED, "not_applicable")  # rows the summaries leave out
CLEANED_FIDELITY = 0.85  # a poisoned model counts as cleaned at or above this Fidelity, with status ok

# With fewer items than this, a figure's interval is wide enough to matter (summary and run warn).
FEW_EXAMPLES = 100


def records_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "records"


def record_key(model_id: str, method: str, defender_per_class: int | None = None) -> str:
    """The name of one (model, method, budget) result: records/<key>.json, models/<key>/model.pt."""
    budget = f".{defender_per_class}-per-class" if defender_per_class is not None else ""
    return f"{model_id}.{method}{budget}"


def key_of(record: dict) -> str:
    return record_key(record["model_id"], record["method"], record.get("defender_per_class"))


def record_path(output_dir: Path, key: str) -> Path:
    return records_dir(output_dir) / f"{key}.json"


def _json_safe(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None  # JSON has no NaN; null reads back as NaN in the tables
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_record(output_dir: Path, record: dict) -> Path:
    return write_json(record_path(output_dir, key_of(record)), record)


def write_json(path: Path, record: dict) -> Path:
    """Write atomically, so a crash leaves the old record or the new one, never half."""

    def dump(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(_json_safe(record), handle, indent=1, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write(path, dump)


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None if it is missing, truncated or not the record its name says.

    Records named after the model alone (one per model, written before there were several methods) are
    read as they are."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(field not in record for field in REQUIRED_FIELDS):
        return None
    if Path(path).stem not in (key_of(record), record["model_id"]):
        return None
    return record


def load_records(output_dir: Path) -> list[dict]:
    folder = records_dir(output_dir)
    if not folder.is_dir():
        return []
    found = (read_record(p) for p in sorted(folder.glob("*.json")))
    # one record per (model, method, budget): a record under its full name wins over one named by model
    return list({key_of(r): r for r in found if r is not None}.values())


def results_table(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(records)
    for column in table.columns:  # nested values (seam_config) as JSON text, not Python reprs
        if table[column].map(lambda v: isinstance(v, dict | list)).any():
            table[column] = table[column].map(lambda v: json.dumps(v) if isinstance(v, dict | list) else v)
    for column in RESULT_COLUMNS:
        if column not in table:
            table[column] = None
    extras = [c for c in table.columns if c not in RESULT_COLUMNS]
    return (
        table[RESULT_COLUMNS + extras]
        .sort_values(["method", "defender_per_class", "model_id"], kind="stable")
        .reset_index(drop=True)
    )


def few_examples(done: pd.DataFrame) -> dict:
    """How many models' ACC or ASR rests on fewer than FEW_EXAMPLES items, and the fewest any rests on."""
    if "acc_n" not in done:  # records written before the counts were kept
        return {"n_few_examples": math.nan, "min_examples": math.nan}
    counts = done[["acc_n", "asr_n"]].astype(float).where(lambda c: c > 0)  # ASR 0: clean model, no ASR
    fewest = counts.min(axis=1)
    return {"n_few_examples": int((fewest < FEW_EXAMPLES).sum()), "min_examples": fewest.min()}


def with_result(group: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(rows with a result, the poisoned ones among them, the clean ones)."""
    done = group[~group["status"].isin(NO_RESULT)]
    poisoned = done[done["poisoned"] == True]  # noqa: E712  (column holds True/False/None)
    clean = done[done["poisoned"] == False]  # noqa: E712
    return done, poisoned, clean


def share_cleaned(poisoned: pd.DataFrame) -> float:
    """Share of poisoned rows with status ok and Fidelity >= CLEANED_FIDELITY (NaN without any)."""
    if not len(poisoned):
        return math.nan
    return float(
        ((poisoned["fidelity"].astype(float) >= CLEANED_FIDELITY) & (poisoned["status"] == "ok")).mean()
    )


def summarise(group: pd.DataFrame) -> dict:
    """The summary figures of a group of rows (models with a result; Fidelity over poisoned ones)."""
    done, poisoned, clean = with_result(group)
    fidelity = poisoned["fidelity"].astype(float)
    return {
        "n_models": len(group),
        "n_poisoned": len(poisoned),
        "n_clean": len(clean),
        "n_errors": int((group["status"] == "error").sum()),
        "n_timeouts": int((group["status"] == "timeout").sum()),
        "n_not_applicable": int((group["status"] == "not_applicable").sum()),
        "n_not_ok": int((done["status"] != "ok").sum()),
        "n_drifted": int((done["status"] == "drifted").sum()),
        "mean_fidelity": fidelity.mean(),
        "median_fidelity": fidelity.median(),
        "min_fidelity": fidelity.min(),
        "q25_fidelity": fidelity.quantile(0.25) if len(fidelity) else math.nan,
        "share_cleaned": share_cleaned(poisoned),
        "n_destroyed": int((done["status"] == "destroyed").sum()),
        "mean_asr_before": poisoned["asr_before"].astype(float).mean(),
        "mean_asr_after": poisoned["asr_after"].astype(float).mean(),
        "mean_acc_before_clean": clean["acc_before"].astype(float).mean(),
        "mean_acc_drop_clean": (clean["acc_before"].astype(float) - clean["acc_after"].astype(float)).mean(),
        **few_examples(done),
        "mean_seconds": done["total_seconds"].astype(float).mean(),
        "mean_method_seconds": done["method_seconds"].astype(float).mean()
        if "method_seconds" in done
        else math.nan,
        "median_seconds": done["total_seconds"].astype(float).median(),
        "total_seconds": group["total_seconds"].astype(float).sum(),
    }


def budget_label(value: object) -> str:
    """`defender_per_class` as the tables show it: the number, or "all" (the folder's examples)."""
    return "all" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (round, method, defender budget): all models, then by architecture and by trigger type."""
    rows = []
    results = results.copy()
    results["round"] = results["round"].fillna("unknown")
    results["defender_per_class"] = results["defender_per_class"].map(budget_label)
    keys = ["round", "method", "defender_per_class"]
    for (round_, method, budget), group in results.groupby(keys, dropna=False, sort=True):
        head = {"round": round_, "method": method, "defender_per_class": budget}
        rows.append({**head, "group_by": "all", "group": "all", **summarise(group)})
        for column in ("model_architecture", "trigger_type"):
            for value, part in group.groupby(group[column].fillna("unknown"), sort=True):
                rows.append({**head, "group_by": column, "group": value, **summarise(part)})
    return pd.DataFrame(rows)


def aggregate(output_dir: Path) -> pd.DataFrame:
    """Rebuild results.csv and summary.csv from the records; returns the summary."""
    output_dir = Path(output_dir)
    records = load_records(output_dir)
    if not records:
        raise FileNotFoundError(f"{records_dir(output_dir)}: no valid records to aggregate")
    results = results_table(records)
    summary = summary_table(results)
    # atomic, because shards or a rerun may rebuild the tables while someone reads them
    for table in ("results.csv", "summary.csv"):
        remove_stale_temp_files(output_dir / table)  # what a writer killed mid-write left
    atomic_write(output_dir / "results.csv", lambda tmp: results.to_csv(tmp, index=False))
    atomic_write(output_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    return summary
