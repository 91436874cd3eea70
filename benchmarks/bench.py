"""Where a model's time goes, and how close SEAM's training is to what this machine allows.

    python benchmarks/bench.py ROUND_DIR [--out bench.csv] [--skip_jobs] [--keep_runs DIR]

On a round made by `make-round` (or any round), in one invocation, printed and written to bench.csv:
- the per-model time split of `seam-harness run` at its defaults (one model at a time, one thread; load,
  evaluate before, SEAM's forget and recover phases, evaluate after, save; means over the round's models);
- scheduler overhead: the run's wall time over the sum of the per-model times;
- scaling: the wall time of `--n_jobs 2` (one thread each) over `--n_jobs 1 --threads 2`, and every
  run's mean Fidelity (the same round files at other n_jobs and thread counts); skipped with
  --skip_jobs; `--keep_runs DIR` keeps the output folders;
- SEAM's time over the time the generator took to train the same model from scratch
  (model_stats.json `training_wall_time_sec`, where the round has it);
- for the second model (the first pays torch's one-off imports): SEAM's training throughput per phase
  (examples per second inside its training steps: forward, loss, backward, optimizer step; the record's
  `*_step_seconds`) over a bare loop of the same model, batch size and threads that does nothing but
  forward, backward and step on the defender data (one thread, as that run); and the share of SEAM's
  time outside those steps (the accuracy checks between epochs, batching, augmentation, relabelling),
  for that model and pooled over every model but the first;
- cold start of `seam-harness --help` and `seam-harness model --help`, and whether loading an image
  model imports transformers; for a sentiment round, embedding passes per example text.
Wall-clock seconds on a shared machine are noisy: compare ratios from one invocation only.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from harness.config import MODEL_THREADS

# isort: off
import harness  # noqa: F401  before torch: its OpenMP wait policy then holds for the bare loop too
import torch

# isort: on

ENTRY_POINT = Path(sys.executable).parent / "seam-harness"  # the installed command, as users start it
CLI = [str(ENTRY_POINT)] if ENTRY_POINT.is_file() else [sys.executable, "-m", "harness.cli"]
JOBS1_THREADS = 2  # one model at a time on two threads, against two models at a time on one thread each
PHASES = ["load_seconds", "eval_before_seconds", "forget_seconds", "recover_seconds",
          "eval_after_seconds", "save_seconds", "total_seconds"]  # fmt: skip


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_round(round_dir: Path, output_dir: Path, n_jobs: int, threads: int) -> tuple[float, pd.DataFrame]:
    wall = timed([*CLI, "run", "--round_dir", str(round_dir), "--output_dir", str(output_dir),
                  "--n_jobs", str(n_jobs), "--threads", str(threads)])  # fmt: skip
    return wall, pd.read_csv(output_dir / "results.csv")


def generator_seconds(results: pd.DataFrame) -> pd.Series:
    def read(model_dir: str) -> float:
        stats = Path(model_dir) / "model_stats.json"
        if not stats.is_file():
            return math.nan
        return float(json.loads(stats.read_text()).get("training_wall_time_sec") or math.nan)

    return results["model_dir"].map(read)


def bare_loop_seconds(model_dir: Path, record: pd.Series) -> float:
    """The same number of optimizer steps as SEAM took, with nothing else: forward, backward, step."""
    import adapters
    from harness.config import SeamConfig

    config = SeamConfig(**json.loads(record["method_config"]))
    task = adapters.load_task(model_dir)
    model = task.model
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = task.defender
    batches = max(1, math.ceil(len(data) / config.batch_size))
    steps = int(record["forget_epochs"] + record["recover_epochs"]) * batches
    index = torch.arange(len(data)).tensor_split(batches)
    start = time.perf_counter()
    for step in range(steps):
        batch = index[step % batches]
        logits = task.forward(model, data.inputs[batch])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), data.labels[batch].reshape(-1), ignore_index=-100
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def imports_transformers(model_dir: Path) -> bool:
    load = f"adapters.load_task({str(model_dir)!r})"
    code = f"import sys, adapters; {load}; print('transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip().endswith("True")


def embedding_passes_per_text(model_dir: Path) -> float:
    """Texts through the frozen embedding while loading a sentiment task, over the texts it reads."""
    import adapters
    from adapters import sentiment

    counted: list[int] = []
    real_load = sentiment.load_model

    def counting_load(path, trust_pickles=False):
        model = real_load(path, trust_pickles)
        if Path(path).parent.name == "embeddings":
            model.register_forward_hook(lambda module, args, output: counted.append(len(args[0])))
        return model

    sentiment.load_model = counting_load
    try:
        task = adapters.load_task(model_dir)
    finally:
        sentiment.load_model = real_load
    texts = len(task.defender) + len(task.eval_clean) + len(task.eval_triggered or [])
    texts += len(task.drift_check or [])
    return sum(counted) / texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("round_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench.csv"))
    parser.add_argument("--skip_jobs", action="store_true", help="Skip the --n_jobs 2 run.")
    parser.add_argument("--keep_runs", type=Path, help="Keep the two runs' output folders here.")
    options = parser.parse_args()
    figures: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs = options.keep_runs or Path(scratch)
        wall, results = run_round(options.round_dir, runs / "default", 1, MODEL_THREADS)
        for phase in PHASES:
            figures[f"mean_{phase}"] = results[phase].mean()
        figures["run_wall_seconds"] = wall
        figures["scheduler_overhead"] = wall / results["total_seconds"].sum()
        figures["mean_fidelity"] = results["fidelity"].mean()
        if not options.skip_jobs:
            wall1, results1 = run_round(options.round_dir, runs / "jobs1_threads2", 1, JOBS1_THREADS)
            wall2, results2 = run_round(options.round_dir, runs / "jobs2", 2, MODEL_THREADS)
            figures["run_wall_seconds_jobs1_threads2"] = wall1
            figures["run_wall_seconds_jobs2"] = wall2
            figures["speedup_jobs2_over_jobs1_threads2"] = wall1 / wall2
            # the same round files at other thread counts and n_jobs: does SEAM's outcome move?
            figures["mean_fidelity_jobs1_threads2"] = results1["fidelity"].mean()
            figures["mean_fidelity_jobs2"] = results2["fidelity"].mean()
    seam_seconds = results["forget_seconds"] + results["recover_seconds"]
    figures["seam_over_generator_training"] = (seam_seconds / generator_seconds(results)).mean()
    # the second model: the first one's SEAM time includes torch's one-off imports on the first optimizer
    first = results.iloc[min(1, len(results) - 1)]
    model_dir = Path(first["model_dir"])
    torch.set_num_threads(MODEL_THREADS)  # as that run
    bare = bare_loop_seconds(model_dir, first)
    bare_throughput = (first["forget_epochs"] + first["recover_epochs"]) * first["defender_examples"] / bare
    # epochs x examples went through the steps, over every SEAM run (restarts included)
    for phase in ("forget", "recover"):
        epochs = first[f"{phase}_epochs_all_runs"]
        throughput = epochs * first["defender_examples"] / first[f"{phase}_step_seconds"]
        figures[f"seam_{phase}_throughput_over_bare_loop"] = throughput / bare_throughput
    seam_first = first["forget_seconds"] + first["recover_seconds"]
    steps_first = first["forget_step_seconds"] + first["recover_step_seconds"]
    figures["seam_share_outside_steps"] = 1 - steps_first / seam_first
    rest = results.iloc[1:] if len(results) > 1 else results  # every model but the first, pooled
    steps_rest = (rest["forget_step_seconds"] + rest["recover_step_seconds"]).sum()
    figures["seam_share_outside_steps_round"] = (
        1 - steps_rest / (rest["forget_seconds"] + rest["recover_seconds"]).sum()
    )
    figures["cold_start_help_seconds"] = min(timed([*CLI, "--help"]) for _ in range(3))
    figures["cold_start_model_help_seconds"] = min(timed([*CLI, "model", "--help"]) for _ in range(3))
    if int(first["round"]) in (3, 4):
        figures["image_round_imports_transformers"] = str(imports_transformers(model_dir))
    if int(first["round"]) in (5, 6):
        figures["embedding_passes_per_text"] = embedding_passes_per_text(model_dir)
    table = pd.DataFrame({"figure": list(figures), "value": list(figures.values())})
    table.to_csv(options.out, index=False)
    print(table.to_string(index=False))
    print(f"table: {options.out}")


if __name__ == "__main__":
    main()
