"""YAML that people hand to edgerun (graph files, component configs, camera intrinsics), read
within bounds.

``yaml.safe_load`` alone trusts its input's shape: nine nested aliases of nine (a "billion laughs")
expand to 10⁹ values downstream, nesting 10,000 deep ends in a ``RecursionError`` inside the
composer, and a 10 MB scalar is echoed whole into every error that quotes it. :func:`parse_yaml`
walks the event stream first (PyYAML's parser is not recursive), refusing input over the size,
depth or expanded-size bounds with one line naming the place, and only then builds the objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgerun.errors import EdgerunError


class YamlError(EdgerunError, ValueError):
    """Not YAML, or YAML outside the bounds; the message is one line: where and why."""


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 1 << 20
    max_depth: int = 32
    max_values: int = 100_000
    """Scalars and collections after every alias is expanded: what consumers of the data will walk."""


def _where(source: str, mark: yaml.Mark | None) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source  # as compilers write it


def _check_events(text: str, source: str, limits: YamlLimits) -> None:
    depth = 0
    counts = [0]  # expanded values in each open collection, the document's at the bottom
    anchors: list[str | None] = [None]
    expanded: dict[str, int] = {}  # anchor -> size of the value it names, aliases expanded
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.max_depth:
                raise YamlError(f"{_where(source, event.start_mark)}: nested deeper than {limits.max_depth} levels")
            counts.append(1)
            anchors.append(event.anchor)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            size, anchor = counts.pop(), anchors.pop()
            counts[-1] += size
            if anchor is not None:
                expanded[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            counts[-1] += 1
            if event.anchor is not None:
                expanded[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            counts[-1] += expanded.get(event.anchor, 1)
        if sum(counts) > limits.max_values:
            raise YamlError(f"{_where(source, event.start_mark)}: expands to more than {limits.max_values:,} values "
                            "(aliases of aliases?)")


def parse_yaml(text: str, source: str, limits: YamlLimits = YamlLimits()) -> Any:
    """The data in ``text`` (``source`` names it in errors); :class:`YamlError` when it is not YAML
    or exceeds ``limits``."""
    if len(text) > limits.max_bytes:
        raise YamlError(f"{source}: {len(text):,} characters, more than the {limits.max_bytes:,} allowed")
    try:
        _check_events(text, source, limits)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"{_where(source, exc.problem_mark)}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def load_yaml(path: str | Path, limits: YamlLimits = YamlLimits()) -> Any:
    """The data in the YAML file ``path``; :class:`YamlError` for a file that cannot be read, is
    larger than ``limits.max_bytes``, is not YAML or exceeds the other bounds."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise YamlError(f"{path}: {size:,} bytes, more than the {limits.max_bytes:,} allowed")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError as exc:
        raise YamlError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, str(path), limits)
