"""The restricted unpickler that reads official DINO-WM files (whole pickled modules) without running
any code from them.

Unpickling such a file normally imports and runs whatever it names. :class:`RestrictedUnpickler`
instead requires every global the pickle asks for to be on an explicit allow-list
(:data:`SAFE_GLOBALS`: tensor rebuilding and plain containers; :data:`STAND_IN_GLOBALS`: module and
optimizer classes, replaced by inert :class:`StandIn` records that keep only their ``__dict__`` /
``_parameters`` / ``_buffers`` / ``_modules``). Anything else raises :class:`UnsafeCheckpointError`
naming the global before it is imported or called.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import re
import types
from typing import Any, ClassVar

import torch

from edgerun.errors import UnsafeCheckpointError


class StandIn:
    """Inert replacement for a module / optimizer class from the pickle: records state, runs nothing.

    ``official`` is the global it stands for (``models.vit.ViTPredictor``); ``args`` what it was
    called with, if the pickle called it; its ``__dict__`` holds what the pickle set.
    """

    official = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["args"] = args
        self.__dict__["kwargs"] = kwargs

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:  # (__dict__, __slots__ values)
                if part:
                    self.__dict__.update(part)
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state

    # Containers pickled with setitems/appends (defaultdict-like or list-like stand-ins).
    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("values", []).extend(values)

    def __repr__(self) -> str:
        return f"<stand-in for {self.official}>"


def _tensor_rebuilders() -> dict[tuple[str, str], Any]:
    import torch._utils as tu

    names = ["_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter", "_rebuild_parameter_with_state"]
    return {("torch._utils", name): getattr(tu, name) for name in names if hasattr(tu, name)}


SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    **_tensor_rebuilders(),
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("collections", "defaultdict"): __import__("collections").defaultdict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
"""Real objects the pickle may use: tensor rebuilding (storages come through torch.load's own
``persistent_load``), plain containers, ``torch.Size`` and ``torch.device``. Plus the storage
classes (``torch.FloatStorage``, ...) and dtypes (``torch.float32``, ...), checked by type."""

STAND_IN_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("models.vit", name) for name in ("ViTPredictor", "Transformer", "Attention", "FeedForward")]
    + [("models.proprio", "ProprioceptiveEmbedding"), ("models.dino", "DinoV2Encoder")]
    + [("models.vqvae", name) for name in ("VQVAE", "Decoder", "Encoder", "ResBlock", "Quantize")]
    # The DINOv2 hub model, when the encoder was saved (train_encoder=True).
    + [("dinov2.models.vision_transformer", "DinoVisionTransformer"), ("dinov2.layers.patch_embed", "PatchEmbed"),
       ("dinov2.layers.block", "NestedTensorBlock"), ("dinov2.layers.block", "Block"),
       ("dinov2.layers.attention", "MemEffAttention"), ("dinov2.layers.attention", "Attention"),
       ("dinov2.layers.mlp", "Mlp"), ("dinov2.layers.layer_scale", "LayerScale")]
    + [(f"torch.nn.modules.{module}", name) for module, name in (
        ("linear", "Linear"), ("linear", "Identity"), ("normalization", "LayerNorm"), ("conv", "Conv1d"),
        ("conv", "Conv2d"), ("conv", "ConvTranspose2d"), ("dropout", "Dropout"), ("container", "ModuleList"),
        ("container", "Sequential"), ("activation", "GELU"), ("activation", "ReLU"), ("activation", "Softmax"),
        ("activation", "SiLU"), ("activation", "Tanh"))]
    # Optimizer entries ("predictor_optimizer", ...): kept as inert records, never used.
    + [("torch.optim.adam", "Adam"), ("torch.optim.adamw", "AdamW"), ("accelerate.optimizer", "AcceleratedOptimizer"),
       ("accelerate.state", "AcceleratorState"), ("accelerate.state", "PartialState"), ("accelerate.state", "GradientState"),
       ("accelerate.utils.dataclasses", "DistributedType"), ("accelerate.utils.dataclasses", "GradientAccumulationPlugin")]
)
"""Classes the pickle may name, each replaced by a :class:`StandIn` subclass (never imported)."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` serves only the allow-list; ``source`` names the file in errors."""

    source = "<checkpoint>"
    _stand_ins: ClassVar[dict[tuple[str, str], type]] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles (torch.save's default) name Python 2 modules (__builtin__.set); map
        # them as pickle's own find_class would (fix_imports) before checking.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = (module, name)
        if key in SAFE_GLOBALS:
            return SAFE_GLOBALS[key]
        if module == "torch":
            value = getattr(torch, name, None) if re.fullmatch(r"[A-Za-z0-9_]+", name) else None
            if isinstance(value, torch.dtype) or (isinstance(value, type) and name.endswith("Storage")):
                return value
        if key in STAND_IN_GLOBALS:
            if key not in self._stand_ins:
                self._stand_ins[key] = type(name, (StandIn,), {"official": f"{module}.{name}", "__module__": __name__})
            return self._stand_ins[key]
        raise UnsafeCheckpointError(
            f"refusing to load {module}.{name} from checkpoint {self.source}: not on the allow-list "
            f"(edgerun.models.dino_wm.official_pickle SAFE_GLOBALS / STAND_IN_GLOBALS)"
        )


def restricted_pickle_module(source: str) -> types.ModuleType:
    """A module-like object for ``torch.load(pickle_module=...)`` whose Unpickler is restricted."""
    unpickler = type("RestrictedUnpickler", (RestrictedUnpickler,), {"source": source})
    module = types.ModuleType("edgerun_restricted_pickle")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.loads = lambda data, **kwargs: unpickler(io.BytesIO(data), **kwargs).load()
    module.UnpicklingError = pickle.UnpicklingError
    return module

