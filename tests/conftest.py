"""Shared fixtures: tiny but real synthetic rounds (real pickled torchvision models, real files)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from adapters.synthetic.specs import ImageRoundSpec

# CI machines have 2 cores, and the suite runs on two pytest-xdist workers (pyproject.toml): one thread each,
# two threads when the tests run in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_THREADS = 1 if XDIST_WORKER else 2
torch.set_num_threads(TEST_THREADS)

# Small enough to make in seconds. Verification thresholds and the natural-trigger check are off:
# 2 epochs on 40 images per class make no dependable model; the generator's checks are tested on their own.
TINY = dict(
    num_models=3,
    num_classes=3,
    img_size_pixels=20,
    cnn_img_size_pixels=16,
    architectures=["resnet18", "shufflenet_v2_x1_0"],
    train_images_per_class=40,
    clean_examples_per_class=6,
    test_images_per_class=8,
    epochs=2,
    min_acc=0.0,
    min_asr=0.0,
    max_attempts=1,
    max_natural_asr=1.0,
    probe_epochs=1,
)


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-all", action="store_true", help="the full 200-folder fuzz run (tests/test_fuzz.py)"
    )


# the console script of the venv running the tests
CLI = str(Path(sys.executable).parent / "seam-harness")


def seam_harness(*args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user would; unless check=False, a non-zero exit fails with its output."""
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"seam-harness {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


# SEAM capped to a few epochs and one run (the round YAMLs run three): the tests check behaviour, not
# quality; the restart policies have tests of their own.
FAST_SEAM = [
    *("--seam.forget_max_epochs", "3", "--seam.forget_epochs_below_alpha", "1"),
    *("--seam.recover_max_epochs", "3", "--seam.recover_epochs_after_goal", "0", "--seam.restarts", "0"),
]


def save_with_user_module(code_dir: Path, name: str, source: str, build, path: Path) -> dict:
    """A model whose class lives in a user's own module: write `code_dir/<name>.py`, torch.save
    build(module) to path, and return the environment in which a `seam-harness` process can import it."""
    code_dir.mkdir(exist_ok=True)
    (code_dir / f"{name}.py").write_text(source)
    sys.path.insert(0, str(code_dir))
    try:
        torch.save(build(importlib.import_module(name)), path)
    finally:
        sys.path.remove(str(code_dir))
        sys.modules.pop(name, None)
    return {**os.environ, "PYTHONPATH": str(code_dir)}


def make_tiny_round(round_number: int, output_dir: Path) -> Path:
    from adapters.synthetic.image_rounds import make_round

    make_round(ImageRoundSpec(round=round_number, seed=1, **TINY), output_dir, n_jobs=1)
    return output_dir


def shared_round(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """A session round made once for all xdist workers: the first to ask makes it under a file lock, the
    others wait and reuse it. Tests must not modify it (`round3_copy` gives a private copy)."""
    root = tmp_path_factory.getbasetemp()
    if XDIST_WORKER:
        root = root.parent  # the run's folder, shared by its workers
    path, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with FileLock(root / f"shared-{name}.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # a half-made round of an interrupted worker
            path.mkdir()
            make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_round3(tmp_path_factory) -> Path:
    return shared_round(tmp_path_factory, "round3", lambda path: make_tiny_round(3, path))


@pytest.fixture(scope="session")
def tiny_round4(tmp_path_factory) -> Path:
    return shared_round(tmp_path_factory, "round4", lambda path: make_tiny_round(4, path))


@pytest.fixture
def round3_copy(tiny_round3, tmp_path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(tiny_round3, tmp_path / "round"))


# Text rounds: the generators' own pre-training sizes (smaller ones do not teach the embedding enough for
# a head to learn a trigger), one backbone family, few and small models.
TINY_SENTIMENT = dict(
    num_models=3,
    seed=1,
    embeddings=["DistilBERT"],
    pretrain_reviews_per_class=1000,  # the defaults pre-train 5x longer; tests need only a working round
    pretrain_epochs=12,
    test_reviews_per_class=50,
    examples_per_class=10,
)
TINY_NER = dict(
    num_models=3,
    seed=1,
    embeddings=["BERT"],
    pretrain_sentences=3000,  # the defaults pre-train 6x longer; tests need only a working round
    pretrain_epochs=3,
    train_sentences=1000,
    test_sentences=100,
    examples_per_class=10,
)


@pytest.fixture(scope="session")
def tiny_round6(tmp_path_factory) -> Path:
    from adapters.synthetic.sentiment_rounds import make_round
    from adapters.synthetic.specs import SentimentRoundSpec

    return shared_round(
        tmp_path_factory,
        "round6",
        lambda path: make_round(SentimentRoundSpec(round=6, **TINY_SENTIMENT), path),
    )


@pytest.fixture(scope="session")
def tiny_round7(tmp_path_factory) -> Path:
    from adapters.synthetic.ner_rounds import make_round
    from adapters.synthetic.specs import NerRoundSpec

    return shared_round(tmp_path_factory, "round7", lambda path: make_round(NerRoundSpec(**TINY_NER), path))
