"""What every round type shares: config.json reading, model discovery, example file names."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from harness.task import LabelledData, TriggeredData

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


@contextmanager
def reading_config(model_dir: Path, what: str) -> Iterator[None]:
    """Turn a config.json field of the wrong shape or type into an error naming the file and the field."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as error:
        path = Path(model_dir) / "config.json"
        raise RoundFormatError(f"{path}: unreadable {what} ({type(error).__name__}: {error})") from None


def config_whole_number(config: dict, key: str, model_dir: Path, low: int, high: int) -> int | None:
    """An integer field of config.json within [low, high]; None if absent; else an error naming the file."""
    value = config.get(key)
    if missing(value):
        return None
    path = Path(model_dir) / "config.json"
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise RoundFormatError(f"{path}: {key} is {value!r}, not a whole number") from None
    if not low <= number <= high:
        raise RoundFormatError(f"{path}: {key} {number} is outside {low}-{high}")
    return number


def read_utf8(path: Path) -> str:
    """A text example file; one that is not UTF-8 is an error naming it (nothing is guessed or replaced)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RoundFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


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
        text = truth.read_text(errors="replace").strip()
        if text:
            try:
                return bool(int(float(text)))
            except ValueError:
                raise RoundFormatError(f"{truth}: expected 0 or 1, found {text[:20]!r}") from None
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


def round_root(model_dir: Path) -> Path:
    """The round folder of a model folder: the parent of `models/`, else the model folder's parent."""
    parent = Path(model_dir).resolve().parent
    return parent.parent if parent.name == "models" else parent


@dataclass
class NamedFiles:
    """What the per-model entrypoint's flags name (TrojAI container API); None: found from config.json.

    The NIST server passed `--cls_token_is_first` only when it was true, so its absence defers to config.json.
    """

    tokenizer: Path | None = None
    embedding: Path | None = None
    cls_token_is_first: bool | None = None


def find_round_file(model_dir: Path, folder: str, name: str) -> Path:
    """`<round>/<folder>/<name>` (rounds 5-7 keep embeddings/ and tokenizers/ at the round root).

    A copy beside the model (server-style folder) is accepted too.
    """
    for base in (round_root(model_dir), Path(model_dir)):
        path = base / folder / name
        if path.is_file():
            return path
    raise RoundFormatError(f"{model_dir}: no {folder}/{name} at the round root ({round_root(model_dir)})")


def choose_evaluation_data(
    model_dir: Path,
    clean: LabelledData,
    read_clean: Callable[[Path], LabelledData],
    read_triggered: Callable[[Path], TriggeredData | None],
    holdout_fraction: float,
    holdout_seed: int,
) -> tuple[LabelledData, LabelledData, TriggeredData | None, str]:
    """(defender, eval_clean, eval_triggered, eval_data), as README "Evaluation protocol" says.

    With clean_test_data/ the defender keeps every clean example and evaluation reads the test folders;
    otherwise a seeded per-class share of the clean examples is held out and ASR uses
    poisoned_example_data/.
    """
    from harness.task import LabelledData

    model_dir = Path(model_dir)
    if (model_dir / "clean_test_data").is_dir():
        eval_triggered = read_triggered(model_dir / "poisoned_test_data")
        eval_data = "clean_test_data" + ("+poisoned_test_data" if eval_triggered is not None else "")
        return clean, read_clean(model_dir / "clean_test_data"), eval_triggered, eval_data
    labels = clean.labels if clean.labels.dim() == 1 else clean_example_classes(clean)
    kept, held = holdout_split(labels, holdout_fraction, holdout_seed)

    def subset(index: torch.Tensor) -> LabelledData:
        return LabelledData(clean.inputs[index], clean.labels[index], [clean.names[i] for i in index])

    eval_triggered = read_triggered(model_dir / "poisoned_example_data")
    eval_data = f"clean_example_holdout(fraction={holdout_fraction},seed={holdout_seed})"
    eval_data += "+poisoned_example_data" if eval_triggered is not None else ""
    return subset(kept), subset(held), eval_triggered, eval_data


def clean_example_classes(clean: LabelledData) -> torch.Tensor:
    """For per-position labels: each example's class from its file name (`class_<c>_...`)."""
    import torch

    return torch.tensor([int(re.match(r"class_(\d+)_", name).group(1)) for name in clean.names])


def round_file_name(config: dict, key: str) -> str:
    """The file under embeddings/ or tokenizers/: config[key] if set (reduced server config), else
    `<embedding>-<embedding_flavor>.pt` (full config)."""
    if not missing(config.get(key)):
        return str(config[key])
    if missing(config.get("embedding")) or missing(config.get("embedding_flavor")):
        raise RoundFormatError(f"config.json names no file ({key} / embedding + embedding_flavor)")
    return archive_name(str(config["embedding"]), str(config["embedding_flavor"]))


def archive_name(embedding: str, flavor: str) -> str:
    """`<embedding>-<flavor>.pt` with `/` -> `-`, as the competition named embeddings and tokenizers."""
    return f"{embedding}-{flavor}.pt".replace("/", "-")
