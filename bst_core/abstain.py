"""Hierarchical abstain: a librarian's label is the top level alone when the leaf is unsure but the
top level is clear.

For each item, with the class probabilities ``p`` (taxonomy order) and a threshold ``T`` in (0, 1]:

- ``top_level`` = the top level (m, is, sp, fx, ss) whose **summed** class probabilities are largest
  (not necessarily the top level of the argmax leaf); ``top_level_score`` = that sum;
- the leaf = the argmax class, its probability = the prediction's score;
- ``decision`` = the leaf when its probability ≥ T; else the top level's key ("fx", meaning "fx,
  leaf unsure") when ``top_level_score`` ≥ T; else the leaf (nothing is clear at either level, so
  the leaf stays, as the challenge would score it).

A decision without "-" is an abstention (:func:`abstained`). The challenge package always carries
the leaf: this module never touches ``export``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bst_core.errors import BadInputError
from bst_core.predictions import Predictions
from bst_core.taxonomy import CLASS_KEYS, TOP_LEVELS, top_of

ABSTAIN_COLUMNS: tuple[str, ...] = ("top_level", "top_level_score", "decision")
_MEMBERSHIP = np.array([[top_of(k) == t for t in TOP_LEVELS] for k in CLASS_KEYS], dtype=np.float64)  # (23, 5)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in (0, 1] (BadInputError otherwise)."""
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise BadInputError(f"The abstain threshold must be a probability in (0, 1], not {threshold}; e.g. 0.5.")
    return value


def top_level_probs(probs: np.ndarray) -> np.ndarray:
    """``(n, 5)`` summed class probabilities per top level, in :data:`TOP_LEVELS` order."""
    return np.asarray(probs, dtype=np.float64).reshape(-1, len(CLASS_KEYS)) @ _MEMBERSHIP


def abstain_frame(predictions: Predictions, threshold: float) -> pd.DataFrame:
    """``top_level, top_level_score, decision`` per item, rows in the predictions' order (RangeIndex)."""
    threshold = check_threshold(threshold)
    probs = np.asarray(predictions.probs, dtype=np.float64)
    tops = top_level_probs(probs)
    best_top = tops.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    top_score = tops[np.arange(len(probs)), best_top]
    leaf = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    leaf_score = probs[np.arange(len(probs)), leaf]
    abstain = (leaf_score < threshold) & (top_score >= threshold)
    top_keys = np.array(TOP_LEVELS, dtype=object)[best_top]
    leaf_keys = np.array(CLASS_KEYS, dtype=object)[leaf]
    return pd.DataFrame({"top_level": top_keys.astype(object), "top_level_score": top_score,
                         "decision": np.where(abstain, top_keys, leaf_keys).astype(object)},
                        columns=list(ABSTAIN_COLUMNS))


def abstained(decision: pd.Series) -> pd.Series:
    """True where a decision is a top level alone (the leaf was unsure)."""
    return ~decision.astype(str).str.contains("-", regex=False)


def with_abstain(predictions: Predictions, threshold: float, *, probabilities: bool = False) -> pd.DataFrame:
    """The prediction CSV's frame (:meth:`Predictions.submission_frame`) with the abstain columns
    inserted after ``audio_status`` (before the probabilities, when asked)."""
    frame = predictions.submission_frame(probabilities=probabilities)
    extra = abstain_frame(predictions, threshold)
    at = list(frame.columns).index("audio_status") + 1
    for offset, column in enumerate(ABSTAIN_COLUMNS):
        frame.insert(at + offset, column, extra[column].to_numpy())
    return frame


def threshold_arg(text: str) -> float:
    """argparse ``type=`` for ``--abstain``: a bad value is refused before any work (exit 2)."""
    try:
        return check_threshold(float(text))
    except (ValueError, BadInputError) as exc:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], e.g. 0.5, not {text!r}") from exc


def add_abstain_argument(parser: argparse.ArgumentParser) -> None:
    """``--abstain T`` on ``bst predict``'s parser."""
    parser.add_argument("--abstain", type=threshold_arg, metavar="T",
                        help="add top_level,top_level_score,decision: decision is the top level alone "
                             "(e.g. 'fx') where the leaf's probability < T but the top level's summed "
                             "probability ≥ T, else the leaf (never changes `bst export`)")


__all__ = ["ABSTAIN_COLUMNS", "abstain_frame", "abstained", "add_abstain_argument", "check_threshold",
           "threshold_arg", "top_level_probs", "with_abstain"]
