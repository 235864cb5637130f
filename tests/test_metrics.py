"""The challenge metric: hand-computed cases, the absent-class quirk, and a literal reference loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bst_core import metrics
from bst_core.errors import BadInputError
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS, NUM_CLASSES

# ---------------------------------------------------------------- the organizers' loop, transcribed


def _path(label: str) -> set[str]:
    return {label.split("-")[0], label}


def _weight(p: str, t: str, lam: float) -> float:
    if p == t:
        return 1.0
    return lam if p.split("-")[0] == t.split("-")[0] else 0.0


def reference_scores(truth: list[str], pred: list[str], lam: float, strict: bool = False) -> dict:
    """Direct transcription of evaluate.py's per-class loop (python loops, swallowed ZeroDivisionError)."""
    hp_all, hr_all, hf_all, dropped = [], [], [], []
    for c in sorted(set(truth)):
        try:
            try:
                ps = [_weight(p, t, lam) * len(_path(p) & _path(t)) / len(_path(p))
                      for t, p in zip(truth, pred, strict=True) if p == c]
                h_p = sum(ps) / len(ps)
            except ZeroDivisionError:
                if not strict:
                    raise
                h_p = 0.0
            rs = [_weight(p, t, lam) * len(_path(p) & _path(t)) / len(_path(t))
                  for t, p in zip(truth, pred, strict=True) if t == c]
            h_r = sum(rs) / len(rs)
            h_f = 2 * h_p * h_r / (h_p + h_r) if h_p + h_r > 0 else 0.0
        except ZeroDivisionError:
            dropped.append(c)
            continue
        hp_all.append(h_p)
        hr_all.append(h_r)
        hf_all.append(h_f)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    classes = sorted(set(truth))
    acc, hier = [], []
    for c in classes:
        rows = [(t, p) for t, p in zip(truth, pred, strict=True) if t == c]
        acc.append(sum(p == t for t, p in rows) / len(rows))
        hier.append(sum(1.0 if p == t else 0.5 if _weight(p, t, 1.0) else 0.0 for t, p in rows) / len(rows))
    return {
        "hP": mean(hp_all), "hR": mean(hr_all), "hF": mean(hf_all), "dropped": dropped,
        "leaf_accuracy": sum(p == t for t, p in zip(truth, pred, strict=True)) / len(truth),
        "top_accuracy": sum(_weight(p, t, 1.0) > 0 for t, p in zip(truth, pred, strict=True)) / len(truth),
        "macro_accuracy": mean(acc), "hierarchical_accuracy": mean(hier),
    }


