"""Where BST Studio keeps caches and settings (platformdirs, overridable for tests)."""

from __future__ import annotations

import hashlib
import os
import re
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


def folder_key(source: str | os.PathLike[str]) -> str:
    """A stable folder name for per-source files kept outside the source: ``<name>-<12 hex>``.

    The name is the source's (sanitised, at most 40 characters), the hex digits are the start of
    the SHA-1 of its resolved absolute path, so two sources with the same name never share files.
    """
    absolute = str(Path(source).expanduser().resolve())
    digest = hashlib.sha1(absolute.encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(absolute).name)[:40] or "root"
    return f"{name}-{digest}"
