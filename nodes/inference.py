"""Any Engine as a node: message arrays in, engine outputs out, inference time reported."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgerun.engines import Backend, Precision, load
from edgerun.runtime import Latest, Message, Node


@dataclass(frozen=True)
class InferenceParams:
    model: str  # an exported .onnx (with its manifest) or a TensorRT .engine
    backend: Backend = "auto"
    precision: Precision = "fp16"  # which cached TensorRT engine file to use
    fields: dict[str, str] = field(default_factory=dict)  # engine input -> message field, where they differ


class Inference(Node):
    """Runs the engine on each newest message; publishes every engine output plus ``inference_ms``.

    Its input declares no fields: which it reads depends on the engine, whose call checks them."""

    inputs = {"inputs": Latest()}
    outputs = ("outputs",)
    params = InferenceParams

    def setup(self) -> None:
        self.engine = load(self.params.model, self.params.backend, self.params.precision)
        self.log.info("%r", self.engine)

    def on_inputs(self, msg: Message) -> None:
        arrays = {spec.name: msg[self.params.fields.get(spec.name, spec.name)] for spec in self.engine.inputs}
        started = time.perf_counter()
        outputs = self.engine(**arrays)
        self.publish("outputs", **outputs, inference_ms=(time.perf_counter() - started) * 1e3)

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.close()
