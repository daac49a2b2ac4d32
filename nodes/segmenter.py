"""INT segmentation as a node: frames + a task-generic prompt → mask, instance prompt, scores.

In ``full`` mode every frame runs the whole INT loop. In ``streaming`` mode the node mines an
instance-specific prompt once, then only grounds and segments it on each frame (detector +
segmenter), and mines again every ``remine_every`` frames or as soon as the prompt's confidence
on a frame falls below ``min_confidence``.

The task prompt comes from the ``prompt`` parameter or, when connected, the ``prompt`` input
(field ``prompt``); a new one forces mining on the next frame. An empty prompt, a frame that is
not RGB uint8 (H, W, 3), or a component config that names a missing ONNX file or one that breaks
its contract is reported on the log and in the status (``details.error``), and the node stays
up: every frame is then answered with that error until the cause is fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgerun.runtime import Latest, Message, Node


@dataclass(frozen=True)
class SegmenterParams:
    components: str = ""  # a components config (edgerun.pipelines.int_seg.components); empty: the shipped one
    prompt: str = "the camouflaged animal"  # the task-generic prompt (the 'prompt' input replaces it)
    mode: str = "streaming"  # streaming | full
    remine_every: int = 30  # streaming: mine again every N frames (0: only when confidence drops)
    min_confidence: float = 0.3  # streaming: mine again when the prompt's confidence falls below this
    iterations: int = 5  # INT iterations I
    negative_mining: bool = True
    vocabulary: list[str] = field(default_factory=list)  # category names (empty: the synthetic set's CATEGORIES)


MODES = ("streaming", "full")


class Segmenter(Node):
    inputs = {"frames": Latest(), "prompt": Latest()}
    outputs = ("mask",)
    params = SegmenterParams

    def setup(self) -> None:
        self.components = None
        self.error = ""
        self.task_prompt = self.params.prompt
        self.instance_prompt = ""
        self.scores: dict[str, float] = {}
        self.confidence = 0.0
        self.frames = self.mined = self.since_mining = 0
        self.frame_ms: list[float] = []
        if self.params.mode not in MODES:
            self.fail(f"unknown mode '{self.params.mode}' (modes: {', '.join(MODES)})")
            return
        try:
            self.components, self.config = self.load()
        except Exception as exc:  # a config error must keep the node up; the message names file and contract
            self.fail(f"cannot load INT components from {self.params.components or 'the shipped config'}: {exc}")
            return
        self.log.info("INT %s mode, %d iterations, vocabulary %s", self.params.mode, self.config.iterations,
                      ", ".join(self.config.vocabulary))

    def load(self) -> tuple[Any, Any]:
        from edgerun.evaluation.int_seg.evaluate import synthetic_task_config
        from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG, load_components

        components = load_components(self.params.components or SHIPPED_CONFIG)
        config = synthetic_task_config(iterations=self.params.iterations, negative_mining=self.params.negative_mining)
        if self.params.vocabulary:
            config = replace(config, vocabulary=tuple(self.params.vocabulary))
        return components, config

    def fail(self, error: str) -> None:
        self.error = error
        self.log.error("%s", error)

    def on_prompt(self, msg: Message) -> None:
        prompt = msg.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(self.remember(f"input 'prompt': expected a non-empty text field 'prompt', got {prompt!r}"))
        self.task_prompt, self.instance_prompt = prompt.strip(), ""
        self.log.info("task prompt: %r", self.task_prompt)

    def remember(self, error: str) -> str:
        """Keep ``error`` for the status; the raised exception puts it on the log."""
        self.error = error
        return error

    def on_frames(self, msg: Message) -> None:
        if self.components is None:
            raise RuntimeError(self.error)
        image = msg.get("image")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else repr(image)
            raise ValueError(self.remember(f"input 'frames': expected field 'image' RGB uint8 (H, W, 3), got {got}"))
        if not self.task_prompt.strip():
            raise ValueError(self.remember("empty task prompt: set parameter 'prompt' or send one on input 'prompt'"))
        started = time.perf_counter()
        mined = self.needs_mining()
        if mined:
            mask = self.mine(image)
        else:
            mask = self.ground(image)
            if self.confidence < self.params.min_confidence:  # the prompt lost its object: mine on this frame
                mined, mask = True, self.mine(image)
        self.frames += 1
        self.since_mining = 0 if mined else self.since_mining + 1
        self.error = ""
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self.frame_ms = (self.frame_ms + [elapsed_ms])[-100:]
        self.publish("mask", mask=mask, prompt=self.instance_prompt, task_prompt=self.task_prompt,
                     confidence=self.confidence, mined=mined, candidates=list(self.scores),
                     scores=np.asarray(list(self.scores.values()), np.float32), frame_index=msg.get("frame_index", -1),
                     segment_ms=elapsed_ms)

    def needs_mining(self) -> bool:
        if self.params.mode == "full" or not self.instance_prompt:
            return True
        return bool(self.params.remine_every) and self.since_mining + 1 >= self.params.remine_every

    def mine(self, image: np.ndarray) -> np.ndarray:
        from edgerun.pipelines.int_seg.algorithm import run_int

        result = run_int(image, self.task_prompt, self.components, self.config)
        self.instance_prompt, self.scores, self.confidence = result.prompt, result.scores, result.confidence
        self.mined += 1
        return result.mask

    def ground(self, image: np.ndarray) -> np.ndarray:
        from edgerun.pipelines.int_seg.algorithm import ground_prompt

        grounding = ground_prompt(image, self.instance_prompt, self.components, self.config)
        self.confidence = grounding.confidence
        return grounding.mask

    def status_fields(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "mode": self.params.mode,
            "task_prompt": self.task_prompt,
            "instance_prompt": self.instance_prompt,
            "confidence": round(self.confidence, 4),
            "frames": self.frames,
            "mined": self.mined,
            "frame_ms_mean": round(float(np.mean(self.frame_ms)), 2) if self.frame_ms else None,
        }
