"""One inference interface over TensorRT, ONNX Runtime and torch.

    engine = load("dinov2.onnx")                 # backend="auto": TensorRT > ORT CUDA > ORT CPU
    tokens = engine(images=batch)["tokens"]      # numpy in, numpy out, checked against engine.inputs
"""

from edgerun.engines.base import Engine, TensorSpec
from edgerun.engines.loader import BACKENDS, Backend, auto_backend, load
from edgerun.engines.trt_cache import PRECISIONS, Precision
from edgerun.errors import EngineError, EngineInputError

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "Engine", "EngineError", "EngineInputError", "Precision", "TensorSpec", "auto_backend", "load"]
