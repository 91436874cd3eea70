"""`seam-harness slurm`: readable sbatch scripts, and a real single-node Slurm running them.

The cluster test installs Debian's slurmctld, slurmd and munge, starts them (.ci/slurm_up.sh) and stops
them by PID afterwards (.ci/slurm_down.sh). Where that is impossible (not root, no apt, no network to
the Debian mirror) it is skipped and the reason is printed.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import CLI, seam_harness

from adapters.common import discover_models

CI_DIR = Path(__file__).resolve().parent.parent / ".ci"
FAST_CONFIG = {
    "seam": {
        "forget_max_epochs": 3,
        "forget_epochs_below_alpha": 1,
        "recover_max_epochs": 3,
        "recover_epochs_after_goal": 0,
        "restarts": 0,
    }
}


@pytest.fixture
def fast_config(tmp_path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(yaml.safe_dump(FAST_CONFIG))
    return path


def test_scripts_for_a_container_array(tiny_round3, tmp_path, fast_config):
    output_dir = tmp_path / "out"
    completed = seam_harness(
        "slurm", "--round_dir", tiny_round3, "--output_dir", output_dir, "--num_shards", "5",
        "--max_parallel", "2", "--partition", "gpu", "--time", "02:00:00", "--mem", "16G", "--gpus", "1",
        "--container", "/images/seam.sif", "--container_runtime", "apptainer", "--run_config", fast_config,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "sbatch --dependency=afterany:" in completed.stdout  # how to submit by hand
    array = (output_dir / "slurm" / "seam-array.sbatch").read_text()
    for line in ("#SBATCH --array=0-4%2", "#SBATCH --partition=gpu", "#SBATCH --time=02:00:00",
                 "#SBATCH --mem=16G", "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=2"):  # fmt: skip
        assert line + "\n" in array
    assert f"#SBATCH --output={output_dir}/slurm/logs/seam-%A_%a.out" in array
    task = array.strip().splitlines()[-1]
    assert task.startswith(
        f"apptainer exec --nv --bind {tiny_round3} --bind {output_dir} --bind {tmp_path} /images/seam.sif "
        "seam-harness run"
    )
    assert f"--num_shards 5 --aggregate false --config {fast_config}" in task
    assert task.endswith('--n_jobs 2 --shard_index "$SLURM_ARRAY_TASK_ID"')  # a model per CPU
    aggregate = (output_dir / "slurm" / "seam-aggregate.sbatch").read_text()
    assert aggregate.strip().endswith(f"/images/seam.sif seam-harness aggregate --output_dir {output_dir}")
    assert "--array" not in aggregate


def test_scripts_pass_methods_and_budgets_and_compare_at_the_end(tiny_round3, tmp_path):
    output_dir = tmp_path / "out"
    seam_harness(
        "slurm", "--round_dir", tiny_round3, "--output_dir", output_dir, "--num_shards", "2",
        "--methods", "[seam, fine_pruning]", "--defender_per_class", "[2, 5]",
    )  # fmt: skip
    task = (output_dir / "slurm" / "seam-array.sbatch").read_text().strip().splitlines()[-1]
    assert "--methods '[seam, fine_pruning]' --defender_per_class '[2, 5]'" in task
    aggregate = (output_dir / "slurm" / "seam-aggregate.sbatch").read_text().strip().splitlines()
    assert aggregate[-2].endswith(f"aggregate --output_dir {output_dir}")
    assert aggregate[-1].endswith(f"compare --output_dir {output_dir}")


def test_submit_without_slurm_is_a_clear_error(tiny_round3, tmp_path):
    bin_only = {"PATH": str(Path(CLI).parent), "HOME": str(tmp_path)}  # no sbatch on this PATH
    completed = seam_harness(
        "slurm", "--round_dir", tiny_round3, "--output_dir", tmp_path / "o", "--num_shards", "2", "--submit",
        env=bin_only, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert completed.stderr.strip() == (
        "seam-harness: error: sbatch not found: run this on a Slurm login node, or submit by hand"
    )


def slurm_skip_reason() -> str | None:
    if shutil.which("sinfo") and subprocess.run(["sinfo"], capture_output=True).returncode == 0:
        return None  # a cluster is already up
    if os.geteuid() != 0:
        return "Slurm test needs root to install and start slurmctld/slurmd/munge"
    if not shutil.which("apt-get"):
        return "Slurm test needs Debian's apt-get to install Slurm"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("sinfo") and subprocess.run(["sinfo"], capture_output=True).returncode == 0:
        yield None  # not ours to stop
        return
    # 6 slots on a 2-core machine: the 3 shards start together (each uses the cores' threads)
    env = {**os.environ, "SLURM_RUN": str(tmp_path_factory.mktemp("slurm")), "SLURM_CPUS": "6"}
    try:
        started = subprocess.run(["bash", CI_DIR / "slurm_up.sh"], capture_output=True, text=True, env=env)
        if started.returncode != 0:
            pytest.skip(f"Slurm could not be started: {(started.stderr or started.stdout).strip()[-500:]}")
        yield env
    finally:
        subprocess.run(["bash", CI_DIR / "slurm_down.sh"], env=env, capture_output=True)


def wait_for_jobs(job_ids: list[str], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        listed = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids)], capture_output=True, text=True)
        if listed.returncode == 0 and not listed.stdout.strip():
            return
        time.sleep(0.5)
    raise AssertionError(f"Slurm jobs {job_ids} still queued or running after {timeout} s")


def comparable(results: pd.DataFrame) -> pd.DataFrame:
    """The table without what legitimately differs between two runs: times and output paths."""
    dropped = [c for c in results.columns if c.endswith("_seconds") or c == "saved_model"]
    return results.drop(columns=dropped).sort_values("model_id").reset_index(drop=True)


def test_slurm_array_gives_the_local_results(slurm_cluster, tiny_round3, tmp_path, fast_config):
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local = seam_harness(
        "run", "--round_dir", tiny_round3, "--output_dir", local_dir, "--config", fast_config
    )
    assert local.returncode == 0, local.stderr

    started = time.perf_counter()
    submitted = seam_harness(
        "slurm", "--round_dir", tiny_round3, "--output_dir", slurm_dir, "--num_shards", "3",
        "--run_config", fast_config, "--submit",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    words = submitted.stdout.split()
    job_ids = [words[words.index("array") + 2], words[words.index("aggregation") + 2]]
    wait_for_jobs(job_ids, timeout=300)
    print(f"Slurm: 3 shards + aggregation finished in {time.perf_counter() - started:.1f} s")

    logs = sorted((slurm_dir / "slurm" / "logs").glob("seam-*.out"))
    assert len(logs) == 3, "one log per array task"
    # each task did one model (ok or flagged, as the local run: the tables below are compared)
    assert all(re.search(r"^done: 1 \w+$", log.read_text(), re.M) for log in logs), [
        log.read_text() for log in logs
    ]
    assert (slurm_dir / "results.csv").exists(), "the aggregation job ran after the array"
    slurm_results = pd.read_csv(slurm_dir / "results.csv")
    assert sorted(slurm_results["model_id"]) == [p.name for p in discover_models(tiny_round3)]
    pd.testing.assert_frame_equal(
        comparable(slurm_results), comparable(pd.read_csv(local_dir / "results.csv"))
    )
