"""One inference interface over TensorRT, ONNX Runtime and torch.

    engine = load("dinov2.onnx")                 # backend="auto": TensorRT > ORT CUDA > ORT CPU
    tokens = engine(images=batch)["tokens"]      # numpy in, numpy out, checked against engine.inputs
"""

from edgerun.engines.base import Engine, TensorSpec
from edgerun.engines.loader import BACKENDS, auto_backend, load
from edgerun.errors import EngineError, EngineInputError

__all__ = ["BACKENDS", "Engine", "EngineError", "EngineInputError", "TensorSpec", "auto_backend", "load"]
