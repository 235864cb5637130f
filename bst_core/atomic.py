"""Atomic file writes: write to a temporary file in the same folder, fsync, rename.

- Temp names are ``.<name>.<random>.tmp`` beside the target; a killed write leaves such a file
  (or folder), which :func:`clean_stale_tmp` removes on the next run.
- Written files get the user's umask (``0o666 & ~umask``), not mkstemp's 0600.
- A full disk (``ENOSPC``/``EDQUOT``, or torch's and numpy's wrappers of it) becomes
  :class:`BadInputError` "disk full while writing PATH; ..." with the temp file removed and the
  target untouched (:func:`disk_full_error` does the translation for other modules).
- :func:`write_files_together` makes several files of one folder appear together or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from bst_core.errors import BadInputError

PathLike = str | os.PathLike[str]

STALE_TMP_SECONDS = 900.0
"""Default age after which :func:`clean_stale_tmp` treats a temp file as left by a killed write."""

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_DISK_FULL_MESSAGES = re.compile(
    r"no space left on device|disk quota exceeded|not enough space on the disk"
    r"|enforce fail at inline_container\.cc"      # torch.save: PytorchStreamWriter short write
    r"|\b\d+ requested and \d+ written\b",         # numpy tofile / savez short write
    re.IGNORECASE)
_UMASK_LOCK = threading.Lock()


def disk_full_error(path: PathLike, exc: BaseException) -> BadInputError | None:
    """A :class:`BadInputError` saying the disk is full if ``exc`` (or its cause chain) is one, else None.

    Recognises OSError errno ENOSPC/EDQUOT and the messages of wrappers (torch's
    ``[enforce fail at inline_container.cc:...]``, numpy's ``N requested and M written``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BadInputError):
            return None
        if (isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS) \
                or _DISK_FULL_MESSAGES.search(str(current)):
            error = BadInputError(f"disk full while writing {path}; free some space and run again")
            error.__cause__ = exc
            return error
        current = current.__cause__ or current.__context__
    return None


def file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open()`` would give a new file."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success give it the umask's mode and rename it over ``path``.

    If the body raises, the temp file is removed and ``path`` is left untouched; a full disk is
    raised as :class:`BadInputError` (see :func:`disk_full_error`).
    """
    target = Path(path)
    if target.is_dir():
        raise BadInputError(f"{target} is a folder; give the path of a file to write.")
    binary = "b" in mode
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        full = disk_full_error(target, exc)
        if full is not None:
            raise full from exc
        raise


def write_text(path: PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8, newlines as given)."""
    with atomic_open(path, "w", newline="") as handle:
        handle.write(text)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically write ``data``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN refused)."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def save_torch(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)`` through a temp file: a crash or full disk leaves ``path`` as it was."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def write_files_together(folder: PathLike, files: Mapping[str, str | bytes]) -> Path:
    """Write ``files`` (name → UTF-8 text or bytes) into ``folder`` so that they appear together or not at all.

    All files are written and fsynced into a staging folder ``.<folder>.<random>.tmp`` beside
    ``folder``. If ``folder`` does not exist the staging folder is renamed to it (one atomic step).
    Otherwise other entries of ``folder`` are hard-linked (or copied) into the staging folder, then
    ``folder`` is renamed to a backup ``.<folder>.<random>.old.tmp``, the staging folder is renamed to
    ``folder`` and the backup is deleted. If that second rename fails, the backup is renamed back, so
    ``folder`` holds the old files again; if even that fails, :class:`BadInputError` says where the old
    folder is. At no moment does ``folder`` hold a mix of old and new files (between the two renames
    it is briefly absent). On failure nothing new remains: staging removed, parents this call created
    removed. Returns ``folder``.
    """
    target = Path(folder)
    for name in files:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"write_files_together takes plain file names, not {name!r}")
    created = _missing_parents(target.parent)
    staging: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            _write_synced(staging / name, data)
        os.chmod(staging, 0o777 & ~_umask())
        fsync_dir(staging)
        replace = target.is_dir() and not target.is_symlink()
        if not replace:
            try:
                os.rename(staging, target)      # target absent: done in one step
            except OSError as exc:              # created meanwhile by someone else
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
                    raise
                replace = True
        if replace:
            _carry_other_entries(target, staging, set(files))
            _swap_in(staging, target)
        staging = None
        fsync_dir(target.parent)
        return target
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for parent in created:
            with contextlib.suppress(OSError):
                parent.rmdir()
        full = disk_full_error(target, exc)
        if full is not None:
            raise full from exc
        raise


def clean_stale_tmp(folder: PathLike, older_than_s: float = STALE_TMP_SECONDS, *,
                    recursive: bool = False) -> list[Path]:
    """Remove ``.*.tmp`` files and folders in ``folder`` untouched for ``older_than_s`` seconds.

    These are left by a killed atomic write; younger ones may belong to a write still running and are
    kept. A folder counts by the newest modification time inside it. ``recursive`` also looks in
    sub-folders. Returns what was removed; errors (a file vanishing, no permission) are skipped.
    """
    root = Path(folder)
    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    pending = [root]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if entry.name.startswith(".") and entry.name.endswith(".tmp") and len(entry.name) > 5:
                    if _newest_mtime(path, is_dir) < cutoff:
                        if is_dir:
                            shutil.rmtree(path)
                        else:
                            path.unlink()
                        removed.append(path)
                elif recursive and is_dir:
                    pending.append(path)
            except OSError:
                continue
    return removed


# --- helpers -----------------------------------------------------------------------------------

def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and restore at once (the only portable way to read it)
        current = os.umask(0o022)
        os.umask(current)
    return current


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, file_mode())


def fsync_dir(path: Path) -> None:
    """Make a rename durable (no-op where folders cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _carry_other_entries(old: Path, staging: Path, written: set[str]) -> None:
    """Hard-link (or copy) what ``old`` holds besides the files being replaced into ``staging``."""
    for entry in old.iterdir():
        if entry.name in written or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        destination = staging / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        else:
            _link_or_copy(str(entry), str(destination))


def _link_or_copy(source: str, destination: str) -> str:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
    return destination


def _swap_in(staging: Path, target: Path) -> None:
    """Replace the folder ``target`` by ``staging`` via a backup, restoring it if the second rename fails."""
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old.tmp", dir=target.parent))
    os.rmdir(backup)                                  # only its unique name is needed
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except BaseException as exc:
        try:
            os.rename(backup, target)
        except OSError as restore_exc:
            raise BadInputError(
                f"{target} could not be replaced ({exc}) nor restored ({restore_exc}); its previous "
                f"contents are in {backup}: rename that folder back to {target.name}.") from exc
        raise
    shutil.rmtree(backup, ignore_errors=True)        # a left-over is removed by clean_stale_tmp


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


def _newest_mtime(path: Path, is_dir: bool) -> float:
    newest = path.lstat().st_mtime
    if is_dir:
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest
