"""Damaged model folders, made from good ones, for the batch's fuzz test.

Each mutation takes a copy of a good model folder and breaks one thing the way downloads, disks and
other teams' scripts do. `make_fuzz_round` fills a round with mutated copies, cycling through the
mutations with a different random draw each time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adapters.common import discover_models

Mutation = Callable[[Path, np.random.Generator], None]


def _model(folder: Path) -> Path:
    return folder / "model.pt"


def truncate(path: Path, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(0, len(data)))])


def flip_bits(path: Path, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    for position in rng.integers(0, len(data), size=int(rng.integers(1, 64))):
        data[position] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _write_config(folder: Path, config: object) -> None:
    (folder / "config.json").write_text(json.dumps(config))


def _set_config(**values: object) -> Mutation:
    def mutate(folder: Path, rng: np.random.Generator) -> None:
        config = _config(folder)
        for key, value in values.items():
            for existing in [k for k in config if k.lower() == key.lower()] or [key]:
                config[existing] = value
        _write_config(folder, config)

    return mutate


def _examples(folder: Path) -> Path:
    for name in ("clean_example_data", "example_data"):
        if (folder / name).is_dir():
            return folder / name
    raise FileNotFoundError(folder)


def _example_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in _examples(folder).iterdir() if p.suffix == suffix)


def _one_example(folder: Path, rng: np.random.Generator, suffix: str) -> Path:
    files = _example_files(folder, suffix)
    return files[int(rng.integers(0, len(files)))]


def delete_examples(folder: Path, rng: np.random.Generator) -> None:
    for path in _examples(folder).iterdir():
        path.unlink()


def rename_examples(folder: Path, rng: np.random.Generator) -> None:
    for number, path in enumerate(sorted(_examples(folder).iterdir())):
        path.rename(path.with_name(f"img_{number}{path.suffix}"))


def label_outside_the_classes(folder: Path, rng: np.random.Generator) -> None:
    path = sorted(_examples(folder).iterdir())[0]
    path.rename(path.with_name(path.name.replace("class_", "class_9", 1)))


def unrelated_files(folder: Path, rng: np.random.Generator) -> None:
    examples = _examples(folder)
    (examples / "notes.txt").write_text("labels checked by hand\n")
    (examples / ".DS_Store").write_bytes(rng.bytes(64))
    (examples / "class_0_example_x").mkdir()
    (examples / "Thumbs.db").write_bytes(b"")


def unreadable_file(folder: Path, rng: np.random.Generator) -> None:
    # as root a mode of 0 changes nothing: the test still counts the folder, its row must exist
    (_examples(folder) / sorted(p.name for p in _examples(folder).iterdir())[0]).chmod(0)


def _rewrite_image(mode: str, size: int | None = None) -> Mutation:
    def mutate(folder: Path, rng: np.random.Generator) -> None:
        path = _one_example(folder, rng, ".png")
        with Image.open(path) as image:
            image = image.convert(mode if mode != "I;16" else "L")
            if mode == "I;16":
                image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
            if size is not None:
                image = image.resize((size, size))
            image.save(path)

    return mutate


def _write_example(content: bytes, suffix: str) -> Mutation:
    def mutate(folder: Path, rng: np.random.Generator) -> None:
        _one_example(folder, rng, suffix).write_bytes(content)

    return mutate


def scale_weights(folder: Path, rng: np.random.Generator) -> None:
    """Weights so large that logits and the loss overflow to inf/NaN during SEAM (a legal pickle)."""
    model = torch.load(_model(folder), weights_only=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    torch.save(model, _model(folder))


def wrong_output_size(folder: Path, rng: np.random.Generator) -> None:
    """The last Linear layer cut to one output: fewer classes than the examples' labels."""
    model = torch.load(_model(folder), weights_only=False)
    name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    smaller = torch.nn.Linear(last.in_features, 1)
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], smaller)
    torch.save(model, _model(folder))


def model_is_not_a_module(folder: Path, rng: np.random.Generator) -> None:
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, _model(folder))


def model_is_a_folder(folder: Path, rng: np.random.Generator) -> None:
    _model(folder).unlink()
    _model(folder).mkdir()


def poisoned_example_garbage(folder: Path, rng: np.random.Generator) -> None:
    poisoned = folder / "poisoned_example_data"
    poisoned.mkdir(exist_ok=True)  # clean models have none: give them one with a broken file
    target = next(poisoned.iterdir(), poisoned / "class_0_example_0.png")
    target.write_bytes(rng.bytes(300))


