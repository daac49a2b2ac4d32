"""torch backend: the reference every exported engine is checked against."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from edgerun.engines.base import Engine, TensorSpec


class TorchEngine(Engine):
    """An ``nn.Module`` behind the Engine interface, eager or ``torch.compile``d.

    The module takes the inputs as keyword tensors (in ``inputs`` order) and returns a
    tensor or a tuple of tensors in ``outputs`` order.
    """

    def __init__(
        self,
        module: Any,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        name: str = "torch",
        device: str | None = None,
        compile: bool = False,
    ):
        import torch

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module = module.eval().to(self.device)
        self._forward = torch.compile(self.module) if compile else self.module
        self.name = name
        self.backend = "torch-compiled" if compile else "torch"
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)

    def _run(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        torch = self._torch
        tensors = [
            a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
            for a in (arrays[s.name] for s in self.inputs)
        ]
        with torch.inference_mode():
            result = self._forward(*(t.to(self.device, non_blocking=True) for t in tensors))
        if isinstance(result, torch.Tensor):
            result = (result,)
        return {spec.name: value.detach().cpu().numpy() for spec, value in zip(self.outputs, result)}
