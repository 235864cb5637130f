"""The library table behind the app's sound list: build it, search it, filter it, sort it.

Pure pandas/numpy (no Qt), so a 35k-row search is a few vectorised string matches (milliseconds)
rather than a Python call per cell. The GUI holds a :func:`library_frame` and its :class:`TextIndex`,
computes a boolean mask with :func:`query_mask` & :func:`filter_mask`, and shows ``sort_order(...)`` rows where the mask
is true.

Search syntax (:func:`parse_query`), terms ANDed, case-insensitive:

- ``dog bark`` — every word appears in the id, title, tags, description or a class cell;
  ``"dog bark"`` matches the phrase.
- ``-rain`` — the word does not appear.
- ``class:fx-o`` — truth, prediction or edited label is that class (a top key such as ``class:fx``
  means any of its classes; ``class:fx-o,fx-a`` any of several).
- ``truth:KEY``, ``pred:KEY``, ``edited:KEY`` — that column only; ``top:ss`` — the top column.
- ``-class:fx-o`` (any field term with ``-``) excludes.
- ``score>0.5``, ``score<=0.2`` — the prediction's score (``conf`` is accepted too).
- ``status:ok``, ``status:"text only"`` (or ``status:text``), ``status:"no audio"``, ``status:edited``
  — the status column (a value may be shortened to its first word).
- ``edited`` — has an edited label (``-edited``: has none).
- With the hierarchical abstain on (a threshold T, :mod:`bst_core.abstain`): ``decision:top`` (or
  ``abstained``) — the leaf was unsure, the decision is a top level alone ("fx, leaf unsure");
  ``decision:leaf`` — the decision is a class; ``decision:fx`` — abstained to exactly that top level;
  ``decision:fx-o`` — decided that class.
- Any other ``word:value`` (letters before the colon) is not understood and says so.
"""

from __future__ import annotations

import re
import shlex
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bst_core.predictions import TEXT_ONLY
from bst_core.taxonomy import CLASS_KEYS, TOP_LEVELS, classes_of_top, top_of

LIBRARY_COLUMNS: tuple[str, ...] = (
    "id", "title", "duration_s", "truth", "prediction", "score", "top", "decision", "edited", "status", "audio",
)
"""Columns shown by the library table, in display order (the one list: the Qt model shows these).

``score`` is the prediction's score (the model's top probability); ``audio`` says what the embeddings
were made from: "ok", "text only: <reason>" (the audio could not be decoded), "" (no embeddings).
``decision`` is the hierarchical abstain's decision (:func:`set_decisions`; "" when it is off): the
leaf, or a top level's key alone where the leaf was unsure."""

TEXT_COLUMNS: tuple[str, ...] = ("id", "title", "tags", "description", "truth")
"""Columns whose text free words of a query are matched against (fixed once a source is open)."""
CLASS_TEXT_COLUMNS: tuple[str, ...] = ("prediction", "edited")
"""Columns free words are also matched against, read afresh each time (they change after
predicting or relabelling; each holds at most 24 distinct values, so this is cheap)."""

FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "class": ("truth", "prediction", "edited"),
    "truth": ("truth",),
    "pred": ("prediction",),
    "prediction": ("prediction",),
    "edited": ("edited",),
    "top": ("top",),
    "status": ("status",),
    "decision": ("decision",),
}
"""Query field name → the columns it tests."""

STATUS_VALUES: tuple[str, ...] = ("ok", "text only", "no audio", "edited")
"""Every value of the ``status`` column."""
FLAG_WORDS: dict[str, tuple[str, frozenset[str]]] = {
    "edited": ("edited", frozenset(CLASS_KEYS)),
    "abstained": ("decision", frozenset(TOP_LEVELS)),
}
"""Bare words that are tests: ``edited`` (has an edited label), ``abstained`` (= ``decision:top``)."""
_FIELD_NAME_RE = re.compile(r"^[a-z_]+$")

_SCORE_RE = re.compile(r"^(?:score|conf)(<=|>=|<|>|=)([0-9]*\.?[0-9]+)$")


