"""Exclusive locks on folders a process writes (stores, run folders), over the ``filelock`` package.

A second writer waits up to ``timeout`` seconds, then is refused with a message naming the folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bst_core.errors import BadInputError

LOCK_NAME = ".lock"
"""The lock file inside a locked folder."""
DEFAULT_TIMEOUT = 5.0


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike[str], what: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Path]:
    """Hold the folder's lock for the body; BadInputError if another process keeps it ``timeout`` s."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    lock = FileLock(lock_path, is_singleton=False)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise BadInputError(f"The {what} {folder} is being written by another process (lock {lock_path}); "
                            "wait for it to finish, or write somewhere else.") from None
    try:
        yield lock_path
    finally:
        lock.release()
