"""Loading and saving whole pickled models (the TrojAI `model.pt` format) without running arbitrary code.

`torch.load(weights_only=False)` would execute whatever a pickle names. We unpickle with an allowlist
instead: torch's tensor-rebuilding helpers, a few builtin containers, `nn.Module` subclasses from torch,
torchvision, transformers and the competition's `model_factories`, transformers' config classes and a
few activation functions. Tokenizers (rounds 5-7 ship them pickled) load through `load_tokenizer`, whose
allowlist adds transformers' tokenizer classes and the `tokenizers` library's objects. Classes that moved
between library versions are mapped to their current home, so pickles from the competition's torchvision
0.6-0.8 still load.
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
    ("transformers.modeling_utils", "Conv1D"): ("transformers.pytorch_utils", "Conv1D"),
}
# Whole modules under another name: the competition's pickles import `model_factories` from the top level.
MOVED_MODULES = {"model_factories": "adapters.model_factories"}

# Modules whose nn.Module subclasses a model pickle may name.
MODULE_PREFIXES = ("torch.nn.", "torchvision.", "model_factories", "transformers.", "adapters.", "harness.")
SAFE_BUILTINS = {"set", "frozenset", "dict", "list", "tuple", "slice", "int", "float", "bool", "str"}
# Activation functions that transformer layers keep as attributes (older transformers stored functions).
ACTIVATION_MODULES = ("torch._C._nn", "torch.nn.functional", "transformers.activations")
ACTIVATION_NAMES = {"gelu", "gelu_new", "gelu_fast", "relu", "silu", "swish", "tanh", "sigmoid", "mish"}


def _resolve(module: str, name: str) -> object:
    if module in MOVED_MODULES:
        module = MOVED_MODULES[module]
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


def _is_transformers_class(obj: object, base_name: str) -> bool:
    """A transformers class derived from `base_name` (imported lazily: image rounds never need it)."""
    if not isinstance(obj, type) or not obj.__module__.startswith("transformers."):
        return False
    import transformers

    base = getattr(transformers, base_name, None)
    if base is None and base_name == "PreTrainedConfig":  # spelled PretrainedConfig before transformers 5
        base = transformers.PretrainedConfig
    return issubclass(obj, base)


def _allowed(module: str, name: str, obj: object) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in SAFE_BUILTINS
    if module == "collections":
        return name == "OrderedDict"
    if module in ("torch._utils", "torch._tensor"):
        return name.startswith("_rebuild")
    if module == "torch":
        return (
            name.endswith("Storage")
            or name == "Tensor"
            or isinstance(obj, torch.dtype | torch.device | type(torch.Size))
        )
    if module == "torch.storage":
        return name in ("_load_from_bytes", "UntypedStorage", "TypedStorage")
    if module in ACTIVATION_MODULES and name in ACTIVATION_NAMES:
        return callable(obj)
    if module.startswith("transformers.") and _is_transformers_class(obj, "PreTrainedConfig"):
        return True
    return isinstance(obj, type) and issubclass(obj, nn.Module) and module.startswith(MODULE_PREFIXES)


def _allowed_in_tokenizer(module: str, name: str, obj: object) -> bool:
    """Tokenizer pickles: transformers tokenizer classes and the Rust `tokenizers` objects they wrap."""
    if module == "_codecs":
        return name == "encode"  # how pickle protocol 2 writes bytes
    if module == "tokenizers" or module.startswith("tokenizers."):
        return isinstance(obj, type)
    if module.startswith("transformers.") and _is_transformers_class(obj, "PreTrainedTokenizerBase"):
        return True
    return _allowed(module, name, obj)


class RestrictedUnpickler(pickle.Unpickler):
    allowed = staticmethod(_allowed)
    what = "model"

    def find_class(self, module: str, name: str) -> object:
        if module == "__builtin__":
            module = "builtins"
        obj = _resolve(module, name)
        if not self.allowed(module, name, obj):
            raise ModelLoadError(
                f"the pickle names {module}.{name}, which is not on the {self.what} allowlist"
            )
        return obj


class TokenizerUnpickler(RestrictedUnpickler):
    allowed = staticmethod(_allowed_in_tokenizer)
    what = "tokenizer"


def _pickle_module(unpickler: type[pickle.Unpickler], name: str) -> SimpleNamespace:
    module = SimpleNamespace(Unpickler=unpickler, load=lambda f, **kw: unpickler(f, **kw).load())
    module.__name__ = name
    return module


restricted_pickle = _pickle_module(RestrictedUnpickler, "restricted_pickle")
tokenizer_pickle = _pickle_module(TokenizerUnpickler, "tokenizer_pickle")


def _load(path: Path, pickle_module: SimpleNamespace) -> object:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", pickle_module=pickle_module, weights_only=False)
    except ModelLoadError as error:
        raise ModelLoadError(f"{path}: {error}") from None
    except Exception as error:  # torch raises many kinds for truncated or foreign files
        raise ModelLoadError(f"{path}: not a loadable torch file ({type(error).__name__}: {error})") from None


def fill_missing_config_attributes(model: nn.Module) -> None:
    """Give configs pickled by older transformers the attributes newer code reads (defaults).

    Unpickling restores an old config's __dict__ without running __init__, so attributes added to
    transformers since (e.g. `_attn_implementation`) are missing and the forward pass fails.
    """
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is None or not _is_transformers_class(type(config), "PreTrainedConfig"):
            continue
        for key, value in vars(type(config)()).items():
            if key not in vars(config):
                setattr(config, key, value)


def load_tokenizer(path: str | Path) -> object:
    """A pickled transformers tokenizer (rounds 5-7 ship them as `tokenizers/<name>.pt`)."""
    import transformers

    path = Path(path)
    tokenizer = _load(path, tokenizer_pickle)
    if not isinstance(tokenizer, transformers.PreTrainedTokenizerBase):
        raise ModelLoadError(f"{path}: holds a {type(tokenizer).__name__}, not a transformers tokenizer")
    return tokenizer


def load_model(path: str | Path) -> nn.Module:
    """Load a whole pickled model on CPU in eval mode; raises ModelLoadError with a readable reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    model = _load(path, restricted_pickle)
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a whole nn.Module")
    fill_missing_config_attributes(model)
    return model.eval()


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save the whole module on CPU in eval mode (the input format), atomically."""
    model = model.to("cpu").eval()
    atomic_write(path, lambda tmp: torch.save(model, tmp))
