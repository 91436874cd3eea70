"""Reading round 3 and round 4 model folders as NIST laid them out."""

import json
import shutil

import pytest
import torch

from adapters import detect_round, image, load_task
from adapters.common import RoundFormatError, config_int_list, discover_models, missing, read_config

ROUND3_POISONED = {
    "MODEL_ARCHITECTURE": "resnet50",
    "NUMBER_CLASSES": 5,
    "POISONED": True,
    "TRIGGER_TYPE": "polygon",
    "POLYGON_SIDE_COUNT": 8,
    "TRIGGERED_CLASSES": [0, 3],
    "TRIGGER_TARGET_CLASS": 4,
    "TRIGGERED_FRACTION": 0.16,
    "TRIGGER_COLOR": [75, 226, 69],
    "TRIGGER_BEHAVIOR": "StaticTarget",
    "ADVERSARIAL_TRAINING_METHOD": "PGD",
    "INSTAGRAM_FILTER_TYPE": "None",
    "INSTAGRAM_FILTER_TYPE_level": "None",
    "CNN_IMG_SIZE_PIXELS": 224,
}
ROUND3_CLEAN = {
    "MODEL_ARCHITECTURE": "vgg11_bn",
    "NUMBER_CLASSES": 7,
    "POISONED": False,
    "TRIGGER_TYPE": "None",
    "TRIGGERED_CLASSES": "None",
    "TRIGGER_TARGET_CLASS": "None",
    "IMG_SIZE_PIXELS": 256,
}
ROUND4_POISONED = {
    "py/object": "round_config.RoundConfig",
    "model_architecture": "shufflenet1_0",
    "number_classes": 20,
    "img_size_pixels": 256,
    "cnn_img_size_pixels": 224,
    "poisoned": True,
    "trigger_organization": "pair-one2one",
    "number_triggers": 2,
    "triggers": [
        {
            "py/object": "trigger_config.TriggerConfig",
            "trigger_number": 0,
            "source_class": 3,
            "target_class": 7,
            "type": "polygon",
            "condition": "None",
            "instagram_filter_type": None,
        },
        {
            "py/object": "trigger_config.TriggerConfig",
            "trigger_number": 1,
            "source_class": 5,
            "target_class": 1,
            "type": "instagram",
            "condition": "spatial",
            "instagram_filter_type": "KelvinFilterXForm",
        },
    ],
}
ROUND4_CLEAN = {
    "py/object": "round_config.RoundConfig",
    "model_architecture": "resnet18",
    "number_classes": 15,
    "img_size_pixels": 256,
    "poisoned": False,
    "triggers": None,
    "trigger_organization": None,
    "number_triggers": 0,
}


def write_config(folder, config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return read_config(folder)


def test_round3_config_upper_case_keys_and_none_strings(tmp_path):
    config = write_config(tmp_path / "a", ROUND3_POISONED)
    assert image.recognises(config) and image.round_number(config) == 3
    assert config["instagram_filter_type_level"] == "None" and missing(config["instagram_filter_type"])
    assert image.trigger_targets(config) == {None: 4}
    assert image.trigger_type(config) == "polygon"
    assert config_int_list(config["triggered_classes"]) == [0, 3]
    clean = write_config(tmp_path / "b", ROUND3_CLEAN)
    assert image.round_number(clean) == 3
    assert image.trigger_targets(clean) == {} and image.trigger_type(clean) == "none"


def test_round4_jsonpickle_config(tmp_path):
    config = write_config(tmp_path / "a", ROUND4_POISONED)
    assert image.recognises(config) and image.round_number(config) == 4
    assert image.trigger_targets(config) == {0: 7, 1: 1}
    assert image.trigger_type(config) == "instagram+polygon"
    clean = write_config(tmp_path / "b", ROUND4_CLEAN)
    assert image.round_number(clean) == 4
    assert image.trigger_targets(clean) == {} and image.trigger_type(clean) == "none"


def test_metadata_style_lists_and_missing_values():
    assert config_int_list("[0 3]") == [0, 3]
    assert config_int_list("None") == [] and config_int_list(None) == []
    assert missing("None") and missing(None) and not missing(0)


def test_bad_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RoundFormatError, match="not valid JSON"):
        read_config(tmp_path)
    with pytest.raises(RoundFormatError, match="no config.json"):
        read_config(tmp_path / "nowhere")


@pytest.mark.parametrize("fixture", ["tiny_round3", "tiny_round4"])
def test_generated_round_loads_as_a_task(fixture, request):
    round_dir = request.getfixturevalue(fixture)
    expected_round = 3 if fixture == "tiny_round3" else 4
    assert detect_round(round_dir) == expected_round
    for model_dir in discover_models(round_dir):
        task = load_task(model_dir)
        assert task.info["round"] == expected_round
        assert task.defender.inputs.shape[1:] == (3, 16, 16)
        assert 0.0 <= float(task.defender.inputs.min()) and float(task.defender.inputs.max()) <= 1.0
        assert task.info["poisoned"] == (task.eval_triggered is not None)
        expected = "clean_test_data+poisoned_test_data" if task.info["poisoned"] else "clean_test_data"
        assert task.eval_data == expected
        if task.eval_triggered is not None:
            assert bool((task.eval_triggered.labels != task.eval_triggered.targets).all())
        # the drift check: four zoomed views per defender image, labelled as it; only agreement flags
        views = task.drift_check
        assert views.inputs.shape == (4 * len(task.defender.inputs), 3, 16, 16)
        assert task.drift_flag == "agreement"
        assert torch.equal(views.labels, task.defender.labels.repeat_interleave(4))
        assert not any(torch.equal(views.inputs[4 * i], x) for i, x in enumerate(task.defender.inputs))
        assert torch.equal(views.inputs, load_task(model_dir).drift_check.inputs)  # seeded


