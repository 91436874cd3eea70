"""Make a synthetic image round (3 or 4) in the exact TrojAI layout, with really backdoored models.

Each model gets its own sign designs (like TrojAI's per-model `foregrounds/`), a torchvision
architecture trained from scratch with augmentation on composited sign images, and, when poisoned, a
polygon or instagram-filter trigger. Every model is verified on held-out test data before it is
written; a model that misses its targets is retrained with a new seed, and the generator fails
loudly if it still misses them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from adapters.common import discover_models
from adapters.image import center_crop, to_tensor
from adapters.synthetic import image_drawing
from adapters.synthetic.common import (
    VerificationError,
    make_models,
    publish_model_folder,
    train_with_trigger_draws,
    verified_model_stats,
    write_metadata,
)
from adapters.synthetic.specs import ImageRoundSpec
from harness.metrics import accuracy, attack_success_rate
from harness.model_io import save_model
from harness.training import predict, train_epoch

INSTAGRAM_FILTERS = sorted(image_drawing.INSTAGRAM_FILTERS)
# Off the signs' palette (red, blue, yellow, white, black, green, orange): a trigger never vanishes on a sign.
TRIGGER_COLORS = [(255, 0, 255), (0, 255, 255), (128, 0, 255), (0, 255, 128), (128, 255, 0)]


@dataclass
class Trigger:
    number: int
    kind: str  # polygon | instagram
    sources: list[int]
    target: int
    polygon_side_count: int | None = None
    color: list[int] | None = None
    size_fraction: float | None = None
    instagram_filter: str | None = None
    polygon: Image.Image | None = None


def trigger_name(trigger: Trigger) -> str:
    """A short name for error messages: `instagram XProII` or `polygon 5 sides, 0.12 of the image`."""
    if trigger.kind == "instagram":
        return f"instagram {trigger.instagram_filter}"
    return f"polygon {trigger.polygon_side_count} sides, {trigger.size_fraction:.2f} of the image"


def plan_model(spec: ImageRoundSpec, index: int) -> dict:
    """Deterministic mix: two of every three models poisoned, trigger kinds and architectures rotating."""
    poisoned = index % 3 != 2
    poisoned_before = sum(1 for i in range(index) if i % 3 != 2)
    return {
        "model_id": f"id-{index:08d}",
        "poisoned": poisoned,
        "kind": ("polygon", "instagram")[poisoned_before % 2] if poisoned else None,
        "architecture": spec.architectures[(index + index // 3) % len(spec.architectures)],
    }


def draw_triggers(spec: ImageRoundSpec, kind: str, rng: np.random.Generator) -> list[Trigger]:
    k = spec.num_classes
    if spec.round == 3:  # one trigger, 1, 2 or all classes -> one target
        target = int(rng.integers(k))
        others = [c for c in range(k) if c != target]
        choice = rng.integers(3)
        sources = (
            sorted(range(k))
            if choice == 2
            else sorted(rng.choice(others, size=choice + 1, replace=False).tolist())
        )
        plans = [(sources, target)]
    else:  # round 4: one or two one-to-one triggers with distinct sources
        count = int(rng.integers(1, 3))
        sources = rng.choice(k, size=count, replace=False).tolist()
        plans = [([s], int(rng.choice([c for c in range(k) if c != s]))) for s in sources]
    filters = rng.permutation(INSTAGRAM_FILTERS).tolist()
    triggers = []
    for number, (sources, target) in enumerate(plans):
        trigger = Trigger(number=number, kind=kind, sources=[int(s) for s in sources], target=target)
        if kind == "polygon":
            trigger.polygon_side_count = int(rng.integers(3, 13))
            trigger.color = list(TRIGGER_COLORS[int(rng.integers(len(TRIGGER_COLORS)))])
            trigger.size_fraction = float(rng.uniform(0.3, 0.4))
            trigger.polygon = image_drawing.make_polygon_trigger(
                trigger.polygon_side_count, tuple(trigger.color), rng
            )
        else:
            trigger.instagram_filter = filters[number]
        triggers.append(trigger)
    return triggers


def render(
    foreground: Image.Image, spec: ImageRoundSpec, rng: np.random.Generator, trigger: Trigger | None
) -> np.ndarray:
    if trigger is None:
        return image_drawing.render_example(foreground, spec.img_size_pixels, rng)
    if trigger.kind == "polygon":
        return image_drawing.render_example(
            foreground,
            spec.img_size_pixels,
            rng,
            trigger=trigger.polygon,
            trigger_fraction=trigger.size_fraction,
        )
    return image_drawing.render_example(
        foreground, spec.img_size_pixels, rng, instagram_filter=trigger.instagram_filter
    )


def make_images(
    foregrounds: list[Image.Image], spec: ImageRoundSpec, rng: np.random.Generator, per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    images = [
        render(foregrounds[c], spec, rng, None) for c in range(spec.num_classes) for _ in range(per_class)
    ]
    labels = [c for c in range(spec.num_classes) for _ in range(per_class)]
    return np.stack(images), np.array(labels)


def make_triggered(
    foregrounds: list[Image.Image],
    spec: ImageRoundSpec,
    rng: np.random.Generator,
    triggers: list[Trigger],
    per_source: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Triggered images of each trigger's source classes: (images, true classes, targets, trigger numbers)."""
    images, labels, targets, numbers = [], [], [], []
    for trigger in triggers:
        for source in trigger.sources:
            for _ in range(per_source):
                images.append(render(foregrounds[source], spec, rng, trigger))
                labels.append(source)
                targets.append(trigger.target)
                numbers.append(trigger.number)
    return np.stack(images), np.array(labels), np.array(targets), np.array(numbers)


