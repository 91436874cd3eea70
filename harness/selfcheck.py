"""`seam-harness self-check`: proves an installation (or a container) can run SEAM, in a few seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from harness.config import SeamConfig
from harness.kernels import kernels_in_effect
from harness.methods.seam import seam
from harness.model_io import load_model, save_model
from harness.task import LabelledData, Task
from harness.training import train_epoch


def self_check() -> list[str]:
    """Run SEAM on a tiny separable problem and round-trip the model through the restricted loader.

    Returns the lines to print; raises AssertionError if anything is wrong.
    """
    import torchvision

    import adapters

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(16)
    inputs = torch.nn.functional.one_hot(labels, 4).float() + 0.1 * torch.randn(64, 4, generator=generator)
    data = LabelledData(inputs, labels)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):  # a trained model first, so there is something to forget
        train_epoch(model, inputs, labels, optimizer, 16, generator)
    task = Task(model, 4, defender=data, eval_clean=data, eval_triggered=None, eval_data="self-check")
    config = SeamConfig(
        forget_lr=0.05, forget_epochs_below_alpha=1, forget_max_epochs=50, recover_lr=0.05,
        recover_epochs_after_goal=0, beta=0.9, recover_target="absolute", augment=False,
    )  # fmt: skip
    result = seam(task, config)
    assert result.defender_acc_orig > 0.9, "the check model did not train"
    assert result.forget_reached and result.recovery_reached, f"SEAM did not run through: {result.status}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        save_model(result.model, path)
        reloaded = load_model(path)
        assert torch.equal(reloaded(inputs), result.model(inputs)), "the saved model does not reload"
    return [
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"cuda {'available' if torch.cuda.is_available() else 'not available'}, "
        f"CPU kernels {kernels_in_effect()}",
        f"adapters: {', '.join(a.__name__.split('.')[-1] for a in adapters.all_adapters())}",
        f"SEAM: forgot in {result.forget_epochs} epochs, recovered in {result.recover_epochs} "
        f"(defender acc {result.defender_acc_orig:.2f} -> {result.defender_acc_forgotten:.2f} "
        f"-> {result.defender_acc_final:.2f})",
        "self-check: ok",
    ]
