"""Suspected label errors, and what to relabel next, from out-of-fold probabilities.

Confident learning via cleanlab (the maintained implementation, not a hand-written copy):
``cleanlab.filter.find_label_issues`` (``filter_by="prune_by_noise_rate"``) flags the items, ranked
by ``cleanlab.rank.get_label_quality_scores`` (``self_confidence``: the probability the model gives
the *given* label, lowest first). The probabilities must be out-of-fold (each item predicted by a
model that did not train on it), as a cross-validation run's ``oof_predictions.csv`` is; the
ensemble's probabilities on its own training data would hide the errors it memorised.

The suggested class is the most probable class other than the given one, with its probability.

"Relabel next" (:func:`relabel_queue`): suspected errors first (worst label quality first), then
every other item by its prediction's score (top probability), least confident first; unlabelled
items join the second part.

Measured by ``benchmarks/bench_label_issues.py --n-per-class 100 --epochs 40`` (synthetic corpus of
2,300 items, 115 = 5 % of the labels flipped to another class, 5-fold CV in ``both`` mode): 731
items flagged, precision 14.0 %, recall 88.7 % (chance precision 5 %); the 115 worst-ranked hold
63 of the 115 flips (precision 54.8 %). The synthetic classes overlap (out-of-fold leaf accuracy 63
% against the given labels), so many correctly labelled but ambiguous items are flagged too: read
the list from the top. The search itself takes 31 ms on 10,000 out-of-fold rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bst_core.errors import BadInputError
from bst_core.runs import CrossValResult
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS

ISSUE_COLUMNS: tuple[str, ...] = ("rank", "id", "given", "suggested", "label_quality", "suggested_probability")
QUEUE_COLUMNS: tuple[str, ...] = ("order", "id", "reason", "given", "suggested", "label_quality", "score")
SUSPECTED = "suspected label error"
LOW_SCORE = "low score"


@dataclass
class LabelIssues:
    """The flagged items (:data:`ISSUE_COLUMNS`, rank 1 = most likely wrong), every labelled item's
    label quality, and cleanlab's notes (e.g. classes with too few examples)."""

    issues: pd.DataFrame
    quality: pd.Series                       # label quality by id (labelled items)
    n_items: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.issues)

    def top(self, n: int | None) -> pd.DataFrame:
        return self.issues if n is None else self.issues.head(n)


def _checked(ids: Sequence[str], given: Sequence[str], probs: np.ndarray) -> tuple[list[str], np.ndarray,
                                                                                     np.ndarray]:
    ids = [str(i) for i in ids]
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ids), len(CLASS_KEYS)):
        raise BadInputError(f"Label issues need ({len(ids)}, {len(CLASS_KEYS)}) probabilities in taxonomy "
                            f"order, not {probs.shape}.")
    if len(given) != len(ids):
        raise BadInputError(f"{len(given)} labels for {len(ids)} items.")
    codes = np.array([CLASS_INDEX.get(str(g), -1) for g in given], dtype=np.int64)
    return ids, probs, codes


def find_issues(ids: Sequence[str], given: Sequence[str], probs: np.ndarray) -> LabelIssues:
    """The items whose given label is most likely wrong. ``given`` holds class keys; items whose
    label is not one of the 23 classes ("" = unlabelled) are not judged."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ids, probs, codes = _checked(ids, given, probs)
    labelled = np.flatnonzero(codes >= 0)
    if len(labelled) == 0:
        raise BadInputError("No item has one of the 23 BST classes as its label: nothing to check.")
    p = probs[labelled]
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    y = codes[labelled]
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quality = get_label_quality_scores(y, p, method="self_confidence")
        flagged = find_label_issues(y, p, filter_by="prune_by_noise_rate",
                                    return_indices_ranked_by="self_confidence", n_jobs=1)
    for warning in caught:
        text = str(warning.message)
        if "too few examples" in text:
            text = text.replace("class: ", "class ")
            for code, key in enumerate(CLASS_KEYS):  # name the class by its key, not cleanlab's index
                text = text.replace(f"class {code},", f"class {key},")
        if text not in notes:
            notes.append(text)
    flagged = np.asarray(flagged, dtype=np.int64)
    others = p[flagged].copy()
    others[np.arange(len(flagged)), y[flagged]] = -1.0
    suggested = others.argmax(axis=1) if len(flagged) else np.zeros(0, dtype=np.int64)
    issues = pd.DataFrame({
        "rank": np.arange(1, len(flagged) + 1, dtype=np.int64),
        "id": pd.Series([ids[labelled[k]] for k in flagged], dtype=object),
        "given": [CLASS_KEYS[c] for c in y[flagged]],
        "suggested": [CLASS_KEYS[c] for c in suggested],
        "label_quality": quality[flagged].astype(np.float64),
        "suggested_probability": p[flagged, suggested] if len(flagged) else np.zeros(0),
    }, columns=list(ISSUE_COLUMNS))
    by_id = pd.Series(quality.astype(np.float64), index=[ids[k] for k in labelled], name="label_quality")
    return LabelIssues(issues, by_id, len(ids), notes)


def run_issues(result: CrossValResult) -> LabelIssues:
    """:func:`find_issues` over a cross-validation run's out-of-fold table (truth = the given label)."""
    oof = result.oof
    return find_issues(oof["id"].astype(str).tolist(), oof["truth"].astype(str).tolist(),
                       oof.loc[:, list(CLASS_KEYS)].to_numpy(np.float64))


