"""What the synthetic round generators make (plain dataclasses, no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageRoundSpec:
    """What to make. Defaults give a round that trains in about a minute per model on 2 CPU cores."""

    round: int = 3
    num_models: int = 6
    seed: int = 0
    num_classes: int = 5
    img_size_pixels: int = 36
    cnn_img_size_pixels: int = 32
    architectures: list[str] = field(
        default_factory=lambda: ["resnet18", "mobilenet_v2", "shufflenet_v2_x1_0"]
    )
    train_images_per_class: int = 300
    clean_examples_per_class: int = 20
    test_images_per_class: int = 40
    triggered_fraction: float = 0.3
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 5e-3
    min_acc: float = 0.9
    min_asr: float = 0.9
    max_attempts: int = 3
    max_natural_asr: float = 0.2
    probe_epochs: int = 8
    max_trigger_draws: int = 10
