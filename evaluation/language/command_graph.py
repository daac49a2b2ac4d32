"""The language graph (``graphs/language_wall.yaml``) run with a script of commands: what the
demo's "words to goals" shows and what the graph test checks, in real processes.

:func:`command_graph` is the shipped graph with the commands, the language model and any node's
parameters set; :func:`run_command_graph` launches it, listens to every reply, outcome and episode
report until the operator has settled the last command, and returns them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgerun import PACKAGE, shipped
from edgerun.runtime.graph import load_graph
from edgerun.runtime.introspect import listen, topics
from edgerun.runtime.launcher import Launcher
from edgerun.runtime.messages import Message

GRAPH = PACKAGE / "graphs" / "language_wall.yaml"
WALL_CHECKPOINT = Path(shipped("dino_wm_wall/model.pt"))


@dataclass(frozen=True)
class CommandRun:
    exit_code: int
    replies: dict[str, Message]  # command -> the language node's reply
    outcomes: dict[str, Message]  # command -> the operator's outcome
    episodes: list[Message]  # the env's episode reports


def command_graph(commands: list[str], model: str, params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The shipped language graph with these ``commands``, this language ``model`` (registry name or
    folder), the shipped Wall model and ``params`` merged into the named nodes' parameters."""
    graph = yaml.safe_load(GRAPH.read_text())
    nodes = {node["id"]: node for node in graph["nodes"]}
    nodes["planner"]["params"]["checkpoint"] = str(WALL_CHECKPOINT)
    nodes["language"]["params"]["model"] = model
    nodes["operator"]["params"]["commands"] = list(commands)
    for node, values in (params or {}).items():
        nodes[node]["params"].update(values)
    return graph


def run_command_graph(graph: dict[str, Any], path: Path, timeout_s: float, install_signal_handlers: bool = True) -> CommandRun:
    """Write ``graph`` to ``path``, run it until the operator stops it (or ``timeout_s``)."""
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    launcher = Launcher(load_graph(path), duration_s=timeout_s, live_every_s=30.0)
    wanted = {t: e for t, e in topics(launcher.state).items() if t in ("operator/outcome", "language/reply", "env/episode")}
    received: list[Message] = []
    done = threading.Event()
    listener = threading.Thread(target=lambda: received.extend(listen(wanted, None, done.is_set)), daemon=True)
    listener.start()
    result = launcher.run(install_signal_handlers=install_signal_handlers)
    done.set()
    listener.join(timeout=10)
    return CommandRun(result.exit_code, {m["command"]: m for m in received if m.topic == "language/reply"},
                      {m["command"]: m for m in received if m.topic == "operator/outcome"},
                      [m for m in received if m.topic == "env/episode"])
