"""The text an encoder reads for a sound: title, tags, description, in that order.

HTML is stripped (Freesound descriptions contain links and line breaks), entities are unescaped,
tags are split on whitespace or commas (or read from a ``['a', 'b']`` list literal) and joined by
spaces, empty fields are skipped and whitespace is collapsed.

Each field is cut to :data:`MAX_FIELD_CHARS` characters before anything else is done with it, so
a pathological cell (a 200 MB description) costs bounded time and memory in every encoder. CLAP
reads at most 77 tokens of the whole text anyway; the offline encoder's n-grams of the first
10,000 characters of a field describe it as well as those of all of it.
"""

from __future__ import annotations

import ast
import math
import re
from html import unescape
from html.parser import HTMLParser

MAX_FIELD_CHARS = 10_000
"""Characters of one field (title, tags or description) that are embedded; the rest is ignored."""
_RAW_LIMIT = 4 * MAX_FIELD_CHARS
"""Raw characters read from a field: room for markup around MAX_FIELD_CHARS of text."""
_SPACE = re.compile(r"\s+")
_TAG_SPLIT = re.compile(r"[\s,;]+")
_TAG_MARKS = ("<", "&", "[", ",", ";")
"""Characters after which tags need :func:`split_tags` (markup, a list literal, separators other than spaces)."""
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "ul", "ol", "tr", "td", "h1", "h2", "h3", "h4", "hr"})


class _TextOnly(HTMLParser):
    """Collects the character data of an HTML fragment; block elements become spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")


def _as_text(value: object) -> str:
    """A field value as a string (at most :data:`_RAW_LIMIT` characters): None and NaN become ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)[:_RAW_LIMIT]


def strip_html(text: object) -> str:
    """Plain text of ``text``: tags removed, entities unescaped, whitespace collapsed."""
    raw = _as_text(text)
    if "<" in raw or "&" in raw:
        parser = _TextOnly()
        parser.feed(raw)
        parser.close()
        raw = unescape("".join(parser.parts))
    return _SPACE.sub(" ", raw).strip()[:MAX_FIELD_CHARS]


def split_tags(tags: object) -> list[str]:
    """Tags as a list: ``"dog bark,loud"`` → ``["dog", "bark", "loud"]``; list literals accepted."""
    text = strip_html(tags)
    if text.startswith("[") and text.endswith("]"):
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            items = None
        if isinstance(items, list | tuple):
            text = " ".join(_as_text(item) for item in items)
        else:
            text = text[1:-1].replace("'", " ").replace('"', " ")
    return [tag for tag in _TAG_SPLIT.split(text) if tag]


def text_for(title: object, tags: object, description: object) -> str:
    """``title tags description`` as one clean line; any field may be empty, None or NaN."""
    if (type(title) is str and type(tags) is str and type(description) is str
            and len(title) <= MAX_FIELD_CHARS and len(tags) <= MAX_FIELD_CHARS and len(description) <= MAX_FIELD_CHARS
            and "<" not in title and "&" not in title and "<" not in description and "&" not in description
            and not any(mark in tags for mark in _TAG_MARKS)):
        # plain short text (most rows): the same result as below, whitespace collapsed by str.split
        fields = (" ".join(title.split()), " ".join(tags.split()), " ".join(description.split()))
    else:
        fields = (strip_html(title), " ".join(split_tags(tags)), strip_html(description))
    return " ".join(field for field in fields if field)