COMMON: dict[str, Mutation] = {
    "model.pt truncated": lambda f, rng: truncate(_model(f), rng),
    "model.pt bit-flipped": lambda f, rng: flip_bits(_model(f), rng),
    "model.pt empty": lambda f, rng: _model(f).write_bytes(b""),
    "model.pt missing": lambda f, rng: _model(f).unlink(),
    "model.pt is a folder": model_is_a_folder,
    "model.pt holds a dict": model_is_not_a_module,
    "model weights overflow (NaN loss)": scale_weights,
    "config.json corrupt": lambda f, rng: truncate(f / "config.json", rng),
    "config.json empty": lambda f, rng: (f / "config.json").write_text(""),
    "config.json binary": lambda f, rng: (f / "config.json").write_bytes(rng.bytes(200)),
    "config.json a list": lambda f, rng: _write_config(f, [1, 2, 3]),
    "config.json missing": lambda f, rng: (f / "config.json").unlink(),
    "config.json huge number of classes": _set_config(number_classes=10**30),
    "config.json classes a string": _set_config(number_classes="three"),
    "config.json triggers of the wrong type": _set_config(triggers="polygon", trigger_target_class=[[1]]),
    "ground_truth.csv garbage": lambda f, rng: (f / "ground_truth.csv").write_text("maybe\n"),
    "example files deleted": delete_examples,
    "example files renamed": rename_examples,
    "label outside the model's classes": label_outside_the_classes,
    "unrelated files among the examples": unrelated_files,
    "an example file unreadable": unreadable_file,
}
IMAGE: dict[str, Mutation] = {
    **COMMON,
    "config.json huge image size": _set_config(cnn_img_size_pixels=10**12),
    "config.json negative image size": _set_config(cnn_img_size_pixels=-5),
    "model outputs too few classes": wrong_output_size,
    "example image empty": _write_example(b"", ".png"),
    "example image not an image": _write_example(b"this is not a png", ".png"),
    "example image grayscale": _rewrite_image("L"),
    "example image RGBA": _rewrite_image("RGBA"),
    "example image 16-bit": _rewrite_image("I;16"),
    "example image tiny": _rewrite_image("RGB", size=4),
    "example image huge": _rewrite_image("RGB", size=1500),
    "poisoned example image garbage": poisoned_example_garbage,
}


def _original(folder: Path) -> Path:
    """The round's own file in embeddings/ or tokenizers/, not one a mutation wrote there."""
    return next(p for p in sorted(folder.glob("*.pt")) if not p.name.startswith("broken-"))


def _point_at_round_file(kind: str, content: Callable[[Path], bytes]) -> Mutation:
    """This folder's config names its own embeddings/ or tokenizers/ file, with broken content."""

    def mutate(folder: Path, rng: np.random.Generator) -> None:
        config = _config(folder)
        name = f"broken-{folder.name}.pt"
        root = folder.parent.parent
        for sub in ("embeddings", "tokenizers"):
            good = _original(root / sub)
            (root / sub / name).write_bytes(content(good) if sub == kind else good.read_bytes())
        config["embedding_filename"] = name
        _write_config(folder, config)

    return mutate


def _tokenizer_as_model(folder: Path, rng: np.random.Generator) -> None:
    root = folder.parent.parent
    shutil.copy(_original(root / "tokenizers"), _model(folder))


TEXT: dict[str, Mutation] = {
    **COMMON,
    "tokenizer file not a tokenizer": _point_at_round_file("tokenizers", lambda good: b"{not a tokenizer}"),
    "tokenizer file is a model": _point_at_round_file(
        "tokenizers", lambda good: (good.parent.parent / "embeddings" / good.name).read_bytes()
    ),
    "embedding file truncated": _point_at_round_file("embeddings", lambda good: good.read_bytes()[:500]),
    "embedding file missing": lambda f, rng: _set_config(embedding_filename="nowhere.pt")(f, rng),
    "model.pt is a tokenizer": _tokenizer_as_model,
    "review file binary": _write_example(bytes(range(256)) * 4, ".txt"),
    "review file empty": _write_example(b"", ".txt"),
    "review file huge": _write_example(b"great product " * 70000, ".txt"),
    "review file latin-1": _write_example("na\xefve caf\xe9 r\xe9sum\xe9".encode("latin-1"), ".txt"),
}


def make_fuzz_round(good_round: Path, output: Path, mutations: dict[str, Mutation], count: int) -> dict:
    """`count` mutated copies of the good round's model folders in output/models/; returns id -> mutation.

    The round's shared files (embeddings/, tokenizers/) are copied too.
    """
    good_models = discover_models(good_round)
    (output / "models").mkdir(parents=True)
    for shared in ("embeddings", "tokenizers"):
        if (good_round / shared).is_dir():
            shutil.copytree(good_round / shared, output / shared)
    names = list(mutations)
    made = {}
    for number in range(count):
        name = names[number % len(names)]
        folder = output / "models" / f"id-{number:08d}"
        shutil.copytree(good_models[number % len(good_models)], folder)
        mutations[name](folder, np.random.default_rng(number))
        made[folder.name] = name
    return made
