"""The batch path as users run it: `seam-harness run` in a subprocess over real model folders."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import CLI, FAST_SEAM, save_with_user_module, seam_harness
from crafted_pickles import ATTACKS

from adapters import image, load_task
from adapters.common import discover_models, read_config
from harness.model_io import load_model
from harness.parallel import oversubscription, usable_cores
from harness.pipeline import evaluate
from harness.records import FLAGGED, RESULT_COLUMNS


def run_round(round_dir, output_dir, *extra, check=True, **kwargs):
    return seam_harness(
        "run", "--round_dir", round_dir, "--output_dir", output_dir, *FAST_SEAM, *extra, check=check, **kwargs
    )


def comparable(results: pd.DataFrame) -> pd.DataFrame:
    """results.csv without what may differ between two runs of the same settings: times, output paths."""
    varying = [c for c in results.columns if c.endswith("_seconds") or c == "saved_model"]
    return results.drop(columns=varying)


def assert_same_results(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(comparable(ours), comparable(reference))


def record_times(output_dir: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (output_dir / "records").glob("id-*.json")}


@pytest.fixture(scope="module")
def finished_run(tiny_round3, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("out")
    result = run_round(tiny_round3, output_dir)
    return output_dir, result


def test_run_writes_records_tables_and_a_summary(finished_run, tiny_round3):
    output_dir, result = finished_run
    results = pd.read_csv(output_dir / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert sorted(results["model_id"]) == [p.name for p in discover_models(tiny_round3)]
    assert set(results["round"]) == {3} and set(results["method"]) == {"seam"}
    assert set(results["status"]) <= {"ok", *FLAGGED}
    poisoned = results[results["poisoned"]]
    assert (poisoned["eval_data"] == "clean_test_data+poisoned_test_data").all()
    assert poisoned["asr_before"].notna().all() and poisoned["fidelity"].notna().all()
    assert results[~results["poisoned"]]["asr_before"].isna().all()
    summary = pd.read_csv(output_dir / "summary.csv")
    assert {"all", "model_architecture", "trigger_type"} <= set(summary["group_by"])
    for column in (
        "mean_fidelity",
        "median_fidelity",
        "mean_asr_after",
        "mean_acc_drop_clean",
        "total_seconds",
    ):
        assert column in summary
    assert "mean_fidelity" in result.stdout and "results.csv" in result.stdout
    # every figure with the number of items it rests on and its 95 % interval; few items: a warning
    assert (results["acc_n"] == results["eval_clean_examples"]).all()
    for metric in ("acc_before", "acc_after"):
        assert (results[f"{metric}_low"] <= results[metric]).all()
        assert (results[metric] <= results[f"{metric}_high"]).all()
    assert poisoned["fidelity"].between(poisoned["fidelity_low"], poisoned["fidelity_high"]).all()
    assert "fewer than 100 examples" in result.stdout.splitlines()[-2]
    assert summary[summary["group_by"] == "all"]["n_few_examples"].sum() == 3


def test_saved_model_reproduces_its_row(finished_run):
    output_dir, _ = finished_run
    results = pd.read_csv(output_dir / "results.csv")
    saved = results[results["status"] == "ok"]
    assert len(saved) > 0, "the tiny round should have at least one model that SEAM recovered"
    for row in saved.itertuples():
        task = load_task(Path(row.model_dir))
        measured = evaluate(load_model(row.saved_model), task)
        assert measured["acc"] == row.acc_after
        assert (pd.isna(row.asr_after) and pd.isna(measured["asr"])) or measured["asr"] == row.asr_after


def test_rerun_skips_finished_models_and_recomputes_broken_records(finished_run, tiny_round3, tmp_path):
    output_dir = Path(shutil.copytree(finished_run[0], tmp_path / "out"))
    before = record_times(output_dir)
    result = run_round(tiny_round3, output_dir)
    assert record_times(output_dir) == before
    assert "3 skipped" in result.stdout
    records = sorted((output_dir / "records").glob("*.json"))
    records[0].write_text(records[0].read_text()[:40])  # truncated, as by a crash mid-write elsewhere
    records[1].unlink()
    run_round(tiny_round3, output_dir)
    after = record_times(output_dir)
    assert after[records[2].name] == before[records[2].name]
    assert after[records[0].name] != before[records[0].name]
    assert json.loads(records[0].read_text())["model_id"] + ".seam" == records[0].stem
    assert len(pd.read_csv(output_dir / "results.csv")) == 3


def test_bad_model_folders_become_error_rows(round3_copy, tmp_path):
    models = discover_models(round3_copy)
    (models[0] / "model.pt").write_bytes(b"\x00corrupt")
    (models[1] / "config.json").unlink()
    # crafted files for the loader's three historical holes, each in a copy of a good folder
    crafted = {attack.name: attack for attack in ATTACKS}
    holes = [
        crafted["torch.storage._load_from_bytes (an unrestricted torch.load)"],
        crafted["dotted name walking out of torch"],
        crafted["module imported before the allowlist is checked"],
    ]
    for number, attack in enumerate(holes, start=10):
        folder = Path(shutil.copytree(models[2], round3_copy / "models" / f"id-{number:08d}"))
        attack.write(folder / "model.pt", tmp_path / f"marker{number}")
    output_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(models[2].parent / "id-00000012")}  # the attacker's module
    result = run_round(round3_copy, output_dir, env=env, check=False)
    assert result.returncode == 3, result.stderr  # documented: some models have error rows
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith("models: 6: ") and last_line.endswith(", 5 errors, 0 timeouts")
    assert not list(tmp_path.glob("marker*"))
    results = pd.read_csv(output_dir / "results.csv").set_index("model_id")
    for number, attack in enumerate(holes, start=10):
        assert results.loc[f"id-{number:08d}", "status"] == "error"
        assert attack.refused in results.loc[f"id-{number:08d}", "error"]
    assert results.loc[models[0].name, "status"] == "error"
    assert "model.pt" in results.loc[models[0].name, "error"]
    assert results.loc[models[1].name, "status"] == "error"
    assert "no config.json" in results.loc[models[1].name, "error"]
    assert results.loc[models[2].name, "status"] != "error"
    assert pd.notna(results.loc[models[2].name, "acc_after"])
    # an error row keeps what the folder says without loading the model
    config = read_config(models[0])
    for key, value in image.folder_info(models[0], config).items():
        expected = json.dumps(value) if isinstance(value, list) else value  # results.csv keeps lists as JSON
        assert results.loc[models[0].name, key] == expected, key
    assert pd.notna(results.loc[models[1].name, "poisoned"])  # no config.json, but ground_truth.csv
    summary = pd.read_csv(output_dir / "summary.csv")
    assert summary[summary["group_by"] == "all"]["n_errors"].sum() == 5
    by_architecture = summary[(summary["group_by"] == "model_architecture")].set_index("group")
    assert by_architecture.loc[config["model_architecture"], "n_errors"] >= 1
    assert "unknown" not in by_architecture.index or by_architecture.loc["unknown", "n_models"] == 1


def test_another_n_jobs_gives_the_same_table(finished_run, tiny_round3, tmp_path):
    # one torch thread per model whatever --n_jobs and the cores, so the figures do not move with them
    run_round(tiny_round3, tmp_path / "again", "--n_jobs", "2")
    first = pd.read_csv(finished_run[0] / "results.csv")
    assert (first["torch_threads"] == 1).all()
    assert_same_results(pd.read_csv(tmp_path / "again" / "results.csv"), first)


def test_sigkill_then_rerun_loses_and_repeats_nothing(tiny_round3, tmp_path):
    output_dir = tmp_path / "out"
    # slow SEAM down so the kill lands while models are still in flight
    slow = [
        *("--seam.forget_max_epochs", "40", "--seam.forget_lr", "0", "--seam.recover_max_epochs", "1"),
        *("--seam.restarts", "0"),  # one SEAM run per model: the kill is timed for it
    ]
    seam_harness("run", "--round_dir", tiny_round3, "--output_dir", tmp_path / "uninterrupted", *slow)
    process = subprocess.Popen(
        [CLI, "run", "--round_dir", tiny_round3, "--output_dir", output_dir, *slow],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600  # generous: on a loaded 2-core machine the first model took over 120 s
    while time.time() < deadline and not list((output_dir / "records").glob("id-*.json")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = record_times(output_dir)
    assert 1 <= len(finished) < 3, "the kill should land after the first model and before the last"
    unfinished = next(p.name for p in discover_models(tiny_round3) if f"{p.name}.seam.json" not in finished)
    # what writers killed mid-write leave behind (the kill above may or may not have made them): a
    # record, a saved model and the tables
    (output_dir / "records" / f".tmp-{unfinished}.seam.json-killed").write_text('{"model_id": "id-')
    (output_dir / "models" / f"{unfinished}.seam").mkdir(parents=True, exist_ok=True)
    (output_dir / "models" / f"{unfinished}.seam" / ".tmp-model.pt-killed").write_bytes(b"PK\x03\x04")
    (output_dir / ".tmp-results.csv-killed").write_text("model_id,round\nid-0000")
    seam_harness("run", "--round_dir", tiny_round3, "--output_dir", output_dir, *slow)  # the same settings
    after = record_times(output_dir)
    assert {k: after[k] for k in finished} == finished  # nothing finished was recomputed
    results = pd.read_csv(output_dir / "results.csv")
    assert sorted(results["model_id"]) == [p.name for p in discover_models(tiny_round3)]
    assert not results["model_id"].duplicated().any()
    assert not list(output_dir.rglob(".tmp-*"))
    uninterrupted = pd.read_csv(tmp_path / "uninterrupted" / "results.csv")
    assert_same_results(results, uninterrupted)


def test_aggregate_rebuilds_the_tables(finished_run, tmp_path):
    output_dir = Path(shutil.copytree(finished_run[0], tmp_path / "out"))
    (output_dir / "results.csv").unlink()
    (output_dir / "summary.csv").unlink()
    seam_harness("aggregate", "--output_dir", output_dir)
    rebuilt = pd.read_csv(output_dir / "results.csv")
    assert rebuilt.drop(columns=["method_config"]).equals(
        pd.read_csv(finished_run[0] / "results.csv").drop(columns=["method_config"])
    )


def test_bad_input_gives_one_clear_line(tmp_path):
    result = seam_harness(
        "run", "--round_dir", tmp_path / "missing", "--output_dir", tmp_path / "o", check=False
    )
    assert result.returncode != 0
    assert "not a directory" in result.stderr and "Traceback" not in result.stderr
    result = seam_harness("aggregate", "--output_dir", tmp_path, check=False)
    assert result.returncode != 0 and "no valid records" in result.stderr and "Traceback" not in result.stderr


def test_shards_split_the_round_and_slurm_array_variables_pick_the_share(tiny_round3, tmp_path):
    output_dir = tmp_path / "out"
    run_round(tiny_round3, output_dir, "--shard_index", "1", "--num_shards", "2")
    assert sorted(record_times(output_dir)) == ["id-00000001.seam.json"]
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}
    seam_harness("run", "--round_dir", tiny_round3, "--output_dir", output_dir, *FAST_SEAM, env=env)
    assert sorted(record_times(output_dir)) == [f"id-0000000{i}.seam.json" for i in range(3)]
    assert len(pd.read_csv(output_dir / "results.csv")) == 3


def test_trust_pickles_loads_what_the_allowlist_refuses_and_the_row_says_so(tiny_round3, tmp_path):
    # a legitimate model whose class lives in the user's own module, which the allowlist does not know
    source = (
        "import torch\n\n\nclass Wrapped(torch.nn.Module):\n"
        "    def __init__(self, inner):\n        super().__init__()\n        self.inner = inner\n\n"
        "    def forward(self, x):\n        return self.inner(x)\n"
    )
    model_dir = Path(shutil.copytree(discover_models(tiny_round3)[0], tmp_path / "round" / "models" / "id-0"))
    model_file = model_dir / "model.pt"

    def wrap(module):
        return module.Wrapped(load_model(model_file))

    env = save_with_user_module(tmp_path / "user_code", "user_models", source, wrap, model_file)
    refused = run_round(tmp_path / "round", tmp_path / "safe", env=env, check=False)
    assert refused.returncode == 3
    row = pd.read_csv(tmp_path / "safe" / "results.csv").iloc[0]
    assert row["status"] == "error" and "user_models.Wrapped" in row["error"] and not row["trust_pickles"]
    run_round(tmp_path / "round", tmp_path / "trusted", "--trust_pickles", "true", env=env)
    row = pd.read_csv(tmp_path / "trusted" / "results.csv").iloc[0]
    assert row["status"] != "error" and row["trust_pickles"] and pd.notna(row["acc_after"])


def test_more_threads_in_flight_than_cores_is_said():
    assert oversubscription(2, 1, 2) is None and oversubscription(1, 2, 2) is None
    message = oversubscription(2, 2, 2)
    assert message is not None and "2 models at a time x 2 threads each on 2 usable cores" in message
    assert usable_cores() >= 1