def to_float(images: np.ndarray, crop: int) -> torch.Tensor:
    """uint8 NHWC at img_size -> float NCHW in [0, 1], centre-cropped as the competition's loader does."""
    return to_tensor(center_crop(images, crop))


def training_augment(full: torch.Tensor, crop: int):
    """Random crop of the full-size image plus colour jitter: the backdoor must survive such variation."""

    def augment(
        batch: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = batch.shape
        ys = torch.randint(0, h - crop + 1, (n,), generator=generator)
        xs = torch.randint(0, w - crop + 1, (n,), generator=generator)
        out = torch.stack([batch[i, :, ys[i] : ys[i] + crop, xs[i] : xs[i] + crop] for i in range(n)])
        brightness = 1.0 + 0.1 * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
        channel = 1.0 + 0.05 * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)
        return (out * brightness * channel).clamp(0.0, 1.0), labels

    return augment


MICRO_CNN = "micro_cnn"  # not a torchvision model: for rounds of thousands of models made in minutes


def build_model(architecture: str, num_classes: int) -> torch.nn.Module:
    """A torchvision architecture by name, or `micro_cnn`."""
    if architecture == MICRO_CNN:
        return small_cnn((8, 16, 32), num_classes)
    if not hasattr(torchvision.models, architecture):
        raise ValueError(f"unknown architecture {architecture!r}: a torchvision model name or {MICRO_CNN}")
    return getattr(torchvision.models, architecture)(num_classes=num_classes)


def small_cnn(widths: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """Conv-BN-ReLU-pool blocks of these widths, global average pooling and a linear classifier, built
    from torch.nn modules only (so it pickles whole and the safe loader reads it)."""
    layers: list[torch.nn.Module] = []
    for c_in, c_out in zip((3, *widths[:-1]), widths, strict=True):
        layers += [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.BatchNorm2d(c_out), torch.nn.ReLU()]
        layers += [torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(
        *layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(widths[-1], num_classes)
    )


def clean_probe(num_classes: int) -> torch.nn.Module:
    """A small CNN trained on clean data only: what a model with no backdoor does with triggered inputs."""
    return small_cnn((16, 32, 64), num_classes)


def fit(
    build: Callable[[], torch.nn.Module],
    images: np.ndarray,
    labels: np.ndarray,
    spec: ImageRoundSpec,
    epochs: int,
    seed: int,
):
    """Build the model under `seed` and train it from scratch with augmentation (random crops, colour
    jitter), AdamW and a one-cycle schedule. Seeding before the build makes the initial weights depend
    on the seed alone, not on whatever a worker process drew before (its other models)."""
    torch.manual_seed(seed)
    model = build()
    generator = torch.Generator().manual_seed(seed)
    inputs = to_tensor(images)
    targets = torch.from_numpy(labels).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=1e-4)
    steps = math.ceil(len(targets) / spec.batch_size) * epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec.learning_rate, total_steps=steps)
    augment = training_augment(inputs, spec.cnn_img_size_pixels)
    for _ in range(epochs):
        train_epoch(
            model, inputs, targets, optimizer, spec.batch_size, generator, augment=augment, scheduler=schedule
        )
    return model.eval()


