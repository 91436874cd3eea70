"""The synthetic round generator writes the real TrojAI layout and verifies what it makes."""

import json
import re

import pandas as pd
import pytest
from conftest import TINY, seam_harness

from adapters.common import discover_models, read_config
from adapters.synthetic.image_rounds import make_round
from adapters.synthetic.specs import MICRO_ROUND, ImageRoundSpec
from harness.kernels import kernels_in_effect
from harness.model_io import load_model


@pytest.mark.parametrize("fixture", ["tiny_round3", "tiny_round4"])
def test_layout_matches_the_competition(fixture, request):
    round_dir = request.getfixturevalue(fixture)
    round4 = fixture == "tiny_round4"
    models = discover_models(round_dir)
    assert [m.name for m in models] == ["id-00000000", "id-00000001", "id-00000002"]
    metadata = pd.read_csv(round_dir / "METADATA.csv")
    assert list(metadata["model_name"]) == [m.name for m in models]
    assert list(metadata["poisoned"]) == [True, True, False]
    for model_dir in models:
        truth = (model_dir / "ground_truth.csv").read_bytes()
        assert truth in (b"0", b"1")  # one character, no newline
        raw = json.loads((model_dir / "config.json").read_text())
        if round4:
            assert raw["py/object"] == "round_config.RoundConfig" and "triggers" in raw
        else:
            assert "MODEL_ARCHITECTURE" in raw and all(key == key.upper() for key in raw)
        model = load_model(model_dir / "model.pt")
        assert not model.training and type(model).__module__.startswith("torchvision.models")
        clean_names = [p.name for p in (model_dir / "clean_example_data").iterdir()]
        assert len(clean_names) == TINY["num_classes"] * TINY["clean_examples_per_class"]
        assert all(re.fullmatch(r"class_\d+_example_\d+\.png", n) for n in clean_names)
        assert "class_0_example_0.png" in clean_names
        stats = json.loads((model_dir / "model_stats.json").read_text())
        assert stats["verification"]["passed"] and stats["verification"]["attempts"]
        assert stats["cpu_kernels"] == kernels_in_effect()  # the kernels that trained it (in this process)
        poisoned_dir = model_dir / "poisoned_example_data"
        assert poisoned_dir.is_dir() == (truth == b"1") == (model_dir / "poisoned_test_data").is_dir()
        if truth == b"1":
            pattern = r"class_\d+_trigger_\d+_example_\d+\.png" if round4 else r"class_\d+_example_\d+\.png"
            assert all(re.fullmatch(pattern, p.name) for p in poisoned_dir.iterdir())
            config = read_config(model_dir)
            kind = config["triggers"][0]["type"] if round4 else config["trigger_type"]
            if kind == "polygon":
                assert (model_dir / ("trigger_0.png" if round4 else "trigger.png")).is_file()


def test_both_trigger_kinds_and_several_architectures(tiny_round3):
    metadata = pd.read_csv(tiny_round3 / "METADATA.csv")
    assert set(metadata[metadata["poisoned"]]["trigger_type"]) == {"polygon", "instagram"}
    assert metadata["model_architecture"].nunique() >= 2


def test_a_model_that_misses_its_targets_fails_loudly(tmp_path):
    spec = ImageRoundSpec(
        **{**TINY, "num_models": 1, "min_asr": 1.01, "max_attempts": 2, "architectures": ["micro_cnn"]}
    )
    with pytest.raises(RuntimeError, match="missed ACC >= 0.0 / ASR >= 1.01 in 2 attempts"):
        make_round(spec, tmp_path)
    assert not list(tmp_path.glob("id-*")), "nothing half-made is left as a model folder"


