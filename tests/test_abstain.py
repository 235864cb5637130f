"""Hierarchical abstain (bst_core.abstain; `bst predict --abstain T` once cli.py is wired)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import cli, pipeline
from bst_core.abstain import (
    ABSTAIN_COLUMNS,
    abstain_frame,
    abstained,
    add_abstain_argument,
    threshold_arg,
    top_level_probs,
)
from bst_core.errors import BadInputError
from bst_core.predictions import Predictions
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS, TOP_LEVELS, top_of


def _predictions() -> Predictions:
    rows = [
        {"fx-o": 0.80, "fx-v": 0.10},                  # clear leaf
        {"fx-o": 0.40, "fx-v": 0.30, "fx-m": 0.20},    # leaf unsure, fx clear (0.9)
        {"fx-o": 0.30, "ss-n": 0.25, "m-sp": 0.25},    # nothing clear
        {"fx-o": 0.35, "ss-n": 0.30, "ss-u": 0.30},    # leaf fx-o, but ss sums to more (0.6)
        {"is-s": 0.5},                                  # leaf exactly at the threshold
    ]
    probs = np.zeros((len(rows), len(CLASS_KEYS)))
    for r, row in enumerate(rows):
        for key, value in row.items():
            probs[r, CLASS_INDEX[key]] = value
        rest = [k for k in range(len(CLASS_KEYS)) if probs[r, k] == 0]
        probs[r, rest] = (1 - probs[r].sum()) / len(rest)
    return Predictions([f"item{r}" for r in range(len(rows))], probs)


def test_decision_is_the_leaf_or_the_top_level_exactly_as_documented() -> None:
    predictions = _predictions()
    frame = abstain_frame(predictions, 0.5)
    assert list(frame.columns) == list(ABSTAIN_COLUMNS)
    assert frame["decision"].tolist() == ["fx-o", "fx", "fx-o", "ss", "is-s"]
    assert frame["top_level"].tolist() == ["fx", "fx", "fx", "ss", "is"]
    sums = top_level_probs(predictions.probs)
    for r in range(len(predictions)):
        manual = {t: sum(predictions.probs[r, k] for k, key in enumerate(CLASS_KEYS) if top_of(key) == t)
                  for t in TOP_LEVELS}
        assert frame["top_level_score"].iloc[r] == pytest.approx(max(manual.values()))
        assert sums[r].tolist() == pytest.approx([manual[t] for t in TOP_LEVELS])
    assert abstained(frame["decision"]).tolist() == [False, True, False, True, False]
    # a threshold of 1 abstains nowhere (no top level is certain); a low one never needs to
    assert not abstained(abstain_frame(predictions, 1.0)["decision"]).any()
    assert abstain_frame(predictions, 0.05)["decision"].tolist() == predictions.labels


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_a_threshold_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(BadInputError, match="threshold"):
        abstain_frame(_predictions(), bad)
    with pytest.raises(argparse.ArgumentTypeError):
        threshold_arg(str(bad))


def test_the_csv_adds_the_columns_after_audio_status_and_is_unchanged_without_a_threshold(tmp_path: Path) -> None:
    predictions = _predictions()
    plain = pipeline.write_predictions_csv(predictions, tmp_path / "plain.csv", probabilities=True)
    same = pipeline.write_predictions_csv(predictions, tmp_path / "same.csv", probabilities=True, abstain=None)
    assert plain.read_bytes() == same.read_bytes()
    out = pipeline.write_predictions_csv(predictions, tmp_path / "abstain.csv", probabilities=True, abstain=0.5)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    head = ["id", "predicted_bst_second_level_class", "prediction_score", "audio_status", *ABSTAIN_COLUMNS]
    assert list(frame.columns[:7]) == head and list(frame.columns[7:]) == list(CLASS_KEYS)
    assert frame["decision"].tolist() == ["fx-o", "fx", "fx-o", "ss", "is-s"]
    assert frame["predicted_bst_second_level_class"].tolist() == predictions.labels   # the leaf always stays


def test_the_parser_option_refuses_a_bad_value_with_exit_2() -> None:
    parser = argparse.ArgumentParser(prog="bst predict")
    add_abstain_argument(parser)
    assert parser.parse_args(["--abstain", "0.6"]).abstain == 0.6
    assert parser.parse_args([]).abstain is None
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--abstain", "2"])
    assert exc.value.code == 2


def test_cli_predict_abstain_end_to_end(tmp_path: Path, eval_root: Path) -> None:
    from bst_core.config import TrainConfig
    from bst_core.synthetic import make_corpus

    run = tmp_path / "run"
    pipeline.cross_validate(make_corpus(n_per_class=6), run, TrainConfig(folds=2, epochs=1, batch_size=16,
                                                                         patience=None, val_fraction=0.4))
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(run), str(eval_root), "--out", str(out), "--abstain", "0.5", "-q"]) == 0
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(ABSTAIN_COLUMNS) <= set(frame.columns)
    leaf = frame["predicted_bst_second_level_class"]
    decision = frame["decision"]
    assert ((decision == leaf) | (decision == frame["top_level"])).all()
