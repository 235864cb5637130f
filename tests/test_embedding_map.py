"""The map of the sounds: PCA/UMAP coordinates, the per-store cache keyed on content, `bst map`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import embedding_map
from bst_core.cli import main
from bst_core.embedding_map import EmbeddingMap, cache_path, cached_map, compute_map, pca_map
from bst_core.errors import BadInputError
from bst_core.jobs import Job, Progress
from bst_core.similar import space_matrix
from bst_core.synthetic import make_corpus
from bst_core.taxonomy import colour as embedding_map_colour


def _corpus(tmp_path: Path, n_per_class: int = 3, seed: int = 0):
    corpus = make_corpus(n_per_class=n_per_class, dim=32, seed=seed)
    corpus.root = tmp_path / "source"   # a corpus with a home is cacheable
    return corpus


def test_pca_map_is_the_projection_on_the_two_principal_axes() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((200, 16)).astype(np.float32) * np.linspace(5, 0.1, 16, dtype=np.float32)
    xy = pca_map(data)
    assert xy.shape == (200, 2) and xy.dtype == np.float32
    centred = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    expected = centred @ vt[:2].T
    for axis in range(2):   # equal up to the sign of each axis
        sign = np.sign(expected[:, axis] @ xy[:, axis])
        np.testing.assert_allclose(xy[:, axis], sign * expected[:, axis], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(pca_map(data), xy)   # deterministic


def test_pca_map_of_tiny_inputs() -> None:
    assert pca_map(np.zeros((0, 4))).shape == (0, 2)
    np.testing.assert_array_equal(pca_map(np.ones((1, 4))), np.zeros((1, 2), np.float32))
    assert pca_map(np.arange(6, dtype=np.float32).reshape(3, 2)).shape == (3, 2)
    with pytest.raises(BadInputError):
        pca_map(np.zeros(5))


def test_compute_map_pca_rows_follow_the_ids_and_the_space(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    seen: list[Progress] = []
    result = compute_map(corpus, "both", "pca", progress=Job(seen.append))
    assert isinstance(result, EmbeddingMap) and result.method == "pca" and result.space == "both"
    assert list(result.ids) == corpus.ids and result.xy.shape == (len(corpus), 2)
    np.testing.assert_array_equal(result.xy, pca_map(space_matrix(corpus, "both")))
    assert seen[-1].stage == "map" and seen[-1].done == seen[-1].total
    frame = embedding_map.map_frame(corpus, result)
    assert list(frame.columns) == ["id", "x", "y", "truth", "colour", "title"]
    assert frame["truth"].tolist() == corpus.labels.tolist()
    assert frame["colour"].iloc[0] == embedding_map_colour(corpus.labels.iloc[0])


def test_cache_is_used_for_the_same_vectors_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(tmp_path)
    assert cached_map(corpus, "audio", "pca") is None
    first = compute_map(corpus, "audio", "pca")
    path = cache_path(corpus, "audio", "pca")
    assert path is not None and path.is_file() and not list(path.parent.glob("*.tmp"))
    again = cached_map(corpus, "audio", "pca")
    assert again is not None and again.ids == first.ids
    np.testing.assert_array_equal(again.xy, first.xy)

    calls: list[int] = []
    real = embedding_map.pca_map
    monkeypatch.setattr(embedding_map, "pca_map", lambda v: calls.append(1) or real(v))
    compute_map(corpus, "audio", "pca")
    assert calls == []                                   # served from the cache

    changed = _corpus(tmp_path)
    changed.audio = changed.audio.copy()
    changed.audio[5, 0] += 1e-3                           # one value of one vector
    assert cached_map(changed, "audio", "pca") is None
    compute_map(changed, "audio", "pca")
    assert calls == [1]
    assert cached_map(corpus, "audio", "pca") is None    # the file now holds the changed store's map
    assert cached_map(changed, "text", "pca") is None    # another space is another map
    reordered = _corpus(tmp_path)
    reordered.table = reordered.table.iloc[::-1].reset_index(drop=True)
    reordered.audio, reordered.text = reordered.audio[::-1].copy(), reordered.text[::-1].copy()
    assert cached_map(reordered, "audio", "pca") is None


def test_cache_is_per_store_and_skipped_without_a_home(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    compute_map(corpus, "audio", "pca")
    elsewhere = _corpus(tmp_path)
    elsewhere.store = tmp_path / "other-store"
    assert cache_path(elsewhere, "audio", "pca") != cache_path(corpus, "audio", "pca")
    assert cached_map(elsewhere, "audio", "pca") is None
    memory = make_corpus(n_per_class=2, dim=8)
    assert cache_path(memory, "audio", "pca") is None and cached_map(memory, "audio", "pca") is None
    assert compute_map(memory, "audio", "pca").xy.shape == (len(memory), 2)


def test_damaged_cache_file_is_recomputed_not_trusted(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    first = compute_map(corpus, "audio", "pca")
    path = cache_path(corpus, "audio", "pca")
    assert path is not None
    path.write_bytes(b"not a zip")
    assert cached_map(corpus, "audio", "pca") is None
    np.testing.assert_array_equal(compute_map(corpus, "audio", "pca").xy, first.xy)
    assert cached_map(corpus, "audio", "pca") is not None


def test_missing_modality_and_unknown_choices_are_refused(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    corpus.text = None
    with pytest.raises(BadInputError, match="no text embeddings"):
        compute_map(corpus, "text", "pca")
    with pytest.raises(BadInputError, match="Unknown map method"):
        compute_map(corpus, "audio", "tsne")
    with pytest.raises(BadInputError, match="Unknown space"):
        compute_map(corpus, "video", "pca")


@pytest.mark.slow   # umap-learn's numba kernels compile on first use (about 30 s)
def test_umap_map_separates_the_classes_and_is_reproducible(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, n_per_class=8)
    result = compute_map(corpus, "both", "umap")
    assert result.method == "umap" and result.xy.shape == (len(corpus), 2) and np.isfinite(result.xy).all()
    # neighbours on the map mostly share the truth label (23 classes: chance is about 4 %)
    xy, labels = result.xy, corpus.labels.to_numpy()
    distance = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    agree = (labels[distance.argmin(axis=1)] == labels).mean()
    assert agree > 0.15   # measured 0.29 here
    np.testing.assert_array_equal(embedding_map.umap_map(space_matrix(corpus, "both")), result.xy)
    cached = cached_map(corpus, "both", "umap")
    assert cached is not None and cached.method == "umap"


def test_umap_of_too_few_items_gives_the_pca_map_and_says_so(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path).subset(np.arange(69) < 5)
    result = compute_map(corpus, "audio", "umap")
    assert result.method == "pca" and result.xy.shape == (5, 2)


def test_bst_map_writes_the_csv(bsd_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.csv"
    assert main(["map", str(bsd_root), "--out", str(out), "--method", "pca", "--space", "audio"]) == 0
    frame = pd.read_csv(out, dtype={"id": str}, keep_default_na=False)
    assert list(frame.columns)[:4] == ["id", "x", "y", "truth"] and len(frame) == 23 * 12
    assert "map of 276 item(s)" in capsys.readouterr().err
    assert main(["map", str(bsd_root), "--out", str(out), "--method", "pca", "--json"]) == 0
    assert '"method": "pca"' in capsys.readouterr().out


def test_bst_map_refuses_an_unknown_method(bsd_root: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["map", str(bsd_root), "--out", str(tmp_path / "m.csv"), "--method", "tsne"])
    assert exited.value.code == 2


def test_cancel_before_the_work_and_during_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core.jobs import Cancelled

    corpus = _corpus(tmp_path)
    job = Job()
    job.cancel()
    with pytest.raises(Cancelled):
        compute_map(corpus, "audio", "pca", progress=job)
    assert cached_map(corpus, "audio", "pca") is None
    running = Job()
    real = embedding_map.pca_map

    def cancelled_meanwhile(vectors: np.ndarray) -> np.ndarray:
        running.cancel()
        return real(vectors)

    monkeypatch.setattr(embedding_map, "pca_map", cancelled_meanwhile)
    with pytest.raises(Cancelled):
        compute_map(corpus, "audio", "pca", progress=running)
    assert cached_map(corpus, "audio", "pca") is not None   # the finished work is kept
