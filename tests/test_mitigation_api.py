"""`seam-harness mitigate` / `test` (the 2024 mitigation round's API) against the batch path."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import FAST_SEAM, seam_harness

from adapters.common import discover_models
from adapters.image import read_dataset_images
from harness.model_io import load_model
from harness.training import model_logits

FAST_METAPARAMETERS = {
    "forget_max_epochs": 3,
    "forget_epochs_below_alpha": 1,
    "recover_max_epochs": 3,
    "recover_epochs_after_goal": 0,
}


@pytest.fixture
def metaparameters(tmp_path) -> Path:
    path = tmp_path / "metaparameters.json"
    path.write_text(json.dumps(FAST_METAPARAMETERS))
    return path


def mitigation_dataset(model_dir: Path, destination: Path) -> Path:
    """The 2024 round's shape: train/ and test/ splits of N.png + N.json {"clean_label": c}."""
    for split, source in (("train", "clean_example_data"), ("test", "clean_test_data")):
        (destination / split).mkdir(parents=True)
        for n, image in enumerate(sorted((model_dir / source).glob("*.png"))):
            shutil.copy(image, destination / split / f"{n:03d}.png")  # sorts as the originals
            label = int(image.name.split("_")[1])
            (destination / split / f"{n:03d}.json").write_text(json.dumps({"clean_label": label}))
    return destination


def test_mitigate_then_test_equal_the_batch_path(tiny_round3, tmp_path, metaparameters):
    model_dir = discover_models(tiny_round3)[0]
    batch_dir = tmp_path / "batch"
    # round 3's three runs averaged (restart_policy ensemble), as the mitigation entrypoint runs them
    batch = seam_harness(
        "run", "--round_dir", tiny_round3, "--output_dir", batch_dir, *FAST_SEAM, "--seam.restarts", "2"
    )
    assert batch.returncode == 0, batch.stderr
    record = json.loads((batch_dir / "records" / f"{model_dir.name}.seam.json").read_text())
    assert record["status"] == "ok" and record["ensemble_members"] == 3

    dataset = mitigation_dataset(model_dir, tmp_path / "dataset")
    output_dir = tmp_path / "output"
    mitigated = seam_harness(
        "mitigate", "--model_filepath", model_dir / "model.pt", "--dataset_dirpath", dataset,
        "--output_dirpath", output_dir, "--scratch_dirpath", tmp_path / "scratch", "--device", "cpu",
        "--metaparameters_filepath", metaparameters, "--num_workers", "2",
    )  # fmt: skip
    assert mitigated.returncode == 0, mitigated.stderr
    summary = json.loads(mitigated.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["defender_examples"] == record["defender_examples"]
    assert summary["forget_epochs"] == record["forget_epochs"]

    # same model, data and seed: the same weights as the batch path saved
    ours = load_model(output_dir / "mitigated.pt").state_dict()
    theirs = load_model(batch_dir / "models" / f"{model_dir.name}.seam" / "model.pt").state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)

    tested = seam_harness(
        "test", "--model_filepath", output_dir / "mitigated.pt", "--dataset", dataset,
        "--output_dirpath", output_dir, "--device", "cuda",  # falls back to the CPU here, with a warning
    )  # fmt: skip
    assert tested.returncode == 0, tested.stderr
    logits = json.loads((output_dir / "results.json").read_text())
    test_images = read_dataset_images(dataset / "test", 16, labelled=False)
    assert sorted(logits) == sorted(test_images.names)
    expected = model_logits(
        load_model(batch_dir / "models" / f"{model_dir.name}.seam" / "model.pt"), test_images.inputs
    )
    got = torch.tensor([logits[name] for name in test_images.names])
    assert torch.allclose(got, expected, atol=1e-5)
    accuracy = (got.argmax(1) == test_images.labels).float().mean().item()
    assert accuracy == pytest.approx(record["acc_after"])  # the same test images the batch ACC used


def test_bad_metaparameters_are_refused_clearly(tiny_round3, tmp_path):
    model_dir = discover_models(tiny_round3)[0]
    schema = Path(__file__).resolve().parent.parent / "singularity" / "metaparameters_schema.json"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"forget_lr": "fast"}))
    completed = seam_harness(
        "mitigate", "--model_filepath", model_dir / "model.pt", "--dataset_dirpath",
        model_dir / "clean_example_data", "--output_dirpath", tmp_path / "o",
        "--metaparameters_filepath", wrong, "--schema_filepath", schema, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert completed.stderr.startswith("seam-harness: error:")
    assert "'fast' is not of type 'number'" in completed.stderr
    assert not (tmp_path / "o").exists()


def test_unlabelled_training_images_are_refused_clearly(tiny_round3, tmp_path):
    model_dir = discover_models(tiny_round3)[0]
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    shutil.copy(next((model_dir / "clean_example_data").glob("*.png")), dataset / "0.png")
    completed = seam_harness(
        "mitigate", "--model_filepath", model_dir / "model.pt", "--dataset_dirpath", dataset,
        "--output_dirpath", tmp_path / "o", check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "1 images have no label (e.g. 0.png)" in completed.stderr
    assert "Traceback" not in completed.stderr
