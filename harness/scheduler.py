"""Batch runs over a round: discovery, sharding, parallel workers, resume. Knows nothing of images or text."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import torch
from joblib import Parallel, delayed
from tqdm import tqdm

from adapters.common import discover_models
from harness.pipeline import EvalConfig, process_model
from harness.records import read_record, record_path, write_record
from harness.seam import SeamConfig


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shard(items: list, shard_index: int, num_shards: int) -> list:
    """A deterministic share of a sorted list: every num_shards-th item starting at shard_index."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    return items[shard_index::num_shards]


def needs_work(output_dir: Path, model_id: str, retry_errors: bool) -> bool:
    """True unless a valid record exists (a truncated or foreign record is recomputed)."""
    record = read_record(record_path(output_dir, model_id))
    return record is None or (retry_errors and record["status"] == "error")


def _worker(
    model_dir: Path,
    output_dir: Path,
    seam_config: SeamConfig,
    eval_config: EvalConfig,
    save_models: bool,
    threads: int,
    round_number: int | None,
) -> dict:
    torch.set_num_threads(threads)  # workers x threads <= cores, or they fight for the CPU
    save_path = output_dir / "models" / model_dir.name / "model.pt" if save_models else None
    record = process_model(model_dir, seam_config, eval_config, save_path)
    record.setdefault("round", round_number)
    write_record(output_dir, record)
    return record


def run_batch(
    round_dir: Path,
    output_dir: Path,
    seam_config: SeamConfig,
    eval_config: EvalConfig,
    n_jobs: int = 1,
    save_models: bool = True,
    retry_errors: bool = False,
    shard_index: int = 0,
    num_shards: int = 1,
    round_number: int | None = None,
) -> Counter:
    """Process every model of the round (or of one shard) that has no valid record yet.

    Each finished model's record is written at once, so a killed batch loses at most the models
    that were in flight. Returns a count of statuses for this call's models.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_dirs = shard(discover_models(round_dir), shard_index, num_shards)
    todo = [m for m in model_dirs if needs_work(output_dir, m.name, retry_errors)]
    statuses: Counter = Counter({"skipped (already done)": len(model_dirs) - len(todo)})
    if not todo:
        return statuses
    n_jobs = max(1, min(n_jobs, len(todo)))
    threads = max(1, available_cores() // n_jobs)
    jobs = (
        delayed(_worker)(m, output_dir, seam_config, eval_config, save_models, threads, round_number)
        for m in todo
    )
    progress = tqdm(total=len(todo), desc="SEAM", unit="model")
    if n_jobs == 1:  # in-process: simpler tracebacks, no worker start-up
        results = (job[0](*job[1], **job[2]) for job in jobs)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    for record in results:
        statuses[record["status"]] += 1
        progress.set_postfix_str(f"{record['model_id']}: {record['status']}")
        progress.update()
    progress.close()
    return statuses
