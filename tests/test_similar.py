"""More like this (bst_core.similar, `bst similar`): exact cosine search over stored embeddings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import cli
from bst_core.errors import BadInputError
from bst_core.similar import SPACES, SimilarityIndex, similar, space_matrix, top_k
from bst_core.synthetic import make_corpus, write_bsd_dataset


def _with_twin(corpus, row: int, twin_id: str = "twin"):
    """``corpus`` plus a copy of item ``row`` (same vectors, new id) at the end."""
    table = pd.concat([corpus.table, corpus.table.iloc[[row]].assign(id=twin_id)], ignore_index=True)
    return replace(corpus, table=table, audio=np.vstack([corpus.audio, corpus.audio[row:row + 1]]),
                   text=np.vstack([corpus.text, corpus.text[row:row + 1]]))


@pytest.mark.parametrize("space", SPACES)
def test_a_duplicated_item_is_its_twins_nearest_neighbour(space: str) -> None:
    corpus = _with_twin(make_corpus(n_per_class=3, dim=32, seed=5), row=7)
    original = corpus.ids[7]
    near = similar(corpus, original, k=4, space=space)
    assert list(near.columns) == ["id", "similarity", "label", "title"]
    assert near["id"].iloc[0] == "twin"
    assert near["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert near["similarity"].iloc[1] < 0.999               # the rest are genuinely different
    back = similar(corpus, "twin", k=1, space=space)
    assert back["id"].tolist() == [original]


def test_the_item_itself_is_excluded_and_results_are_exact_and_sorted() -> None:
    corpus = make_corpus(n_per_class=3, dim=32, seed=2)
    query = corpus.ids[10]
    near = similar(corpus, query, k=5, space="audio")
    assert len(near) == 5 and query not in set(near["id"])
    assert near["similarity"].is_monotonic_decreasing
    unit = corpus.audio / np.linalg.norm(corpus.audio, axis=1, keepdims=True)
    cosine = unit @ unit[10]
    cosine[10] = -np.inf
    expected = np.argsort(-cosine, kind="stable")[:5]
    assert near["id"].tolist() == [corpus.ids[k] for k in expected]
    np.testing.assert_allclose(near["similarity"], cosine[expected], atol=1e-6)
    labels = dict(zip(corpus.ids, corpus.labels, strict=True))
    assert near["label"].tolist() == [labels[i] for i in near["id"]]
    # k larger than the source: every other item, once
    assert len(similar(corpus, query, k=10_000)) == len(corpus) - 1


def test_both_is_the_mean_of_the_two_cosines_and_zero_audio_is_harmless() -> None:
    corpus = make_corpus(n_per_class=2, dim=16, seed=1)
    both = space_matrix(corpus, "both")
    audio, text = space_matrix(corpus, "audio"), space_matrix(corpus, "text")
    np.testing.assert_allclose(both @ both[3], (audio @ audio[3] + text @ text[3]) / 2, atol=1e-5)
    audio_raw = corpus.audio.copy()
    audio_raw[4] = 0.0                                    # audio that could not be decoded
    broken = replace(corpus, audio=audio_raw)
    near = SimilarityIndex(broken, "audio").neighbours(corpus.ids[4], k=3)
    assert np.all(near["similarity"] == 0.0)
    vectors = space_matrix(broken, "both")
    assert np.isfinite(vectors).all()
    assert np.linalg.norm(vectors[4]) == pytest.approx(1.0, abs=1e-5)   # text alone, renormalised


def test_refusals_name_what_is_wrong() -> None:
    corpus = make_corpus(n_per_class=2, dim=16)
    with pytest.raises(BadInputError, match="'no-such-id'"):
        similar(corpus, "no-such-id")
    with pytest.raises(BadInputError, match="no audio embeddings"):
        similar(replace(corpus, audio=None), corpus.ids[0], space="audio")
    with pytest.raises(BadInputError, match="Unknown space"):
        similar(corpus, corpus.ids[0], space="video")
    with pytest.raises(BadInputError, match="at least 1"):
        similar(corpus, corpus.ids[0], k=0)


def test_top_k_breaks_ties_by_row_and_never_returns_the_excluded_row() -> None:
    values = np.array([0.5, 0.9, 0.9, 0.1, 0.9])
    assert top_k(values, 2).tolist() == [1, 2]
    assert top_k(values, 3, exclude=2).tolist() == [1, 4, 0]
    assert top_k(values, 0).tolist() == []


def test_cli_similar_prints_csv_and_refuses_an_unknown_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_bsd_dataset(tmp_path / "BSD10k-small", n_per_class=3, with_audio=False, nasty_text=False)
    ids = pd.read_csv(root / "metadata" / "BSD10k_metadata.csv", dtype=str)["sound_id"].tolist()
    assert cli.main(["similar", str(root), ids[0], "--k", "4", "--space", "text"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "id,similarity,label,title"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 4 and ids[0] not in [r[0] for r in rows]
    sims = [float(r[1]) for r in rows]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= s <= 1.0 for s in sims)

    assert cli.main(["similar", str(root), "424242424242"]) == 2
    assert "'424242424242'" in capsys.readouterr().err


def test_cli_similar_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    root = write_bsd_dataset(tmp_path / "BSD10k-small", n_per_class=2, with_audio=False, nasty_text=False)
    first = pd.read_csv(root / "metadata" / "BSD10k_metadata.csv", dtype=str)["sound_id"].iloc[0]
    assert cli.main(["similar", str(root), first, "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "similar" and [set(r) for r in out["neighbours"]] == [
        {"id", "similarity", "label", "title"}] * 2