# --- building the table --------------------------------------------------------------------------

def _text(values: pd.Series | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, "", dtype=object)
    return values.fillna("").astype(str).to_numpy(dtype=object)


def library_frame(table: pd.DataFrame, audio_status: Sequence[str] | None = None) -> pd.DataFrame:
    """The library rows of a corpus table (``bst_core.corpus`` columns), without predictions.

    Columns: :data:`LIBRARY_COLUMNS` plus ``tags``, ``description``, ``audio_path`` and
    ``base_status`` ("ok" or "no audio"). ``duration_s`` is copied when the table has it, else NaN.
    ``audio_status`` (``Corpus.audio_status()``, row-aligned) fills the ``audio`` column; without
    it the column is empty (embeddings not computed yet).
    """
    n = len(table)
    get = table.get
    audio_path = _text(get("audio_path"), n)
    truth = _text(get("label"), n)
    duration = (pd.to_numeric(table["duration_s"], errors="coerce").to_numpy(dtype=np.float64)
                if "duration_s" in table.columns else np.full(n, np.nan))
    audio = (np.full(n, "", dtype=object) if audio_status is None
             else _aligned_text(audio_status, n, "audio statuses"))
    base_status = _base_status(audio_path, audio)
    frame = pd.DataFrame({
        "id": _text(get("id"), n),
        "title": _text(get("title"), n),
        "duration_s": duration,
        "truth": truth,
        "prediction": np.full(n, "", dtype=object),
        "score": np.full(n, np.nan),
        "top": np.array([top_of(t) if t else "" for t in truth], dtype=object),
        "decision": np.full(n, "", dtype=object),
        "edited": np.full(n, "", dtype=object),
        "status": base_status.copy(),
        "audio": audio,
        "tags": _text(get("tags"), n),
        "description": _text(get("description"), n),
        "audio_path": audio_path,
        "base_status": base_status,
    })
    return frame


