"""Loading and saving whole pickled models (the TrojAI `model.pt` format) without running arbitrary code.

Model, embedding and tokenizer files are untrusted input: `torch.load(weights_only=False)` would run
whatever a pickle names. We unpickle with an allowlist instead, checked on the names *before* anything is
imported:

- exact (module, name) pairs: torch's tensor-rebuild functions, dtypes, `torch.Size`/`torch.device`, a
  few builtin containers, `collections.OrderedDict`, activation functions that transformer layers keep as
  attributes, and the enum that `from_pretrained` models carry;
- classes by rule: an `nn.Module` subclass (or a transformers config class; tokenizer files also a
  transformers tokenizer class or a `tokenizers` object) named by a plain class name (no dots) in a module
  of the known model libraries (and harness.ensemble, for models this package saves), whose own
  `__module__` is that module (no re-exports).

Classes admitted by rule are only ever re-created the way pickle restores objects (`cls.__new__` plus
their saved state), never called: a pickle that calls one (runs its `__init__` with arguments of its
choosing) is refused, as is a pickle that sets attributes on a class or function. Classes that moved
between library versions are mapped to their current home, so pickles from the competition's
torchvision 0.6-0.8 still load. `load_model(..., trust_pickles=True)` skips all of this for files the
user knows, with the plain unpickler.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, SimpleNamespace

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

_DTYPES = (
    "float32 float float64 double float16 half bfloat16 complex64 cfloat complex128 cdouble "
    "int64 long int32 int int16 short int8 uint8 bool"
).split()
_REBUILD_FUNCTIONS = (
    "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
    "_rebuild_parameter_with_state _rebuild_meta_tensor_no_storage"
).split()
_ACTIVATIONS = "gelu gelu_new gelu_fast relu silu swish tanh sigmoid mish".split()

# Everything a model pickle may name besides the classes admitted by rule, exactly.
MODEL_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("builtins", n) for n in "set frozenset dict list tuple slice int float bool str complex".split()}
    | {("collections", "OrderedDict"), ("_codecs", "encode")}  # _codecs.encode: how protocol 2 writes bytes
    | {("torch._utils", n) for n in _REBUILD_FUNCTIONS}
    | {("torch._tensor", "_rebuild_from_type_v2"), ("torch.nn.parameter", "Parameter")}
    | {("torch", "Tensor"), ("torch", "Size"), ("torch", "device")}
    | {("torch", n) for n in _DTYPES}
    | {
        (m, n)
        for m in ("torch._C._nn", "torch.nn.functional", "transformers.activations")
        for n in _ACTIVATIONS
    }
    # transformers >= 5 models built by from_pretrained keep this enum in `_kernels_mode`
    | {("kernels._internals.layer.mode", "Mode")}
)

# Modules whose own nn.Module subclasses a model may be built from (full match of the module name).
MODULE_CLASS_MODULES = re.compile(
    r"torch\.nn\.modules\.\w+"
    r"|torchvision\.(models|ops)(\.\w+)+"
    r"|transformers\.models\.\w+\.modeling_\w+"
    r"|transformers\.(activations|pytorch_utils|modeling_utils)"
    r"|(adapters\.)?model_factories"
    r"|harness\.ensemble"  # SEAM's averaged runs (restart_policy ensemble), as `run` saves them
)
CONFIG_CLASS_MODULES = re.compile(
    r"transformers\.models\.\w+\.configuration_\w+|transformers\.configuration_utils"
)
TOKENIZER_CLASS_MODULES = re.compile(
    r"transformers\.models\.\w+\.tokenization_\w+|transformers\.tokenization_\w+"
)
TOKENIZERS_LIBRARY_MODULES = re.compile(
    r"tokenizers(\.(models|normalizers|pre_tokenizers|processors|decoders))?"
)


def _transformers_base(name: str) -> type:
    import transformers  # lazily: image rounds never need it

    if name == "PreTrainedConfig" and not hasattr(transformers, name):
        return transformers.PretrainedConfig  # the spelling before transformers 5
    return getattr(transformers, name)


def _is_transformers_class(obj: object, base_name: str) -> bool:
    return (
        isinstance(obj, type)
        and obj.__module__.startswith("transformers.")
        and issubclass(obj, _transformers_base(base_name))
    )


def _is_module_class(obj: type) -> bool:
    return issubclass(obj, nn.Module)


def _is_config_class(obj: type) -> bool:
    return _is_transformers_class(obj, "PreTrainedConfig")


def _is_tokenizer_class(obj: type) -> bool:
    return _is_transformers_class(obj, "PreTrainedTokenizerBase")


def _is_tokenizers_object(obj: type) -> bool:
    return True  # any class the `tokenizers` library defines in the modules its pickles name


# (module pattern, test on the class) pairs: which classes each kind of file may be rebuilt from
MODEL_CLASS_RULES = ((MODULE_CLASS_MODULES, _is_module_class), (CONFIG_CLASS_MODULES, _is_config_class))
TOKENIZER_CLASS_RULES = (
    *MODEL_CLASS_RULES,
    (TOKENIZER_CLASS_MODULES, _is_tokenizer_class),
    (TOKENIZERS_LIBRARY_MODULES, _is_tokenizers_object),
)


def _import_attribute(module: str, name: str) -> object:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ModelLoadError(
            f"the pickle names class {module}.{name}, which does not exist here ({error})"
        ) from None


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles only what the allowlist admits; see the module docstring.

    The pure-Python unpickler, because the opcodes that call a global (REDUCE) and that set attributes
    (BUILD) must be checked too, and the C unpickler cannot be hooked there. Pickles of whole models hold
    structure only (tensor data lives in separate records), so the speed does not matter.
    """

    class_rules = MODEL_CLASS_RULES
    what = "model"

    def __init__(self, file, **kwargs) -> None:
        super().__init__(file, **kwargs)
        # the only things REDUCE may call: the exact-pair globals this pickle named, by id (the dict holds
        # them, so no id is reused while the unpickler lives)
        self._callable: dict[int, object] = {}
        self._rebuild_from_type = self._rebuild_from_type_v2
        self._callable[id(self._rebuild_from_type)] = self._rebuild_from_type

    def _refuse(self, module: str, name: str) -> ModelLoadError:
        return ModelLoadError(f"the pickle names {module}.{name}, which is not on the {self.what} allowlist")

    def find_class(self, module: str, name: str) -> object:
        if module == "__builtin__":
            module = "builtins"
        named_module = module
        moved = MOVED_CLASSES.get((module, name))
        if moved is not None and not isinstance(moved, tuple):
            return moved
        if moved is not None:
            module, name = moved
        module = MOVED_MODULES.get(module, module)
        if (module, name) == ("torch._tensor", "_rebuild_from_type_v2"):
            return self._rebuild_from_type
        if (module, name) in MODEL_GLOBALS:
            obj = _import_attribute(module, name)
            self._callable[id(obj)] = obj
            return obj
        if not name.isidentifier():  # dotted names would walk out of the module through its attributes
            raise self._refuse(named_module, name)
        for pattern, admits in self.class_rules:
            if pattern.fullmatch(module):
                obj = _import_attribute(module, name)
                if (
                    isinstance(obj, type)
                    and obj.__module__ in (module, named_module)  # its own class, not one it imported
                    and admits(obj)
                ):
                    return obj
                break
        raise self._refuse(named_module, name)

    def _check_callable(self, func: object) -> None:
        if id(func) not in self._callable:
            raise ModelLoadError(
                f"the pickle calls {getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
                f", which a {self.what} file may only rebuild, not call"
            )

    def _rebuild_from_type_v2(self, func, new_type, args, state):
        """torch's tensor-subclass rebuild, which calls `func`: only an allowed callable."""
        self._check_callable(func)
        return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)

    def _instantiate(self, klass, args):
        # the INST and OBJ opcodes: pickle calls klass(*args) in these cases
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self._check_callable(klass)
        return super()._instantiate(klass, args)

    dispatch = dict(pickle._Unpickler.dispatch)

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_callable(func)
        self.stack[-1] = func(*args)

    def _load_build(self) -> None:
        target = self.stack[-2]  # BUILD's operands: the object, then the state on top
        if isinstance(target, type | FunctionType | BuiltinFunctionType):
            raise ModelLoadError(f"the pickle sets attributes of {target!r}, which no {self.what} file does")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build


