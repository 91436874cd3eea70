"""Image-classification rounds 3 and 4: read (and write) the TrojAI layout, build a Task.

Round 3 config.json is a flat dict with UPPER-case keys and one many-to-one trigger
(TRIGGERED_CLASSES -> TRIGGER_TARGET_CLASS); round 4 is a jsonpickled RoundConfig with a `triggers`
list of one-to-one source_class -> target_class entries. Keys are read case-insensitively.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from adapters.common import (
    NamedFiles,
    RoundFormatError,
    choose_evaluation_data,
    config_whole_number,
    example_folder,
    lower_keys,
    missing,
    read_config,
    read_poisoned_flag,
    reading_config,
)
from harness.model_io import load_model
from harness.task import LabelledData, Task, TriggeredData

ROUNDS = (3, 4)
CLEAN_NAME = re.compile(r"^class_(\d+)_example_(\d+)\.png$")
TRIGGERED_NAME = re.compile(r"^class_(\d+)(?:_trigger_(\d+))?_example_(\d+)\.png$")


def recognises(config: dict) -> bool:
    return "img_size_pixels" in config or "cnn_img_size_pixels" in config or "trigger_target_class" in config


def round_number(config: dict) -> int:
    """Round 4 configs carry a `triggers` field (a list, or null when clean); round 3's do not."""
    return 4 if "triggers" in config or "number_triggers" in config else 3


def trigger_targets(config: dict) -> dict[int | None, int]:
    """Trigger index -> target class (round 3 has a single trigger, keyed None)."""
    if round_number(config) == 3:
        if missing(config.get("trigger_target_class")):
            return {}
        return {None: int(config["trigger_target_class"])}
    triggers = config.get("triggers")
    if missing(triggers):
        return {}
    return {i: int(t["target_class"]) for i, t in enumerate(triggers)}


def trigger_type(config: dict) -> str:
    """polygon / instagram (round 4 with two triggers of different kinds: "instagram+polygon")."""
    if round_number(config) == 3:
        value = config.get("trigger_type")
        return "none" if missing(value) else str(value)
    triggers = config.get("triggers")
    if missing(triggers):
        return "none"
    return "+".join(sorted({str(t.get("type")) for t in triggers}))


def read_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8, center-cropped to size x size with NIST's offset int((W - size) / 2) on both axes."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise RoundFormatError(f"{path}: unreadable image ({error})") from None
    if pixels.shape[1] < size or pixels.shape[0] < size:
        raise RoundFormatError(f"{path}: image {pixels.shape[1]}x{pixels.shape[0]} is smaller than {size}")
    return center_crop(pixels, size)


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """Crop (..., H, W, C) to size x size at NIST's offset int((W - size) / 2), used on both axes."""
    offset = int((pixels.shape[-2] - size) / 2)
    return pixels[..., offset : offset + size, offset : offset + size, :]