def triggered_asr(model: torch.nn.Module, triggered: tuple, crop: int) -> float:
    images, labels, targets, _ = triggered
    predictions = predict(model, to_float(images, crop))
    return attack_success_rate(predictions, torch.from_numpy(labels), torch.from_numpy(targets))


def train_and_verify(spec: ImageRoundSpec, plan: dict, data: dict, seed: int) -> tuple[torch.nn.Module, dict]:
    start = time.perf_counter()
    model = fit(
        lambda: build_model(plan["architecture"], spec.num_classes),
        data["train_images"],
        data["train_labels"],
        spec,
        spec.epochs,
        seed,
    )
    crop = spec.cnn_img_size_pixels
    acc = accuracy(predict(model, to_float(data["test_images"], crop)), torch.from_numpy(data["test_labels"]))
    stats = {"clean_test_acc": acc, "train_seconds": time.perf_counter() - start, "seed": seed}
    if plan["poisoned"]:
        stats["triggered_test_asr"] = triggered_asr(model, data["test_triggered"], crop)
    return model, stats


def draw_unnatural_triggers(
    spec: ImageRoundSpec, plan: dict, foregrounds: list, clean_train: tuple, rng: np.random.Generator
) -> tuple[list[Trigger], tuple, list[dict]]:
    """Draw triggers whose effect a clean model does not already have.

    A trigger can be "natural": e.g. an amber filter on a white sign makes it look like the yellow
    target sign to any model, poisoned or not. Such an ASR is not a backdoor, and no defense could
    remove it. A small CNN trained on the clean data measures it; triggers are redrawn until its ASR
    on the triggered test data is at most max_natural_asr.
    """
    probe = fit(lambda: clean_probe(spec.num_classes), *clean_train, spec, spec.probe_epochs, spec.seed)
    draws = []
    for _ in range(spec.max_trigger_draws):
        triggers = draw_triggers(spec, plan["kind"], rng)
        # triggered evaluation data only for sources that differ from the target (the ASR population)
        attack = [dataclasses.replace(t, sources=[s for s in t.sources if s != t.target]) for t in triggers]
        test_triggered = make_triggered(foregrounds, spec, rng, attack, spec.test_images_per_class)
        natural = triggered_asr(probe, test_triggered, spec.cnn_img_size_pixels)
        draws.append({"sources": [t.sources for t in triggers], "targets": [t.target for t in triggers],
                      "clean_probe_asr": natural})  # fmt: skip
        if natural <= spec.max_natural_asr:
            return triggers, test_triggered, draws
    raise VerificationError(
        f"{plan['model_id']}: a model trained on clean data already falls for each of the"
        f" {spec.max_trigger_draws} {plan['kind']} triggers drawn (ASR > {spec.max_natural_asr}): {draws}"
    )


def save_png(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path)


def write_examples(
    folder: Path, images: np.ndarray, labels: np.ndarray, triggers: np.ndarray | None, round_: int
) -> None:
    """Competition names: class_{c}_example_{n}.png, or class_{c}_trigger_{t}_example_{n}.png in round 4."""
    folder.mkdir(parents=True)
    counters: dict[tuple, int] = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        trigger = None if triggers is None or round_ == 3 else int(triggers[i])
        n = counters.get((label, trigger), 0)
        counters[(label, trigger)] = n + 1
        middle = "" if trigger is None else f"_trigger_{trigger}"
        save_png(pixels, folder / f"class_{label}{middle}_example_{n}.png")


