"""Slurm array jobs: one array task per shard of the round, then one aggregation job.

The scripts are plain sbatch files a user can read, edit and submit by hand; `submit` only runs
`sbatch` on them. No image or text knowledge here: the tasks call `seam-harness run`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SlurmOptions:
    """What goes into the #SBATCH lines and the task command.

    Args:
        num_shards: Array tasks; task i processes every num_shards-th model id starting at i.
        max_parallel: At most this many tasks run at once (the %M throttle); default: no limit.
        partition: Slurm partition (default: the cluster's default).
        time: Time limit per task, e.g. 04:00:00.
        cpus_per_task: CPUs per task; each task processes that many models at once (`run --n_jobs`).
        mem: Memory per task, e.g. 16G.
        gpus: GPUs per task (--gres=gpu:N); with a container also adds --nv.
        container: Apptainer/Singularity image; each task runs seam-harness inside it.
        container_runtime: apptainer or singularity (default: whichever is installed, apptainer first).
        run_config: YAML passed to each task's `run --config` (default: the round's own).
        job_name: Slurm job name; the aggregation job adds -aggregate.
        methods: Methods each task runs, as `run --methods` (default: the run config's, else seam).
        defender_per_class: Defender budgets, as `run --defender_per_class` (default: all examples).
    """

    num_shards: int
    max_parallel: int | None = None
    partition: str | None = None
    time: str | None = None
    cpus_per_task: int = 2
    mem: str | None = None
    gpus: int = 0
    container: Path | None = None
    container_runtime: str | None = None
    run_config: Path | None = None
    job_name: str = "seam"
    methods: list[str] | None = None
    defender_per_class: list[int] | None = None


def harness_executable() -> str:
    """The seam-harness of this installation, by absolute path, so jobs find the same venv."""
    beside_python = Path(sys.executable).parent / "seam-harness"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("seam-harness") or "seam-harness"


def container_runtime(requested: str | None) -> str:
    """apptainer if installed (it also answers to singularity), else singularity."""
    if requested:
        return requested
    return "apptainer" if shutil.which("apptainer") or not shutil.which("singularity") else "singularity"


def launcher(options: SlurmOptions, round_dir: Path, output_dir: Path) -> list[str]:
    """How each task starts seam-harness: directly, or inside the container with R, O (and config) bound."""
    if options.container is None:
        return [harness_executable()]
    binds = [str(round_dir), str(output_dir)]
    if options.run_config is not None:
        binds.append(str(options.run_config.parent))
    command = [container_runtime(options.container_runtime), "exec"]
    if options.gpus:
        command.append("--nv")  # the host's NVIDIA driver and devices inside the container
    for bind in dict.fromkeys(binds):
        command += ["--bind", bind]
    return command + [str(options.container), "seam-harness"]


def _header(options: SlurmOptions, name: str, log: Path) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --output={log}"]
    for flag, value in (("partition", options.partition), ("time", options.time), ("mem", options.mem)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    return lines


def array_script(options: SlurmOptions, round_dir: Path, output_dir: Path) -> str:
    throttle = f"%{options.max_parallel}" if options.max_parallel else ""
    lines = _header(options, options.job_name, output_dir / "slurm" / "logs" / "seam-%A_%a.out")
    lines += [f"#SBATCH --array=0-{options.num_shards - 1}{throttle}"]
    lines += [f"#SBATCH --cpus-per-task={options.cpus_per_task}"]
    if options.gpus:
        lines.append(f"#SBATCH --gres=gpu:{options.gpus}")
    command = [
        *launcher(options, round_dir, output_dir),
        *("run", "--round_dir", str(round_dir), "--output_dir", str(output_dir)),
        *("--num_shards", str(options.num_shards), "--aggregate", "false"),
    ]
    if options.run_config is not None:
        command += ["--config", str(options.run_config)]
    if options.methods:
        command += ["--methods", "[" + ", ".join(options.methods) + "]"]
    if options.defender_per_class:
        command += ["--defender_per_class", "[" + ", ".join(map(str, options.defender_per_class)) + "]"]
    command += ["--n_jobs", str(options.cpus_per_task)]  # one model per CPU, one thread each
    lines += [
        "",
        f"# Task i of {options.num_shards} takes the sorted model ids number i, i+{options.num_shards}, "
        f"i+{2 * options.num_shards}, ...",
        "# Each finished model is a record in the output folder, so",
        "# a resubmitted array skips what is done. The aggregation job builds the tables once at the end.",
        "set -euo pipefail",
        " ".join(shlex.quote(part) for part in command) + ' --shard_index "$SLURM_ARRAY_TASK_ID"',
        "",
    ]
    return "\n".join(lines)


def aggregate_script(options: SlurmOptions, output_dir: Path) -> str:
    lines = _header(
        options, f"{options.job_name}-aggregate", output_dir / "slurm" / "logs" / "aggregate-%j.out"
    )
    lines += ["#SBATCH --cpus-per-task=1", ""]
    lines += [
        "# Runs after every array task has ended (afterany: failed tasks too), so the tables show them."
    ]
    command = [*launcher(options, output_dir, output_dir), "aggregate", "--output_dir", str(output_dir)]
    lines += ["set -euo pipefail", " ".join(shlex.quote(part) for part in command)]
    if len(options.methods or []) > 1 or options.defender_per_class:  # several to set side by side
        command[-3] = "compare"
        lines.append(" ".join(shlex.quote(part) for part in command))
    lines.append("")
    return "\n".join(lines)


def write_scripts(options: SlurmOptions, round_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """Write O/slurm/seam-array.sbatch and O/slurm/seam-aggregate.sbatch; returns their paths."""
    if options.num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {options.num_shards}")
    round_dir, output_dir = Path(round_dir).resolve(), Path(output_dir).resolve()
    if options.run_config is not None:
        options.run_config = Path(options.run_config).resolve()
    folder = output_dir / "slurm"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    array_path, aggregate_path = folder / "seam-array.sbatch", folder / "seam-aggregate.sbatch"
    array_path.write_text(array_script(options, round_dir, output_dir))
    aggregate_path.write_text(aggregate_script(options, output_dir))
    return array_path, aggregate_path


def submit_commands(array_path: Path, aggregate_path: Path) -> str:
    """The two commands `submit` runs, for users who submit by hand."""
    return (
        f"array=$(sbatch --parsable {shlex.quote(str(array_path))})\n"
        f"sbatch --dependency=afterany:${{array%%;*}} {shlex.quote(str(aggregate_path))}"
    )


def _sbatch(*args: str) -> str:
    try:
        result = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError("sbatch not found: run this on a Slurm login node, or submit by hand") from None
    if result.returncode != 0:
        raise RuntimeError(
            f"sbatch {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout.strip().split(";")[0]  # --parsable prints "jobid[;cluster]"


def submit(array_path: Path, aggregate_path: Path) -> tuple[str, str]:
    """Submit the array, then the aggregation job depending on it; returns both job ids."""
    array_id = _sbatch(str(array_path))
    aggregate_id = _sbatch(f"--dependency=afterany:{array_id}", str(aggregate_path))
    return array_id, aggregate_id
