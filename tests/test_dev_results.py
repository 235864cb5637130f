"""Development results: overall = fold means; class-wise over the same folds for hP, hR, hF, accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bst_core import dev_results, metrics
from bst_core.errors import BadInputError

# fx-o is predicted in fold B only: hP = 3/5 = 0.6, hR = 1, hF = 0.75. In fold A it is never predicted
# (hP, hF undefined) but has hR = 0.375. Averaging hR over both folds but hP/hF over fold B alone gave
# hP 0.6, hR 0.6875, hF 0.75: an hF above both.
FOLD_A = metrics.evaluate(["fx-o", "m-sp", "ss-n"], ["fx-v", "m-sp", "ss-n"])
FOLD_B = metrics.evaluate(["fx-o", "fx-o", "fx-o", "m-sp", "m-sp", "ss-n"],
                          ["fx-o", "fx-o", "fx-o", "fx-o", "fx-o", "ss-n"])
POOLED = metrics.evaluate(["fx-o", "m-sp", "ss-n", "fx-o", "fx-o", "fx-o", "m-sp", "m-sp", "ss-n"],
                          ["fx-v", "m-sp", "ss-n", "fx-o", "fx-o", "fx-o", "fx-o", "fx-o", "ss-n"])


def test_overall_figures_are_fold_means() -> None:
    report = dev_results.development_report([FOLD_A, FOLD_B], POOLED)
    for name in metrics.METRIC_NAMES:
        assert getattr(report, name) == pytest.approx(np.mean([getattr(FOLD_A, name), getattr(FOLD_B, name)]))
    assert report.n_folds == 2 and report.n == POOLED.n
    assert report.lam == 0.75 and report.absent == "reference"


def test_class_wise_uses_the_same_folds_for_all_figures() -> None:
    report = dev_results.development_report([FOLD_A, FOLD_B], POOLED)
    row = report.per_class.loc["fx-o"]
    assert (row.hP, row.hR, row.hF) == pytest.approx((0.6, 1.0, 0.75))
    assert row.accuracy == pytest.approx(1.0)
    assert row.folds == 1 and bool(row.included)
    for key, r in report.per_class.iterrows():                 # never an hF above both hP and hR
        if not math.isnan(r.hF):
            assert r.hF <= max(r.hP, r.hR) + 1e-12, key
    m_sp = report.per_class.loc["m-sp"]                         # included in fold A only
    assert m_sp.folds == 1 and m_sp.hR == pytest.approx(1.0)
    unseen = report.per_class.loc["is-p"]
    assert unseen.folds == 0 and math.isnan(unseen.hP) and not bool(unseen.included)
    assert set(report.dropped) == {"fx-o", "m-sp"}                # dropped in at least one fold
    assert "same folds" in report.class_wise and "predicted and present" in report.class_wise


def test_strict_mode_method_and_dict_round_trip() -> None:
    a = metrics.evaluate(["fx-o", "m-sp"], ["fx-v", "m-sp"], absent="strict")
    b = metrics.evaluate(["fx-o", "m-sp"], ["fx-o", "m-sp"], absent="strict")
    report = dev_results.development_report([a, b], metrics.evaluate(["fx-o"] * 2 + ["m-sp"] * 2,
                                                                     ["fx-v", "fx-o", "m-sp", "m-sp"],
                                                                     absent="strict"))
    assert report.per_class.loc["fx-o", "folds"] == 2
    assert report.per_class.loc["fx-o", "hP"] == pytest.approx(0.5)     # 0 (never predicted) and 1
    assert "counted as 0" in report.class_wise
    data = report.to_dict()
    assert data["n_folds"] == 2 and data["per_class"]["fx-o"]["folds"] == 2
    back = dev_results.from_run_metrics({"folds": [a.to_dict(), b.to_dict()], "pooled": report.to_dict()})
    assert back is not None and back.per_class.loc["fx-o", "hP"] == pytest.approx(0.5)


def test_from_run_metrics_without_folds_is_none() -> None:
    assert dev_results.from_run_metrics({}) is None
    assert dev_results.from_run_metrics({"folds": [], "pooled": POOLED.to_dict()}) is None


def test_refuses_no_folds_or_mixed_settings() -> None:
    with pytest.raises(BadInputError, match="no fold"):
        dev_results.development_report([], POOLED)
    other_lambda = metrics.evaluate(["fx-o"], ["fx-o"], lam=0.5)
    with pytest.raises(BadInputError, match="λ"):
        dev_results.development_report([FOLD_A, other_lambda], POOLED)
