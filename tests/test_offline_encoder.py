"""The offline encoder: fixed dims, unit norm, deterministic, honest name, separates the demo recipes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soxr

from bst_core import demo
from bst_core.encoders import ENCODER_NAMES, Encoder, make_encoder
from bst_core.encoders.offline import (
    AUDIO_DIM,
    AUDIO_LAYOUT,
    OFFLINE_ENCODER,
    SAMPLE_RATE,
    TEXT_DIM,
    TEXT_LAYOUT,
    OfflineEncoder,
)
from bst_core.errors import BadInputError


@pytest.fixture(scope="module")
def encoder() -> OfflineEncoder:
    return OfflineEncoder()


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)


def test_identity_says_what_it_is() -> None:
    assert OFFLINE_ENCODER.name == "offline-logmel-ngram"
    assert "clap" not in OFFLINE_ENCODER.label.lower()
    assert (OFFLINE_ENCODER.audio_dim, OFFLINE_ENCODER.text_dim) == (AUDIO_DIM, TEXT_DIM)
    assert sum(n for _, n in AUDIO_LAYOUT) == AUDIO_DIM
    assert sum(n for _, n in TEXT_LAYOUT) == TEXT_DIM


def test_make_encoder_by_name() -> None:
    built = make_encoder("offline")
    assert isinstance(built, OfflineEncoder) and isinstance(built, Encoder)
    assert built.info == OFFLINE_ENCODER and built.sample_rate == SAMPLE_RATE
    assert set(ENCODER_NAMES) == {"clap", "offline"}
    with pytest.raises(BadInputError, match="clap, offline"):
        make_encoder("wav2vec")


def test_audio_shape_dtype_and_unit_norm(encoder: OfflineEncoder) -> None:
    clips = [noise(2.0), np.zeros(SAMPLE_RATE, np.float32), noise(0.005), np.ones(1, np.float32) * 0.1]
    vectors = encoder.embed_audio(clips)
    assert vectors.shape == (4, AUDIO_DIM) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.embed_audio([]).shape == (0, AUDIO_DIM)


def test_audio_is_deterministic_and_independent_of_the_batch(encoder: OfflineEncoder) -> None:
    clips = [noise(3.0, seed) for seed in range(3)]
    together = encoder.embed_audio(clips)
    assert np.array_equal(together, OfflineEncoder().embed_audio(clips))
    for clip, row in zip(clips, together, strict=True):
        assert np.array_equal(encoder.embed_audio([clip])[0], row)


def test_audio_reads_at_most_max_seconds(encoder: OfflineEncoder) -> None:
    long = noise(encoder.max_seconds + 5)
    first = long[: int(encoder.max_seconds * SAMPLE_RATE)]
    assert np.array_equal(encoder.embed_audio([long]), encoder.embed_audio([first]))


def test_audio_tells_different_sounds_apart(encoder: OfflineEncoder) -> None:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    low, high = (np.sin(2 * np.pi * f * t).astype(np.float32) * 0.5 for f in (200.0, 4000.0))
    a, b, c = encoder.embed_audio([low, low * 0.9, high])
    assert a @ b > a @ c + 0.05


def test_text_shape_norm_and_empty(encoder: OfflineEncoder) -> None:
    vectors = encoder.embed_text(["Dog barking, loud", "", "  "])
    assert vectors.shape == (3, TEXT_DIM) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, rel=1e-5)
    assert not vectors[1].any() and not vectors[2].any()
    words, chars = vectors[0, :TEXT_LAYOUT[0][1]], vectors[0, TEXT_LAYOUT[0][1]:]
    assert np.linalg.norm(words) == pytest.approx(np.linalg.norm(chars), rel=1e-5)


def test_text_similarity_follows_shared_words(encoder: OfflineEncoder) -> None:
    dog, dogs, piano = encoder.embed_text(["dog barking in the park", "Dogs Barking park", "grand piano chord"])
    assert dog @ dogs > dog @ piano + 0.2
    cafe, cafe_accent = encoder.embed_text(["cafe ambience", "Café ambience"])
    np.testing.assert_allclose(cafe, cafe_accent, atol=1e-6)


def test_text_hashing_does_not_depend_on_python_hash_seed() -> None:
    code = ("from bst_core.encoders.offline import OfflineEncoder; import sys; "
            "sys.stdout.write(OfflineEncoder().embed_text(['rain on a tin roof, café']).tobytes().hex())")
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_demo_recipes_are_separable_from_audio_alone(encoder: OfflineEncoder) -> None:
    """Leave-one-out nearest class centroid on 4 clips per class: far above chance (1/23)."""
    keys = list(demo.RECIPES)
    clips, labels = [], []
    for c, key in enumerate(keys):
        for k in range(4):
            signal = demo.RECIPES[key](np.random.default_rng([99, c, k])).astype(np.float32)
            clips.append(soxr.resample(signal / (np.abs(signal).max() + 1e-9), demo.SR, SAMPLE_RATE))
            labels.append(c)
    x = encoder.embed_audio(clips)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    y = np.array(labels)
    hits = 0
    for i in range(len(y)):
        others = np.arange(len(y)) != i
        centroids = np.stack([x[others & (y == c)].mean(axis=0) for c in range(len(keys))])
        hits += int(np.argmin(((centroids - x[i]) ** 2).sum(axis=1)) == y[i])
    assert hits / len(y) > 0.7


def test_make_encoder_clap_without_checkpoint_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BST_CLAP_CHECKPOINT", raising=False)
    with pytest.raises(BadInputError, match="checkpoint"):
        make_encoder("clap")


# ---------------------------------------------------------------------- the text the encoder reads
@pytest.mark.parametrize(("title", "tags", "description", "expected"), [
    ("Rain", "water storm", "Heavy rain.", "Rain water storm Heavy rain."),
    ("  Rain\n", "water,storm;  wet", "", "Rain water storm wet"),
    ("", "['cafe', 'people talking']", None, "cafe people talking"),
    (float("nan"), "", "<p>Recorded with a &quot;Zoom&quot;<br>on the roof &amp; deck</p>",
     'Recorded with a "Zoom" on the roof & deck'),
    ("5 < 6 & 7 > 3", "", "a<b>bold</b>word", "5 < 6 & 7 > 3 aboldword"),
    ("Café", "Straße 名前", "", "Café Straße 名前"),
    ("", "", "", ""),
])
def test_text_for_orders_cleans_and_skips_empty_fields(title: object, tags: object, description: object,
                                                      expected: str) -> None:
    from bst_core.text import text_for

    assert text_for(title, tags, description) == expected
