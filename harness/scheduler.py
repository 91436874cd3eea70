"""Batch runs over a round: discovery, sharding, parallel workers, resume per (model, method, budget).

Knows nothing of images or text, and no method by name."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from adapters.common import discover_models
from harness.config import MODEL_THREADS, EvalConfig
from harness.files import OutputError, ensure_folder, remove_stale_temp_files
from harness.parallel import run_parallel
from harness.pipeline import Job, failure_record, process_jobs
from harness.records import FAILED, read_record, record_key, record_path, write_record


@dataclass
class BatchOutcome:
    this_call: Counter  # statuses of the models this call processed, and how many it skipped
    final: Counter  # status of every (model, job) of the round or shard afterwards
    n_models: int = 0


def shard(items: list, shard_index: int, num_shards: int) -> list:
    """A deterministic share of a sorted list: every num_shards-th item starting at shard_index."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    return items[shard_index::num_shards]


def saved_model_path(output_dir: Path, key: str) -> Path:
    return Path(output_dir) / "models" / key / "model.pt"


def job_key(model_dir: Path, job: Job) -> str:
    return record_key(model_dir.name, job.method, job.defender_per_class)


def needs_work(output_dir: Path, key: str, retry_errors: bool) -> bool:
    """True unless a valid record exists (a truncated or foreign record is recomputed)."""
    record = read_record(record_path(output_dir, key))
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
            job = Job(kwargs["method"], args[0], kwargs["defender_per_class"])
            return failure_record(model_dir, message, seconds, kwargs.get("trust_pickles", False), job=job)
        kind, value = pickle.loads(result_file.read_bytes())
    if kind == "output_error":
        raise OutputError(value)
    return value


def _records(
    model_dir: Path,
    jobs: list[Job],
    eval_config: EvalConfig,
    threads: int,
    trust_pickles: bool,
    model_timeout_s: float | None,
) -> Iterator[dict]:
    """The model's records, job by job: in this process (loaded once), or each job in a child with a limit."""
    if model_timeout_s is None:
        yield from process_jobs(model_dir, jobs, eval_config, trust_pickles=trust_pickles)
        return
    for job in jobs:
        started = time.perf_counter()
        arguments = (model_dir, job.config, eval_config, job.save_path)
        options = {"method": job.method, "defender_per_class": job.defender_per_class}
        record = process_in_child(
            model_timeout_s, threads, *arguments, trust_pickles=trust_pickles, **options
        )
        if record is None:
            seconds = time.perf_counter() - started
            message = f"{model_dir}: stopped after {model_timeout_s:g} s without a result (--model_timeout_s)"
            record = failure_record(model_dir, message, seconds, trust_pickles, status="timeout", job=job)
        yield record


def _worker(
    model_dir: Path,
    jobs: list[Job],
    output_dir: Path,
    eval_config: EvalConfig,
    threads: int,
    round_number: int | None,
    trust_pickles: bool,
    model_timeout_s: float | None,
) -> list[dict]:
    """Every pending job of one model; each record is written as soon as it exists."""
    torch.set_num_threads(threads)
    records = []
    for record in _records(model_dir, jobs, eval_config, threads, trust_pickles, model_timeout_s):
        record.setdefault("round", round_number)
        write_record(output_dir, record)
        records.append(record)
    return records


def final_statuses(output_dir: Path, model_dirs: list[Path], jobs: list[Job]) -> Counter:
    """The status of every (model, job) record (`missing` where there is none)."""
    statuses: Counter = Counter()
    for model_dir in model_dirs:
        for job in jobs:
            record = read_record(record_path(output_dir, job_key(model_dir, job)))
            statuses[record["status"] if record is not None else "missing"] += 1
    return statuses


def run_batch(
    round_dir: Path,
    output_dir: Path,
    jobs: list[Job],
    eval_config: EvalConfig,
    n_jobs: int = 1,
    save_models: bool = True,
    retry_errors: bool = False,
    shard_index: int = 0,
    num_shards: int = 1,
    round_number: int | None = None,
    trust_pickles: bool = False,
    model_timeout_s: float | None = None,
    threads: int = MODEL_THREADS,
) -> BatchOutcome:
    """Run every job (method and defender budget) on every model of the round (or of one shard) that
    has no valid record for it yet. A model is loaded and measured once for all its pending jobs.

    Each record is written as soon as it exists, so a killed batch loses at most the jobs in flight.
    Each model runs with `threads` torch threads, whatever n_jobs and the cores: the same model, settings
    and thread count give the same record on the same kind of CPU.
    Returns a count of statuses for this call's records, and of every (model, job) of the round or shard
    once the call is done (`final`).
    """
    output_dir = ensure_folder(output_dir)
    model_dirs = shard(discover_models(round_dir), shard_index, num_shards)
    todo: list[tuple[Path, list[Job]]] = []
    for model_dir in model_dirs:
        pending = []
        for job in jobs:
            key = job_key(model_dir, job)
            if needs_work(output_dir, key, retry_errors):
                # this shard owns these records, so their leftovers are safe to delete
                remove_stale_temp_files(record_path(output_dir, key))
                remove_stale_temp_files(saved_model_path(output_dir, key))
                save_path = saved_model_path(output_dir, key) if save_models else None
                pending.append(dataclasses.replace(job, save_path=save_path))
        if pending:
            todo.append((model_dir, pending))
    n_pending = sum(len(pending) for _, pending in todo)
    statuses: Counter = Counter({"skipped (already done)": len(model_dirs) * len(jobs) - n_pending})
    if todo:
        n_jobs = max(1, min(n_jobs, len(todo)))
        options = (eval_config, threads, round_number, trust_pickles, model_timeout_s)
        arguments = [(model_dir, pending, output_dir, *options) for model_dir, pending in todo]
        names = sorted({job.method for _, pending in todo for job in pending})
        for records in run_parallel(_worker, arguments, n_jobs, threads, ", ".join(names), len(todo)):
            statuses.update(record["status"] for record in records)
    return BatchOutcome(statuses, final_statuses(output_dir, model_dirs, jobs), len(model_dirs))