def _base_status(audio_path: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """"no audio" (no file), "text only" (the file could not be decoded) or "ok", per row."""
    text_only = np.array([str(a).startswith(TEXT_ONLY) for a in audio], dtype=bool)
    return np.where(np.asarray(audio_path) == "", "no audio", np.where(text_only, "text only", "ok")).astype(object)


def _aligned_text(values: Sequence[str], n: int, what: str) -> np.ndarray:
    out = np.asarray([str(v) for v in values], dtype=object)
    if len(out) != n:
        raise ValueError(f"{len(out)} {what} for {n} rows")
    return out


def set_predictions(frame: pd.DataFrame, ids: Sequence[str], labels: Sequence[str],
                    scores: Sequence[float] | np.ndarray, audio_status: Sequence[str] | None = None) -> np.ndarray:
    """Write predictions into ``frame`` (in place) by id; rows without one are cleared.

    ``audio_status`` (aligned to ``ids``, e.g. ``Predictions.audio_status``) replaces the ``audio``
    column of the predicted rows: what each prediction was made from.
    Returns, for each frame row, the position of its prediction in ``ids`` (-1 when none), so
    row-aligned extras (probabilities, attention) can be gathered with it.
    """
    position = pd.Series(np.arange(len(ids)), index=pd.Index([str(i) for i in ids]))
    position = position[~position.index.duplicated(keep="last")]
    where = position.reindex(frame["id"]).fillna(-1).to_numpy(dtype=np.int64)
    has = where >= 0
    label_array = np.asarray(list(labels), dtype=object)
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    prediction = np.full(len(frame), "", dtype=object)
    score = np.full(len(frame), np.nan)
    prediction[has] = label_array[where[has]]
    score[has] = score_array[where[has]]
    frame["prediction"] = prediction
    frame["score"] = score
    frame["top"] = top_column(frame)
    if audio_status is not None:
        status = _aligned_text(audio_status, len(label_array), "audio statuses")
        audio = frame["audio"].to_numpy(dtype=object, copy=True)
        audio[has] = status[where[has]]
        frame["audio"] = audio
        frame["base_status"] = _base_status(frame["audio_path"].to_numpy(dtype=object), audio)
        edited = frame["edited"].to_numpy(dtype=object)
        frame["status"] = np.where(edited != "", "edited", frame["base_status"].to_numpy()).astype(object)
    return where


def set_decisions(frame: pd.DataFrame, ids: Sequence[str], decisions: Sequence[str]) -> None:
    """Write the hierarchical abstain's decisions (``bst_core.abstain.abstain_frame``'s ``decision``,
    aligned to ``ids``) into ``frame`` in place; rows without one (and all, for empty ``ids``) get ""."""
    by_id = pd.Series([str(d) for d in decisions], index=pd.Index([str(i) for i in ids]), dtype=object)
    by_id = by_id[~by_id.index.duplicated(keep="last")]
    frame["decision"] = by_id.reindex(frame["id"]).fillna("").to_numpy(dtype=object)


def decision_words(decision: str) -> str:
    """How a decision reads in the table: the leaf as it is, a top level alone as "fx, leaf unsure"."""
    return f"{decision}, leaf unsure" if decision in TOP_LEVELS else decision


def top_column(frame: pd.DataFrame) -> np.ndarray:
    """Top level of the prediction, or of the truth where there is no prediction."""
    shown = np.where(frame["prediction"].to_numpy() != "", frame["prediction"].to_numpy(),
                     frame["truth"].to_numpy())
    return np.array([top_of(k) if k else "" for k in shown], dtype=object)


def set_edited(frame: pd.DataFrame, edited: Mapping[str, str]) -> None:
    """Write the workspace's edited labels into ``frame`` (in place); status "edited" where set."""
    labels = frame["id"].map(edited).fillna("").astype(str).to_numpy(dtype=object)
    frame["edited"] = labels
    frame["status"] = np.where(labels != "", "edited", frame["base_status"].to_numpy()).astype(object)


def search_haystack(frame: pd.DataFrame) -> np.ndarray:
    """One lower-case string per row holding every :data:`TEXT_COLUMNS` value (tab-separated)."""
    columns = [frame[c].astype(str).to_numpy(dtype=object) for c in TEXT_COLUMNS if c in frame.columns]
    return np.array(["\t".join(parts).lower() for parts in zip(*columns, strict=True)] if columns else
                    [""] * len(frame), dtype=object)


class TextIndex:
    """The search text (:data:`TEXT_COLUMNS`) of every row, with the masks of recent words cached.

    A word typed one letter further (``"ra"`` → ``"rai"``) is looked for only in the rows that held a
    cached part of it, so typing into the search box rescans a shrinking set of rows. The index
    stays valid when predictions or edited labels change (see :data:`CLASS_TEXT_COLUMNS`).
    """

    def __init__(self, frame: pd.DataFrame, cache_size: int = 64) -> None:
        self.texts = search_haystack(frame)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.texts)

    def contains(self, word: str) -> np.ndarray:
        """Boolean mask of the rows whose text contains ``word`` (lower case)."""
        hit = self._cache.get(word)
        if hit is not None:
            self._cache.move_to_end(word)
            return hit
        parts = [m for w, m in self._cache.items() if w in word]
        if parts:
            rows = np.flatnonzero(min(parts, key=np.count_nonzero))
            hit = np.zeros(len(self.texts), dtype=bool)
            hit[rows] = np.fromiter((word in t for t in self.texts[rows]), bool, len(rows))
        else:
            hit = np.fromiter((word in t for t in self.texts), bool, len(self.texts))
        self._cache[word] = hit
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return hit


