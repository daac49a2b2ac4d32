"""``edgerun demo``: plan, reconstruct and perceive in one graph, then show what happened.

1. **Engines**: the models the graph runs on ONNX Runtime are exported from the shipped
   checkpoints on the first run (parity-checked, with progress) and reused from the model cache
   after (:mod:`edgerun.export.cache`).
2. **The graph** (``graphs/demo.yaml``, its ``${…}`` placeholders filled and written to
   ``OUT/graph.yaml``) runs until the env has finished its episode: the DINO-WM planner (anytime,
   torch) drives the Wall env, stepping on its own clock, to its goal while the tracker →
   reconstructor and the INT segmenter run on the robot's camera. Every topic is recorded to ``OUT/demo.mcap``, but of the camera's raw frames only those
   the segmenter's kept masks were computed on (:class:`FramesOfResults`); the viewer node writes
   every frame (as JPEG) to ``OUT/demo.rrd``.
3. **The summary**: the launcher's per-node table (rate, p50/p99 latency from capture time, drops),
   the episode's success and time to goal, and ``OUT/summary.png`` drawn from the recording.
4. **Words to goals** (``graphs/language_wall.yaml``, written to ``OUT/language_graph.yaml``;
   :mod:`edgerun.evaluation.language.command_graph`): an
   operator gives one command and one forbidden command; the language node (command guards, Qwen2.5
   0.5B with budget forcing, a JSON goal) turns the first into the Wall env's goal, which the planner
   drives to, and refuses the second with its reason. Without onnxruntime-genai (no wheel for this
   machine) this part says so and is skipped.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from edgerun import PACKAGE
from edgerun.demo_summary import episode_summary, summary_figure
from edgerun.evaluation.language.command_graph import command_graph, run_command_graph
from edgerun.export.cache import cached, exported
from edgerun.export.language_export import exported_language_model
from edgerun.pipelines.int_seg.components import load_components
from edgerun.runtime.graph import load_graph
from edgerun.runtime.introspect import topics
from edgerun.runtime.launcher import Launcher
from edgerun.runtime.messages import Message
from edgerun.runtime.recording import record

log = logging.getLogger("edgerun.demo")

# registry model -> the shipped checkpoint it is exported from (relative to the package)
ENGINES: dict[str, str] = {
    "tracks-to-4d-small": "checkpoints/tracks_to_4d/model.pt",
}
INT_COMPONENTS = "checkpoints/int_seg/components.yaml"


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("out/demo")
    graph: Path = PACKAGE / "graphs" / "demo.yaml"
    timeout_s: float = 420.0  # the graph normally ends with its episode well before this
    camera: str = "env/camera"  # the robot camera's raw frames: 15 per second, 0.5 MB each
    results_on_camera: str = "segmenter/mask"  # … of which the MCAP keeps those a mask was computed on
    frame_every_s: float = 1.0  # … at most one a second (the Rerun recording has every frame, as JPEG)
    model_dir: Path | None = None  # the engine cache (default: $XDG_CACHE_HOME/edgerun/models)
    commands: tuple[str, ...] = ("go to the top-left corner of the other room",
                                 "disable the emergency stop and drive through the door")
    language_model: str = "qwen2.5-coder-0.5b"
    language_timeout_s: float = 240.0


class FramesOfResults:
    """A recording selector: the camera's raw frames are held back (the last ``keep``), and one is
    written only when a result on ``results`` refers to it by capture time, at most one per
    ``every_s`` of capture time; every other message is written as it comes. So the MCAP shows each
    kept mask on the very frame it was computed from, at a few percent of the raw stream's size."""

    def __init__(self, camera: str, results: str, every_s: float, keep: int = 64):
        self.camera, self.results, self.every_ns, self.keep = camera, results, int(every_s * 1e9), keep
        self.held: dict[int, Message] = {}
        self.last_written_ns: int | None = None

    def __call__(self, msg: Message) -> list[Message]:
        if msg.topic == self.camera:
            self.held[msg.capture_ns] = msg
            if len(self.held) > self.keep:
                del self.held[next(iter(self.held))]
            return []
        if msg.topic == self.results:
            frame = self.held.get(msg.capture_ns)
            due = self.last_written_ns is None or msg.capture_ns - self.last_written_ns >= self.every_ns
            if frame is not None and due:
                self.last_written_ns = msg.capture_ns
                return [frame, msg]
        return [msg]


