"""Development results of a cross-validation run, as the challenge reports them.

Overall figures are the means of the fold figures. Class-wise hP, hR, hF and accuracy of a class are
means over the *same* folds: those where the class is included in that fold's hP/hR/hF (present and
predicted in ``reference`` mode; present in ``strict`` mode, where a never-predicted class counts as
0). Averaging each figure over its own folds would let hF exceed both hP and hR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bst_core.errors import BadInputError
from bst_core.metrics import METRIC_NAMES, MetricReport
from bst_core.taxonomy import CLASS_KEYS

CLASS_WISE_METHODS: dict[str, str] = {
    "reference": "mean over the same folds for hP, hR, hF and accuracy: the folds where the class "
                 "was predicted and present",
    "strict": "mean over the same folds for hP, hR, hF and accuracy: the folds where the class was "
              "present (counted as 0 in a fold that never predicted it)",
}
_CLASS_COLUMNS = ("hP", "hR", "hF", "accuracy")


@dataclass
class DevelopmentReport(MetricReport):
    """A :class:`MetricReport` of fold means; ``per_class`` has a ``folds`` column (folds averaged).

    ``n_folds`` is the number of folds, ``class_wise`` says how class-wise values were averaged,
    ``dropped`` lists the classes left out of the means in at least one fold, ``n`` counts all
    samples of all folds.
    """

    n_folds: int = 0
    class_wise: str = ""

    def to_dict(self) -> dict[str, Any]:
        """:meth:`MetricReport.to_dict` plus ``n_folds``, ``class_wise`` and per-class ``folds``."""
        out = super().to_dict()
        for key, row in self.per_class.iterrows():
            out["per_class"][str(key)]["folds"] = int(row.folds)
        out.update(n_folds=int(self.n_folds), class_wise=self.class_wise)
        return out


def development_report(fold_reports: Sequence[MetricReport], pooled: MetricReport) -> DevelopmentReport:
    """Fold means of ``fold_reports`` (one per cross-validation fold, same λ and absent mode).

    ``pooled`` (the out-of-fold report over all folds) supplies ``n_true``/``n_pred`` and ``n``.
    Raises :class:`BadInputError` for no folds or folds scored with different settings.
    """
    folds = list(fold_reports)
    if not folds:
        raise BadInputError("There are no fold reports: no fold of this run has finished yet.")
    settings = {(float(f.lam), str(f.absent)) for f in folds}
    if len(settings) > 1:
        shown = ", ".join(f"λ = {lam:g} / {absent}" for lam, absent in sorted(settings))
        raise BadInputError(f"The folds were scored with different settings ({shown}); score them alike.")
    lam, absent = settings.pop()

    used = np.vstack([_used_folds(f) for f in folds])                   # (folds, classes)
    count = used.sum(axis=0)
    table = pooled.per_class.reindex(CLASS_KEYS).copy()
    for column in _CLASS_COLUMNS:
        values = np.vstack([f.per_class.reindex(CLASS_KEYS)[column].to_numpy(dtype=float) for f in folds])
        total = np.where(used, values, 0.0).sum(axis=0)
        table[column] = np.divide(total, count, out=np.full(len(CLASS_KEYS), np.nan), where=count > 0)
    table["included"] = count > 0
    table["folds"] = count.astype(int)

    dropped_any = {key for f in folds for key in f.dropped}
    means = {name: float(np.mean([getattr(f, name) for f in folds])) for name in METRIC_NAMES}
    return DevelopmentReport(
        **means, per_class=table, lam=lam, absent=absent,
        dropped=[key for key in CLASS_KEYS if key in dropped_any], n=int(pooled.n),
        n_folds=len(folds), class_wise=CLASS_WISE_METHODS.get(absent, CLASS_WISE_METHODS["reference"]),
    )


def from_run_metrics(run_metrics: Mapping[str, Any]) -> DevelopmentReport | None:
    """:func:`development_report` of a run's ``metrics.json`` dict (``folds`` and ``pooled``); None without folds."""
    folds = [MetricReport.from_dict(f) for f in run_metrics.get("folds") or []]
    if not folds:
        return None
    pooled = run_metrics.get("pooled")
    if not isinstance(pooled, Mapping):
        raise BadInputError("The run's metrics have folds but no pooled report: train the run again.")
    return development_report(folds, MetricReport.from_dict(pooled))


def _used_folds(report: MetricReport) -> np.ndarray:
    """Per class: included in this fold's means, with hP, hR and hF all defined."""
    table = report.per_class.reindex(CLASS_KEYS)
    defined = np.all(np.isfinite(table.loc[:, ["hP", "hR", "hF"]].to_numpy(dtype=float)), axis=1)
    return table["included"].fillna(False).to_numpy(dtype=bool) & defined