# --- parsing a query ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldTerm:
    """``field:value`` (or ``-field:value``): one of ``keys`` must be in one of ``columns``."""

    columns: tuple[str, ...]
    keys: frozenset[str]
    negated: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed search: every part must hold (AND)."""

    words: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    fields: tuple[FieldTerm, ...] = ()
    score_min: float | None = None
    score_max: float | None = None
    problems: tuple[str, ...] = ()
    """Terms that were not understood, in words (shown to the person; they match nothing)."""

    @property
    def empty(self) -> bool:
        return not (self.words or self.excluded or self.fields or self.problems
                    or self.score_min is not None or self.score_max is not None)

    def uses(self, column: str) -> bool:
        """True when a field term tests ``column`` (e.g. "decision")."""
        return any(column in term.columns for term in self.fields)


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:                       # an unbalanced quote while typing: split on spaces
        return text.replace('"', " ").replace("'", " ").split()


def _status_values(value: str) -> tuple[frozenset[str], list[str]]:
    """``status:`` values: a status, or its first word ("text" → "text only")."""
    keys: set[str] = set()
    problems: list[str] = []
    for part in filter(None, value.lower().split(",")):
        wanted = " ".join(part.replace("-", " ").replace("_", " ").split())
        hits = [s for s in STATUS_VALUES if s == wanted or s.split()[0] == wanted]
        if hits:
            keys.update(hits)
        else:
            problems.append(f"status:{part} is not a status ({', '.join(STATUS_VALUES)})")
    return frozenset(keys), problems


def _decision_values(value: str) -> tuple[frozenset[str], list[str]]:
    """``decision:`` values: top / abstained (any top level alone), leaf (any class), or a key."""
    keys: set[str] = set()
    problems: list[str] = []
    for part in filter(None, value.lower().split(",")):
        if part in ("top", "abstained"):
            keys.update(TOP_LEVELS)
        elif part == "leaf":
            keys.update(CLASS_KEYS)
        elif part in CLASS_KEYS or part in TOP_LEVELS:
            keys.add(part)
        else:
            problems.append(f"decision:{part} is not top, leaf, a top level ({', '.join(TOP_LEVELS)}) or a class key")
    return frozenset(keys), problems


def _class_keys(value: str, field_name: str) -> tuple[frozenset[str], list[str]]:
    if field_name == "status":
        return _status_values(value)
    if field_name == "decision":
        return _decision_values(value)
    keys: set[str] = set()
    problems: list[str] = []
    for part in filter(None, value.lower().split(",")):
        if field_name == "top":
            if part in TOP_LEVELS:
                keys.add(part)
            else:
                problems.append(f"top:{part} is not a top level ({', '.join(TOP_LEVELS)})")
        elif part in CLASS_KEYS:
            keys.add(part)
        elif part in TOP_LEVELS:
            keys.update(classes_of_top(part))
        else:
            problems.append(f"{field_name}:{part} is not a class key (e.g. fx-o, ss-n)")
    return frozenset(keys), problems


def parse_query(text: str) -> Query:
    """Parse the search box text (syntax in the module docstring); never raises."""
    words: list[str] = []
    excluded: list[str] = []
    fields: list[FieldTerm] = []
    problems: list[str] = []
    score_min: float | None = None
    score_max: float | None = None
    for token in _tokens(text.strip()):
        negated = token.startswith("-") and len(token) > 1
        body = token[1:] if negated else token
        conf = _SCORE_RE.match(body.lower())
        name, sep, value = body.partition(":")
        if conf and not negated:
            op, number = conf.group(1), float(conf.group(2))
            if op in (">", ">="):
                score_min = number
            elif op in ("<", "<="):
                score_max = number
            else:
                score_min = score_max = number
        elif sep and name.lower() in FIELD_COLUMNS:
            keys, bad = _class_keys(value, name.lower())
            problems += bad
            fields.append(FieldTerm(FIELD_COLUMNS[name.lower()], keys, negated))
        elif sep and value and _FIELD_NAME_RE.match(name.lower()):
            problems.append(f"{name}: is not a search field (fields: {', '.join(FIELD_COLUMNS)}; or leave "
                            "out the colon to search for the words)")
        elif body.lower() in FLAG_WORDS:
            column, keys = FLAG_WORDS[body.lower()]
            fields.append(FieldTerm((column,), keys, negated))
        elif negated:
            excluded.append(body.lower())
        elif token:
            words.append(token.lower())
    return Query(tuple(words), tuple(excluded), tuple(fields), score_min, score_max, tuple(problems))


# --- masks ---------------------------------------------------------------------------------------

def query_mask(frame: pd.DataFrame, query: Query | str, index: TextIndex | None = None) -> np.ndarray:
    """Rows of ``frame`` matching ``query``. Keep a :class:`TextIndex` of the frame for speed."""
    if isinstance(query, str):
        query = parse_query(query)
    mask = np.ones(len(frame), dtype=bool)
    if query.words or query.excluded:
        index = TextIndex(frame) if index is None else index
        for word in query.words:
            mask &= index.contains(word) | _class_cells_contain(frame, word)
        for word in query.excluded:
            mask &= ~(index.contains(word) | _class_cells_contain(frame, word))
    for term in query.fields:
        hit = np.zeros(len(frame), dtype=bool)
        for column in term.columns:
            hit |= frame[column].isin(term.keys).to_numpy(dtype=bool)
        mask &= ~hit if term.negated else hit
    score = frame["score"].to_numpy(dtype=np.float64)
    if query.score_min is not None:
        mask &= score >= query.score_min
    if query.score_max is not None:
        mask &= score <= query.score_max
    if query.problems:
        mask[:] = False
    return mask


def _class_cells_contain(frame: pd.DataFrame, word: str) -> np.ndarray:
    """Rows whose prediction or edited label contains ``word`` (few distinct values: test those)."""
    hit = np.zeros(len(frame), dtype=bool)
    for column in CLASS_TEXT_COLUMNS:
        if column in frame.columns:
            values = frame[column]
            keys = [v for v in pd.unique(values) if isinstance(v, str) and v and word in v.lower()]
            if keys:
                hit |= values.isin(keys).to_numpy(dtype=bool)
    return hit


@dataclass(frozen=True)
class Filters:
    """The filter bar's state. Empty sets and full ranges mean "no filter"."""

    predicted: frozenset[str] = field(default_factory=frozenset)   # prediction in these keys
    tops: frozenset[str] = field(default_factory=frozenset)        # top column in these
    score_min: float = 0.0
    score_max: float = 1.0
    disagree: bool = False        # truth and prediction both set and different
    truth: str | None = None      # exact truth (a confusion cell or a class bar)
    prediction: str | None = None  # exact prediction (a confusion cell)
    duration_min: float | None = None
    duration_max: float | None = None
    ids: frozenset[str] | None = None   # exactly these ids (the clips behind a confusion cell)
    ordered_ids: tuple[str, ...] | None = None
    """Exactly these ids, shown in this order (similar sounds, a search by words, a queue)."""

    @property
    def active(self) -> bool:
        return self != Filters()