def to_tensor(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [0, 1] (the competition's scaling: no mean/std normalisation)."""
    if len(images) == 0:
        return torch.empty(0)
    stacked = np.ascontiguousarray(images) if isinstance(images, np.ndarray) else np.stack(images)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).float().div(255.0)


def read_clean_examples(folder: Path, size: int) -> LabelledData:
    files = sorted((p for p in folder.iterdir() if CLEAN_NAME.match(p.name)), key=lambda p: p.name)
    if not files:
        raise RoundFormatError(f"{folder}: no class_<c>_example_<n>.png files")
    labels = [int(CLEAN_NAME.match(p.name).group(1)) for p in files]
    return LabelledData(
        to_tensor([read_image(p, size) for p in files]), torch.tensor(labels), [p.name for p in files]
    )


def read_dataset_images(folder: Path, size: int, labelled: bool) -> LabelledData:
    """A mitigation-API dataset folder: competition names (class_<c>_example_<n>.png) or the 2024 round's
    N.png + N.json ({"clean_label": c, ...}). Without `labelled`, labels may be missing (then -1)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RoundFormatError(f"{folder}: no such dataset folder")
    files = sorted(folder.glob("*.png"), key=lambda p: p.name)
    if not files:
        raise RoundFormatError(f"{folder}: no .png images")
    labels = []
    for path in files:
        named = CLEAN_NAME.match(path.name)
        sidecar = path.with_suffix(".json")
        if named:
            labels.append(int(named.group(1)))
        elif sidecar.is_file():
            labels.append(int(lower_keys(json.loads(sidecar.read_text())).get("clean_label", -1)))
        else:
            labels.append(-1)
    unlabelled = [p.name for p, label in zip(files, labels, strict=True) if label < 0]
    if labelled and unlabelled:
        raise RoundFormatError(
            f"{folder}: {len(unlabelled)} images have no label (e.g. {unlabelled[0]}): name them "
            "class_<c>_example_<n>.png or put a clean_label in <name>.json beside them"
        )
    return LabelledData(
        to_tensor([read_image(p, size) for p in files]), torch.tensor(labels), [p.name for p in files]
    )


def read_triggered_examples(folder: Path, size: int, targets: dict[int | None, int]) -> TriggeredData | None:
    """Triggered images with true class c (from the name) and the target of their trigger."""
    if not folder.is_dir() or not targets:
        return None
    files = sorted((p for p in folder.iterdir() if TRIGGERED_NAME.match(p.name)), key=lambda p: p.name)
    images, labels, goals, names = [], [], [], []
    for path in files:
        source, trigger, _ = TRIGGERED_NAME.match(path.name).groups()
        key = int(trigger) if trigger is not None else None
        if key not in targets and len(set(targets.values())) == 1:
            key = next(iter(targets))  # one target only: the file name need not say which trigger
        if key not in targets:
            raise RoundFormatError(f"{path}: names trigger {trigger}, which config.json does not list")
        images.append(read_image(path, size))
        labels.append(int(source))
        goals.append(targets[key])
        names.append(path.name)
    if not names:
        return None
    return TriggeredData(to_tensor(images), torch.tensor(labels), torch.tensor(goals), names)


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, max_shift: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random shifts (replicate padding) and per-image colour scaling, for both SEAM phases."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    # every h x w window of each padded image as a view, then one indexed copy picks image i's (dy, dx)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # [n, c, 2*shift+1, 2*shift+1, h, w]
    picks = torch.arange(n, device=images.device)
    shifted = windows[picks, :, dy.to(images.device), dx.to(images.device)]
    scale = 1.0 + 0.1 * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)  # drawn on the CPU
    return (shifted * scale.to(images.device)).clamp(0.0, 1.0), labels


# SEAM's strong recovery augmentation (recover_augment: strong), at common literature settings fixed before
# any run with it: colour jitter of brightness, contrast and saturation by factors in [0.6, 1.4] (the 0.4
# of torchvision's ColorJitter as image-classification recipes set it), then Random Erasing as Zhong et
# al. (2017) define it: with probability 0.5 a rectangle of 2-33 % of the image, aspect ratio 0.3-3.3
# (log-uniform), filled with uniform random pixels.
JITTER = 0.4
ERASE_PROBABILITY, ERASE_AREA, ERASE_RATIO = 0.5, (0.02, 0.33), (0.3, 3.3)
LUMA = (0.299, 0.587, 0.114)


def strong_augment_batch(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`augment_batch`, then colour jitter and Random Erasing, per image, as whole-batch tensor operations."""
    images, labels = augment_batch(images, labels, generator)
    n, c, h, w = images.shape
    device = images.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:  # drawn on the CPU, then moved
        return (low + (high - low) * torch.rand(*shape, generator=generator)).to(device)

    brightness, contrast, saturation = uniform(1 - JITTER, 1 + JITTER, 3, n, 1, 1, 1)
    luma = torch.tensor(LUMA, device=device).reshape(1, 3, 1, 1)

    def grey(x: torch.Tensor) -> torch.Tensor:  # [n, 1, h, w]
        return (x * luma).sum(dim=1, keepdim=True)

    images = (images * brightness).clamp(0.0, 1.0)
    grey_mean = grey(images).mean(dim=(2, 3), keepdim=True)
    images = (contrast * images + (1 - contrast) * grey_mean).clamp(0.0, 1.0)
    images = (saturation * images + (1 - saturation) * grey(images)).clamp(0.0, 1.0)

    erase = uniform(0.0, 1.0, n) < ERASE_PROBABILITY
    area = uniform(*ERASE_AREA, n) * h * w
    ratio = torch.exp(uniform(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), n))
    height = torch.sqrt(area * ratio).round().clamp(1, h)
    width = torch.sqrt(area / ratio).round().clamp(1, w)
    top = (uniform(0.0, 1.0, n) * (h - height + 1)).floor()
    left = (uniform(0.0, 1.0, n) * (w - width + 1)).floor()
    rows = torch.arange(h, device=device).reshape(1, h, 1)
    cols = torch.arange(w, device=device).reshape(1, 1, w)
    inside = (
        (rows >= top.reshape(n, 1, 1))
        & (rows < (top + height).reshape(n, 1, 1))
        & (cols >= left.reshape(n, 1, 1))
        & (cols < (left + width).reshape(n, 1, 1))
        & erase.reshape(n, 1, 1)
    )
    noise = uniform(0.0, 1.0, n, c, h, w)
    return torch.where(inside.unsqueeze(1), noise, images), labels


# The blind drift check's inputs (harness/task.py): zoomed views of the defender's images, a window of
# 60-80 % of each side at a seeded place scaled back to full size, four per image. SEAM's augmentation
# shifts by a few pixels and never zooms, so no method trains on these views. Only the agreement with the
# original flags a result on image rounds (threshold 0.80, docs/robust-seam.md); the accuracy condition
# was never calibrated for them.
VIEWS_PER_IMAGE = 4
ZOOM_SIDE = (0.6, 0.8)


