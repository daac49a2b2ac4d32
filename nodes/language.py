"""The language node: an operator's command in, a planner goal out, guarded
(:mod:`edgerun.pipelines.language.goals`): input guard → budget-forced LM → JSON goal (schema-checked)
→ streaming output guard.

A ``command`` message carries ``text``; the ``command`` service takes the same and answers with the
reply (for a person or a tool outside the graph). Every command gets a ``reply``: ``accepted``, the
``stage`` that decided (``goal``, ``input_guard``, ``output_guard``, ``schema``), the ``reason`` of a
refusal, the ``goal`` as JSON text, the LM's ``thinking`` and the ``seconds`` it took. An accepted
command also goes out on ``goal`` as ``room`` and ``spot`` with its ``command``: an env node's
``target`` input turns it into the env's goal, and the planner drives there. Refusals and their
reasons are counted on the status by stage, beside the last reply.

The LM is a registry language model (exported to an onnxruntime-genai engine on first use, like every
engine) or a folder holding one. Commands are handled one at a time, in order, on the node's thread.
A model or guards that do not load leave the node up, its status carrying the error, since a restart
would fail the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgerun.engines.language import load_language_model
from edgerun.export.language_export import LANGUAGE_MODELS, exported_language_model
from edgerun.pipelines.language.goals import GoalConfig, Outcome, command_goal
from edgerun.pipelines.language.guard import DEFAULT_GUARDS, Guards
from edgerun.runtime import Message, Node, Queue
from edgerun.runtime.views import Json


@dataclass(frozen=True)
class LanguageParams:
    model: str = "qwen2.5-coder-0.5b"  # a registry language model, or a folder with an onnxruntime-genai model
    guards: str = ""  # the command guards' folder (edgerun train language-guard); "": the shipped ones
    budget: int = 32  # thinking tokens at most
    answer_tokens: int = 32
    shots: int = 3  # worked examples in the prompt
    instructions: bool = True  # state the task in the prompt (False: a model fine-tuned on it)


class LanguageNode(Node):
    inputs = {"command": Queue(8, fields={"text": str})}
    outputs = ("goal", "reply")
    services = ("command",)
    views = {"reply": (Json({"command": "string", "accepted": "boolean", "stage": "string", "reason": "string",
                             "goal": "string", "thinking": "string", "seconds": "number"}, title="edgerun command reply"),)}
    params = LanguageParams
    setup_failure = "stay_up"

    def setup(self) -> None:
        p = self.params
        folder = exported_language_model(p.model) if p.model in LANGUAGE_MODELS else Path(p.model)
        if not folder.is_dir():
            raise FileNotFoundError(f"model: {p.model!r} is neither a registry language model "
                                    f"({', '.join(LANGUAGE_MODELS)}) nor a folder")
        self.model = load_language_model(folder)
        self.guards = Guards.load(Path(p.guards) if p.guards else DEFAULT_GUARDS)
        self.config = GoalConfig(budget=p.budget, answer_tokens=p.answer_tokens, shots=p.shots, instructions=p.instructions)
        self.counts = {"commands": 0, "goals": 0, "input_guard": 0, "output_guard": 0, "schema": 0, "no_place": 0}
        self.last_reply: dict[str, Any] | None = None
        self.guards.check_input("go to the door")  # the encoder's first call builds its session: not on a command's time

    def on_command(self, msg: Message) -> None:
        self.handle(msg["text"])

    def serve_command(self, msg: Message) -> dict[str, Any]:
        text = msg.get("text")
        if not isinstance(text, str):
            raise ValueError("command: expected a 'text' string")
        return self.handle(text)

    def handle(self, text: str) -> dict[str, Any]:
        outcome = command_goal(self.model, self.guards, text, self.config)
        reply = self.reply(outcome)
        self.counts["commands"] += 1
        self.counts["goals" if outcome.accepted else outcome.stage] += 1
        self.last_reply = reply
        self.publish("reply", **reply)
        if outcome.accepted:
            self.publish("goal", command=text, **outcome.goal)
            self.log.info("command %r -> goal %s (%.1f s)", text, reply["goal"], outcome.seconds)
        else:
            self.log.warning("command %r refused at %s: %s", text, outcome.stage, outcome.reason)
        return reply

    @staticmethod
    def reply(outcome: Outcome) -> dict[str, Any]:
        fields = asdict(outcome)
        fields["goal"] = json.dumps(outcome.goal) if outcome.goal is not None else ""
        fields["category"] = outcome.category or ""
        return fields

    def status_fields(self) -> dict[str, Any]:
        return {"counts": getattr(self, "counts", None), "last_reply": getattr(self, "last_reply", None)}
