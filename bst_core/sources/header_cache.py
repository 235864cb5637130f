"""Remembered file headers of a folder of sounds (embedded tags, duration), so reopening a folder of
100k files does not reopen every file (the one owner of this cache's file format).

File: ``cache_dir()/headers/<folder_key(root)>.json``, written atomically (:mod:`bst_core.atomic`)::

    {"format": "bst-header-cache", "format_version": 1, "reader": READER, "root": "/abs/root",
     "ids": [...], "size": [...], "mtime_ns": [...], "ctime_ns": [...], "inode": [...], "device": [...],
     "duration": [...], "tags": [{...}, ...]}

An entry is used only when the file's size, mtime_ns, ctime_ns, inode and device all equal what was
recorded (the stamp :func:`stamp_of` takes from ``os.stat``, compared as whole numbers); any
difference, even a file rewritten with the same size and its mtime set back, changes ctime_ns, so
the header is read again. Headers of
files changed less than :data:`RACY_NS` before they were read are not remembered (a rewrite within
the file system's timestamp resolution could keep the stamp), nor are headers that could not be read.
A cache file of another format, reader version or root, or one that cannot be parsed, is ignored and
written anew: it only ever saves reading headers that the stamps prove unchanged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bst_core import atomic, paths

FORMAT = "bst-header-cache"
FORMAT_VERSION = 1
READER = 1
"""Version of what :func:`bst_core.sources.folder._embedded` extracts; bump it when that changes."""
RACY_NS = 3_000_000_000
"""A header read less than this long after its file last changed is not remembered (3 s covers
file systems with 2 s timestamps)."""

Stamp = tuple[int, int, int, int, int]
"""``(size, mtime_ns, ctime_ns, inode, device)`` of a file."""
Header = tuple[dict[str, str], float]
"""Embedded text tags and the duration in seconds (NaN when unknown)."""


def stamp_of(info: os.stat_result) -> Stamp:
    """The stamp of a file from its ``os.stat`` result."""
    return int(info.st_size), int(info.st_mtime_ns), int(info.st_ctime_ns), int(info.st_ino), int(info.st_dev)


def cache_path(root: Path) -> Path:
    """Where the header cache of the folder ``root`` lives."""
    return paths.cache_dir() / "headers" / f"{paths.folder_key(root)}.json"


@dataclass
class HeaderCache:
    """The remembered headers of one folder: :meth:`lookup` those whose stamps still match, :meth:`put`
    new ones, :meth:`save` once (only when something changed)."""

    root: Path
    path: Path
    ids: list[str] = field(default_factory=list)
    stamps: np.ndarray = field(default_factory=lambda: np.zeros((0, len(_STAMP_FIELDS)), np.int64))
    headers: list[Header] = field(default_factory=list)
    fresh: dict[str, tuple[Stamp, Header]] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, root: Path) -> HeaderCache:
        """The cache of ``root`` (empty when there is none or it is unusable, see the module docstring)."""
        path = cache_path(root)
        cache = cls(root, path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return cache
        parsed = _columns(data, str(root))
        if parsed is not None:
            cache.ids, cache.stamps, cache.headers = parsed
        return cache

    def lookup(self, ids: list[str], stamps: list[Stamp]) -> list[Header | None]:
        """Per id, its remembered header if its file's stamp is exactly the one recorded, else None
        (tags dicts are the cache's own: read them, do not change them)."""
        if not self.ids or not ids:
            return [None] * len(ids)
        index = dict(zip(self.ids, range(len(self.ids)), strict=True))
        where = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
        hit = where >= 0
        now = np.array(stamps, dtype=np.int64).reshape(len(ids), len(_STAMP_FIELDS))
        hit[hit] = (self.stamps[where[hit]] == now[hit]).all(axis=1)
        found: list[Header | None] = [None] * len(ids)
        for k in np.flatnonzero(hit).tolist():
            header = self.headers[where[k]]
            found[k] = header
            self.fresh[ids[k]] = (stamps[k], header)
        return found

    def put(self, item_id: str, stamp: Stamp, header: Header, *, read_at_ns: int, readable: bool) -> None:
        """Remember ``header`` read at ``read_at_ns`` (``time.time_ns()`` before reading) from a file
        stamped ``stamp``; skipped for unreadable files and files changed within :data:`RACY_NS`."""
        self.changed = True
        if readable and read_at_ns - max(stamp[1], stamp[2]) >= RACY_NS:
            self.fresh[item_id] = (stamp, (dict(header[0]), header[1]))

    def save(self) -> None:
        """Write the headers used or read in this pass (files gone are dropped); nothing when none changed."""
        if not self.changed and len(self.fresh) == len(self.ids):
            return
        ids = list(self.fresh)
        stamps = [self.fresh[i][0] for i in ids]
        headers = [self.fresh[i][1] for i in ids]
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, "reader": READER, "root": str(self.root),
                "ids": ids, **{name: [s[k] for s in stamps] for k, name in enumerate(_STAMP_FIELDS)},
                "duration": [None if math.isnan(d) else d for _, d in headers], "tags": [t for t, _ in headers]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):   # a cache that cannot be written costs only speed next time
            atomic.write_text(self.path, json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        self.ids, self.headers, self.changed = ids, headers, False
        self.stamps = np.array(stamps, dtype=np.int64).reshape(len(ids), len(_STAMP_FIELDS))


_STAMP_FIELDS = ("size", "mtime_ns", "ctime_ns", "inode", "device")


def _columns(data: object, root: str) -> tuple[list[str], np.ndarray, list[Header]] | None:
    """``(ids, stamps (n, 5) int64, headers)`` of a parsed cache file; None unless it is this format,
    version, reader and root and every column is a list of the right length and types."""
    if not isinstance(data, dict) or (data.get("format"), data.get("format_version"), data.get("reader"),
                                      data.get("root")) != (FORMAT, FORMAT_VERSION, READER, root):
        return None
    columns = [data.get(name) for name in ("ids", *_STAMP_FIELDS, "duration", "tags")]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1:
        return None
    ids, *stamp_columns, durations, tags = columns
    if not (all(type(i) is str for i in ids) and all(d is None or type(d) in (int, float) for d in durations)
            and all(type(t) is dict for t in tags) and all(type(v) is str for t in tags for v in t.values())):
        return None
    try:
        arrays = [np.array(c) for c in stamp_columns]
    except (ValueError, OverflowError):
        return None
    if len(ids) and not all(a.ndim == 1 and a.dtype.kind == "i" for a in arrays):   # whole numbers only
        return None
    stamps = np.stack([a.astype(np.int64) for a in arrays], axis=1) if len(ids) else \
        np.zeros((0, len(_STAMP_FIELDS)), np.int64)
    nan = float("nan")
    headers = list(zip(tags, (nan if d is None else float(d) for d in durations), strict=True))
    return ids, stamps, headers


def now_ns() -> int:
    """The wall clock in ns, as file timestamps are kept."""
    return time.time_ns()