def zoomed_views(defender: LabelledData, seed: int) -> LabelledData:
    """VIEWS_PER_IMAGE zoomed views of each defender image, with its label."""
    generator = torch.Generator().manual_seed(seed)
    images = defender.inputs
    _, _, h, w = images.shape
    views = []
    for image in images:
        for _ in range(VIEWS_PER_IMAGE):
            low, high = ZOOM_SIDE
            side = low + (high - low) * float(torch.rand((), generator=generator))
            ch, cw = max(1, round(side * h)), max(1, round(side * w))
            top = int(torch.randint(0, h - ch + 1, (), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (), generator=generator))
            window = image[None, :, top : top + ch, left : left + cw]
            views.append(torch.nn.functional.interpolate(window, size=(h, w), mode="bilinear"))
    names = [f"{name}#zoom{k}" for name in defender.names for k in range(VIEWS_PER_IMAGE)]
    return LabelledData(torch.cat(views), defender.labels.repeat_interleave(VIEWS_PER_IMAGE), names)


def load_task(
    model_dir: Path,
    holdout_fraction: float = 0.5,
    holdout_seed: int = 0,
    model_file: Path | None = None,
    examples_dir: Path | None = None,
    named: NamedFiles | None = None,  # text rounds only
    trust_pickles: bool = False,
) -> Task:
    """Build the Task for one model folder (see README, "Evaluation protocol").

    `model_file` and `examples_dir` override `model_dir/model.pt` and its example folder (the
    per-model entrypoint names them by flag).
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    size = image_size(config, model_dir)
    model = load_model(model_file or model_dir / "model.pt", trust_pickles)
    with reading_config(model_dir, "trigger fields"):
        targets = trigger_targets(config)
    clean = read_clean_examples(Path(examples_dir) if examples_dir else example_folder(model_dir), size)
    defender, eval_clean, eval_triggered, eval_data = choose_evaluation_data(
        model_dir,
        clean,
        lambda folder: read_clean_examples(folder, size),
        lambda folder: read_triggered_examples(folder, size, targets),
        holdout_fraction,
        holdout_seed,
    )
    drift_check = zoomed_views(defender, holdout_seed)
    return _task(model_dir, config, model, defender, eval_clean, eval_triggered, eval_data, drift_check)


def _task(
    model_dir: Path,
    config: dict,
    model: torch.nn.Module,
    defender: LabelledData,
    eval_clean: LabelledData,
    eval_triggered: TriggeredData | None,
    eval_data: str,
    drift_check: LabelledData | None = None,
) -> Task:
    num_classes = config_whole_number(config, "number_classes", model_dir, 2, 100_000)
    return Task(
        model=model,
        num_classes=num_classes if num_classes is not None else int(defender.labels.max()) + 1,
        defender=defender,
        eval_clean=eval_clean,
        eval_triggered=eval_triggered,
        eval_data=eval_data,
        info=folder_info(model_dir, config),
        augment=augment_batch,
        strong_augment=strong_augment_batch,
        drift_check=drift_check,
        drift_flag="agreement",
    )


def folder_info(model_dir: Path, config: dict) -> dict:
    """What the folder says about the model without loading it (also kept in error rows)."""
    with reading_config(model_dir, "model fields"):
        return {
            "round": round_number(config),
            "model_architecture": str(config.get("model_architecture", "unknown")),
            "poisoned": read_poisoned_flag(model_dir, config),
            "trigger_type": trigger_type(config),
            "trigger_targets": sorted(set(trigger_targets(config).values())),
        }


def load_mitigation_task(model_file: Path, dataset_dir: Path) -> Task:
    """The mitigation API's Task: the whole labelled dataset is the defender's; nothing to evaluate on."""
    model_file = Path(model_file)
    config = read_config(model_file.parent)
    data = read_dataset_images(dataset_dir, image_size(config, model_file.parent), labelled=True)
    nothing = LabelledData(data.inputs[:0], data.labels[:0])
    return _task(
        model_file.parent, config, load_model(model_file), data, nothing, None, "none (mitigation API)"
    )


def load_inputs(model_file: Path, folder: Path) -> tuple[torch.nn.Module, torch.Tensor, list[str]]:
    """The model and a folder's preprocessed images with their file names (labels not needed)."""
    model_file = Path(model_file)
    data = read_dataset_images(
        folder, image_size(read_config(model_file.parent), model_file.parent), labelled=False
    )
    return load_model(model_file), data.inputs, data.names


def image_size(config: dict, model_dir: Path) -> int:
    return config_whole_number(config, "cnn_img_size_pixels", model_dir, 1, 100_000) or 224
