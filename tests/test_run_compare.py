"""Two runs side by side (bst_core.run_compare, `bst compare`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bst_core import cli, pipeline
from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.report import TABLE1_METRICS, class_hf
from bst_core.run_compare import CHANGED_COLUMNS, changed_predictions, compare_runs
from bst_core.synthetic import make_corpus
from bst_core.taxonomy import CLASS_KEYS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short runs of one synthetic corpus: text and audio mode (2 folds each)."""
    base = tmp_path_factory.mktemp("compare")
    corpus = make_corpus(n_per_class=10, dim=32, seed=6)
    out = []
    for mode in ("text", "audio"):
        config = TrainConfig(mode=mode, folds=2, epochs=10, batch_size=16, patience=None, val_fraction=0.4, seed=6)
        pipeline.cross_validate(corpus, base / f"run-{mode}", config)
        out.append(base / f"run-{mode}")
    return out


def _oof(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "truth", "prediction", "score"])


def test_changed_predictions_names_each_kind_of_change() -> None:
    a = _oof([("1", "fx-o", "fx-o", 0.9), ("2", "fx-o", "fx-a", 0.5), ("3", "m-sp", "m-sp", 0.8),
              ("4", "m-sp", "fx-a", 0.4), ("5", "", "ss-n", 0.3), ("6", "sp-s", "sp-s", 0.7),
              ("7", "sp-s", "x", 0.1)])
    b = _oof([("1", "fx-o", "fx-o", 0.8), ("2", "fx-o", "fx-o", 0.6), ("3", "m-sp", "fx-a", 0.55),
              ("4", "m-sp", "ss-n", 0.35), ("5", "", "ss-u", 0.3), ("6", "sp-s", "sp-s", 0.9),
              ("8", "sp-s", "sp-s", 1)])
    changed, common, only_a, only_b = changed_predictions(a, b)
    assert list(changed.columns) == list(CHANGED_COLUMNS)
    assert (common, only_a, only_b) == (6, 1, 1)
    assert changed["id"].tolist() == ["2", "3", "4", "5"]          # fixed, broken, other, unlabelled
    assert changed["change"].tolist() == ["fixed", "broken", "other", "unlabelled"]
    assert changed.loc[0, ["prediction_a", "prediction_b"]].tolist() == ["fx-a", "fx-o"]
    assert changed.loc[1, "score_b"] == pytest.approx(0.55)


def test_comparison_equals_the_runs_own_figures(runs: list[Path]) -> None:
    a, b = (pipeline.load_run(r) for r in runs)
    comparison = compare_runs(a, b)
    for (metric, _label), row in zip(TABLE1_METRICS, comparison.metrics.itertuples(index=False), strict=True):
        assert row.metric == metric
        assert row.mean_a == pytest.approx(a.summary[metric][0], abs=1e-12)
        assert row.delta == pytest.approx(b.summary[metric][0] - a.summary[metric][0], abs=1e-12)
    hf_a, hf_b = class_hf(a), class_hf(b)
    assert comparison.per_class["class"].tolist() == list(CLASS_KEYS)
    for rec in comparison.per_class.itertuples(index=False):
        if hf_a[rec[0]] == hf_a[rec[0]] and hf_b[rec[0]] == hf_b[rec[0]]:
            assert rec.delta == pytest.approx(hf_b[rec[0]] - hf_a[rec[0]], abs=1e-12)
    # the changed clips are exactly the ids whose out-of-fold prediction differs
    left = a.oof.set_index("id")["prediction"]
    right = b.oof.set_index("id")["prediction"].reindex(left.index)
    expected = set(left.index[left != right].astype(str))
    assert expected, "the two runs should disagree somewhere on this corpus"
    assert set(comparison.changed["id"]) == expected
    assert comparison.n_common == len(a.oof)
    fixed = comparison.changed[comparison.changed["change"] == "fixed"]
    assert (fixed["prediction_b"] == fixed["truth"]).all() and (fixed["prediction_a"] != fixed["truth"]).all()
    assert "changed prediction" in comparison.markdown()


def test_a_run_is_not_compared_with_itself(runs: list[Path]) -> None:
    a = pipeline.load_run(runs[0])
    with pytest.raises(BadInputError, match="itself"):
        compare_runs(a, a)


def test_cli_compare_prints_the_tables_and_writes_the_changed_clips(runs: list[Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "changed.csv"
    assert cli.main(["compare", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Δ (B − A)" in printed and "hF" in printed
    changed = pd.read_csv(out, dtype={"id": str})
    assert list(changed.columns) == list(CHANGED_COLUMNS)
    assert set(changed["id"]) == set(compare_runs(*(pipeline.load_run(r) for r in runs)).changed["id"])
    assert cli.main(["compare", *map(str, runs), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["command"] == "compare" and data["changed"] == len(changed)
    assert cli.main(["compare", str(runs[0]), str(tmp_path)]) == 2      # not a run folder: bad input