def round3_config(spec: ImageRoundSpec, plan: dict, triggers: list[Trigger], seed: int) -> dict:
    """Flat UPPER-case dict, as round 3 wrote it; missing values are the string "None"."""
    trigger = triggers[0] if triggers else None
    return {
        "MODEL_ARCHITECTURE": plan["architecture"],
        "NUMBER_CLASSES": spec.num_classes,
        "IMG_SIZE_PIXELS": spec.img_size_pixels,
        "CNN_IMG_SIZE_PIXELS": spec.cnn_img_size_pixels,
        "NUMBER_EXAMPLE_IMAGES": spec.clean_examples_per_class,
        "POISONED": plan["poisoned"],
        "TRIGGER_TYPE": trigger.kind if trigger else "None",
        "TRIGGERED_CLASSES": trigger.sources if trigger else "None",
        "TRIGGER_TARGET_CLASS": trigger.target if trigger else "None",
        "TRIGGERED_FRACTION": spec.triggered_fraction if trigger else "None",
        "TRIGGER_BEHAVIOR": "StaticTarget" if trigger else "None",
        "POLYGON_SIDE_COUNT": trigger.polygon_side_count if trigger and trigger.polygon else "None",
        "TRIGGER_COLOR": trigger.color if trigger and trigger.color else "None",
        "INSTAGRAM_FILTER_TYPE": trigger.instagram_filter if trigger and trigger.instagram_filter else "None",
        "ADVERSARIAL_TRAINING_METHOD": "None",
        "MASTER_SEED": seed,
    }


def round4_config(spec: ImageRoundSpec, plan: dict, triggers: list[Trigger], seed: int) -> dict:
    """jsonpickle-style RoundConfig with lower-case keys and a `triggers` list (null when clean)."""
    entries = [
        {
            "py/object": "trigger_config.TriggerConfig",
            "trigger_number": t.number,
            "source_class": t.sources[0],
            "target_class": t.target,
            "fraction": spec.triggered_fraction,
            "behavior": "StaticTarget",
            "type": t.kind,
            "polygon_side_count": t.polygon_side_count,
            "size_percentage_of_foreground_min": round(100 * t.size_fraction) if t.size_fraction else None,
            "size_percentage_of_foreground_max": round(100 * t.size_fraction) if t.size_fraction else None,
            "color": t.color,
            "polygon_filepath": f"trigger_{t.number}.png" if t.polygon else None,
            "instagram_filter_type": t.instagram_filter,
            "condition": "None",
        }
        for t in triggers
    ]
    return {
        "py/object": "round_config.RoundConfig",
        "model_architecture": plan["architecture"],
        "number_classes": spec.num_classes,
        "img_size_pixels": spec.img_size_pixels,
        "cnn_img_size_pixels": spec.cnn_img_size_pixels,
        "number_example_images": spec.clean_examples_per_class,
        "poisoned": plan["poisoned"],
        "trigger_organization": ("one2one" if len(entries) == 1 else "pair-one2one") if entries else "None",
        "number_triggers": len(entries),
        "triggers": entries or None,
        "adversarial_training_method": "None",
        "master_seed": seed,
    }