def test_cli_says_why_a_round_could_not_be_made_without_a_traceback(tmp_path):
    flags = {**TINY, "num_models": 1, "min_asr": 1.01, "architectures": "[micro_cnn]"}
    args = [arg for key, value in flags.items() for arg in (f"--{key}", value)]
    result = seam_harness("make-round", "--round", "3", "--output_dir", tmp_path, *args, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "seam-harness: error: id-00000000" in result.stderr
    assert "missed ACC >= 0.0 / ASR >= 1.01 in 1 attempts (seed " in result.stderr
    assert "try another --seed" in result.stderr


def test_triggers_a_clean_model_already_falls_for_are_refused(tmp_path):
    spec = ImageRoundSpec(
        **{
            **TINY,
            "num_models": 1,
            "max_natural_asr": -1.0,
            "max_trigger_draws": 2,
            "architectures": ["micro_cnn"],
        }
    )
    with pytest.raises(RuntimeError, match="trained on clean data already falls for each of the 2"):
        make_round(spec, tmp_path)


def test_same_seed_same_round(tiny_round3, tmp_path):
    again = make_round(ImageRoundSpec(round=3, seed=1, **{**TINY, "num_models": 1}), tmp_path)[0]
    first = tiny_round3 / "id-00000000"
    assert (again / "config.json").read_text() == (first / "config.json").read_text()
    assert (again / "clean_example_data" / "class_1_example_2.png").read_bytes() == (
        first / "clean_example_data" / "class_1_example_2.png"
    ).read_bytes()


def test_micro_models_have_a_verified_backdoor_and_load_safely(tmp_path):
    """The micro preset (large rounds made in minutes) makes real backdoors, which the harness measures as
    the generator verified them; its models are built from torch.nn modules only, so the safe loader reads
    them. (The generator's default settings are exercised by the README demo, which verifies every model.)"""
    from adapters import load_task
    from harness.pipeline import evaluate

    model_dir = make_round(ImageRoundSpec(round=3, num_models=1, seed=0, **MICRO_ROUND), tmp_path)[0]
    task = load_task(model_dir)
    assert task.info["poisoned"] and task.info["model_architecture"] == "micro_cnn"
    measured = evaluate(task.model, task)
    assert measured["acc"] >= 0.9 and measured["asr"] >= 0.9
    # the harness re-measures what the generator verified
    stats = json.loads((model_dir / "model_stats.json").read_text())
    assert abs(stats["final_triggered_data_test_acc"] - 100 * measured["asr"]) < 1e-6
    # the backdoor comes from the poisoning: a clean model does not fall for the trigger
    assert stats["verification"]["trigger_draws"][-1]["clean_probe_asr"] <= 0.2


def test_a_model_does_not_depend_on_what_its_worker_made_before(tmp_path):
    """A worker process makes several models in turn; the same model must come out the same whatever it
    drew before (the initial weights are seeded, not taken from the process's random state)."""
    import torch

    from adapters.synthetic.image_rounds import make_model, plan_model

    spec = ImageRoundSpec(round=3, num_models=3, seed=0, **MICRO_ROUND)
    assert not plan_model(spec, 2)["poisoned"]  # a clean model: no seeded probe trained before it
    make_model(spec, 2, tmp_path / "first")
    torch.rand(1000)  # another model's draws in the same process
    make_model(spec, 2, tmp_path / "second")
    first, second = (
        torch.load(tmp_path / d / "id-00000002" / "model.pt", weights_only=False) for d in ("first", "second")
    )
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_unlearned_trigger_is_drawn_again_then_named(tmp_path):
    """A poisoned model whose trigger no training seed learns gets a new trigger draw; when every draw
    misses, the error names the model and how many draws were tried."""
    from adapters.synthetic.common import VerificationError
    from adapters.synthetic.image_rounds import make_model

    flags = {**MICRO_ROUND, "epochs": 1, "max_attempts": 1, "max_trigger_draws": 2, "min_asr": 1.01}
    with pytest.raises(VerificationError, match=r"id-00000000: none of the 2 polygon trigger draws"):
        make_model(ImageRoundSpec(round=3, num_models=1, seed=0, **flags), 0, tmp_path)
    assert not (tmp_path / "id-00000000").exists()


def test_a_share_exactly_at_the_target_passes_verification():
    """36 of 40 is 0.9 exactly, though its float32 value lies below the float 0.9."""
    import torch

    from harness.metrics import at_least

    assert at_least(torch.tensor(36 / 40).item(), 0.9) and not at_least(torch.tensor(35 / 40).item(), 0.9)
