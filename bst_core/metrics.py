"""The DCASE 2026 Task 1 metric: hierarchical precision, recall and F-score, exactly as scored.

For a prediction ``p`` and truth ``t`` with two-node label paths (top level, second-level key), a
sample scores ``w · |path(p) ∩ path(t)| / 2`` where ``w`` is 1 for an exact hit, ``λ`` when only the
top level matches and 0 otherwise: 1 for a hit, ``λ/2`` (0.375 at λ = 0.75) for a same-top miss, 0
across top levels. Per class ``c`` present in the truth:

- ``hP(c)`` = mean score of the samples predicted ``c``
- ``hR(c)`` = mean score of the samples whose truth is ``c``
- ``hF(c)`` = ``2·hP·hR / (hP + hR)``, 0 when both are 0

and the overall hP, hR, hF are unweighted means over those classes.

The organizers' ``evaluate.py`` takes the mean of an empty list for a class that is in the truth but
never predicted; the ``ZeroDivisionError`` is swallowed and the class drops out of all three means.
``absent="reference"`` (the default, the challenge's numbers) reproduces that and lists the dropped
classes; ``absent="strict"`` counts such a class with ``hP = 0`` (so ``hF = 0``).

Everything is computed with numpy over integer class codes (35k samples in a few milliseconds).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from bst_core.errors import BadInputError
from bst_core.taxonomy import CLASS_KEYS, NUM_CLASSES, TOP_LEVELS, classify_label, top_of

AbsentMode = Literal["reference", "strict"]
ABSENT_MODES: tuple[str, ...] = ("reference", "strict")
RANKING_LAMBDA = 0.75
"""λ used to rank the challenge."""
HIERARCHICAL_ACCURACY_LAMBDA = 0.5
"""Credit of a same-top miss in "hierarchical accuracy" (fixed, as in the reference code)."""

METRIC_NAMES: tuple[str, ...] = (
    "hP", "hR", "hF", "leaf_accuracy", "top_accuracy", "macro_accuracy", "hierarchical_accuracy",
)
METRIC_LABELS: dict[str, str] = {
    "hP": "hP", "hR": "hR", "hF": "hF",
    "leaf_accuracy": "leaf accuracy", "top_accuracy": "top-level accuracy",
    "macro_accuracy": "macro accuracy", "hierarchical_accuracy": "hierarchical accuracy",
}
PER_CLASS_COLUMNS: tuple[str, ...] = ("n_true", "n_pred", "hP", "hR", "hF", "accuracy", "included")
ABSENT_DESCRIPTIONS: dict[str, str] = {
    "reference": "reference (as the organizers' evaluate.py: a class never predicted drops out of hP/hR/hF)",
    "strict": "strict (a class never predicted counts with hP = 0, hF = 0)",
}

_KEY_INDEX = pd.Index(CLASS_KEYS, dtype=object)
_TOP_CODE = np.array([TOP_LEVELS.index(top_of(key)) for key in CLASS_KEYS], dtype=np.int64)


@dataclass
class MetricReport:
    """All challenge figures for one set of predictions; values are fractions in [0, 1].

    ``hP``/``hR``/``hF`` are NaN when no class is included (nothing to average).
    """

    hP: float
    hR: float
    hF: float
    leaf_accuracy: float
    top_accuracy: float
    macro_accuracy: float
    hierarchical_accuracy: float
    per_class: pd.DataFrame
    lam: float = RANKING_LAMBDA
    absent: str = "reference"
    dropped: list[str] = field(default_factory=list)
    n: int = 0

    def metrics(self) -> dict[str, float]:
        """The seven headline figures by name (:data:`METRIC_NAMES`)."""
        return {name: float(getattr(self, name)) for name in METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes ``None``); the shape of ``bst evaluate --json``."""
        out: dict[str, Any] = {name: _json_float(value) for name, value in self.metrics().items()}
        out["per_class"] = {
            str(key): {
                "hP": _json_float(row.hP), "hR": _json_float(row.hR), "hF": _json_float(row.hF),
                "accuracy": _json_float(row.accuracy),
                "n_true": int(row.n_true), "n_pred": int(row.n_pred), "included": bool(row.included),
            }
            for key, row in self.per_class.iterrows()
        }
        out.update(lam=float(self.lam), absent=self.absent, dropped=list(self.dropped), n=int(self.n))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a run's ``metrics.json``)."""
        try:
            rows = data["per_class"]
            table = pd.DataFrame(
                {
                    "n_true": [int(rows[k]["n_true"]) if k in rows else 0 for k in CLASS_KEYS],
                    "n_pred": [int(rows[k]["n_pred"]) if k in rows else 0 for k in CLASS_KEYS],
                    **{col: [_from_json_float(rows.get(k, {}).get(col)) for k in CLASS_KEYS]
                       for col in ("hP", "hR", "hF", "accuracy")},
                    "included": [bool(rows.get(k, {}).get("included", False)) for k in CLASS_KEYS],
                },
                index=pd.Index(CLASS_KEYS, name="class"),
            )
            return cls(
                **{name: _from_json_float(data[name]) for name in METRIC_NAMES},
                per_class=table,
                lam=float(data["lam"]), absent=str(data["absent"]),
                dropped=[str(k) for k in data.get("dropped", [])], n=int(data["n"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInputError(f"These metrics cannot be read ({exc!r}): expected the output of "
                                "MetricReport.to_dict (hP, hR, hF, ..., per_class, lam, absent, n).") from exc


def evaluate(truth: Sequence[str], pred: Sequence[str], *, lam: float = RANKING_LAMBDA,
             absent: AbsentMode = "reference") -> MetricReport:
    """Score predictions against the truth with the challenge metric (see the module docstring).

    ``truth`` and ``pred`` are equally long sequences of the 23 second-level keys. Raises
    :class:`BadInputError` for unequal lengths, no samples, a label that is not a target key, a λ
    outside [0, 1] or an unknown ``absent`` mode.
    """
    if absent not in ABSENT_MODES:
        raise BadInputError(f"Unknown absent-class mode {absent!r}: use 'reference' or 'strict'.")
    if isinstance(lam, bool) or not (isinstance(lam, numbers.Real) and 0.0 <= float(lam) <= 1.0):
        raise BadInputError(f"λ must be a number between 0 and 1 (the challenge uses 0.75), not {lam!r}.")
    t = _codes(truth, "truth")
    p = _codes(pred, "prediction")
    if len(t) != len(p):
        raise BadInputError(f"The truth has {len(t)} labels but the prediction has {len(p)}: "
                            "give one prediction per truth label, in the same order.")
    if len(t) == 0:
        raise BadInputError("There is nothing to evaluate: the truth and the prediction are empty.")

    exact = t == p
    same_top = _TOP_CODE[t] == _TOP_CODE[p]
    # w · |path(p) ∩ path(t)| / |path|: 1·2/2 for a hit, λ·1/2 within a top level, else 0.
    score = np.where(exact, 1.0, np.where(same_top, float(lam) * 1 / 2, 0.0))
    hier = np.where(exact, 1.0, np.where(same_top, HIERARCHICAL_ACCURACY_LAMBDA, 0.0))

    n_true = np.bincount(t, minlength=NUM_CLASSES)
    n_pred = np.bincount(p, minlength=NUM_CLASSES)
    present, predicted = n_true > 0, n_pred > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        h_p = np.bincount(p, weights=score, minlength=NUM_CLASSES) / n_pred
        h_r = np.bincount(t, weights=score, minlength=NUM_CLASSES) / n_true
        accuracy = np.bincount(t, weights=exact.astype(float), minlength=NUM_CLASSES) / n_true
        hier_accuracy = np.bincount(t, weights=hier, minlength=NUM_CLASSES) / n_true
    h_p[~predicted] = np.nan
    h_r[~present] = np.nan
    accuracy[~present] = np.nan
    hier_accuracy[~present] = np.nan

    if absent == "strict":
        included = present.copy()
        h_p[present & ~predicted] = 0.0
    else:
        included = present & predicted
    dropped = [CLASS_KEYS[i] for i in np.flatnonzero(present & ~included)]

    defined = ~np.isnan(h_p) & ~np.isnan(h_r)
    h_f = np.full(NUM_CLASSES, np.nan)
    denominator = h_p[defined] + h_r[defined]
    h_f[defined] = np.divide(2 * h_p[defined] * h_r[defined], denominator,
                             out=np.zeros_like(denominator), where=denominator > 0)

    per_class = pd.DataFrame(
        {"n_true": n_true, "n_pred": n_pred, "hP": h_p, "hR": h_r, "hF": h_f,
         "accuracy": accuracy, "included": included},
        index=pd.Index(CLASS_KEYS, name="class"),
    )
    return MetricReport(
        hP=_mean(h_p[included]), hR=_mean(h_r[included]), hF=_mean(h_f[included]),
        leaf_accuracy=float(exact.mean()), top_accuracy=float(same_top.mean()),
        macro_accuracy=_mean(accuracy[present]), hierarchical_accuracy=_mean(hier_accuracy[present]),
        per_class=per_class, lam=float(lam), absent=absent, dropped=dropped, n=len(t),
    )


def confusion_matrix(truth: Sequence[str], pred: Sequence[str]) -> np.ndarray:
    """(23, 23) counts in taxonomy order: rows are the truth, columns the prediction."""
    t = _codes(truth, "truth")
    p = _codes(pred, "prediction")
    if len(t) != len(p):
        raise BadInputError(f"The truth has {len(t)} labels but the prediction has {len(p)}: "
                            "give one prediction per truth label, in the same order.")
    flat = np.bincount(t * NUM_CLASSES + p, minlength=NUM_CLASSES * NUM_CLASSES)
    return flat.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64)


def summarize(reports: Sequence[MetricReport]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation (``ddof=0``) of each headline figure over several reports."""
    if not reports:
        raise BadInputError("There are no reports to summarize.")
    out: dict[str, tuple[float, float]] = {}
    for name in METRIC_NAMES:
        values = np.array([getattr(report, name) for report in reports], dtype=float)
        out[name] = (float(np.mean(values)), float(np.std(values, ddof=0)))
    return out


def format_table(results: MetricReport | Sequence[MetricReport] | Mapping[str, tuple[float, float]], *,
                 title: str | None = None, lam: float | None = None, absent: str | None = None) -> str:
    """A plain-text table of the headline figures in percent (2 decimals).

    ``results`` is one report (a value column), several reports (one column per fold, then
    mean ± std) or a :func:`summarize` dict (mean ± std; pass ``lam`` and ``absent`` to name them).
    The header says λ and the absent-class mode; dropped classes are listed under the table.
    """
    if isinstance(results, MetricReport):
        reports: list[MetricReport] = [results]
    elif isinstance(results, Mapping):
        reports = []
    else:
        reports = list(results)
        if not reports:
            raise BadInputError("There are no reports to format.")
    if reports:
        lam = reports[0].lam if lam is None else lam
        absent = reports[0].absent if absent is None else absent

    if isinstance(results, Mapping):
        summary = dict(results)
        headers, cells = ["mean ± std"], {n: [_pm(*summary[n])] for n in METRIC_NAMES if n in summary}
    elif len(reports) == 1:
        headers, cells = ["value"], {n: [_pct(getattr(reports[0], n))] for n in METRIC_NAMES}
    else:
        summary = summarize(reports)
        headers = [f"fold {k}" for k in range(1, len(reports) + 1)] + ["mean ± std"]
        cells = {n: [_pct(getattr(r, n)) for r in reports] + [_pm(*summary[n])] for n in METRIC_NAMES}

    lines = [title] if title else []
    lam_text = "?" if lam is None else f"{lam:g}"
    lines.append(f"λ = {lam_text}; absent classes: {ABSENT_DESCRIPTIONS.get(str(absent), absent or '?')}")
    rows = [[METRIC_LABELS.get(name, name), *row] for name, row in cells.items()]
    lines += _render(["metric", *headers], rows)
    lines.append("values in percent")
    for k, report in enumerate(reports, start=1):
        if report.dropped:
            where = f"fold {k}: " if len(reports) > 1 else ""
            lines.append(f"{where}dropped from hP/hR/hF (never predicted): {', '.join(report.dropped)}")
    return "\n".join(lines)


def format_per_class(report: MetricReport) -> str:
    """A plain-text per-class table (percent, 2 decimals; '-' where undefined)."""
    table = report.per_class
    headers = ["class", "n_true", "n_pred", "hP", "hR", "hF", "accuracy", "included"]
    rows = [
        [str(key), str(int(row.n_true)), str(int(row.n_pred)), _pct(row.hP), _pct(row.hR), _pct(row.hF),
         _pct(row.accuracy), "yes" if row.included else "no"]
        for key, row in table.iterrows()
    ]
    head = f"λ = {report.lam:g}; absent classes: {ABSENT_DESCRIPTIONS.get(report.absent, report.absent)}"
    return "\n".join([head, *_render(headers, rows, rule=False)])


def _render(headers: list[str], rows: list[list[str]], *, rule: bool = True) -> list[str]:
    """Text table lines: first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    return [line(headers), *([line(["-" * w for w in widths])] if rule else []), *(line(r) for r in rows)]


def _codes(labels: Sequence[str], what: str) -> np.ndarray:
    """Integer class codes in taxonomy order; BadInputError listing labels that are not targets."""
    if isinstance(labels, str | bytes):
        raise BadInputError(f"The {what} must be a sequence of class keys, not the single string {labels!r}.")
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1:
        raise BadInputError(f"The {what} must be a flat sequence of class keys (got shape {values.shape}).")
    codes = _KEY_INDEX.get_indexer(values).astype(np.int64, copy=False)
    bad_rows = np.flatnonzero(codes < 0)
    if len(bad_rows):
        bad = pd.unique(values[bad_rows])
        shown = ", ".join(repr(b) for b in bad[:5]) + (", ..." if len(bad) > 5 else "")
        hint = ""
        if any(classify_label(b) in ("other", "top") for b in bad[:50]):
            hint = " '-other' and top-level-only labels are not targets: leave those rows out first."
        raise BadInputError(
            f"{len(bad_rows)} {what} label(s) are not one of the 23 BST second-level keys: {shown}. "
            f"Use keys such as 'fx-o' or 'm-sp'.{hint}")
    return codes


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _json_float(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _from_json_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _pm(mean: float, std: float) -> str:
    return "-" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"