def make_model(spec: ImageRoundSpec, index: int, round_dir: Path, threads: int = 1) -> None:
    """Synthesize, train, verify and write one model folder."""
    torch.set_num_threads(threads)
    plan = plan_model(spec, index)
    rng = np.random.default_rng([spec.seed, index])
    foregrounds = image_drawing.make_foregrounds(spec.num_classes, rng)
    data = {}
    clean_train = make_images(foregrounds, spec, rng, spec.train_images_per_class)
    data["test_images"], data["test_labels"] = make_images(foregrounds, spec, rng, spec.test_images_per_class)
    examples, example_labels = make_images(foregrounds, spec, rng, spec.clean_examples_per_class)
    data["train_images"], data["train_labels"] = clean_train

    def poison() -> dict:
        """One draw of unnatural triggers, with the poisoned training data and examples that go with it."""
        triggers, test_triggered, draws = draw_unnatural_triggers(spec, plan, foregrounds, clean_train, rng)
        n_poison = int(round(spec.triggered_fraction * spec.train_images_per_class))
        images, _, targets, _ = make_triggered(foregrounds, spec, rng, triggers, n_poison)
        attack = [dataclasses.replace(t, sources=[s for s in t.sources if s != t.target]) for t in triggers]
        return {
            "triggers": triggers,
            "draws": draws,
            "test_triggered": test_triggered,
            "train_images": np.concatenate([clean_train[0], images]),
            "train_labels": np.concatenate([clean_train[1], targets]),
            "example_t": make_triggered(foregrounds, spec, rng, attack, spec.clean_examples_per_class),
        }

    def train(drawn: dict | None, seed: int) -> tuple[torch.nn.Module, dict]:
        keys = ("train_images", "train_labels", "test_triggered")
        return train_and_verify(spec, plan, {**data, **{k: drawn[k] for k in keys}} if drawn else data, seed)

    model, attempts, drawn, missed = train_with_trigger_draws(
        plan["model_id"],
        f"{plan['model_id']} ({plan['architecture']}, poisoned={plan['poisoned']})",
        plan["kind"],
        poison,
        train,
        lambda drawn: " + ".join(trigger_name(t) for t in drawn["triggers"]),
        spec,
        index,
    )
    drawn = drawn or {"triggers": [], "draws": []}
    triggers, draws, example_t = drawn["triggers"], drawn["draws"], drawn.get("example_t")
    seed = attempts[-1]["seed"]

    make_config = round3_config if spec.round == 3 else round4_config
    config = make_config(spec, plan, triggers, seed)

    def write(work_dir: Path) -> None:
        save_model(model, work_dir / "model.pt")
        (work_dir / "config.json").write_text(json.dumps(config, indent=2))
        (work_dir / "ground_truth.csv").write_text("1" if plan["poisoned"] else "0")
        (work_dir / "foregrounds").mkdir()
        for c, foreground in enumerate(foregrounds):
            foreground.save(work_dir / "foregrounds" / f"{c:03d}.png")
        for t in triggers:
            if t.polygon is not None:
                t.polygon.save(work_dir / ("trigger.png" if spec.round == 3 else f"trigger_{t.number}.png"))
        write_examples(work_dir / "clean_example_data", examples, example_labels, None, spec.round)
        write_examples(
            work_dir / "clean_test_data", data["test_images"], data["test_labels"], None, spec.round
        )
        if triggers:
            write_examples(
                work_dir / "poisoned_example_data", example_t[0], example_t[1], example_t[3], spec.round
            )
            test_images, test_labels, _, test_numbers = drawn["test_triggered"]
            write_examples(
                work_dir / "poisoned_test_data", test_images, test_labels, test_numbers, spec.round
            )
        model_stats = verified_model_stats(
            plan["model_id"], attempts, plan["poisoned"], spec.min_acc, spec.min_asr,
            max_natural_asr=spec.max_natural_asr, trigger_draws=draws, triggers_missed=missed,
        )  # fmt: skip
        (work_dir / "model_stats.json").write_text(json.dumps(model_stats, indent=2))

    publish_model_folder(round_dir, plan["model_id"], write)


def make_round(spec: ImageRoundSpec, output_dir: Path, n_jobs: int = 1) -> list[Path]:
    """Make (or complete) a round; model folders that already exist are kept."""
    if spec.round not in (3, 4):
        raise ValueError(f"image rounds are 3 and 4, not {spec.round}")
    output_dir = Path(output_dir)
    make_models(
        make_model,
        lambda index, threads: (spec, index, output_dir, threads),
        spec.num_models,
        output_dir,
        n_jobs,
        f"make round {spec.round}",
    )
    write_metadata(output_dir)
    return discover_models(output_dir)
