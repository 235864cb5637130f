"""text_for's fast path for plain short fields gives exactly what the general path gives."""

from __future__ import annotations

import random

from bst_core import text
from bst_core.text import MAX_FIELD_CHARS, split_tags, strip_html, text_for

ALPHABET = ["a", "b", "Z", "é", "名", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0",
            "\u2003", "\u2028", "\u3000", "\u200b", "\ufeff", ",", ";", "[", "]", "<", ">", "&", "amp;", "'", "_", "-"]


def general(title: object, tags: object, description: object) -> str:
    fields = (strip_html(title), " ".join(split_tags(tags)), strip_html(description))
    return " ".join(field for field in fields if field)


def test_fast_path_matches_the_general_path_on_random_fields() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        fields = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12))) for _ in range(3)]
        assert text_for(*fields) == general(*fields), fields


def test_fields_at_the_length_limit_and_non_strings() -> None:
    long = "word " * (MAX_FIELD_CHARS // 5) + " tail"
    for fields in [(long, "a b", "c"), ("x" * MAX_FIELD_CHARS, "y", "z"), (None, "a", float("nan")), (3, "t", "d"),
                   (" a ", " b  c ", ""), ("", "", "")]:
        assert text_for(*fields) == general(*fields)


def test_markup_and_separators_take_the_general_path() -> None:
    assert text_for("Dog &amp; cat", "a,b;c", "<b>loud</b> bark") == "Dog & cat a b c loud bark"
    assert text_for("t", "['x', 'y']", "") == "t x y"
    assert set(text._TAG_MARKS) >= {"<", "&", "[", ",", ";"}
