"""The export manifest: what an ONNX file is, where it came from and how well it matches torch.

Written by ``edgerun export`` next to the model as ``MODEL.json``; read by the engine
loader (input/output specs, dynamic dimension ranges for TensorRT profiles, the torch
factory for the reference backend).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgerun.engines.base import TensorSpec
from edgerun.errors import EngineError


@dataclass(frozen=True)
class ExportManifest:
    model: str
    onnx_sha256: str
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    dims: dict[str, list[int]]  # dynamic dimension -> [min, opt, max]
    source: dict[str, Any] = field(default_factory=dict)  # factory, checkpoint, checkpoint_sha256, config
    parity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    def profiles(self) -> dict[str, dict[str, list[int]]]:
        """TensorRT optimisation profile per input: the shape at each dimension's min, opt and max."""
        out = {}
        for spec in self.inputs:
            out[spec.name] = {
                level: [d if isinstance(d, int) else self.dims[d][i] for d in spec.shape]
                for i, level in enumerate(("min", "opt", "max"))
            }
        return out

    def save(self, path: Path) -> None:
        data = asdict(self)
        data["inputs"] = [s.to_json() for s in self.inputs]
        data["outputs"] = [s.to_json() for s in self.outputs]
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> "ExportManifest":
        try:
            data = json.loads(path.read_text())
            data["inputs"] = [TensorSpec.from_json(s) for s in data["inputs"]]
            data["outputs"] = [TensorSpec.from_json(s) for s in data["outputs"]]
            return cls(**data)
        except FileNotFoundError:
            raise EngineError(f"no export manifest {path}; export the model with `edgerun export`") from None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise EngineError(f"export manifest {path} is malformed: {exc}") from None


def manifest_for(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def default_model_dir() -> Path:
    """Where exported models and their engine files are cached: ``$XDG_CACHE_HOME/edgerun/models``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgerun" / "models"
