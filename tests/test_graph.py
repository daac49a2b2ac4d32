"""Graph files are checked whole before anything starts; errors name the file and the field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import host_processes

from edgerun.errors import GraphError
from edgerun.runtime.graph import load_graph

GOOD = """
name: good
nodes:
  - id: camera
    class: edgerun.nodes.camera:Camera
    params: {fps: 30, width: 64, height: 48}
  - id: monitor
    class: edgerun.nodes.monitor:FrameMonitor
    inputs: {frames: camera/frames}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_graph_loads_with_classes_and_processes(tmp_path):
    graph = load_graph(write(tmp_path, GOOD))
    assert graph.name == "good"
    assert list(graph.nodes) == ["camera", "monitor"]
    assert graph.nodes["monitor"].cls.inputs.keys() == {"frames"}
    assert set(graph.processes()) == {"camera", "monitor"}


BROKEN = {
    "unknown_source_node": (GOOD.replace("camera/frames", "camra/frames"), "nodes[1] (monitor).inputs.frames: unknown node 'camra'"),
    "unknown_output": (GOOD.replace("camera/frames", "camera/pixels"), "node 'camera' has no output 'pixels' (outputs: frames)"),
    "unknown_input": (GOOD.replace("{frames: camera", "{images: camera"), "has no input 'images' (inputs: frames)"),
    "source_without_slash": (GOOD.replace("camera/frames", "camera"), "'camera' must be 'node/output'"),
    "duplicate_id": (GOOD.replace("id: monitor", "id: camera"), "nodes[1].id: duplicate node id 'camera'"),
    "param_type": (GOOD.replace("fps: 30", "fps: fast"), "nodes[0] (camera).params.fps: Expected `float`, got `str`"),
    "unknown_param": (GOOD.replace("fps: 30", "fsp: 30"), "unknown parameter fsp (known: fps, frames, height, uri, width)"),
    "bad_class_module": (GOOD.replace("edgerun.nodes.camera:", "edgerun.nodes.nope:"), "cannot import module 'edgerun.nodes.nope'"),
    "bad_class_name": (GOOD.replace(":Camera", ":NoSuchCamera"), "has no 'NoSuchCamera'"),
    "not_a_node": (GOOD.replace("edgerun.nodes.camera:Camera", "pathlib:Path"), "is not a subclass of edgerun.runtime.Node"),
    "restart_policy": (GOOD + "    restart: {policy: sometimes}\n", "nodes[1].restart.policy: Invalid enum value 'sometimes' (expected one of: never, on-failure, always)"),
    "unknown_top_level": (GOOD.replace("nodes:", "nods:"), "unknown field `nods`"),
    "unknown_node_field": (GOOD.replace("    inputs:", "    input:"), "nodes[1]: Object contains unknown field `input`"),
    "unknown_host": (GOOD + "    host: robot\n", "nodes[1] (monitor).host: unknown host 'robot'"),
    "bad_host_name": (
        GOOD.replace("name: good", "name: good\nhosts: {'../x': {address: 127.0.0.1}}"),
        "hosts.../x: host names must be letters",
    ),
    "bad_yaml": ("nodes: [\n  - id: x", "not valid YAML"),
    "no_nodes": ("nodes: []\n", "a graph needs at least one node"),
    "bad_name": (GOOD.replace("name: good", "name: 'has space'"), "name: 'has space' must be letters"),
    "hosts_without_keys": (
        GOOD.replace("name: good", "name: good\nhosts: {a: {address: 127.0.0.1}, b: {address: 127.0.0.1}}") + "    host: b\n",
        "keys: a graph on several hosts needs a CURVE key directory",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_graph_is_refused_naming_the_field(tmp_path, case):
    text, expected = BROKEN[case]
    path = write(tmp_path, text)
    with pytest.raises(GraphError) as error:
        load_graph(path)
    assert str(error.value).startswith(f"{path}:")
    assert expected in str(error.value)


def test_missing_graph_file_is_a_clear_error(tmp_path):
    with pytest.raises(GraphError, match="cannot read"):
        load_graph(tmp_path / "nope.yaml")


def test_launch_of_broken_graph_exits_nonzero_and_starts_nothing(tmp_path, runtime_dir):
    path = write(tmp_path, GOOD.replace("camera/frames", "camera/pixels"))
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(path), "--duration", "5"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one message
    assert "node 'camera' has no output 'pixels'" in result.stderr
    assert not host_processes(runtime_dir)
    assert not list(runtime_dir.rglob("run.json"))


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 9⁹ strings once expanded, from a 1 KB file."""
    lines = ['    params:', '      env_kwargs:', '        l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"        l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "name: bomb\nnodes:\n  - id: env\n    class: edgerun.nodes.env:EnvNode\n" + "\n".join(lines) + "\n"


HOSTILE = {
    "alias_bomb": (_alias_bomb(), "expands to more than 100,000 values"),
    "deep_nesting": ("nodes: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
    "huge_file": ("name: big\n# " + "x" * (2 << 20) + "\nnodes: []\n", "more than the 1,048,576 allowed"),
    "empty_file": ("", "expected a mapping with a 'nodes' list"),
    "binary": ("\x00\x01\x02 \x7f", "not valid YAML"),
    "huge_value": (GOOD.replace("id: camera", "id: '" + "c" * 500_000 + "'"), "500,002 characters"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_graph_file_gets_one_short_line_and_exit_2(tmp_path, runtime_dir, case):
    """Bounded before anything is expanded or echoed: the launcher used to grow to 3 GB on an alias
    bomb, print a RecursionError traceback on deep nesting and echo 10 MB values into its error."""
    text, expected = HOSTILE[case]
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(path), "--duration", "5"], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 1200, result.stderr[:2000]
    assert result.stderr.startswith(f"edgerun launch: {path}") and expected in result.stderr, result.stderr[:2000]
    assert not host_processes(runtime_dir)


def test_launch_without_this_hosts_secret_key_is_refused(tmp_path, runtime_dir):
    keys = tmp_path / "keys"
    keys.mkdir()
    path = write(tmp_path, GOOD.replace("name: good", f"name: good\nkeys: {keys}\nhosts: {{a: {{address: 127.0.0.1}}, b: {{address: 127.0.0.1}}}}") + "    host: b\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgerun.cli", "launch", str(path), "--host", "a"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no secret key for host 'a'" in result.stderr and "edgerun keys generate" in result.stderr
    assert not host_processes(runtime_dir)
