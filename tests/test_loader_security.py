"""The model and tokenizer loaders against crafted files: nothing in a pickle runs unless allowed.

Each attack in crafted_pickles.ATTACKS creates a marker file when unpickled the usual way (checked here
in a separate process, since several of them change the interpreter they run in); our loaders refuse
every one, name the global they refused and leave no marker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from crafted_pickles import (
    ATTACKS,
    EVIL_MODULE,
    global_,
    python_touch,
    stream,
    text,
)
from torch import nn

from harness.model_io import ModelLoadError, load_model, load_tokenizer


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (crafted file, its marker), each in a folder of its own."""
    root = tmp_path_factory.mktemp("attacks")
    files = {}
    for number, attack in enumerate(ATTACKS):
        folder = root / f"attack{number}"
        folder.mkdir()
        path, marker = folder / "model.pt", folder / "marker"
        attack.write(path, marker)
        assert not marker.exists()
        files[attack.name] = (path, marker)
    return files


def test_every_attack_runs_its_payload_under_a_plain_loader(attack_files):
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from crafted_pickles import unpickle_plainly, EVIL_MODULE\n"
        "for path in json.loads(sys.argv[2]):\n"
        "    sys.path.insert(0, path.rsplit('/', 1)[0])\n"
        "    try:\n"
        "        unpickle_plainly(path)\n"
        "    except BaseException:\n"
        "        pass\n"
        "    sys.path.pop(0)\n"
        "    sys.modules.pop(EVIL_MODULE, None)\n"
    )
    paths = [str(path) for path, _ in attack_files.values()]
    tests_dir = str(Path(__file__).parent)
    subprocess.run(
        [sys.executable, "-c", script, tests_dir, json.dumps(paths)], capture_output=True, timeout=300
    )
    inert = [name for name, (_, marker) in attack_files.items() if not marker.exists()]
    assert inert == [], "these crafted files would not harm a plain loader, so they test nothing"
    for _, marker in attack_files.values():
        marker.unlink()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_loaders_refuse_every_attack_and_name_the_global(attack, attack_files, monkeypatch):
    path, marker = attack_files[attack.name]
    monkeypatch.syspath_prepend(str(path.parent))  # the attacker's module is importable: it must not matter
    own, other = (load_tokenizer, load_model) if attack.kind == "tokenizer" else (load_model, load_tokenizer)
    with pytest.raises(ModelLoadError) as refused:
        own(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and attack.refused in message and "\n" not in message
    with pytest.raises(ModelLoadError):
        other(path)
    assert not marker.exists()
    assert EVIL_MODULE not in sys.modules


LINEAR = global_("torch.nn.modules.linear", "Linear")
CALLS_OF_AN_ALLOWED_CLASS = {
    "REDUCE": LINEAR + b"(K\x03K\x02tR",
    "INST": b"(K\x03K\x02itorch.nn.modules.linear\nLinear\n",
    "OBJ": b"(" + LINEAR + b"K\x03K\x02o",
    "tensor-subclass rebuild": global_("torch._tensor", "_rebuild_from_type_v2")
    + b"("
    + LINEAR
    + global_("torch", "Tensor")
    + b"K\x03K\x02\x86}tR",
}


@pytest.mark.parametrize("opcodes", CALLS_OF_AN_ALLOWED_CLASS.values(), ids=CALLS_OF_AN_ALLOWED_CLASS.keys())
def test_an_allowed_class_is_rebuilt_but_never_called(opcodes, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(stream(opcodes))
    with pytest.raises(ModelLoadError, match="torch.nn.modules.linear.Linear.*may only rebuild, not call"):
        load_model(path)


def test_attributes_of_a_class_cannot_be_replaced(tmp_path):
    from transformers import BertConfig

    config_class = global_("transformers.models.bert.configuration_bert", "BertConfig")
    relu = global_("torch.nn.functional", "relu")
    path = tmp_path / "model.pt"
    path.write_bytes(stream(config_class + b"N}" + text("to_dict") + relu + b"s\x86b"))
    with pytest.raises(ModelLoadError, match="sets attributes of"):
        load_model(path)
    assert BertConfig.to_dict is not torch.nn.functional.relu


def test_classes_admitted_by_rule_must_be_their_modules_own(tmp_path):
    # mobilenetv2 imports Conv2dNormActivation from torchvision.ops.misc: reachable there, but not its own
    path = tmp_path / "model.pt"
    path.write_bytes(stream(global_("torchvision.models.mobilenetv2", "Conv2dNormActivation")))
    with pytest.raises(ModelLoadError, match="mobilenetv2.Conv2dNormActivation, which is not on"):
        load_model(path)


def test_trust_pickles_uses_the_plain_loader(attack_files, tmp_path):
    legitimate = nn.Sequential(nn.Linear(3, 2))
    torch.save(legitimate, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt", trust_pickles=True)
    assert torch.equal(loaded[0].weight, legitimate[0].weight)
    marker = tmp_path / "marker"
    (tmp_path / "payload.pt").write_bytes(
        stream(global_("builtins", "exec") + b"(" + text(python_touch(marker)) + b"tR")
    )
    with pytest.raises(ModelLoadError):  # exec returns None: not a model, but it ran
        load_model(tmp_path / "payload.pt", trust_pickles=True)
    assert marker.exists()


def test_a_model_pickled_after_from_pretrained_loads_and_runs(tmp_path):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(config).save_pretrained(tmp_path / "pretrained")
    model = BertModel.from_pretrained(tmp_path / "pretrained").eval()
    assert hasattr(model, "_kernels_mode")  # what real rounds' embeddings carry under transformers 5
    torch.save(model, tmp_path / "embedding.pt")
    loaded = load_model(tmp_path / "embedding.pt")
    ids = torch.tensor([[2, 5, 7, 3]])
    assert torch.equal(loaded(ids)[0], model(ids)[0])


def test_the_legacy_torch_format_loads_through_the_same_restricted_path(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_model(path)[0].weight, model[0].weight)
    # (the crafted files written as bare pickle streams are legacy-format files too: torch.load reads
    # every non-zip file that way, and the attack tests above refuse them through the same unpickler)
