"""Shared test setup: isolated caches, offscreen Qt, and synthetic corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache/data folders: nothing leaks into the user's home."""
    base = tmp_path_factory.mktemp("bst-home")
    monkeypatch.setenv("BST_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("BST_DATA_DIR", str(base / "data"))


@pytest.fixture(scope="session")
def bsd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic BSD10k-layout dataset (read-only for tests: copy before modifying)."""
    from bst_core.synthetic import write_bsd_dataset

    return write_bsd_dataset(tmp_path_factory.mktemp("bsd") / "BSD10k-synthetic")


@pytest.fixture(scope="session")
def eval_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic evaluation folder (anonymous ids, audio, metadata, shipped-layout features)."""
    from bst_core.synthetic import write_evaluation_folder

    return write_evaluation_folder(tmp_path_factory.mktemp("eval") / "BSD2k-synthetic")