def filters_to_dict(filters: Filters, *, max_ids: int = 2000) -> dict[str, Any]:
    """The filters as JSON-ready values (what differs from no filter). An id list longer than
    ``max_ids`` and ``ordered_ids`` (a ranked list of the moment) are left out."""
    out: dict[str, Any] = {}
    for name in ("predicted", "tops"):
        if getattr(filters, name):
            out[name] = sorted(getattr(filters, name))
    for name in ("score_min", "score_max", "disagree", "truth", "prediction", "duration_min", "duration_max"):
        value = getattr(filters, name)
        if value != getattr(Filters(), name):
            out[name] = value
    if filters.ids is not None and len(filters.ids) <= max_ids:
        out["ids"] = sorted(filters.ids)
    return out


def filters_from_dict(data: dict[str, Any]) -> Filters:
    """:func:`filters_to_dict` back; unknown keys are ignored, class keys not in the taxonomy dropped."""
    def number(name: str, default: float | None) -> float | None:
        value = data.get(name, default)
        return None if value is None else float(value)

    def text(name: str) -> str | None:
        value = data.get(name)
        return None if value is None else str(value)

    ids = data.get("ids")
    return Filters(
        predicted=frozenset(k for k in data.get("predicted", []) if k in CLASS_KEYS),
        tops=frozenset(t for t in data.get("tops", []) if t in TOP_LEVELS),
        score_min=float(data.get("score_min", 0.0)), score_max=float(data.get("score_max", 1.0)),
        disagree=bool(data.get("disagree", False)), truth=text("truth"), prediction=text("prediction"),
        duration_min=number("duration_min", None), duration_max=number("duration_max", None),
        ids=None if ids is None else frozenset(str(i) for i in ids))


