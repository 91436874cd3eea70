"""Resident memory of `run`'s worker processes over many models: does it grow with the models done?

    python benchmarks/worker_memory.py ROUND_DIR [--laps 30] [--n_jobs 2] [--every 10]

Runs the batch runner's own per-model function (`harness.scheduler._worker`, SEAM at the round's YAML)
through the same process pool as `run`, over every model of ROUND_DIR `--laps` times (each lap into its
own scratch folder, so nothing is skipped), and prints every `--every` models the current and peak resident
memory of each worker (/proc). A small round of `micro_cnn` models (`benchmarks/scale.py`'s preset) keeps
it to minutes. Linux only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from scale import descendants, memory_mb  # this folder is on the path when the script runs

import harness  # noqa: F401  before torch: the harness's thread and kernel settings hold in the workers
from adapters import detect_round
from adapters.common import discover_models
from harness.config import MODEL_THREADS, round_eval_config, round_seam_config
from harness.parallel import run_parallel
from harness.pipeline import Job
from harness.scheduler import _worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("round_dir", type=Path)
    parser.add_argument("--laps", type=int, default=30)
    parser.add_argument("--n_jobs", type=int, default=2)
    parser.add_argument("--every", type=int, default=10)
    options = parser.parse_args()
    model_dirs = discover_models(options.round_dir)
    number = detect_round(options.round_dir)
    seam, evaluation = round_seam_config(number), round_eval_config(number)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = []
        for lap in range(options.laps):
            output = Path(scratch) / f"lap{lap}"
            for model_dir in model_dirs:
                job = Job("seam", seam, None, save_path=output / "models" / model_dir.name / "model.pt")
                arguments.append((model_dir, [job], output, evaluation, MODEL_THREADS, number, False, None))
        print("models done, then per worker: current / peak resident memory (MiB)")
        results = run_parallel(_worker, arguments, options.n_jobs, MODEL_THREADS, "seam", len(arguments))
        for done, _ in enumerate(results, 1):
            if done % options.every == 0 or done == len(arguments):
                memory = [(memory_mb(pid, "VmRSS"), memory_mb(pid)) for pid in descendants(os.getpid())]
                workers = [m for m in memory if m[1] > 100]  # not loky's small helpers (NaN: gone)
                cells = ", ".join(f"{current:.1f} / {peak:.1f}" for current, peak in workers)
                print(f"{done:5d}  {cells}", flush=True)


if __name__ == "__main__":
    main()
