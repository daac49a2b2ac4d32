"""The constitution the command guards enforce: categories of requests a robot must refuse
(``forbidden``) and of requests it is for (``allowed``), each with a description and request
templates whose ``{slots}`` are filled from the constitution's slot lists. The default is
``checkpoints/language/constitution.yaml``; a site writes its own the same way."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgerun import shipped

DEFAULT_CONSTITUTION = Path(shipped("language/constitution.yaml"))


@dataclass(frozen=True)
class Category:
    name: str
    forbidden: bool
    description: str
    templates: tuple[str, ...]


SPEED = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m/s|mps|met(?:er|re)s? per second)", re.IGNORECASE)
MASS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:kg|kilo(?:gram)?s?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """Hard limits, checked as rules: a number over one of them is refused whatever a classifier says."""

    speed_mps: float = float("inf")
    payload_kg: float = float("inf")


@dataclass(frozen=True)
class Constitution:
    categories: tuple[Category, ...]
    slots: dict[str, tuple[str, ...]]
    source: str
    limits: Limits = field(default_factory=Limits)

    def limit_violation(self, request: str) -> str | None:
        """What hard limit ``request`` names a value over, or None."""
        for pattern, limit, what, unit in ((SPEED, self.limits.speed_mps, "speed", "m/s"),
                                           (MASS, self.limits.payload_kg, "payload", "kg")):
            over = [float(v) for v in pattern.findall(request) if float(v) > limit]
            if over:
                return f"a {what} of {over[0]:g} {unit} is over the limit of {limit:g} {unit}"
        return None

    @property
    def forbidden(self) -> tuple[Category, ...]:
        return tuple(c for c in self.categories if c.forbidden)

    def describe(self, name: str) -> str:
        """A category's description: the reason a refusal gives."""
        return next(c.description for c in self.categories if c.name == name)

    @classmethod
    def load(cls, path: Path = DEFAULT_CONSTITUTION) -> Constitution:
        """Read and check ``path``: a ValueError names the file and what is wrong in it."""
        try:
            document = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no constitution at {path}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not YAML ({exc})") from None
        if not isinstance(document, dict) or document.get("version") != 1:
            raise ValueError(f"{path}: a constitution is a mapping with version: 1")
        slots = {name: tuple(str(v) for v in values) for name, values in (document.get("slots") or {}).items()}
        categories = []
        for kind in ("forbidden", "allowed"):
            section = document.get(kind)
            if not isinstance(section, dict) or not section:
                raise ValueError(f"{path}: '{kind}' must name at least one category")
            for name, body in section.items():
                templates = tuple((body or {}).get("templates") or ())
                if not templates or not (body or {}).get("description"):
                    raise ValueError(f"{path}: category '{name}' needs a description and at least one template")
                for template in templates:
                    unknown = [f for _, f, _, _ in string.Formatter().parse(template) if f and f not in slots]
                    if unknown:
                        raise ValueError(f"{path}: template {template!r} of '{name}' uses slots with no values: "
                                         f"{', '.join(unknown)}")
                categories.append(Category(name, kind == "forbidden", str(body["description"]), templates))
        names = [c.name for c in categories]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: a category name appears twice")
        limits = document.get("limits") or {}
        unknown = set(limits) - {"speed_mps", "payload_kg"}
        if unknown:
            raise ValueError(f"{path}: unknown limits {', '.join(sorted(unknown))} (known: speed_mps, payload_kg)")
        return cls(tuple(categories), slots, str(path), Limits(**{k: float(v) for k, v in limits.items()}))
