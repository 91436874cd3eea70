"""What every round type shares: config.json reading, model discovery, example file names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MODEL_ID_PATTERN = re.compile(r"^id-\d+$")


class RoundFormatError(Exception):
    """A round or model folder that does not follow the TrojAI layout; the message says what is wrong."""


def lower_keys(value: object) -> object:
    """Lower-case every dict key, recursively: round 3 spells keys in UPPER case, later rounds in lower."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def missing(value: object) -> bool:
    """TrojAI writes a missing value as JSON null or as the string "None"."""
    return value is None or (isinstance(value, str) and value.strip() in ("None", "none", ""))


def read_config(model_dir: Path) -> dict:
    """config.json with lower-cased keys (read with plain json; jsonpickle markers are ignored)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise RoundFormatError(f"{model_dir}: no config.json")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RoundFormatError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise RoundFormatError(f"{path}: expected a JSON object")
    return lower_keys(config)


def config_int_list(value: object) -> list[int]:
    """A list of ints from a JSON list, a single int, or METADATA-style text like "[0 3]"."""
    if missing(value):
        return []
    if isinstance(value, list):
        return [int(v) for v in value]
    if isinstance(value, int | float):
        return [int(value)]
    return [int(v) for v in re.findall(r"-?\d+", str(value))]


def read_poisoned_flag(model_dir: Path, config: dict) -> bool | None:
    """ground_truth.csv (one character) if present, else config `poisoned`, else unknown (None)."""
    truth = Path(model_dir) / "ground_truth.csv"
    if truth.is_file():
        text = truth.read_text().strip()
        if text:
            return bool(int(float(text)))
    if "poisoned" in config and not missing(config["poisoned"]):
        value = config["poisoned"]
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    return None


def discover_models(round_dir: Path) -> list[Path]:
    """Model folders (`id-*`) at the round root or under `models/`, sorted by id."""
    round_dir = Path(round_dir)
    if not round_dir.is_dir():
        raise RoundFormatError(f"{round_dir}: not a directory")
    folders = [p for base in (round_dir, round_dir / "models") if base.is_dir() for p in base.iterdir()]
    found = sorted(
        (p for p in folders if p.is_dir() and MODEL_ID_PATTERN.match(p.name)), key=lambda p: p.name
    )
    if not found:
        raise RoundFormatError(f"{round_dir}: no model folders named id-* at the root or under models/")
    return found


def example_folder(model_dir: Path) -> Path:
    """clean_example_data/, or example_data/ on the NIST test server's folder shape."""
    for name in ("clean_example_data", "example_data"):
        if (Path(model_dir) / name).is_dir():
            return Path(model_dir) / name
    raise RoundFormatError(f"{model_dir}: no clean_example_data/ or example_data/ folder")


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out): a seeded, per-class share `fraction` is held out for evaluation.

    Each class keeps at least one example for the defender and gives at least one to evaluation
    when it has two or more.
    """
    import torch  # here, not at the top: the CLI imports this module and must start fast

    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels.numpy() == c)
        rng.shuffle(idx)
        n_held = int(round(fraction * len(idx)))
        n_held = min(max(n_held, 1 if len(idx) > 1 else 0), len(idx) - 1)
        held.extend(idx[:n_held].tolist())
        kept.extend(idx[n_held:].tolist())
    return torch.tensor(sorted(kept), dtype=torch.long), torch.tensor(sorted(held), dtype=torch.long)