def test_server_shaped_folder_holds_out_part_of_the_examples(tiny_round3, tmp_path):
    """NIST's test server: model.pt, config.json, example_data/ only (plus our poisoned examples)."""
    source = discover_models(tiny_round3)[0]
    folder = tmp_path / "id-00000000"
    folder.mkdir()
    for name in ("model.pt", "config.json"):
        shutil.copy(source / name, folder / name)
    shutil.copytree(source / "clean_example_data", folder / "example_data")
    shutil.copytree(source / "poisoned_example_data", folder / "poisoned_example_data")
    task = load_task(folder, holdout_fraction=0.5, holdout_seed=0)
    assert task.eval_data.startswith("clean_example_holdout(fraction=0.5,seed=0)+poisoned_example_data")
    assert not set(task.defender.names) & set(task.eval_clean.names)
    assert len(task.defender) + len(task.eval_clean) == len(list((folder / "example_data").iterdir()))
    # the same seed holds out the same files
    assert load_task(folder, 0.5, 0).eval_clean.names == task.eval_clean.names


def test_round_root_or_models_subfolder(tiny_round3, tmp_path):
    nested = tmp_path / "round"
    shutil.copytree(tiny_round3, nested / "models")
    assert [p.name for p in discover_models(nested)] == [p.name for p in discover_models(tiny_round3)]


def test_unreadable_image_is_a_clear_error(round3_copy):
    model_dir = discover_models(round3_copy)[0]
    victim = sorted((model_dir / "clean_example_data").iterdir())[0]
    victim.write_bytes(b"not a png")
    with pytest.raises(RoundFormatError, match="unreadable image"):
        load_task(model_dir)


def test_preprocessing_matches_the_competition(tiny_round3):
    """RGB, centre crop at int((W - size) / 2), /255, NCHW."""
    import numpy as np
    from PIL import Image

    model_dir = discover_models(tiny_round3)[0]
    path = sorted((model_dir / "clean_example_data").iterdir())[0]
    pixels = np.asarray(Image.open(path).convert("RGB"))
    offset = (20 - 16) // 2
    expected = (
        torch.from_numpy(pixels[offset : offset + 16, offset : offset + 16].copy()).permute(2, 0, 1) / 255.0
    )
    task = load_task(model_dir)
    assert torch.equal(task.defender.inputs[task.defender.names.index(path.name)], expected.float())


def test_augmentation_shifts_each_image_by_its_own_offset():
    """The batched crop equals cutting each image's window out of its padded copy one by one."""
    images, labels = torch.rand(5, 3, 7, 9), torch.arange(5)
    shifted, same = image.augment_batch(images, labels, torch.Generator().manual_seed(3), max_shift=2)
    generator = torch.Generator().manual_seed(3)  # the same draws, in the same order
    dx = torch.randint(0, 5, (5,), generator=generator)
    dy = torch.randint(0, 5, (5,), generator=generator)
    scale = 1.0 + 0.1 * (2 * torch.rand(5, 3, 1, 1, generator=generator) - 1)
    padded = torch.nn.functional.pad(images, (2,) * 4, mode="replicate")
    for i in range(5):
        window = padded[i, :, dy[i] : dy[i] + 7, dx[i] : dx[i] + 9]
        assert torch.equal(shifted[i], (window * scale[i]).clamp(0.0, 1.0))
    assert torch.equal(same, labels)


def test_strong_augmentation_jitters_colours_and_erases_one_rectangle_in_about_half_the_images():
    """On flat grey images every pixel but the erased ones keeps one colour per image, so the erased
    part shows as the pixels off that colour: a filled rectangle of 2-33 % of the image, or nothing."""
    n, size = 200, 20
    images, labels = torch.full((n, 3, size, size), 0.5), torch.arange(n)
    out, same = image.strong_augment_batch(images, labels, torch.Generator().manual_seed(0))
    again, _ = image.strong_augment_batch(images, labels, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and torch.equal(same, labels)
    assert out.shape == images.shape and 0.0 <= out.min() and out.max() <= 1.0
    flat = out.flatten(2).median(dim=2).values  # [n, 3]: each image's colour outside the patch
    off = (out != flat[:, :, None, None]).any(dim=1)  # [n, h, w]
    erased = 0
    for mask in off:
        if not mask.any():
            continue
        erased += 1
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one filled rectangle
        assert 0.01 <= box.numel() / size**2 <= 0.4
    assert 70 <= erased <= 130
    # brightness, contrast and saturation move the colour well beyond the standard +-10 % scaling
    assert flat.min() < 0.4 and flat.max() > 0.6