def filter_mask(frame: pd.DataFrame, filters: Filters) -> np.ndarray:
    """Rows of ``frame`` passing ``filters``. A score range narrower than [0, 1] drops rows
    without a prediction."""
    mask = np.ones(len(frame), dtype=bool)
    truth = frame["truth"].to_numpy()
    prediction = frame["prediction"].to_numpy()
    if filters.predicted:
        mask &= frame["prediction"].isin(filters.predicted).to_numpy(dtype=bool)
    if filters.tops:
        mask &= frame["top"].isin(filters.tops).to_numpy(dtype=bool)
    if filters.score_min > 0.0 or filters.score_max < 1.0:
        score = frame["score"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            mask &= (score >= filters.score_min) & (score <= filters.score_max)
    if filters.disagree:
        mask &= (truth != "") & (prediction != "") & (truth != prediction)
    if filters.truth is not None:
        mask &= truth == filters.truth
    if filters.prediction is not None:
        mask &= prediction == filters.prediction
    if filters.ids is not None:
        mask &= frame["id"].isin(filters.ids).to_numpy(dtype=bool)
    if filters.ordered_ids is not None:
        mask &= frame["id"].isin(filters.ordered_ids).to_numpy(dtype=bool)
    if filters.duration_min is not None or filters.duration_max is not None:
        duration = frame["duration_s"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            if filters.duration_min is not None:
                mask &= duration >= filters.duration_min
            if filters.duration_max is not None:
                mask &= duration <= filters.duration_max
    return mask


# --- sorting ---------------------------------------------------------------------------------------

def sort_order(frame: pd.DataFrame, column: str, descending: bool = False) -> np.ndarray:
    """Row positions of ``frame`` sorted by ``column`` (stable; empty text and NaN always last).

    Class columns sort in taxonomy order, text columns case-insensitively (ids made of digits
    numerically).
    """
    values = frame[column]
    if column == "decision":       # a top level alone sorts just before its classes
        order_of = {k: i for i, k in enumerate(k for t in TOP_LEVELS for k in (t, *classes_of_top(t)))}
        keys = values.map(order_of).to_numpy(dtype=np.float64)
    elif column in ("truth", "prediction", "edited"):
        order_of = {k: i for i, k in enumerate(CLASS_KEYS)}
        keys = values.map(order_of).to_numpy(dtype=np.float64)
    elif column == "top":
        order_of = {k: i for i, k in enumerate(TOP_LEVELS)}
        keys = values.map(order_of).to_numpy(dtype=np.float64)
    elif pd.api.types.is_numeric_dtype(values):
        keys = values.to_numpy(dtype=np.float64)
    else:
        return _text_order(values.astype(str).to_numpy(dtype=object), descending)
    missing = np.isnan(keys)
    keys = np.where(missing, 0.0, -keys if descending else keys)
    return np.lexsort((keys, missing)).astype(np.int64)


def _text_order(texts: np.ndarray, descending: bool) -> np.ndarray:
    """Case-insensitive order of strings (numerically when all are whole numbers, as ids often are)."""
    present = [i for i, t in enumerate(texts) if t]
    absent = [i for i, t in enumerate(texts) if not t]
    if present and all(texts[i].isdigit() for i in present):
        key: Any = [int(t) if t else 0 for t in texts]
    else:
        key = [t.lower() for t in texts]
    ordered = sorted(present, key=key.__getitem__, reverse=descending)
    return np.array(ordered + absent, dtype=np.int64)
