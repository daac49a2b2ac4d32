"""INT segmentation as a node: frames + a task-generic prompt → mask, instance prompt, scores.

In ``full`` mode every frame runs the whole INT loop. In ``streaming`` mode the node mines an
instance-specific prompt once, then only grounds and segments it on each frame (detector +
segmenter), and mines again every ``remine_every`` frames or as soon as the prompt's confidence
on a frame falls below ``min_confidence``.

A mask is published only when it can be trusted: when the instance prompt's mining score (its
weighted contrast on the frame it was mined on; see :attr:`INTResult.mining_score`) is under
``min_mining_score`` (default: the components YAML's, calibrated on the training families), the
node publishes an empty mask with ``trusted`` false and counts the frame on its status. Streaming
frames carry the score of the mining they ground. Without negative mining (the score is then the
detector's) every mask is published. The image–text ``confidence`` is reported too but
decides nothing: it does not track the mask's quality (docs/int_seg.md).

The task prompt comes from the ``prompt`` parameter or, when connected, the ``prompt`` input
(field ``prompt``); a new one forces mining on the next frame. A frame without an RGB uint8
(H, W, 3) ``image``, or a prompt message without a text ``prompt``, is dropped by the runtime
before the handler (counted on the status by reason). An empty prompt is an error of the
handler (logged, the status's ``last_error``). A component config that names a missing ONNX
file or one that breaks its contract leaves the node up with the error on its status
(``setup_failure = "stay_up"``), its frames dropped until it is restarted with a fixed config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from edgerun.runtime import Array, Latest, Message, Node
from edgerun.runtime.views import Image, Json


@dataclass(frozen=True)
class SegmenterParams:
    components: str = ""  # a components config (edgerun.pipelines.int_seg.components); empty: the shipped one
    prompt: str = "the camouflaged animal"  # the task-generic prompt (the 'prompt' input replaces it)
    mode: Literal["streaming", "full"] = "streaming"  # full: the whole INT loop on every frame
    remine_every: int = 30  # streaming: mine again every N frames (0: only when confidence drops)
    min_confidence: float = 0.3  # streaming: mine again when the prompt's confidence falls below this
    min_mining_score: float | None = None  # empty mask, trusted false, under this mining score (None: the components'; 0: off)
    iterations: int = 5  # INT iterations I
    negative_mining: bool = True
    vocabulary: list[str] = field(default_factory=list)  # category names (empty: the synthetic set's CATEGORIES)


class Segmenter(Node):
    inputs = {"frames": Latest(fields={"image": Array("uint8", ("H", "W", 3))}), "prompt": Latest(fields={"prompt": str})}
    outputs = ("mask",)
    views = {"mask": (Image("mask"), Json({"prompt": "string", "task_prompt": "string", "confidence": "number",
                                            "mining_score": "number", "trusted": "boolean", "mined": "boolean",
                                            "frame_index": "integer", "segment_ms": "number"},
                                           title="edgerun segmentation"))}
    params = SegmenterParams
    setup_failure = "stay_up"  # a broken component config fails the same way on every restart

    def setup(self) -> None:
        self.task_prompt = self.params.prompt
        self.instance_prompt = ""
        self.scores: dict[str, float] = {}
        self.confidence = self.mining_score = 0.0
        self.trusted = False  # set by each mining; the first frame always mines
        self.frames = self.mined = self.since_mining = self.untrusted = 0
        self.frame_ms: list[float] = []
        self.components, self.config = self.load()
        self.min_mining_score = (self.components.config.min_mining_score if self.params.min_mining_score is None
                                 else self.params.min_mining_score)
        self.log.info("INT %s mode, %d iterations, vocabulary %s", self.params.mode, self.config.iterations,
                      ", ".join(self.config.vocabulary))

    def load(self) -> tuple[Any, Any]:
        from edgerun.pipelines.int_seg.algorithm import synthetic_task_config  # lazy: cv2
        from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, load_components  # lazy: torch, onnxruntime

        components = load_components(self.params.components or SHIPPED_CONFIG)
        config = synthetic_task_config(iterations=self.params.iterations, negative_mining=self.params.negative_mining)
        if self.params.vocabulary:
            config = replace(config, vocabulary=tuple(self.params.vocabulary))
        return components, config

    def on_prompt(self, msg: Message) -> None:
        prompt = msg["prompt"]
        if not prompt.strip():
            raise ValueError(f"input 'prompt': expected a non-empty text field 'prompt', got {prompt!r}")
        self.task_prompt, self.instance_prompt = prompt.strip(), ""
        self.log.info("task prompt: %r", self.task_prompt)

    def on_frames(self, msg: Message) -> None:
        image = msg["image"]
        if not self.task_prompt.strip():
            raise ValueError("empty task prompt: set parameter 'prompt' or send one on input 'prompt'")
        started = time.perf_counter()
        mined = self.needs_mining()
        if mined:
            mask = self.mine(image)
        else:
            mask = self.ground(image)
            if self.confidence < self.params.min_confidence:  # the prompt lost its object: mine on this frame
                mined, mask = True, self.mine(image)
        if not self.trusted:  # an empty mask rather than a wrong one (decided by the mining this frame's prompt came from)
            mask, self.untrusted = np.zeros_like(mask), self.untrusted + 1
        self.frames += 1
        self.since_mining = 0 if mined else self.since_mining + 1
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self.frame_ms = (self.frame_ms + [elapsed_ms])[-100:]
        self.publish("mask", mask=mask, prompt=self.instance_prompt, task_prompt=self.task_prompt,
                     confidence=self.confidence, mining_score=self.mining_score, trusted=self.trusted, mined=mined,
                     candidates=list(self.scores),
                     scores=np.asarray(list(self.scores.values()), np.float32), frame_index=msg.get("frame_index", -1),
                     segment_ms=elapsed_ms)

    def needs_mining(self) -> bool:
        if self.params.mode == "full" or not self.instance_prompt:
            return True
        return bool(self.params.remine_every) and self.since_mining + 1 >= self.params.remine_every

    def mine(self, image: np.ndarray) -> np.ndarray:
        from edgerun.pipelines.int_seg.algorithm import is_trusted, run_int  # lazy: cv2

        result = run_int(image, self.task_prompt, self.components, self.config)
        self.instance_prompt, self.scores, self.confidence = result.prompt, result.scores, result.confidence
        self.mining_score = result.mining_score
        self.trusted = is_trusted(self.mining_score, self.min_mining_score, self.config.negative_mining)
        self.mined += 1
        return result.mask

    def ground(self, image: np.ndarray) -> np.ndarray:
        from edgerun.pipelines.int_seg.algorithm import ground_prompt  # lazy: cv2

        grounding = ground_prompt(image, self.instance_prompt, self.components, self.config)
        self.confidence = grounding.confidence
        return grounding.mask

    def status_fields(self) -> dict[str, Any]:
        return {
            "mode": self.params.mode,
            "task_prompt": self.task_prompt,
            "instance_prompt": self.instance_prompt,
            "confidence": round(self.confidence, 4),
            "mining_score": round(self.mining_score, 4),
            "min_mining_score": self.min_mining_score,
            "frames": self.frames,
            "untrusted_frames": self.untrusted,  # published as an empty mask
            "mined": self.mined,
            "frame_ms_mean": round(float(np.mean(self.frame_ms)), 2) if self.frame_ms else None,
        }
