"""Search by words (CLAP's text tower against stored audio vectors): mechanics with a random-weight
CLAP, never accuracy; and the refusal of stores whose encoder is not a joint audio-text one."""

from __future__ import annotations

import json
from pathlib import Path

import clap_search_fixtures
import numpy as np
import pytest
from clap_search_fixtures import Clap, unit

from bst_core import pipeline
from bst_core.cli import main
from bst_core.corpus import CLAP_ENCODER
from bst_core.errors import BadInputError
from bst_core.synthetic import make_corpus
from bst_core.text_search import joint_encoder_for, require_joint_encoder, search_by_words, word_similarities

pytestmark = pytest.mark.clap
clap, clap_env, offline_source = (clap_search_fixtures.clap, clap_search_fixtures.clap_env,
                                 clap_search_fixtures.offline_source)   # fixtures used below


def _expected_order(audio: np.ndarray, query_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    similarity = unit(audio) @ (query_vector / np.linalg.norm(query_vector))
    order = np.lexsort((np.arange(len(similarity)), -similarity))
    return order, similarity


def test_ranking_is_the_cosine_of_audio_to_the_query_text(clap: Clap) -> None:
    corpus = make_corpus(n_per_class=2, dim=512, seed=4)
    assert corpus.encoder == CLAP_ENCODER
    frame = search_by_words(corpus, "dog barking in the rain", encoder=clap.encoder, k=7)
    assert list(frame.columns) == ["id", "similarity", "label", "title"] and len(frame) == 7
    order, similarity = _expected_order(corpus.audio, clap.encoder.embed_text(["dog barking in the rain"])[0])
    assert frame["id"].tolist() == [corpus.ids[i] for i in order[:7]]
    np.testing.assert_allclose(frame["similarity"].to_numpy(), similarity[order[:7]], atol=1e-5)
    assert frame["label"].tolist() == [corpus.labels[i] for i in order[:7]]
    every = word_similarities(corpus, "dog barking in the rain", encoder=clap.encoder)
    assert every.shape == (len(corpus),)
    np.testing.assert_allclose(every, similarity, atol=1e-5)
    other = search_by_words(corpus, "a car passing by", encoder=clap.encoder, k=7)
    assert other["id"].tolist() != frame["id"].tolist()   # the query matters


def test_k_larger_than_the_source_and_zero_audio(clap: Clap) -> None:
    corpus = make_corpus(n_per_class=1, dim=512, seed=5)
    corpus.audio = corpus.audio.copy()
    corpus.audio[0] = 0.0                                    # a sound whose audio could not be decoded
    frame = search_by_words(corpus, "bell", encoder=clap.encoder, k=100)
    assert len(frame) == len(corpus)
    assert frame.set_index("id").loc[corpus.ids[0], "similarity"] == 0.0
    with pytest.raises(BadInputError, match="query is empty"):
        search_by_words(corpus, "   ", encoder=clap.encoder)
    with pytest.raises(BadInputError, match="at least 1"):
        search_by_words(corpus, "bell", encoder=clap.encoder, k=0)


def test_offline_embeddings_are_refused_before_loading_any_model(offline_source: tuple[Path, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder, store = offline_source
    corpus = pipeline.open_source(folder, store=store, require_embeddings=True)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded for a store that cannot be searched by words")

    monkeypatch.setattr("bst_core.encoders.make_encoder", no_model)
    with pytest.raises(BadInputError, match=r"joint audio-text encoder \(CLAP\)") as refused:
        joint_encoder_for(corpus)
    assert "offline-logmel-ngram" in str(refused.value) and "--encoder clap" in str(refused.value)
    with pytest.raises(BadInputError, match="CLAP"):
        require_joint_encoder(make_corpus(n_per_class=1, dim=64))   # right name, other dimensions


def test_bst_search_prints_the_ranking(bsd_root: Path, clap_env: Clap, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(bsd_root), "dog barking", "--k", "5", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    corpus = pipeline.open_source(bsd_root)
    order, similarity = _expected_order(corpus.audio, clap_env.encoder.embed_text(["dog barking"])[0])
    assert [r["id"] for r in result["results"]] == [corpus.ids[i] for i in order[:5]]
    np.testing.assert_allclose([r["similarity"] for r in result["results"]], similarity[order[:5]], atol=1e-5)
    assert main(["search", str(bsd_root), "dog barking", "--k", "3", "-q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "id,similarity,label,title" and len(lines) == 4


def test_bst_search_refuses_an_offline_store_with_exit_2(offline_source: tuple[Path, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder, store = offline_source
    assert main(["search", str(folder), "dog barking", "--store", str(store)]) == 2
    captured = capsys.readouterr()
    assert "joint audio-text encoder (CLAP)" in captured.err and captured.out == ""
