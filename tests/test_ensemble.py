"""Ensemble: averaging the fold models, output table, refusing mismatched embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from bst_core.corpus import Corpus, EncoderInfo, empty_table
from bst_core.ensemble import Ensemble
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.model import predict_probs
from bst_core.runs import load_fold_model
from bst_core.taxonomy import CLASS_KEYS
from bst_core.training import TrainConfig, cross_validate

ENCODER = EncoderInfo("test-encoder", "1", 16, 16)
CLASSES = ("m-sp", "sp-s", "fx-o")


def make_corpus(n_per_class: int = 12, dim: int = 16, seed: int = 0,
                encoder: EncoderInfo = ENCODER) -> Corpus:
    rng = np.random.default_rng(seed)
    which = np.repeat(np.arange(len(CLASSES)), n_per_class)
    centroids = rng.normal(size=(len(CLASSES), dim))
    table = empty_table(len(which))
    table["id"] = [f"item {i}, take {c}" for i, c in enumerate(which)]
    table["label"] = [CLASSES[c] for c in which]
    audio = (centroids[which] + 0.5 * rng.normal(size=(len(which), dim))).astype(np.float32)
    text = (centroids[which] + 0.5 * rng.normal(size=(len(which), dim))).astype(np.float32)
    return Corpus(table, audio, text, encoder)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("ens") / "run"
    cross_validate(make_corpus(), path, TrainConfig(folds=3, epochs=2, batch_size=8))
    return path


def test_from_run_loads_every_fold(run_dir: Path) -> None:
    ensemble = Ensemble.from_run(run_dir)
    assert ensemble.folds == [1, 2, 3] and len(ensemble.models) == 3
    assert ensemble.encoder == ENCODER and ensemble.mode == "both"
    assert all(not m.training for m in ensemble.models)
    assert ensemble.parameters == 3 * ensemble.parameters_per_model > 0


def test_probabilities_are_the_mean_of_the_fold_models(run_dir: Path) -> None:
    corpus = make_corpus(n_per_class=5, seed=3)
    predictions = Ensemble.from_run(run_dir).predict(corpus)
    audio, text = torch.from_numpy(corpus.audio), torch.from_numpy(corpus.text)
    folds = []
    for k in (1, 2, 3):
        model, _ = load_fold_model(run_dir / f"fold_{k}" / "model.pt")
        folds.append(predict_probs(model, audio, text)[0].double().numpy())
    np.testing.assert_allclose(predictions.probs, np.mean(folds, axis=0), rtol=0, atol=1e-12)
    assert predictions.probs.dtype == np.float64 and predictions.probs.shape == (15, 23)
    best = predictions.probs.argmax(axis=1)
    assert predictions.labels == [CLASS_KEYS[i] for i in best]
    np.testing.assert_array_equal(predictions.scores, predictions.probs.max(axis=1))
    assert predictions.attention is not None and predictions.attention.shape == (15, 2)
    np.testing.assert_allclose(predictions.attention.sum(axis=1), 1.0, atol=1e-6)


def test_frame_has_ids_prediction_score_and_class_columns(run_dir: Path) -> None:
    corpus = make_corpus(n_per_class=2)
    frame = Ensemble.from_run(run_dir).predict(corpus).frame()
    assert list(frame.columns) == ["id", "prediction", "score", "audio_status", "attention_audio",
                                   "attention_text", *CLASS_KEYS]
    assert frame["id"].tolist() == corpus.ids
    assert len(frame) == 6


def test_other_encoder_is_refused_naming_both(run_dir: Path) -> None:
    other = EncoderInfo("offline-logmel-ngram", "1", 16, 16)
    with pytest.raises(IncompatibleError) as info:
        Ensemble.from_run(run_dir).predict(make_corpus(encoder=other))
    assert other.label in str(info.value) and ENCODER.label in str(info.value)


def test_other_dimensions_are_refused(run_dir: Path) -> None:
    corpus = make_corpus(dim=8)  # same encoder identity, wrong matrices
    with pytest.raises(IncompatibleError, match="16"):
        Ensemble.from_run(run_dir).predict(corpus)


def test_missing_modality_is_refused(run_dir: Path) -> None:
    corpus = make_corpus()
    corpus.text = None
    with pytest.raises(BadInputError, match="text embeddings"):
        Ensemble.from_run(run_dir).predict(corpus)


def test_a_run_without_finished_folds_is_refused(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text((run_dir / "run.json").read_text())
    with pytest.raises(BadInputError, match="no trained fold models"):
        Ensemble.from_run(tmp_path)


def test_bf16_precision_is_opt_in_and_close_to_fp32(run_dir: Path) -> None:
    ensemble = Ensemble.from_run(run_dir)
    corpus = make_corpus(seed=3)
    exact = ensemble.predict(corpus)
    fast = ensemble.predict(corpus, precision="bf16")
    assert np.abs(fast.probs - exact.probs).max() < 0.05
    assert np.mean(np.array(fast.labels) == np.array(exact.labels)) >= 0.9
    assert np.array_equal(ensemble.predict(corpus).probs, exact.probs)  # fp32 is the default, repeatable
    with pytest.raises(BadInputError, match="precision"):
        ensemble.predict(corpus, precision="fp8")
