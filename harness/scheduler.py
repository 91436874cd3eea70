"""Batch runs over a round: discovery, sharding, parallel workers, resume. Knows nothing of images or text."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from adapters.common import discover_models
from harness.config import EvalConfig, SeamConfig
from harness.files import OutputError, ensure_folder, remove_stale_temp_files
from harness.parallel import run_parallel, threads_per_worker
from harness.pipeline import failure_record, process_model
from harness.records import FAILED, read_record, record_path, write_record


@dataclass
class BatchOutcome:
    this_call: Counter  # statuses of the models this call processed, and how many it skipped
    final: Counter  # status of every model of the round or shard afterwards


def shard(items: list, shard_index: int, num_shards: int) -> list:
    """A deterministic share of a sorted list: every num_shards-th item starting at shard_index."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    return items[shard_index::num_shards]


def saved_model_path(output_dir: Path, model_id: str) -> Path:
    return Path(output_dir) / "models" / model_id / "model.pt"


def needs_work(output_dir: Path, model_id: str, retry_errors: bool) -> bool:
    """True unless a valid record exists (a truncated or foreign record is recomputed)."""
    record = read_record(record_path(output_dir, model_id))
    return record is None or (retry_errors and record["status"] in FAILED)


def process_in_child(timeout_s: float, threads: int, model_dir: Path, *args, **kwargs) -> dict | None:
    """process_model in a child process (`harness.child`), killed after timeout_s; None if it did not finish.

    A hung model (a layer that never returns) cannot be interrupted inside this process, but a child can,
    and the worker goes on with the next model. A child that dies gives an error record.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seam-child-") as scratch:
        result_file = Path(scratch) / "outcome.pkl"
        payload = pickle.dumps((threads, (model_dir, *args), kwargs))
        try:
            child = subprocess.run(
                [sys.executable, "-m", "harness.child", str(result_file)],
                input=payload,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:  # subprocess.run has killed the child
            return None
        if not result_file.is_file():  # killed from outside, out of memory, a crash in native code
            last_line = (child.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            message = f"{model_dir}: the model's process ended with status {child.returncode}: {last_line}"
            seconds = time.perf_counter() - started
            return failure_record(model_dir, message, seconds, kwargs.get("trust_pickles", False))
        kind, value = pickle.loads(result_file.read_bytes())
    if kind == "output_error":
        raise OutputError(value)
    return value


def _worker(
    model_dir: Path,
    output_dir: Path,
    seam_config: SeamConfig,
    eval_config: EvalConfig,
    save_models: bool,
    threads: int,
    round_number: int | None,
    trust_pickles: bool,
    model_timeout_s: float | None,
) -> dict:
    torch.set_num_threads(threads)  # workers x threads <= cores, or they fight for the CPU
    save_path = saved_model_path(output_dir, model_dir.name) if save_models else None
    if model_timeout_s is None:
        record = process_model(model_dir, seam_config, eval_config, save_path, trust_pickles=trust_pickles)
    else:
        started = time.perf_counter()
        arguments = (model_dir, seam_config, eval_config, save_path)
        record = process_in_child(model_timeout_s, threads, *arguments, trust_pickles=trust_pickles)
        if record is None:
            seconds = time.perf_counter() - started
            message = f"{model_dir}: stopped after {model_timeout_s:g} s without a result (--model_timeout_s)"
            record = failure_record(model_dir, message, seconds, trust_pickles, status="timeout")
    record.setdefault("round", round_number)
    write_record(output_dir, record)
    return record


def final_statuses(output_dir: Path, model_dirs: list[Path]) -> Counter:
    """The status of every model's record (`missing` where there is none)."""
    statuses: Counter = Counter()
    for model_dir in model_dirs:
        record = read_record(record_path(output_dir, model_dir.name))
        statuses[record["status"] if record is not None else "missing"] += 1
    return statuses


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
    trust_pickles: bool = False,
    model_timeout_s: float | None = None,
) -> BatchOutcome:
    """Process every model of the round (or of one shard) that has no valid record yet.

    Each finished model's record is written at once, so a killed batch loses at most the models
    that were in flight. Returns a count of statuses for this call's models, and of every model of
    the round or shard once the call is done (`final`).
    """
    output_dir = ensure_folder(output_dir)
    model_dirs = shard(discover_models(round_dir), shard_index, num_shards)
    todo = [m for m in model_dirs if needs_work(output_dir, m.name, retry_errors)]
    for model_dir in todo:  # this shard owns these models, so their leftovers are safe to delete
        remove_stale_temp_files(record_path(output_dir, model_dir.name))
        remove_stale_temp_files(saved_model_path(output_dir, model_dir.name))
    statuses: Counter = Counter({"skipped (already done)": len(model_dirs) - len(todo)})
    if todo:
        n_jobs = max(1, min(n_jobs, len(todo)))
        threads = threads_per_worker(n_jobs)
        options = (trust_pickles, model_timeout_s)
        arguments = [
            (m, output_dir, seam_config, eval_config, save_models, threads, round_number, *options)
            for m in todo
        ]
        for record in run_parallel(_worker, arguments, n_jobs, "SEAM", len(todo)):
            statuses[record["status"]] += 1
    return BatchOutcome(statuses, final_statuses(output_dir, model_dirs))
