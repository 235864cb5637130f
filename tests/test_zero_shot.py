"""Zero-shot labels from the taxonomy's class descriptions with CLAP: mechanics with a random-weight
CLAP (shapes, probabilities recomputed independently, refusal without CLAP), never accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import clap_search_fixtures
import numpy as np
import pandas as pd
import pytest
from clap_search_fixtures import Clap, unit

from bst_core import pipeline
from bst_core.cli import main
from bst_core.errors import BadInputError
from bst_core.synthetic import make_corpus
from bst_core.taxonomy import BY_KEY, CLASS_KEYS, classes
from bst_core.zero_shot import (
    all_class_prompts,
    class_prompts,
    class_text_embeddings,
    logit_scale,
    zero_shot_predictions,
)

pytestmark = pytest.mark.clap
clap, clap_env, offline_source = (clap_search_fixtures.clap, clap_search_fixtures.clap_env,
                                 clap_search_fixtures.offline_source)   # fixtures used below


def test_prompts_come_from_the_taxonomy() -> None:
    prompts = all_class_prompts()
    assert list(prompts) == list(CLASS_KEYS)
    animals = class_prompts(BY_KEY["fx-a"])
    assert animals[0] == "Sound effects: Animals" and "the sound of purr" in animals
    assert BY_KEY["fx-a"].description in animals
    assert all(len(p) >= 3 for p in prompts.values())
    assert sum(len(p) for p in prompts.values()) == sum(2 + len(c.examples.split(";")) for c in classes())


def test_class_vectors_are_the_mean_of_their_prompts(clap: Clap) -> None:
    vectors = class_text_embeddings(clap.encoder)
    assert vectors.shape == (23, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    row = CLASS_KEYS.index("is-k")
    mean = unit(clap.encoder.embed_text(class_prompts(BY_KEY["is-k"]))).mean(axis=0)
    np.testing.assert_allclose(vectors[row], mean / np.linalg.norm(mean), atol=1e-5)


def test_probabilities_are_the_scaled_softmax_of_the_cosines(clap: Clap) -> None:
    corpus = make_corpus(n_per_class=1, dim=512, seed=2)
    corpus.audio = corpus.audio.copy()
    corpus.audio[3] = 0.0                                          # no decodable audio: scored from its text
    corpus.text = corpus.text.copy()
    corpus.audio[5] = corpus.text[5] = 0.0                         # neither: uniform
    predictions = zero_shot_predictions(corpus, clap.encoder)
    assert predictions.ids == corpus.ids and predictions.probs.shape == (23, 23)
    assert predictions.run_dir is None and predictions.n_models == 0
    scale = float(clap.encoder._module.model.logit_scale_a.detach().exp())
    assert logit_scale(clap.encoder) == pytest.approx(scale)
    vectors = corpus.audio.astype(np.float64)
    vectors[3] = corpus.text[3]
    logits = scale * unit(vectors) @ unit(class_text_embeddings(clap.encoder)).T
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predictions.probs, expected, atol=1e-6)
    assert predictions.labels == [CLASS_KEYS[i] for i in logits.argmax(axis=1)]
    np.testing.assert_allclose(predictions.probs[5], np.full(23, 1 / 23))
    assert predictions.audio_status[3].startswith("text only") and predictions.probs[3].max() > 1 / 23


def test_zero_shot_refuses_offline_embeddings(offline_source: tuple[Path, Path], clap: Clap) -> None:
    folder, store = offline_source
    corpus = pipeline.open_source(folder, store=store, require_embeddings=True)
    with pytest.raises(BadInputError, match=r"joint audio-text encoder \(CLAP\)"):
        zero_shot_predictions(corpus, clap.encoder)


def test_bst_predict_zero_shot(bsd_root: Path, clap_env: Clap, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "zero.csv"
    assert main(["predict", str(bsd_root), "--zero-shot", "--out", str(out), "--probabilities", "-q"]) == 0
    assert "accuracy unmeasured" in capsys.readouterr().out
    frame = pd.read_csv(out, dtype={"id": str}, keep_default_na=False)
    corpus = pipeline.open_source(bsd_root)
    assert frame["id"].tolist() == corpus.ids
    expected = zero_shot_predictions(corpus, clap_env.encoder)
    assert frame["predicted_bst_second_level_class"].tolist() == expected.labels
    np.testing.assert_allclose(frame[list(CLASS_KEYS)].to_numpy(), expected.probs, atol=1e-5)
    assert main(["predict", str(bsd_root), "--zero-shot", "--out", str(out), "--abstain", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == "unmeasured"
    assert "decision" in pd.read_csv(out).columns


def test_bst_predict_zero_shot_refusals(bsd_root: Path, offline_source: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder, store = offline_source
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--zero-shot", "--store", str(store), "--out", str(out)]) == 2
    assert "joint audio-text encoder (CLAP)" in capsys.readouterr().err and not out.exists()
    assert main(["predict", str(tmp_path), str(bsd_root), "--zero-shot", "--out", str(out)]) == 2
    assert "--zero-shot uses no run" in capsys.readouterr().err
    assert main(["predict", str(bsd_root), "--out", str(out)]) == 2
    assert "Give RUN_DIR and SOURCE_ROOT" in capsys.readouterr().err
