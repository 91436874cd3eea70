"""A round of many tiny models end to end: generation, discovery, a killed and resumed `run`, aggregation
and memory over the batch.

    python benchmarks/scale.py --round_dir micro1000 --output_dir micro1000-seam [--num_models 1000]
        [--methods '[seam]']

1. `make-round --architectures '[micro_cnn]'` at 16 px (kept if the folder is already complete: make-round
   keeps finished model folders), with the generator's wall time;
2. discovery: the time to find the round's model folders and its round type;
3. `run` with SIGKILL to its whole process group once `--kill_after` records exist, then the same command
   again to finish (resume); the parent's and the largest worker's peak resident memory (VmHWM) at each
   process's 10th record and at its last;
4. integrity: records on disk, rows of results.csv, models missing or counted twice;
5. aggregation of the run's records, and of `--aggregate_records` records made by copying the run's
   records under other budget labels (a timing input only: the copies are not results).
Prints a table and writes scale.csv in the output folder. One run, on a shared machine: read ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import CLI, timed  # noqa: E402  (this folder is on the path when the script runs)

from adapters.synthetic.specs import MICRO_ROUND  # noqa: E402

MICRO_FLAGS = [
    a for k, v in MICRO_ROUND.items() for a in (f"--{k}", json.dumps(v) if isinstance(v, list) else str(v))
]


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of a live process from /proc (VmHWM: peak resident set; VmRSS: current), in MiB;
    NaN once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            found += [int(c) for c in children]
            frontier += [int(c) for c in children]
    return found


def count_records(output_dir: Path) -> int:
    folder = output_dir / "records"
    return sum(1 for _ in folder.glob("*.json")) if folder.is_dir() else 0


def watched_run(command: list[str], output_dir: Path, kill_after: int | None) -> dict:
    """Run `command` in its own process group; note the parent's and the largest worker's peak memory
    at its 10th record and at its end; SIGKILL the group once `kill_after` records exist (None: let it
    finish)."""
    start_count = count_records(output_dir)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    figures: dict = {}
    peaks: dict[int, float] = {}  # pid -> its last VmHWM seen (a peak only grows)
    while process.poll() is None:
        for pid in (process.pid, *descendants(process.pid)):
            if (mb := memory_mb(pid)) == mb:
                peaks[pid] = mb
        done = count_records(output_dir) - start_count
        if done >= 10 and "at_10" not in figures:
            figures["at_10"] = memory_figures(process.pid, peaks)
        if kill_after is not None and start_count + done >= kill_after:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
        time.sleep(0.2)
    figures["at_end"] = memory_figures(process.pid, peaks)
    figures["records"] = count_records(output_dir) - start_count
    return figures


def memory_figures(parent: int, peaks: dict[int, float]) -> dict:
    workers = [mb for pid, mb in peaks.items() if pid != parent]
    return {"parent_mb": peaks.get(parent, math.nan), "worker_mb": max(workers, default=math.nan)}


def replicated_records(output_dir: Path, copies_dir: Path, total: int) -> int:
    """Copy the run's records under other budget labels until `total` exist (aggregation timing only)."""
    from harness.records import write_record

    shutil.rmtree(copies_dir, ignore_errors=True)
    (copies_dir / "records").mkdir(parents=True)
    sources = sorted((output_dir / "records").glob("*.json"))
    written = 0
    for budget in range(1, total // max(1, len(sources)) + 2):
        for source in sources:
            if written == total:
                return written
            record = json.loads(source.read_text())
            record["defender_per_class"] = budget
            write_record(copies_dir, record)
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round_dir", type=Path, required=True)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--num_models", type=int, default=1000)
    parser.add_argument("--kill_after", type=int, default=100, help="records before the SIGKILL")
    parser.add_argument("--n_jobs", type=int, default=2)
    parser.add_argument("--aggregate_records", type=int, default=3000)
    parser.add_argument("--methods", default="[seam]", help="methods for run; [finetune] is the fastest")
    args = parser.parse_args()
    rows: list[tuple[str, object]] = []

    make = [*CLI, "make-round", "--round", "3", "--num_models", str(args.num_models), "--seed", "0",
            "--n_jobs", str(args.n_jobs), "--output_dir", str(args.round_dir), *MICRO_FLAGS]  # fmt: skip
    rows.append(("make-round seconds (0 if the round was complete)", round(timed(make), 1)))

    from adapters import detect_round
    from adapters.common import discover_models

    detect_round(args.round_dir)  # once first: its lazy imports (torch) are paid per process, not per round
    start = time.perf_counter()
    model_dirs = discover_models(args.round_dir)
    detect_round(args.round_dir)
    rows += [("models found", len(model_dirs)), ("discovery seconds", round(time.perf_counter() - start, 2))]

    run = [*CLI, "run", "--round_dir", str(args.round_dir), "--output_dir", str(args.output_dir),
           "--n_jobs", str(args.n_jobs), "--save_models", "false", "--methods", args.methods]  # fmt: skip
    start = time.perf_counter()
    first = watched_run(run, args.output_dir, args.kill_after)
    second = watched_run(run, args.output_dir, None)
    rows.append(("run seconds, killed + resumed", round(time.perf_counter() - start, 1)))
    for name, part in (("first (killed)", first), ("second (resume)", second)):
        rows.append((f"{name}: records written", part["records"]))
        for point in ("at_10", "at_end"):
            figures = part.get(point, {})
            for who in ("parent_mb", "worker_mb"):
                rows.append((f"{name}: {who} peak {point}", round(figures.get(who, math.nan), 1)))

    results = pd.read_csv(args.output_dir / "results.csv")
    on_disk = count_records(args.output_dir)
    rows += [
        ("records on disk", on_disk),
        ("results.csv rows", len(results)),
        ("models lost", len({d.name for d in model_dirs} - set(results["model_id"]))),
        ("models counted twice", int(results["model_id"].duplicated().sum())),
        ("statuses", json.dumps(results["status"].value_counts().to_dict())),
    ]
    rows.append(
        (
            f"aggregate seconds, {on_disk} records",
            round(timed([*CLI, "aggregate", "--output_dir", str(args.output_dir)]), 2),
        )
    )
    copies = args.output_dir.parent / f"{args.output_dir.name}-replicated"
    n = replicated_records(args.output_dir, copies, args.aggregate_records)
    rows.append(
        (
            f"aggregate seconds, {n} replicated records",
            round(timed([*CLI, "aggregate", "--output_dir", str(copies)]), 2),
        )
    )
    shutil.rmtree(copies)

    table = pd.DataFrame(rows, columns=["figure", "value"])
    table.to_csv(args.output_dir / "scale.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
