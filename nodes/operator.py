"""A scripted operator: gives a list of commands to the language node one at a time and judges each,
as a person at the robot's console would, so a graph can be run and scored end to end.

Each command is a call of the language node's ``command`` service (request/reply: a command sent
while that node still loads its models waits for it, where a published one would be lost). The next
command goes out when the last one is settled: refused (the reply says so, or the call failed:
``error``), or accepted and its episode over (the env's ``episode`` report carrying that ``command``:
``reached`` when the env's success test held at some step, else ``missed``), or not settled within
``timeout_s`` (``timed_out``). Each outcome goes out on ``outcome`` and is logged; the tally is on
the status. The node stops after the last command, so ``stop_with: [operator]`` ends the graph.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edgerun.errors import ServiceError
from edgerun.runtime import Message, Node, Queue
from edgerun.runtime.views import Json


@dataclass(frozen=True)
class OperatorParams:
    commands: list[str] = field(default_factory=list)
    language: str = "language"  # the language node's id (its command service is called)
    start_after_s: float = 3.0  # the first command waits this long (the env and planner start)
    timeout_s: float = 60.0  # a command still unsettled after this long counts as timed_out
    period_s: float = 0.2  # how often it checks whether to send the next command


class ScriptedOperator(Node):
    inputs = {"episode": Queue(16, fields={"command": str, "interrupted": bool, "steps_to_goal": int})}
    outputs = ("outcome",)
    views = {"outcome": (Json({"command": "string", "outcome": "string", "reason": "string", "seconds": "number"},
                              title="edgerun command outcome"),)}
    params = OperatorParams

    def setup(self) -> None:
        if not self.params.commands:
            raise ValueError("commands: give at least one command")
        self.next_index = 0
        self.pending: tuple[str, float, bool] | None = None  # (command, sent at, accepted)
        self.send_at = time.monotonic() + self.params.start_after_s
        self.outcomes: list[dict[str, Any]] = []
        self.every(self.params.period_s, self.tick)

    def tick(self) -> None:
        now = time.monotonic()
        if self.pending is not None and now - self.pending[1] > self.params.timeout_s:
            self.settle("timed_out", f"not settled within {self.params.timeout_s:g} s")
        if self.pending is None and now >= self.send_at:
            if self.next_index == len(self.params.commands):
                self.stop()
                return
            text = self.params.commands[self.next_index]
            self.next_index += 1
            self.pending = (text, now, False)
            self.log.info("operator: %r", text)
            try:
                reply = self.call(f"{self.params.language}/command", text=text, timeout_s=self.params.timeout_s)
            except (ServiceError, TimeoutError) as exc:
                self.settle("error", f"{type(exc).__name__}: {exc}")
                return
            if reply["accepted"]:
                self.pending = (text, now, True)
            else:
                self.settle("refused", str(reply.get("reason", "")))

    def on_episode(self, msg: Message) -> None:
        if self.pending is None or not self.pending[2] or msg["command"] != self.pending[0]:
            return  # an episode nobody commanded, or one before this command took effect
        reached = msg["steps_to_goal"] >= 0
        self.settle("reached" if reached else "missed", "interrupted" if msg["interrupted"] else "")

    def settle(self, outcome: str, reason: str) -> None:
        text, sent_at, _ = self.pending
        record = {"command": text, "outcome": outcome, "reason": reason, "seconds": time.monotonic() - sent_at}
        self.outcomes.append(record)
        self.publish("outcome", **record)
        self.log.info("operator: %r %s after %.1f s%s", text, outcome, record["seconds"], f" ({reason})" if reason else "")
        self.pending = None
        self.send_at = time.monotonic()

    def status_fields(self) -> dict[str, Any]:
        outcomes = getattr(self, "outcomes", [])
        return {"sent": getattr(self, "next_index", 0), "outcomes": dict(Counter(o["outcome"] for o in outcomes))}
