"""The Broad Sound Taxonomy: 23 target classes, 5 top levels, codes, names, colours.

Data lives in ``resources/bst_taxonomy.csv`` (shipped inside the package as
``bst_core/data/bst_taxonomy.csv``). Class order everywhere (probability columns, confusion
matrices, model outputs) is :data:`CLASS_KEYS`, the taxonomy order of that file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd

TOP_LEVEL_INDEX: dict[str, int] = {"m": 1, "is": 2, "sp": 3, "fx": 4, "ss": 5}
"""Top-level key → first digit of ``class_idx``."""


@dataclass(frozen=True)
class BstClass:
    """One second-level (target) class."""

    key: str          # "fx-o"
    class_idx: int    # 401
    top: str          # "fx"
    name: str         # "Objects / House appliances"
    top_name: str     # "Sound effects"
    colour: str       # "#afccf5"
    examples: str     # "small or daily objects; tools; ..."

    @property
    def description(self) -> str:
        """One sentence a person can read next to the class."""
        return f"{self.top_name} › {self.name}: {self.examples}."


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    ref = resources.files("bst_core").joinpath("data/bst_taxonomy.csv")
    with ref.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, dtype={"class_idx": int, "class_key": str})


@lru_cache(maxsize=1)
def classes() -> tuple[BstClass, ...]:
    """The 23 target classes in taxonomy order."""
    return tuple(
        BstClass(r.class_key, int(r.class_idx), r.top_level, r.name, r.top_name, r.colour, r.examples)
        for r in _table().itertuples(index=False)
    )


CLASS_KEYS: tuple[str, ...] = tuple(c.key for c in classes())
"""The 23 second-level keys in taxonomy order (model output order)."""

NUM_CLASSES = len(CLASS_KEYS)
TOP_LEVELS: tuple[str, ...] = tuple(TOP_LEVEL_INDEX)
TOP_LEVEL_NAMES: dict[str, str] = {c.top: c.top_name for c in classes()}
CLASS_INDEX: dict[str, int] = {k: i for i, k in enumerate(CLASS_KEYS)}
BY_KEY: dict[str, BstClass] = {c.key: c for c in classes()}
BY_CODE: dict[int, BstClass] = {c.class_idx: c for c in classes()}

_KEY_RE = re.compile(r"^(m|is|sp|fx|ss)(-[a-z]+)?$")


def top_of(key: str) -> str:
    """Top-level key of a class key: ``top_of("fx-o") == "fx"``; a top key maps to itself."""
    return key.split("-", 1)[0]


def is_target(label: object) -> bool:
    """True for one of the 23 second-level keys; False for "-other", top-only or junk."""
    return isinstance(label, str) and label in CLASS_INDEX


def classify_label(label: object) -> str:
    """Say what a label is: ``"target"``, ``"other"`` (e.g. ``fx-other``), ``"top"`` (e.g. ``fx``)
    or ``"unknown"``."""
    if is_target(label):
        return "target"
    if not isinstance(label, str):
        return "unknown"
    text = label.strip()
    if text.endswith("-other") and text[: -len("-other")] in TOP_LEVEL_INDEX:
        return "other"
    if text in TOP_LEVEL_INDEX:
        return "top"
    return "unknown"


def classify_code(code: int) -> str:
    """Same as :func:`classify_label` for a three-digit ``class_idx`` (X00 top, X99 other)."""
    if code in BY_CODE:
        return "target"
    top, leaf = divmod(int(code), 100)
    if top in TOP_LEVEL_INDEX.values():
        if leaf == 0:
            return "top"
        if leaf == 99:
            return "other"
    return "unknown"


def key_for_code(code: int) -> str:
    """Class key of a target ``class_idx`` (KeyError for non-targets)."""
    return BY_CODE[int(code)].key


def colour(key: str) -> str:
    """BST colour of a class key (hex); the first class's colour of a top level for a top key."""
    if key in BY_KEY:
        return BY_KEY[key].colour
    for c in classes():
        if c.top == key:
            return c.colour
    return "#888888"


def classes_of_top(top: str) -> tuple[str, ...]:
    """Target keys under a top level, in taxonomy order."""
    return tuple(c.key for c in classes() if c.top == top)