class TokenizerUnpickler(RestrictedUnpickler):
    class_rules = TOKENIZER_CLASS_RULES
    what = "tokenizer"


def _pickle_module(unpickler: type[pickle.Unpickler], name: str) -> SimpleNamespace:
    module = SimpleNamespace(Unpickler=unpickler, load=lambda f, **kw: unpickler(f, **kw).load())
    module.__name__ = name
    return module


restricted_pickle = _pickle_module(RestrictedUnpickler, "restricted_pickle")
tokenizer_pickle = _pickle_module(TokenizerUnpickler, "tokenizer_pickle")


def _load(path: Path, pickle_module: SimpleNamespace | None) -> object:
    """torch.load through `pickle_module`; None means the plain, unrestricted unpickler."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        if pickle_module is None:
            return torch.load(path, map_location="cpu", weights_only=False)
        return torch.load(path, map_location="cpu", pickle_module=pickle_module, weights_only=False)
    except ModelLoadError as error:
        raise ModelLoadError(f"{path}: {error}") from None
    except Exception as error:  # torch raises many kinds for truncated or foreign files
        reason = str(error).split(". ")[0]  # torch's zip reader adds a paragraph of advice
        kind = type(error).__name__
        raise ModelLoadError(f"{path}: not a loadable torch file ({kind}: {reason})") from None


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


def load_tokenizer(path: str | Path, trust_pickles: bool = False) -> object:
    """A pickled transformers tokenizer (rounds 5-7 ship them as `tokenizers/<name>.pt`)."""
    import transformers

    path = Path(path)
    tokenizer = _load(path, None if trust_pickles else tokenizer_pickle)
    if not isinstance(tokenizer, transformers.PreTrainedTokenizerBase):
        raise ModelLoadError(f"{path}: holds a {type(tokenizer).__name__}, not a transformers tokenizer")
    return tokenizer


def load_model(path: str | Path, trust_pickles: bool = False) -> nn.Module:
    """Load a whole pickled model on CPU in eval mode; raises ModelLoadError with a readable reason.

    trust_pickles: unpickle without the allowlist (runs whatever the file names; only for files you trust).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    model = _load(path, None if trust_pickles else restricted_pickle)
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{path}: holds a {type(model).__name__}, not a whole nn.Module")
    fill_missing_config_attributes(model)
    return model.eval()


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save the whole module on CPU in eval mode (the input format), atomically.

    Serialised in memory first: torch's file writer reports a full disk as a RuntimeError, plain file
    writes as the OSError that atomic_write turns into a one-line OutputError.
    """
    buffer = io.BytesIO()
    torch.save(model.to("cpu").eval(), buffer)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))
