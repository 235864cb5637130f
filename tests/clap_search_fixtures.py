"""Fixtures for the CLAP word-search and zero-shot tests: the random-weight CLAP of
``clap_fixtures`` saved once per module, found through the environment as a user's would be, and a
source embedded with the offline encoder (which these features must refuse)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from clap_fixtures import write_random_checkpoint, write_tiny_roberta_files

from bst_core import checkpoints


@dataclass
class Clap:
    checkpoint: Path
    text_dir: Path
    encoder: Any   # ClapEncoder, loaded from the checkpoint with make_encoder("clap")


@pytest.fixture(scope="module")
def clap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clap]:
    from bst_core.encoders import make_encoder

    base = tmp_path_factory.mktemp("clap")
    text_dir = write_tiny_roberta_files(base / "roberta-base")
    checkpoint = base / "630k-audioset-fusion-best.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        write_random_checkpoint(checkpoint, text_dir)
        patch.setenv(checkpoints.CHECKPOINT_ENV, str(checkpoint))
        patch.setenv(checkpoints.TEXT_FILES_ENV, str(text_dir))
        yield Clap(checkpoint, text_dir, make_encoder("clap"))


@pytest.fixture
def clap_env(clap: Clap, monkeypatch: pytest.MonkeyPatch) -> Clap:
    """The CLAP files found through ``$BST_CLAP_CHECKPOINT`` / ``$BST_CLAP_TEXT_FILES`` (for the CLI)."""
    monkeypatch.setenv(checkpoints.CHECKPOINT_ENV, str(clap.checkpoint))
    monkeypatch.setenv(checkpoints.TEXT_FILES_ENV, str(clap.text_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return clap


@pytest.fixture(scope="module")
def offline_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of 4 sounds, its store made with the offline encoder)."""
    from bst_core import pipeline

    folder = tmp_path_factory.mktemp("offline") / "sounds"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(4):
        t = np.arange(11025) / 22050
        clip = 0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t) + 0.02 * rng.standard_normal(len(t))
        soundfile.write(folder / f"tone{k}.wav", clip.astype(np.float32), 22050)
    store = folder.parent / "store-offline"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BST_CACHE_DIR", str(folder.parent / "cache"))
        pipeline.extract(pipeline.open_source(folder), encoder="offline", store=store)
    return folder, store


def unit(matrix: np.ndarray) -> np.ndarray:
    """Rows divided by their norms, in float64 (zero rows stay zero): the tests' own arithmetic."""
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class ClassWordsEncoder:
    """Stands in for the CLAP text tower: a fixed pseudo-random unit vector per text."""

    logit_scale = 20.0

    def __init__(self, info: Any) -> None:
        self.info = info

    def embed_text(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=self.info.text_dim) for t in texts]
        return np.asarray(rows, dtype=np.float32)
