"""Round readers: one module per round type, each behind the same small protocol.

An adapter module provides `ROUNDS`, `recognises(config) -> bool`, `round_number(config) -> int`,
`folder_info(model_dir, config) -> dict` (what the folder says without loading the model) and
`load_task(model_dir, holdout_fraction, holdout_seed, model_file, examples_dir) -> Task`. This package
picks the adapter from a model folder's config.json. The readers are `common`, `image` (rounds 3-4),
`sentiment` (5-6), `ner` (7) and `model_factories` (the competition's model classes).

Dependency rule (tests/test_layout.py reads the imports and checks it):
- the readers never import the generators in `adapters.synthetic`;
- `harness` never imports the generators, except the `make-round` command in `harness/cli.py`;
- the generators may use the readers (they write the layout the readers read) and the harness's building
  blocks (`model_io`, `files`, `metrics`, `training`, `parallel`), never SEAM or the batch machinery.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from adapters.common import NamedFiles, RoundFormatError, discover_models, read_config, read_poisoned_flag

if TYPE_CHECKING:
    from harness.task import Task


def all_adapters() -> list[ModuleType]:
    """Imported on first use: they pull in torch, which `seam-harness --help` should not wait for."""
    from adapters import image, ner, sentiment

    return [image, ner, sentiment]


def adapter_for(config: dict, model_dir: Path) -> ModuleType:
    for adapter in all_adapters():
        if adapter.recognises(config):
            return adapter
    raise RoundFormatError(f"{model_dir}: config.json does not look like any supported round (3-7)")


def load_task(
    model_dir: Path,
    holdout_fraction: float = 0.5,
    holdout_seed: int = 0,
    model_file: Path | None = None,
    examples_dir: Path | None = None,
    named: NamedFiles | None = None,
    trust_pickles: bool = False,
) -> Task:
    """The Task for one model folder, whatever its round type.

    trust_pickles: load the folder's pickles with the plain unpickler (runs any code they name).
    """
    config = read_config(model_dir)
    adapter = adapter_for(config, model_dir)
    return adapter.load_task(
        model_dir, holdout_fraction, holdout_seed, model_file, examples_dir, named, trust_pickles
    )


def folder_info(model_dir: Path) -> dict:
    """What a model folder says about its model without loading it, for rows of models that failed.

    As much as can be read: a folder whose config.json is unreadable still gives ground_truth.csv.
    """
    try:
        config = read_config(model_dir)
        return adapter_for(config, model_dir).folder_info(model_dir, config)
    except Exception:  # a broken folder: whatever is left to read
        try:
            return {"poisoned": read_poisoned_flag(model_dir, {})}
        except Exception:
            return {}


def mitigation_adapter(model_file: Path) -> ModuleType:
    """The adapter for the 2024 mitigation API (image rounds): config.json must sit beside the model."""
    model_dir = Path(model_file).parent
    adapter = adapter_for(read_config(model_dir), model_dir)
    if not hasattr(adapter, "load_mitigation_task"):
        raise RoundFormatError(f"{model_dir}: the mitigation API supports image rounds only")
    return adapter


def model_round(model_dir: Path) -> int:
    """The round number of one model folder, from its config.json."""
    config = read_config(model_dir)
    return adapter_for(config, model_dir).round_number(config)


def detect_round(round_dir: Path) -> int:
    """The round number, from the first model folder whose config.json can be read."""
    for model_dir in discover_models(round_dir):
        try:
            return model_round(model_dir)
        except RoundFormatError:
            continue
    raise RoundFormatError(f"{round_dir}: no model folder has a readable config.json")
