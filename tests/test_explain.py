"""Why this label (bst_core.explain, `bst explain`) and HATR.features."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bst_core import cli, pipeline
from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.explain import LatentIndex, explain, latent_features, training_corpus
from bst_core.model import HATR
from bst_core.runs import RunFolder
from bst_core.synthetic import write_bsd_dataset

FAST = TrainConfig(folds=2, epochs=2, batch_size=16, patience=None, val_fraction=0.4, seed=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, run folder): a tiny BSD-layout dataset and a 2-fold run trained on it."""
    base = tmp_path_factory.mktemp("explain")
    root = write_bsd_dataset(base / "BSD10k-small", n_per_class=8, with_audio=False, nasty_text=False, seed=4)
    corpus = pipeline.open_source(root, require_embeddings=True)
    pipeline.cross_validate(corpus, base / "run", FAST)
    return root, base / "run"


@pytest.mark.parametrize("mode", ["both", "audio", "text"])
def test_features_are_what_forward_feeds_the_latent_projector(mode: str) -> None:
    torch.manual_seed(0)
    model = HATR(mode, audio_dim=16, text_dim=16, hidden=8).eval()
    audio, text = torch.randn(5, 16), torch.randn(5, 16)
    present = torch.tensor([True, False, True, True, False])
    with torch.inference_mode():
        features = model.features(audio, text, present)
        z = model.latent_projector(features)
        for block in model.residual_blocks:
            z = block(z)
        by_hand = model.head(z)
        logits, attention = model(audio, text, present)
        text_alone = model.text_encoder(text) if model.text_encoder is not None else None
    assert features.shape == (5, 8)
    torch.testing.assert_close(by_hand, logits)
    if mode == "both":
        assert attention is not None
        # a row without audio is its text encoding alone (masked attention)
        torch.testing.assert_close(features[1], text_alone[1])
    else:
        assert attention is None


def test_neighbours_are_training_items_by_mean_cosine_over_the_fold_models(trained: tuple[Path, Path]) -> None:
    root, run = trained
    corpus = pipeline.open_source(root, require_embeddings=True)
    query = corpus.ids[3]
    result = explain(run, corpus, query, k=4)
    near = result.neighbours
    assert list(near.columns) == ["id", "similarity", "label", "title"]
    assert len(near) == 4 and query not in set(near["id"])      # the query itself is left out
    assert near["similarity"].is_monotonic_decreasing
    oof = RunFolder(run).oof().set_index("id")
    assert near["label"].tolist() == oof.loc[near["id"], "truth"].tolist()

    # recompute by hand: each fold model's features, cosine, mean over the models
    ensemble = pipeline.load_ensemble(run)
    feats = []
    with torch.inference_mode():
        audio, text = (torch.from_numpy(np.asarray(m, np.float32)) for m in (corpus.audio, corpus.text))
        for model in ensemble.models:
            f = model.eval().features(audio, text, torch.ones(len(corpus), dtype=torch.bool)).numpy()
            feats.append(f / np.linalg.norm(f, axis=1, keepdims=True))
    row = corpus.ids.index(query)
    mean_cos = np.mean([f @ f[row] for f in feats], axis=0)
    mean_cos[row] = -np.inf
    expected = np.argsort(-mean_cos, kind="stable")[:4]
    assert near["id"].tolist() == [corpus.ids[k] for k in expected]
    np.testing.assert_allclose(near["similarity"], mean_cos[expected], atol=1e-5)
    assert result.label == pipeline.predict(ensemble, corpus).labels[row]


def test_a_copy_of_a_training_item_finds_that_item_first(trained: tuple[Path, Path]) -> None:
    _root, run = trained
    training = training_corpus(run)
    index = LatentIndex(pipeline.load_ensemble(run), training)
    assert len(index) == len(training)
    row = 11
    table = training.table.iloc[[row]].assign(id="copy-of-it").reset_index(drop=True)
    other = replace(training, table=table, audio=training.audio[row:row + 1], text=training.text[row:row + 1],
                    root=None)
    near = index.explain(other, "copy-of-it", k=2).neighbours
    assert near["id"].iloc[0] == training.ids[row]
    assert near["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert latent_features(index.ensemble, other).shape == (2, 1, FAST.hidden)


def test_cli_explain_prints_the_neighbours(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, run = trained
    ids = pd.read_csv(root / "metadata" / "BSD10k_metadata.csv", dtype=str)["sound_id"].tolist()
    assert cli.main(["explain", str(run), str(root), ids[0], "--k", "3"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0] == "id,similarity,label,title" and len(lines) == 4
    assert ids[0] not in [line.split(",")[0] for line in lines[1:]]
    assert "predicted" in captured.err

    assert cli.main(["explain", str(run), str(root), "987654321"]) == 2
    assert "'987654321'" in capsys.readouterr().err


def test_a_run_whose_dataset_is_gone_is_refused_naming_the_path(trained: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root, run = trained
    moved = tmp_path / "run-copy"
    shutil.copytree(run, moved)
    info = json.loads((moved / "run.json").read_text())
    info["dataset_root"] = str(tmp_path / "gone" / "BSD10k-small")      # as if the dataset had been moved
    (moved / "run.json").write_text(json.dumps(info))
    with pytest.raises(BadInputError, match="not available"):
        training_corpus(moved)
    ids = pd.read_csv(root / "metadata" / "BSD10k_metadata.csv", dtype=str)["sound_id"].tolist()
    assert cli.main(["explain", str(moved), str(root), ids[0]]) == 2
    assert str(tmp_path / "gone" / "BSD10k-small") in capsys.readouterr().err
