"""Where BST Studio keeps caches and settings (platformdirs, overridable for tests)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "bst-studio"


def cache_dir() -> Path:
    """User cache folder; ``$BST_CACHE_DIR`` overrides it (tests point it at a tmp dir)."""
    override = os.environ.get("BST_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """User data folder (model checkpoints); ``$BST_DATA_DIR`` overrides it."""
    override = os.environ.get("BST_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path
