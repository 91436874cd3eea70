"""Loading and saving whole pickled models (the TrojAI `model.pt` format) without running arbitrary code.

`torch.load(weights_only=False)` would execute whatever a pickle names. We unpickle with an allowlist
instead: torch's tensor-rebuilding helpers, a few builtin containers, and `nn.Module` subclasses from
torch, torchvision and the competition's own model modules. Classes that moved between library versions
are mapped to their current home, so pickles from the competition's torchvision 0.6-0.8 still load.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from harness.files import atomic_write


class ModelLoadError(Exception):
    """A model file that cannot be loaded; the message says which file and why."""


class ConvBNReLU(nn.Sequential):
    """torchvision <= 0.11 `mobilenet.ConvBNReLU` (conv, BN, ReLU6 in a Sequential), removed since."""


# (module, name) in an old pickle -> where the class lives now
MOVED_CLASSES: dict[tuple[str, str], object] = {
    ("torchvision.models.mobilenet", "MobileNetV2"): ("torchvision.models.mobilenetv2", "MobileNetV2"),
    ("torchvision.models.mobilenet", "InvertedResidual"): (
        "torchvision.models.mobilenetv2",
        "InvertedResidual",
    ),
    ("torchvision.models.mobilenet", "ConvBNReLU"): ConvBNReLU,
    ("torchvision.models.mobilenetv2", "ConvBNReLU"): ConvBNReLU,
}

# Modules whose nn.Module subclasses a model pickle may name.
MODULE_PREFIXES = ("torch.nn.", "torchvision.", "model_factories", "transformers.", "adapters.", "harness.")
SAFE_BUILTINS = {"set", "frozenset", "dict", "list", "tuple", "slice", "int", "float", "bool", "str"}


def _resolve(module: str, name: str) -> object:
    moved = MOVED_CLASSES.get((module, name))
    if moved is not None and not isinstance(moved, tuple):
        return moved
    if moved is not None:
        module, name = moved
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ModelLoadError(
            f"the pickle names class {module}.{name}, which does not exist here ({error})"
        ) from None
    return found


def _allowed(module: str, name: str, obj: object) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in SAFE_BUILTINS
    if module == "collections":
        return name == "OrderedDict"
    if module == "torch._utils":
        return name.startswith("_rebuild")
    if module == "torch":
        return name.endswith("Storage") or isinstance(obj, torch.dtype | torch.device | type(torch.Size))
    if module == "torch.storage":
        return name in ("_load_from_bytes", "UntypedStorage", "TypedStorage")
    return isinstance(obj, type) and issubclass(obj, nn.Module) and module.startswith(MODULE_PREFIXES)


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module == "__builtin__":
            module = "builtins"
        obj = _resolve(module, name)
        if not _allowed(module, name, obj):
            raise ModelLoadError(f"the pickle names {module}.{name}, which is not on the model allowlist")
        return obj


restricted_pickle = SimpleNamespace(
    Unpickler=RestrictedUnpickler, load=lambda f, **kw: RestrictedUnpickler(f, **kw).load()
)
restricted_pickle.__name__ = "restricted_pickle"


def load_model(path: str | Path) -> nn.Module:
    """Load a whole pickled model on CPU in eval mode; raises ModelLoadError with a readable reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    try:
        model = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except ModelLoadError as error:
        raise ModelLoadError(f"{path}: {error}") from None
    except Exception as error:  # torch raises many kinds for truncated or foreign files
        raise ModelLoadError(
            f"{path}: not a loadable torch model ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a whole nn.Module")
    return model.eval()


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save the whole module on CPU in eval mode (the input format), atomically."""
    model = model.to("cpu").eval()
    atomic_write(path, lambda tmp: torch.save(model, tmp))
