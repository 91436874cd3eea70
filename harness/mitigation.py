"""The 2024 mitigation round's API: `mitigate` saves a repaired model, `test` writes logits per example.

Both run through the same adapter preprocessing and the same `seam()` as the batch path, so one model,
one dataset and one seed give the same mitigated weights whichever way it is run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import adapters
from harness.config import SeamConfig
from harness.methods.seam import seam
from harness.model_io import save_model
from harness.records import write_json
from harness.training import model_logits


def split_folder(dataset_dir: Path, split: str) -> Path:
    """`dataset_dir/<split>` when the dataset has splits, else the folder itself."""
    dataset_dir = Path(dataset_dir)
    return dataset_dir / split if (dataset_dir / split).is_dir() else dataset_dir


def mitigate(model_file: Path, dataset_dir: Path, output_file: Path, config: SeamConfig) -> dict:
    """SEAM on the dataset's train split; saves the model only if SEAM's status is ok."""
    adapter = adapters.mitigation_adapter(model_file)
    task = adapter.load_mitigation_task(Path(model_file), split_folder(dataset_dir, "train"))
    result = seam(task, config)
    summary = {
        "status": result.status,
        "defender_examples": len(task.defender),
        "defender_acc_orig": result.defender_acc_orig,
        "defender_acc_forgotten": result.defender_acc_forgotten,
        "defender_acc_final": result.defender_acc_final,
        "forget_epochs": result.forget_epochs,
        "recover_epochs": result.recover_epochs,
        "saved_model": None,
    }
    if result.status == "ok":
        save_model(result.model, output_file)
        summary["saved_model"] = str(output_file)
        beside = Path(output_file).parent / "config.json"
        if not beside.exists():  # so `test` on the mitigated model preprocesses as for the original
            shutil.copyfile(Path(model_file).parent / "config.json", beside)
    return summary


def test(model_file: Path, dataset_dir: Path, output_dir: Path, batch_size: int, device: str) -> Path:
    """Logits for every image of the dataset's test split: output_dir/results.json {file name: [logits]}."""
    adapter = adapters.mitigation_adapter(model_file)
    model, inputs, names = adapter.load_inputs(Path(model_file), split_folder(dataset_dir, "test"))
    logits = model_logits(model.to(torch.device(device)), inputs, batch_size=batch_size)
    results = {name: row.tolist() for name, row in zip(names, logits, strict=True)}
    return write_json(Path(output_dir) / "results.json", results)


def read_metaparameters(path: Path | None, schema_path: Path | None) -> dict:
    """SEAM settings from a metaparameters JSON (keys = SeamConfig fields), checked against the schema."""
    if path is None:
        return {}
    values = json.loads(Path(path).read_text())
    if schema_path is not None:
        import jsonschema

        try:
            jsonschema.validate(values, json.loads(Path(schema_path).read_text()))
        except jsonschema.ValidationError as error:
            raise ValueError(f"{path}: does not match {schema_path}: {error.message}") from None
    unknown = sorted(set(values) - set(SeamConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path}: unknown SEAM settings {unknown}")
    return values
