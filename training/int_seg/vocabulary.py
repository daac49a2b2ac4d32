"""The texts the small INT components are trained against, and what each image view should match.

Classes: every category of the synthetic set, one *generic* class (the task-generic phrasings:
"the camouflaged animal", …) and a background class. Each class has several phrasings; training
draws one per step, so the components answer "frog", "a frog" or "a photo of a frog" alike.

Targets, by design of INT's negative mining:
- scorer: a soft distribution over the classes present in a view (an instance counts when most of
  it is visible); the generic class gets **twice** the weight of a category when a camouflaged
  animal is present, so removing the camouflaged instance moves the generic prompt's probability
  most, and removing a salient distractor moves it little; background when nothing is present;
- detector: a location answers its instance's category, and the generic class for *every*
  animal, salient or camouflaged: the generic prompt is ambiguous, as in the paper's motivation.
"""

from __future__ import annotations

from edgerun.sim.camouflage import ANIMALS, CATEGORIES, GENERIC_PROMPTS

TEMPLATES = ("{}", "a {}", "the {}", "a photo of a {}", "a {} in the scene")
GENERIC = GENERIC_PROMPTS + ("a camouflaged animal", "the hidden animal", "a concealed creature")
BACKGROUND = ("background", "the background", "empty ground", "nothing")
CLASSES = CATEGORIES + ("<generic>", "<background>")
GENERIC_INDEX = len(CATEGORIES)
BACKGROUND_INDEX = GENERIC_INDEX + 1
GENERIC_WEIGHT = 2.0
ANIMAL_INDICES = tuple(CATEGORIES.index(a) for a in ANIMALS)


def phrasings(index: int) -> tuple[str, ...]:
    if index == GENERIC_INDEX:
        return GENERIC
    if index == BACKGROUND_INDEX:
        return BACKGROUND
    return tuple(t.format(CATEGORIES[index]) for t in TEMPLATES)


def all_phrasings() -> list[tuple[int, str]]:
    return [(index, text) for index in range(len(CLASSES)) for text in phrasings(index)]