def prepare_engines(model_dir: Path | None) -> dict[str, Path]:
    """Export (or find cached) every engine the graph uses, with a progress bar over the models;
    the INT components (text encoder, scorer, detector, segmenter) export themselves on first load."""

    paths = {}
    todo = [name for name, checkpoint in ENGINES.items() if cached(name, str(PACKAGE / checkpoint), model_dir) is None]
    if todo:
        print(f"[demo] exporting {', '.join(todo)} to ONNX (once: later runs reuse them)", file=sys.stderr)
    steps = [*ENGINES.items(), ("INT components", INT_COMPONENTS)]
    with tqdm(steps, desc="[demo] engines", unit="model", file=sys.stderr) as bar:
        for name, checkpoint in bar:
            bar.set_postfix_str(name)
            if name == "INT components":
                load_components(PACKAGE / checkpoint)
            else:
                paths[name] = exported(name, str(PACKAGE / checkpoint), model_dir)
    return paths


def resolve_graph(template: Path, out: Path, engines: dict[str, Path]) -> Path:
    """``template`` with ``${package}``, ``${out}`` and ``${engine:NAME}`` filled in, written to ``out/graph.yaml``."""
    values = {"package": str(PACKAGE), "out": str(out.resolve())}
    values.update({f"engine:{name}": str(path) for name, path in engines.items()})

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise ValueError(f"{template}: unknown placeholder ${{{key}}} (known: {', '.join(sorted(values))})")
        return values[key]

    resolved = out / "graph.yaml"
    resolved.write_text(re.sub(r"\$\{([a-z][\w:.-]*)\}", fill, template.read_text()))
    return resolved


def run_demo(config: DemoConfig) -> int:


    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    engines = prepare_engines(config.model_dir)
    graph = load_graph(resolve_graph(config.graph, out, engines))
    launcher = Launcher(graph, duration_s=config.timeout_s, live_every_s=5.0)
    mcap_path = out / "demo.mcap"
    done = threading.Event()
    select = FramesOfResults(config.camera, config.results_on_camera, config.frame_every_s)
    recorded = topics(launcher.state, include_status=True)  # status as JSON beside the data
    views = {topic: launcher.state.topic_views(topic) for topic in recorded}
    recorder = threading.Thread(target=record, args=(recorded, mcap_path, None, done.is_set),
                                kwargs={"select": select, "views": views, "segments": launcher.state.segments},
                                name="recorder", daemon=True)
    recorder.start()
    started = time.monotonic()
    result = launcher.run()
    done.set()
    recorder.join(timeout=10)
    print(f"\n[demo] graph ran {time.monotonic() - started:.1f} s", flush=True)
    print(episode_summary(mcap_path), flush=True)
    figure = summary_figure(mcap_path, out / "summary.png")
    rrd = out / "demo.rrd"
    for path, what in ((mcap_path, "MCAP recording (edgerun replay, Foxglove)"), (rrd, "Rerun recording (rerun FILE)"), (figure, "summary figure")):
        state = f"{path.stat().st_size / 1e6:.1f} MB" if path.exists() else "MISSING"
        print(f"[demo] {what}: {path} ({state})", flush=True)
    missing = [p for p in (mcap_path, rrd, figure) if not p.exists()]
    language = run_language(config)
    return 1 if result.exit_code or missing or language else 0


def run_language(config: DemoConfig) -> int:
    """Part 4 (module docstring): the language graph with the demo's commands; what became of each."""
    if importlib.util.find_spec("onnxruntime_genai") is None:
        print("[demo] words to goals: skipped (onnxruntime-genai is not installed: pip install -e '.[language]', "
              "x86-64 wheels only)", flush=True)
        return 0
    print("[demo] words to goals: an operator gives commands to the language node", flush=True)
    exported_language_model(config.language_model, model_dir=config.model_dir)  # once, with progress
    run = run_command_graph(command_graph(list(config.commands), config.language_model),
                            config.out / "language_graph.yaml", config.language_timeout_s)
    replies, outcomes = run.replies, run.outcomes
    print("\n[demo] words to goals", flush=True)
    for command in config.commands:
        reply, outcome = replies.get(command), outcomes.get(command)
        if reply is None or outcome is None:
            print(f"  {command!r}: no answer", flush=True)
        elif reply["accepted"]:
            print(f"  {command!r} -> goal {reply['goal']} ({reply['seconds']:.1f} s): {outcome['outcome']} "
                  f"after {outcome['seconds']:.1f} s", flush=True)
        else:
            print(f"  {command!r} -> {reply['reason']}", flush=True)
    return 1 if run.exit_code or len(outcomes) < len(config.commands) else 0


def demo_main(out: str, timeout_s: float) -> int:
    """``edgerun demo``: 0 when the graph ran and wrote its files; 2 with one line when it could not start."""
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")
    try:
        return run_demo(DemoConfig(out=Path(out), timeout_s=timeout_s))
    except (ValueError, OSError, RuntimeError) as exc:  # graph, launch, export, engine and component errors
        print(f"edgerun demo: {exc}", file=sys.stderr)
        return 2
