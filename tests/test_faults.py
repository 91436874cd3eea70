"""Week-long batches: a model that hangs, an output disk that fills up or turns read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST_SEAM, save_with_user_module, seam_harness

from adapters.common import discover_models
from harness.model_io import load_model
from harness.records import read_record


def run_round(round_dir, output_dir, *extra, **kwargs) -> subprocess.CompletedProcess:
    return seam_harness(
        "run", "--round_dir", round_dir, "--output_dir", output_dir, *FAST_SEAM, *extra, check=False, **kwargs
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[-1]


HANGING_LAYER = '''
import time

import torch


class Hanging(torch.nn.Module):
    """A user's model whose layer never returns."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        time.sleep(3600)
        return self.inner(x)
'''


def test_a_hanging_model_becomes_a_timeout_row_and_the_batch_goes_on(tiny_round3, tmp_path):
    models = discover_models(tiny_round3)
    hanging = Path(shutil.copytree(models[0], tmp_path / "round" / "models" / "id-0")) / "model.pt"
    shutil.copytree(models[1], tmp_path / "round" / "models" / "id-1")

    def wrap(module):
        return module.Hanging(load_model(hanging))

    env = save_with_user_module(tmp_path / "user_code", "hanging_models", HANGING_LAYER, wrap, hanging)
    limit = 15
    options = ("--trust_pickles", "true", "--model_timeout_s", str(limit), "--n_jobs", "2")
    result = run_round(tmp_path / "round", tmp_path / "out", *options, env=env)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("0 errors, 1 timeouts")
    results = pd.read_csv(tmp_path / "out" / "results.csv").set_index("model_id")
    assert results.loc["id-0", "status"] == "timeout" and f"{limit} s" in results.loc["id-0", "error"]
    assert limit <= results.loc["id-0", "total_seconds"] <= limit + 10
    assert pd.notna(results.loc["id-0", "model_architecture"])
    assert results.loc["id-1", "status"] not in ("error", "timeout") and pd.notna(
        results.loc["id-1", "acc_after"]
    )
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary[summary["group_by"] == "all"]["n_timeouts"].sum() == 1


def test_an_output_folder_that_is_a_file_is_a_one_line_error(tiny_round3, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    line = one_line_error(run_round(tiny_round3, tmp_path / "out"))
    assert str(tmp_path / "out") in line


@pytest.fixture
def small_filesystem(tmp_path):
    """A 256 KiB tmpfs, mounted where the machine allows it (root with mount rights), else skipped."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], capture_output=True)


def remount(mount_point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount_point)], check=True)


def test_a_full_or_read_only_disk_stops_the_batch_with_one_line_and_a_rerun_loses_nothing(
    tiny_round3, small_filesystem
):
    output_dir = small_filesystem / "out"
    line = one_line_error(run_round(tiny_round3, output_dir))  # a saved model does not fit in 256 KiB
    assert "model.pt" in line and "No space left on device" in line
    assert not list(output_dir.rglob(".tmp-*"))
    for path in (output_dir / "records").glob("*.json"):
        assert read_record(path) is not None  # nothing half-written
    remount(small_filesystem, "ro")
    line = one_line_error(run_round(tiny_round3, output_dir))
    assert "Read-only file system" in line
    remount(small_filesystem, "rw,size=400m")  # the fault cleared
    result = run_round(tiny_round3, output_dir)
    assert result.returncode == 0, result.stderr
    results = pd.read_csv(output_dir / "results.csv")
    assert sorted(results["model_id"]) == [p.name for p in discover_models(tiny_round3)]
    assert (output_dir / "models").is_dir() and not list(output_dir.rglob(".tmp-*"))