def relabel_queue(ids: Sequence[str], given: Sequence[str], probs: np.ndarray) -> pd.DataFrame:
    """Every item in the order a person should review it (:data:`QUEUE_COLUMNS`, ``order`` from 1):
    suspected label errors first (as :func:`find_issues` ranks them, with the suggested class), then
    the rest by ascending score (least confident prediction first; ``suggested`` is the predicted
    class). ``given`` may hold "" for unlabelled items (label quality NaN)."""
    ids, probs, codes = _checked(ids, given, probs)
    head = pd.DataFrame(columns=list(ISSUE_COLUMNS))
    if (codes >= 0).any():
        head = find_issues(ids, given, probs).issues
    flagged = set(head["id"])
    scores = probs.max(axis=1) if len(ids) else np.zeros(0)
    quality = np.where(codes >= 0, probs[np.arange(len(ids)), np.clip(codes, 0, None)], np.nan)
    rest = [k for k in np.lexsort((np.arange(len(ids)), scores)) if ids[k] not in flagged]
    position = {item: k for k, item in enumerate(ids)}
    first = pd.DataFrame({
        "id": head["id"].astype(object), "reason": SUSPECTED, "given": head["given"],
        "suggested": head["suggested"], "label_quality": head["label_quality"].astype(np.float64),
        "score": [float(scores[position[i]]) for i in head["id"]],
    })
    second = pd.DataFrame({
        "id": pd.Series([ids[k] for k in rest], dtype=object), "reason": LOW_SCORE,
        "given": [str(given[k]) for k in rest], "suggested": [CLASS_KEYS[int(probs[k].argmax())] for k in rest],
        "label_quality": quality[rest] if rest else np.zeros(0), "score": scores[rest] if rest else np.zeros(0),
    })
    queue = pd.concat([first, second], ignore_index=True) if len(first) else second
    queue.insert(0, "order", np.arange(1, len(queue) + 1, dtype=np.int64))
    return queue.loc[:, list(QUEUE_COLUMNS)]


def relabel_next(predictions: object, labels: Mapping[str, str] | pd.Series) -> pd.DataFrame:
    """:func:`relabel_queue` for a :class:`~bst_core.predictions.Predictions` (``ids``, ``probs``) and
    the current labels by id (a workspace's edits over the source's labels; missing ids = unlabelled).
    Use out-of-fold predictions for the labelled items (see the module docstring)."""
    ids = list(predictions.ids)  # type: ignore[attr-defined]
    lookup = labels if isinstance(labels, Mapping) else labels.to_dict()
    return relabel_queue(ids, [str(lookup.get(i, "") or "") for i in ids],
                         np.asarray(predictions.probs))  # type: ignore[attr-defined]


def flag_metrics(flagged_ids: Sequence[str], true_ids: Sequence[str], n_items: int) -> dict[str, float]:
    """Precision and recall of a flagged set against the known wrong labels, and the chance
    precision (the fraction of wrong labels)."""
    flagged, truth = set(map(str, flagged_ids)), set(map(str, true_ids))
    hits = len(flagged & truth)
    return {"flagged": float(len(flagged)), "wrong": float(len(truth)), "hits": float(hits),
            "precision": hits / len(flagged) if flagged else float("nan"),
            "recall": hits / len(truth) if truth else float("nan"),
            "chance_precision": len(truth) / n_items if n_items else float("nan")}


__all__ = ["ISSUE_COLUMNS", "LOW_SCORE", "QUEUE_COLUMNS", "SUSPECTED", "LabelIssues", "find_issues",
           "flag_metrics", "relabel_next", "relabel_queue", "run_issues"]
