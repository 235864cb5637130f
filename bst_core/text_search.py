"""Search by words: the sounds of a source ranked by how close their audio is to a sentence.

This needs a *joint* audio-text encoder, one whose text tower embeds words into the space of its
audio tower: LAION-CLAP (:data:`~bst_core.corpus.CLAP_ENCODER`). The query is embedded with the
same CLAP text tower that made the store's text vectors, and each item's score is the cosine
similarity of its stored **audio** vector to that query vector (items whose audio could not be
decoded have a zero audio vector, hence similarity 0). The offline encoder's audio features and
hashed n-grams live in unrelated spaces: sources embedded with it are refused
(:func:`require_joint_encoder`, exit 2 in the CLI) before any model is loaded.

Cost: loading CLAP (seconds) is paid once by :func:`joint_encoder_for`; keep the encoder and
call :func:`search_by_words` as often as needed (one text embedding + one matrix-vector product).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from bst_core.corpus import CLAP_ENCODER, Corpus, EncoderInfo
from bst_core.encoders.base import Encoder
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.similar import check_k, neighbour_frame, normalise_rows, top_k

DEFAULT_K = 20
JOINT_ENCODERS: dict[str, EncoderInfo] = {"clap": CLAP_ENCODER}
"""Encoders (by :func:`~bst_core.encoders.make_encoder` name) whose text and audio share one space."""
NEEDS_CLAP = ("needs a joint audio-text encoder (CLAP), whose text tower puts words and sounds in one space")


def _where(corpus: Corpus) -> str:
    if corpus.store is not None:
        return f"the embedding store {corpus.store}"
    return f"the embeddings of {corpus.root}" if corpus.root else "these embeddings"


def require_joint_encoder(corpus: Corpus, what: str = "Search by words") -> str:
    """The encoder name (for :func:`~bst_core.encoders.make_encoder`) of ``corpus``'s joint
    audio-text embeddings; BadInputError saying it needs CLAP otherwise. Loads nothing."""
    info = corpus.encoder
    source = corpus.root or "SOURCE"
    advice = (f"Extract CLAP embeddings first: `bst extract {source} --encoder clap --out STORE` (needs the "
              "CLAP checkpoint), then pass --store STORE.")
    if info is None or corpus.audio is None:
        raise BadInputError(f"{what} {NEEDS_CLAP}, but {_where(corpus)} has no audio embeddings. {advice}")
    for name, joint in JOINT_ENCODERS.items():
        if info == joint:
            return name
    raise BadInputError(f"{what} {NEEDS_CLAP}; {_where(corpus)} was made with {info.label}, whose text and audio "
                        f"vectors are not comparable. {advice}")


def joint_encoder_for(corpus: Corpus, *, checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu",
                      allow_download: bool = False, job: Job | None = None, what: str = "Search by words") -> Encoder:
    """The loaded encoder that made ``corpus``'s embeddings, when it is a joint audio-text one
    (refused first, without loading anything, otherwise). Build it once and reuse it."""
    from bst_core.encoders import make_encoder

    name = require_joint_encoder(corpus, what)
    encoder = make_encoder(name, checkpoint=checkpoint, device=device, allow_download=allow_download, job=job)
    encoder.info.require_same(corpus.encoder, f"{_where(corpus)}")  # type: ignore[arg-type]
    return encoder


def query_vector(encoder: Encoder, query: str) -> np.ndarray:
    """The unit text embedding of ``query`` (BadInputError for an empty query)."""
    text = str(query).strip()
    if not text:
        raise BadInputError('The search query is empty: give some words, e.g. "dog barking in the rain".')
    return normalise_rows(encoder.embed_text([text]))[0]


def word_similarities(corpus: Corpus, query: str, *, encoder: Encoder) -> np.ndarray:
    """Cosine similarity of every item's audio vector to the text embedding of ``query`` (float64)."""
    require_joint_encoder(corpus)
    if corpus.encoder != encoder.info:
        encoder.info.require_same(corpus.encoder, _where(corpus))  # type: ignore[arg-type]
    vector = query_vector(encoder, query)
    return (normalise_rows(corpus.audio) @ vector).astype(np.float64)  # type: ignore[arg-type]


def search_by_words(corpus: Corpus, query: str, *, encoder: Encoder, k: int = DEFAULT_K) -> pd.DataFrame:
    """The ``k`` items whose audio is most similar to ``query``: ``id, similarity, label, title``,
    best first (ties: earlier row first)."""
    check_k(k)
    similarity = word_similarities(corpus, query, encoder=encoder)
    rows = top_k(similarity, k)
    return neighbour_frame(corpus, rows, similarity[rows])


__all__ = ["DEFAULT_K", "JOINT_ENCODERS", "NEEDS_CLAP", "joint_encoder_for", "query_vector", "require_joint_encoder",
           "search_by_words", "word_similarities"]
