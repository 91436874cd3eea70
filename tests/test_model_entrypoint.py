"""`seam-harness model`: one model, the TrojAI container way, on the NIST test server's folder shape."""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_SEAM

from adapters.common import discover_models
from harness.config import EvalConfig, SeamConfig
from harness.kernels import SWITCH, X86, apply_kernel_choice, has_avx2, read_cpuinfo
from harness.model_io import load_model
from harness.pipeline import process_model

CLI = str(Path(sys.executable).parent / "seam-harness")


def server_folder(source: Path, destination: Path) -> Path:
    """A model folder reduced to model.pt + config.json + example_data/, as the test server held it."""
    destination.mkdir(parents=True)
    for name in ("model.pt", "config.json"):
        shutil.copy(source / name, destination / name)
    shutil.copytree(source / "clean_example_data", destination / "example_data")
    return destination


def model_command(
    folder: Path, tmp_path: Path, *extra, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    result_file = tmp_path / "result.json"
    command = [
        CLI, "model", "--model_filepath", folder / "model.pt", "--result_filepath", result_file,
        "--scratch_dirpath", tmp_path / "scratch", "--examples_dirpath", folder / "example_data", *extra,
    ]  # fmt: skip
    if env is None:  # the defaults, whatever the developer's shell exports
        env = {name: value for name, value in os.environ.items() if name != SWITCH}
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env), result_file


def test_model_entrypoint_on_a_server_shaped_folder(tiny_round3, tmp_path):
    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    unknown = ["--cls_token_is_first", "--round_training_dataset_dirpath", "/nowhere", "--configure_mode"]
    completed, result_file = model_command(folder, tmp_path, *unknown, *FAST_SEAM)
    assert completed.returncode == 0, completed.stderr
    assert "ignoring unknown flag --round_training_dataset_dirpath" in completed.stderr
    assert "ignoring unknown flag --configure_mode" in completed.stderr
    record = json.loads(result_file.read_text())
    assert record["model_id"] == "active" and record["round"] == 3
    assert record["eval_data"] == "clean_example_holdout(fraction=0.5,seed=0)"
    device = "cuda" if torch.cuda.is_available() else "cpu"  # "auto", said once and recorded as used
    assert completed.stderr.count("device auto: using") == 1 and record["method_config"]["device"] == device
    assert record["cpu_kernels"].startswith("native")
    if record["status"] == "ok":
        assert load_model(tmp_path / "scratch" / "mitigated" / "model.pt") is not None

    # the batch path's function on the same model with the same seed gives the same numbers
    seam = SeamConfig(
        forget_max_epochs=3, forget_epochs_below_alpha=1, recover_max_epochs=3, recover_epochs_after_goal=0
    )
    batch = process_model(folder, seam, EvalConfig())
    for key in ("acc_before", "acc_after", "forget_epochs", "recover_epochs", "status"):
        assert batch[key] == record[key], key


def test_model_entrypoint_reports_a_bad_model_clearly(tiny_round3, tmp_path):
    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    (folder / "model.pt").write_bytes(b"junk")
    completed, result_file = model_command(folder, tmp_path)
    assert completed.returncode != 0
    assert "model.pt" in completed.stderr and "Traceback" not in completed.stderr
    assert json.loads(result_file.read_text())["status"] == "error"


PORTABLE_CPU = platform.machine().lower() in X86 and has_avx2(read_cpuinfo())


@pytest.mark.skipif(not PORTABLE_CPU, reason="portable kernels need an x86 CPU with AVX2")
def test_portable_kernels_reach_torch_and_the_row(tiny_round3, tmp_path):
    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    environment = {**os.environ, SWITCH: "portable"}
    probe = "import harness, torch; print(torch.backends.cpu.get_cpu_capability())"
    completed = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True)
    assert completed.stdout.strip() == "AVX2", completed.stderr
    completed, result_file = model_command(folder, tmp_path, "--methods", "[finetune]", env=environment)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(result_file.read_text())["cpu_kernels"] == "portable"


def test_kernel_choice_falls_back_to_native_with_a_reason():
    avx2 = "flags\t\t: fpu sse2 avx avx2 fma\n"
    cases = [  # (switch, machine, cpuinfo) -> a word of the warning
        ("portable", "aarch64", avx2, "x86"),
        ("portable", "x86_64", "flags\t\t: fpu sse2 avx\n", "AVX2 not found"),
        ("fast", "x86_64", avx2, "neither native nor portable"),
        ("portable", "x86_64", avx2, "torch was imported"),  # this test process has imported torch
    ]
    for switch, machine, cpuinfo, reason in cases:
        environ = {SWITCH: switch}
        assert reason in apply_kernel_choice(environ, machine, cpuinfo)
        assert environ == {SWITCH: switch}
    assert apply_kernel_choice({}, "x86_64", avx2) is None


def test_model_entrypoint_runs_several_methods_on_one_load(tiny_round3, tmp_path):
    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    methods = ["--methods", "[finetune, neural_cleanse]", "--finetune.epochs", "1"]
    quick_cleanse = ["--neural_cleanse.epochs", "1", "--neural_cleanse.unlearn_epochs", "1"]
    completed, result_file = model_command(folder, tmp_path, *methods, *quick_cleanse)
    assert completed.returncode == 0, completed.stderr
    records = json.loads(result_file.read_text())
    assert [r["method"] for r in records] == ["finetune", "neural_cleanse"]
    assert records[0]["load_seconds"] == records[1]["load_seconds"]  # loaded and measured once
    assert load_model(tmp_path / "scratch" / "mitigated" / "active.finetune" / "model.pt") is not None


def test_cross_fitting_measures_each_half_with_the_model_trained_on_the_other(tiny_round3, tmp_path):
    from adapters import load_task
    from harness.training import data_accuracy

    folder = server_folder(discover_models(tiny_round3)[0], tmp_path / "active")
    seam = SeamConfig(
        forget_max_epochs=3, forget_epochs_below_alpha=1, recover_max_epochs=3, recover_epochs_after_goal=0
    )
    record = process_model(folder, seam, EvalConfig(cross_fit=True), save_path=tmp_path / "saved.pt")
    n_examples = len(list((folder / "example_data").iterdir()))
    assert record["eval_data"] == "cross_fit(fraction=0.5,seed=0)"
    assert len(record["fold_statuses"]) == 2
    # the saved model trained on every example; ACC counts every example once, each by the other half's model
    assert record["defender_examples"] == record["acc_n"] == n_examples
    task = load_task(folder, 0.5, 0)
    every_example = torch.cat([task.defender.labels, task.eval_clean.labels])
    original = (
        data_accuracy(task.model, task.defender) * len(task.defender)
        + data_accuracy(task.model, task.eval_clean) * len(task.eval_clean)
    ) / len(every_example)
    assert abs(record["acc_before"] - original) < 1e-9
    assert abs(record["acc_after"] * n_examples - round(record["acc_after"] * n_examples)) < 1e-6