def _random_labels(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    """Truth and prediction drawn from random class subsets, so some truth classes go unpredicted."""
    truth_classes = rng.choice(CLASS_KEYS, size=rng.integers(1, NUM_CLASSES + 1), replace=False)
    pred_classes = rng.choice(CLASS_KEYS, size=rng.integers(1, NUM_CLASSES + 1), replace=False)
    truth = rng.choice(truth_classes, size=n)
    pred = np.where(rng.random(n) < rng.random(), truth, rng.choice(pred_classes, size=n))
    return [str(x) for x in truth], [str(x) for x in pred]


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("absent", ["reference", "strict"])
def test_matches_literal_reference_loop(seed: int, absent: str) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = _random_labels(rng, int(rng.integers(1, 400)))
    lam = float(rng.choice([0.75, 0.5, 0.0, 1.0, rng.random()]))
    report = metrics.evaluate(truth, pred, lam=lam, absent=absent)
    expected = reference_scores(truth, pred, lam, strict=absent == "strict")
    for name in metrics.METRIC_NAMES:
        assert _close(getattr(report, name), expected[name]), (name, getattr(report, name), expected[name])
    assert sorted(report.dropped) == expected["dropped"]
    assert report.n == len(truth)


def test_reference_mode_actually_drops_classes_on_random_data() -> None:
    """Guard for the test above: some seeds must exercise the quirk, or it proves nothing."""
    dropped = [metrics.evaluate(*_random_labels(np.random.default_rng(s), 50)).dropped for s in range(12)]
    assert any(dropped)


# ----------------------------------------------------------------------------- hand-computed cases


def test_exact_hit_scores_one() -> None:
    report = metrics.evaluate(["fx-o", "m-sp"], ["fx-o", "m-sp"])
    assert (report.hP, report.hR, report.hF) == (1.0, 1.0, 1.0)
    assert report.leaf_accuracy == report.top_accuracy == report.hierarchical_accuracy == 1.0
    assert report.dropped == []


def test_same_top_miss_scores_0375() -> None:
    report = metrics.evaluate(["fx-o", "fx-v"], ["fx-v", "fx-o"])
    assert report.per_class.loc["fx-o", "hP"] == pytest.approx(0.375, abs=0)
    assert (report.hP, report.hR, report.hF) == (0.375, 0.375, 0.375)
    assert report.leaf_accuracy == 0.0
    assert report.top_accuracy == 1.0
    assert report.hierarchical_accuracy == 0.5


def test_cross_top_miss_scores_zero() -> None:
    report = metrics.evaluate(["fx-o", "m-sp"], ["m-sp", "fx-o"])
    assert (report.hP, report.hR, report.hF) == (0.0, 0.0, 0.0)
    assert report.top_accuracy == 0.0
    assert report.hierarchical_accuracy == 0.0


@pytest.mark.parametrize(("lam", "expected"), [(0.75, 0.375), (0.5, 0.25), (1.0, 0.5), (0.0, 0.0)])
def test_lambda_scales_the_same_top_credit(lam: float, expected: float) -> None:
    report = metrics.evaluate(["is-p", "is-s"], ["is-s", "is-p"], lam=lam)
    assert report.hF == pytest.approx(expected, abs=1e-15)
    assert report.lam == lam
    # hierarchical accuracy keeps its own fixed 0.5, whatever λ is
    assert report.hierarchical_accuracy == 0.5


def test_class_never_predicted_reference_vs_strict() -> None:
    truth, pred = ["fx-o", "fx-v"], ["fx-v", "fx-v"]
    ref = metrics.evaluate(truth, pred)
    # fx-o drops out; fx-v: hP = (0.375 + 1) / 2, hR = 1
    assert ref.dropped == ["fx-o"]
    assert ref.hP == 0.6875
    assert ref.hR == 1.0
    assert ref.hF == pytest.approx(2 * 0.6875 / 1.6875, abs=1e-15)
    assert not ref.per_class.loc["fx-o", "included"]
    assert math.isnan(ref.per_class.loc["fx-o", "hP"])
    assert ref.per_class.loc["fx-o", "hR"] == 0.375

    strict = metrics.evaluate(truth, pred, absent="strict")
    assert strict.dropped == []
    assert strict.absent == "strict"
    assert strict.per_class.loc["fx-o", ["hP", "hR", "hF"]].tolist() == [0.0, 0.375, 0.0]
    assert strict.hP == pytest.approx(0.6875 / 2, abs=1e-15)
    assert strict.hR == pytest.approx((1.0 + 0.375) / 2, abs=1e-15)
    assert strict.hF == pytest.approx((2 * 0.6875 / 1.6875) / 2, abs=1e-15)
    # accuracies never drop a class
    assert ref.macro_accuracy == strict.macro_accuracy == 0.5


def test_every_truth_class_unpredicted_gives_nan_in_reference_mode() -> None:
    ref = metrics.evaluate(["fx-o"], ["fx-v"])
    assert math.isnan(ref.hP) and math.isnan(ref.hF)
    assert ref.dropped == ["fx-o"]
    strict = metrics.evaluate(["fx-o"], ["fx-v"], absent="strict")
    assert (strict.hP, strict.hR, strict.hF) == (0.0, 0.375, 0.0)


def test_class_only_predicted_does_not_enter_the_means() -> None:
    report = metrics.evaluate(["fx-o", "fx-o"], ["fx-o", "ss-n"])
    # only fx-o is in the truth: hP(fx-o) = 1, hR(fx-o) = 0.5
    assert (report.hP, report.hR) == (1.0, 0.5)
    row = report.per_class.loc["ss-n"]
    assert (row.n_true, row.n_pred, row.hP, bool(row.included)) == (0, 1, 0.0, False)
    assert math.isnan(row.hR) and math.isnan(row.hF) and math.isnan(row.accuracy)


def test_accuracies_and_per_class_table() -> None:
    truth = ["fx-o", "fx-o", "fx-o", "m-sp"]
    pred = ["fx-o", "fx-v", "m-sp", "m-sp"]
    report = metrics.evaluate(truth, pred)
    assert report.leaf_accuracy == 0.5
    assert report.top_accuracy == 0.75
    assert report.macro_accuracy == pytest.approx((1 / 3 + 1) / 2)
    assert report.hierarchical_accuracy == pytest.approx(((1 + 0.5 + 0) / 3 + 1) / 2)
    table = report.per_class
    assert list(table.index) == list(CLASS_KEYS)
    assert list(table.columns) == list(metrics.PER_CLASS_COLUMNS)
    assert table.loc["fx-o", "n_true"] == 3 and table.loc["m-sp", "n_pred"] == 2
    assert table.loc["fx-o", "accuracy"] == pytest.approx(1 / 3)
    assert table["n_true"].sum() == table["n_pred"].sum() == 4


def test_accepts_numpy_and_pandas_inputs() -> None:
    import pandas as pd

    truth, pred = _random_labels(np.random.default_rng(3), 100)
    base = metrics.evaluate(truth, pred).to_dict()
    assert metrics.evaluate(np.array(truth), pd.Series(pred)).to_dict() == base


# ------------------------------------------------------------------------------------ bad input


def test_unequal_lengths_refused() -> None:
    with pytest.raises(BadInputError, match="3 labels but the prediction has 2"):
        metrics.evaluate(["fx-o"] * 3, ["fx-o"] * 2)


def test_unknown_labels_listed() -> None:
    with pytest.raises(BadInputError) as info:
        metrics.evaluate(["fx-o", "fx-other", "banana", "fx-o"], ["fx-o"] * 4)
    message = str(info.value)
    assert "2 truth label(s)" in message and "'fx-other'" in message and "'banana'" in message
    assert "-other" in message and "not targets" in message
    with pytest.raises(BadInputError, match="prediction"):
        metrics.evaluate(["fx-o"], [None])


@pytest.mark.parametrize("kwargs", [{"lam": 1.5}, {"lam": -0.1}, {"lam": "0.75"}, {"absent": "lenient"}])
def test_bad_options_refused(kwargs: dict) -> None:
    with pytest.raises(BadInputError):
        metrics.evaluate(["fx-o"], ["fx-o"], **kwargs)


def test_empty_and_single_string_refused() -> None:
    with pytest.raises(BadInputError, match="nothing to evaluate"):
        metrics.evaluate([], [])
    with pytest.raises(BadInputError, match="single string"):
        metrics.evaluate("fx-o", "fx-o")


# ------------------------------------------------------------------ confusion, summary, formatting


def test_confusion_matrix_rows_are_truth() -> None:
    matrix = metrics.confusion_matrix(["fx-o", "fx-o", "m-sp"], ["fx-v", "fx-o", "fx-o"])
    assert matrix.shape == (NUM_CLASSES, NUM_CLASSES) and matrix.dtype.kind == "i"
    assert matrix[CLASS_INDEX["fx-o"], CLASS_INDEX["fx-v"]] == 1
    assert matrix[CLASS_INDEX["fx-o"], CLASS_INDEX["fx-o"]] == 1
    assert matrix[CLASS_INDEX["m-sp"], CLASS_INDEX["fx-o"]] == 1
    assert matrix.sum() == 3


def test_summarize_uses_population_std() -> None:
    a = metrics.evaluate(["fx-o", "m-sp"], ["fx-o", "m-sp"])   # hF 1
    b = metrics.evaluate(["fx-o", "m-sp"], ["m-sp", "fx-o"])   # hF 0
    summary = metrics.summarize([a, b])
    assert summary["hF"] == (0.5, 0.5)
    assert set(summary) == set(metrics.METRIC_NAMES)


def test_format_table_names_mode_and_lambda() -> None:
    a = metrics.evaluate(["fx-o", "fx-v"], ["fx-v", "fx-v"])
    b = metrics.evaluate(["fx-o", "m-sp"], ["fx-o", "m-sp"])
    text = metrics.format_table([a, b], title="BSD10k")
    assert text.splitlines()[0] == "BSD10k"
    assert "λ = 0.75" in text and "reference" in text
    assert "fold 1" in text and "fold 2" in text and "±" in text
    assert "68.75" in text                       # a's hP in percent, 2 decimals
    assert "fold 1: dropped from hP/hR/hF (never predicted): fx-o" in text
    single = metrics.format_table(metrics.evaluate(["fx-o"], ["fx-o"], absent="strict", lam=0.5))
    assert "λ = 0.5" in single and "strict" in single and "100.00" in single and "±" not in single
    from_summary = metrics.format_table(metrics.summarize([a, b]), lam=0.75, absent="reference")
    assert "mean ± std" in from_summary and "reference" in from_summary
    per_class = metrics.format_per_class(a)
    assert "fx-o" in per_class and "no" in per_class and "68.75" in per_class


def test_to_dict_is_json_ready_and_round_trips() -> None:
    report = metrics.evaluate(["fx-o", "fx-v", "m-sp"], ["fx-v", "fx-v", "m-sp"])
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert set(metrics.METRIC_NAMES) <= set(data)
    assert {"per_class", "lam", "absent", "dropped", "n"} <= set(data)
    assert data["per_class"]["fx-o"]["hP"] is None and data["per_class"]["fx-o"]["included"] is False
    assert data["dropped"] == ["fx-o"] and data["n"] == 3
    back = metrics.MetricReport.from_dict(json.loads(text))
    assert back.to_dict() == data
    assert back.per_class["included"].dtype == bool
