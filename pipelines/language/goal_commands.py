"""Operator commands that name a goal in the Wall env, in words, with the goal each names: the data
that teaches a small LM the command → goal mapping (the tests' tiny LM) and measures one on commands
it never read (``edgerun eval command-goals``).

A command fills a sentence template with a phrase for the spot and one for the room. The held-out
split keeps whole templates and whole phrases out of training (by a hash of their text), so a
held-out command is worded in a way training never saw.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Literal

from edgerun.envs.wall import ROOMS, SPOTS

TEMPLATES = (
    "go to the {spot} of {room}",
    "drive to the {spot} of {room}",
    "head for the {spot} of {room}",
    "move to the {spot} in {room}",
    "please navigate to the {spot} of {room}",
    "take me to the {spot} of {room}",
    "I need you at the {spot} of {room}",
    "make your way to the {spot} of {room}",
    "get over to {room}, {spot}",
    "{room}, {spot}: go there now",
    "could you roll to the {spot} of {room}?",
    "next stop: the {spot} of {room}",
    "travel to the {spot} in {room} please",
    "park at the {spot} of {room}",
)
SPOT_PHRASES = {
    "top-left": ("top-left corner", "upper left corner", "top left", "north-west corner"),
    "top-right": ("top-right corner", "upper right corner", "top right", "north-east corner"),
    "bottom-left": ("bottom-left corner", "lower left corner", "bottom left", "south-west corner"),
    "bottom-right": ("bottom-right corner", "lower right corner", "bottom right", "south-east corner"),
    "center": ("center", "middle", "centre", "very middle"),
    "door": ("door", "doorway", "opening in the wall", "gap in the wall"),
}
ROOM_PHRASES = {
    "this": ("this room", "the room you are in", "your current room", "the same room"),
    "other": ("the other room", "the room across the wall", "the far room", "the opposite room"),
    "left": ("the left room", "the room on the left", "the left-hand room", "the west room"),
    "right": ("the right room", "the room on the right", "the right-hand room", "the east room"),
}
assert set(SPOT_PHRASES) == set(SPOTS) and set(ROOM_PHRASES) == set(ROOMS)

Split = Literal["train", "test"]


@dataclass(frozen=True)
class GoalCommand:
    text: str
    room: str
    spot: str
    room_phrase: str
    spot_phrase: str

    @property
    def goal(self) -> dict[str, str]:
        return {"room": self.room, "spot": self.spot}


def split_of(text: str, test_share: float = 0.25) -> Split:
    """``test`` for about ``test_share`` of template and phrase texts, by a hash of the text."""
    return "test" if zlib.crc32(text.encode()) % 1000 < test_share * 1000 else "train"


def goal_commands(split: Split, count: int, seed: int = 0) -> list[GoalCommand]:
    """``count`` commands of ``split``: a train command uses train templates and phrases only; a test
    command uses at least one held-out template or phrase (so it is worded as training never was)."""
    rng = random.Random(f"{split}-{seed}")
    out: list[GoalCommand] = []
    while len(out) < count:
        template, room, spot = rng.choice(TEMPLATES), rng.choice(ROOMS), rng.choice(SPOTS)
        room_phrase, spot_phrase = rng.choice(ROOM_PHRASES[room]), rng.choice(SPOT_PHRASES[spot])
        parts = [split_of(template), split_of(room_phrase), split_of(spot_phrase)]
        if ("test" in parts) != (split == "test"):
            continue
        text = template.format(room=room_phrase, spot=spot_phrase)
        out.append(GoalCommand(text[0].upper() + text[1:], room, spot, room_phrase, spot_phrase))
    return out
