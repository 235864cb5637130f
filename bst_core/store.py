"""Consolidated, resumable embedding store: one folder, memory-mapped matrices, append-only chunks.

Layout of a store folder (format 2)::

    manifest.json            {"format": "bst-store", "format_version": 2, "encoder": {...}, "source",
                              "created", "generation": g, "rows": n, "ids_sha256", "compacted_through": s}
    gen-<g>/items.csv        index: id,row,status,reason,size,mtime_ns,key,text_hash,check
    gen-<g>/audio.npy, text.npy   consolidated float32 (n, dim) matrices, opened with mmap_mode="r"
    pending/chunk-<seq>.npz  batches appended since the last compaction (seq > compacted_through)
    .lock                    held by the one process writing (:mod:`bst_core.locking`)

Each item records what it was computed from: ``size``/``mtime_ns`` of its file and an opaque
``key`` (the caller's fingerprint of the source, compared exactly), ``text_hash`` (of the text
that was embedded) and ``check`` (a hash of the id and its vectors, verified on every load, so
swapped or overwritten rows are refused). ``ids_sha256`` (the ids in row order) catches a
swapped ``row`` in items.csv as soon as the store is opened.

Appending writes one chunk per batch, so a crash loses at most the batch in flight; the latest
entry per id wins. :meth:`EmbeddingStore.compact` writes a whole new generation folder, then
switches to it by replacing ``manifest.json`` (one atomic rename), then deletes the old
generation and the merged chunks: a reader sees either the old files or the new ones, never a
mix. Every write holds the store's lock; a second writer waits ``lock_timeout`` seconds, then is
refused. A full disk becomes :class:`BadInputError` with nothing half-written.
Stores of format 1 (files at the top level, no keys) are read; their next compaction upgrades them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bst_core import atomic, jobs, locking
from bst_core.corpus import EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError

FORMAT = "bst-store"
FORMAT_VERSION = 2
ITEM_STATUSES: tuple[str, ...] = ("ok", "audio_failed")
"""``ok``: both vectors computed; ``audio_failed``: audio vector is zeros, text computed, ``reason`` says why."""

MANIFEST, ITEMS, AUDIO, TEXT, PENDING = "manifest.json", "items.csv", "audio.npy", "text.npy", "pending"
LOCK = locking.LOCK_NAME
_ITEM_COLUMNS = ("id", "row", "status", "reason", "size", "mtime_ns", "key", "text_hash", "check")
_ITEM_DTYPES = {"id": str, "row": np.int64, "status": str, "reason": str, "size": np.int64,
                "mtime_ns": np.int64, "key": str, "text_hash": str, "check": str}
_V1_COLUMNS = ("id", "row", "status", "reason", "size", "mtime")
_V1_DTYPES = {"id": str, "row": np.int64, "status": str, "reason": str, "size": np.int64, "mtime": np.float64}
_CHUNK_RE = re.compile(r"^chunk-(\d+)\.npz$")
_GEN_RE = re.compile(r"^gen-(\d+)$")
_CHECK_RE = re.compile(r"^[0-9a-f]{16}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TEXT_KEYS = ("ids", "status", "reason", "key", "text_hash", "check")
_CHUNK_KEYS = ("ids", "audio", "text", "status", "reason", "size", "mtime_ns", "key", "text_hash", "check")
_V1_CHUNK_KEYS = ("ids", "audio", "text", "status", "reason", "size", "mtime")
_MTIME_TOLERANCE_S = 1e-6
_CONSOLIDATE_BATCH = 1024
_READ_ATTEMPTS = 3
_ADVICE = "and extract again (`bst extract`, or reopen the dataset) to rebuild it."


@dataclass
class _Chunk:
    path: Path
    ids: np.ndarray
    audio: np.ndarray
    text: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray
    key: np.ndarray
    text_hash: np.ndarray
    check: np.ndarray


class _Vanished(Exception):
    """A file named by the manifest is gone (a writer may have switched generations meanwhile)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _damaged(file: Path, detail: str, store: Path) -> BadInputError:
    return BadInputError(f"Embedding store file {file} is damaged ({detail}). Delete the store folder {store} "
                         + _ADVICE)


def _is_count(value: object, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _shown(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the ids in row order (NUL-separated): recorded in the manifest as ``ids_sha256``."""
    return hashlib.sha256(b"\0".join(_encode(str(i)) for i in ids)).hexdigest()


def row_checks(ids: Sequence[str], audio: np.ndarray, text: np.ndarray) -> list[str]:
    """Per-row checksum: 16 hex digits of blake2b over the id and the float32 bytes of both vectors."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    text = np.ascontiguousarray(text, dtype=np.float32)
    audio_bytes, text_bytes = memoryview(audio.reshape(-1)).cast("B"), memoryview(text.reshape(-1)).cast("B")
    audio_row, text_row = audio.shape[1] * 4 if audio.ndim == 2 else 0, text.shape[1] * 4 if text.ndim == 2 else 0
    blake2b = hashlib.blake2b
    checks = []
    for k, item in enumerate(ids):   # memoryview slices: the same bytes as audio[k], without a view per row
        digest = blake2b(_encode(str(item)) + b"\0", digest_size=8)
        digest.update(audio_bytes[k * audio_row:(k + 1) * audio_row])
        digest.update(text_bytes[k * text_row:(k + 1) * text_row])
        checks.append(digest.hexdigest())
    return checks


def _copy_rows(matrix: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a memory-mapped float32 matrix as an in-memory copy: read from its file
    with ``readinto`` (several times faster than copying through the mapping page by page), or through
    the mapping when the file is not a plain C-ordered one any more (gone, shorter). The caller
    verifies the rows' checksums either way."""
    out = np.empty((stop - start, matrix.shape[1]), np.float32)
    filename, offset = getattr(matrix, "filename", None), getattr(matrix, "offset", None)
    if filename and isinstance(offset, int) and matrix.flags.c_contiguous and len(out):
        view, got = memoryview(out.reshape(-1)).cast("B"), 0
        with contextlib.suppress(OSError), open(filename, "rb", buffering=0) as handle:
            handle.seek(offset + start * out.shape[1] * 4)
            while got < len(view) and (count := handle.readinto(view[got:])):
                got += count
        if got == len(view):
            return out
    out[:] = matrix[start:stop]
    return out


def disk_full(path: Path, exc: BaseException) -> BadInputError | None:
    """The store's "disk full" error for ``exc`` (ENOSPC, or a wrapper saying so), else None."""
    cause: BaseException | None = exc
    if isinstance(exc, BadInputError):  # atomic.py's own translation: look at what it wraps
        cause = exc.__cause__
    if cause is None or isinstance(cause, BadInputError) or atomic.disk_full_error(path, cause) is None:
        return None
    return BadInputError(f"disk full while writing {path}; free space and run again (finished work is kept)")


@contextlib.contextmanager
def _writing_file(path: Path) -> Iterator[None]:
    """Translate a full disk while writing ``path`` into :class:`BadInputError`."""
    try:
        yield
    except Exception as exc:
        full = disk_full(path, exc)
        if full is not None:
            raise full from exc
        raise


def _remove(path: Path) -> None:
    """Delete a file or folder; errors (in use on Windows, gone already) are left for the next write."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


class EmbeddingStore:
    """Embeddings of many sounds, keyed by id, with what each was computed from.

    Use :meth:`open`; the constructor is internal.
    """

    def __init__(self, path: Path, encoder: EncoderInfo, manifest: dict[str, Any], *,
                 lock_timeout: float | None = None) -> None:
        self.path = path
        self.encoder = encoder
        self.manifest = manifest
        self.lock_timeout = locking.DEFAULT_TIMEOUT if lock_timeout is None else float(lock_timeout)
        self._index = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _ITEM_DTYPES.items()})
        self._audio: np.ndarray = np.zeros((0, encoder.audio_dim), np.float32)
        self._text: np.ndarray = np.zeros((0, encoder.text_dim), np.float32)
        self._chunks: list[_Chunk] = []
        self._last_seq = 0
        self._stamp: tuple[int, ...] | None = None
        self._chunk_names: frozenset[str] = frozenset()
        self._lock_depth = 0
        self._latest_cache: pd.DataFrame | None = None
        self._pending_cache: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create_with: EncoderInfo | None = None,
             source: str = "", lock_timeout: float | None = None) -> EmbeddingStore:
        """Open the store at ``path``; create it when missing and ``create_with`` is given.

        Raises :class:`IncompatibleError` when the store was made with another encoder than
        ``create_with``, :class:`BadInputError` naming the file when the store is damaged, or when
        another process holds the lock longer than ``lock_timeout`` seconds (default
        :data:`bst_core.locking.DEFAULT_TIMEOUT`) while this call would create the store.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if folder.exists() and not folder.is_dir():
            raise BadInputError(f"{folder} is a file, not an embedding store folder. Choose a folder.")
        if not manifest_path.exists():
            cls._refuse_leftovers(folder)
            if create_with is None:
                raise BadInputError(
                    f"No embedding store in {folder} (no {MANIFEST}). Run `bst extract` to create one, "
                    "or choose the folder that holds manifest.json.")
            empty = cls(folder, create_with, {}, lock_timeout=lock_timeout)
            with empty._locked():
                if not manifest_path.exists():  # nobody created it while this process waited
                    cls._refuse_leftovers(folder)
                    empty._clean_leftovers(generation=0, compacted_through=0, migrated=False)
                    manifest = {
                        "format": FORMAT, "format_version": FORMAT_VERSION, "encoder": create_with.to_dict(),
                        "source": source, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                        "generation": 0, "rows": 0, "ids_sha256": ids_digest([]), "compacted_through": 0,
                    }
                    with _writing_file(manifest_path):
                        atomic.write_json(manifest_path, manifest)
        try:
            encoder, manifest = cls._read_manifest(folder)
        except _Vanished:
            raise BadInputError(f"No embedding store in {folder} any more (it was removed while opening). "
                                "Run `bst extract` to create one.") from None
        store = cls(folder, encoder, manifest, lock_timeout=lock_timeout)
        if create_with is not None:
            create_with.require_same(store.encoder, f"Embedding store {folder}")
        store._reload()
        return store

    @staticmethod
    def _refuse_leftovers(folder: Path) -> None:
        if not folder.is_dir():
            return
        leftovers = sorted(p.name for p in folder.iterdir()
                           if p.name in (ITEMS, AUDIO, TEXT, PENDING) or _GEN_RE.match(p.name))
        if leftovers:
            raise _damaged(folder / MANIFEST, f"missing, but {', '.join(leftovers)} exist", folder)

    @staticmethod
    def _read_manifest(folder: Path) -> tuple[EncoderInfo, dict[str, Any]]:
        """The validated manifest: every field of the right type and range, else BadInputError naming it."""
        path = folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise _Vanished(path) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _damaged(path, f"not readable JSON: {exc}", folder) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _damaged(path, f'not a BST embedding store manifest (format is not "{FORMAT}")', folder)
        version = manifest.get("format_version")
        if not _is_count(version, 1):
            raise _damaged(path, f'"format_version" is {_shown(version)}; expected a whole number', folder)
        if version > FORMAT_VERSION:
            raise IncompatibleError(
                f"Embedding store {folder} has format version {version}; this BST Studio reads versions "
                f"up to {FORMAT_VERSION}. Update BST Studio or extract again into a new store.")
        encoder = manifest.get("encoder")
        if not isinstance(encoder, dict):
            raise _damaged(path, f'"encoder" is {_shown(encoder)}; expected an object', folder)
        for key in ("name", "version"):
            if not isinstance(encoder.get(key), str) or not encoder[key]:
                raise _damaged(path, f'encoder "{key}" is {_shown(encoder.get(key))}; expected text', folder)
        for key in ("audio_dim", "text_dim"):
            if not _is_count(encoder.get(key), 1):
                raise _damaged(path, f'encoder "{key}" is {_shown(encoder.get(key))}; expected a whole '
                                     "number above 0", folder)
        for key in ("source", "created"):
            if key in manifest and not isinstance(manifest[key], str):
                raise _damaged(path, f'"{key}" is {_shown(manifest[key])}; expected text', folder)
        if version >= 2:
            for key in ("generation", "rows", "compacted_through"):
                if not _is_count(manifest.get(key)):
                    raise _damaged(path, f'"{key}" is {_shown(manifest.get(key))}; expected a whole number '
                                         "of 0 or more", folder)
            digest = manifest.get("ids_sha256")
            if not isinstance(digest, str) or not _SHA256_RE.match(digest):
                raise _damaged(path, f'"ids_sha256" is {_shown(digest)}; expected 64 hex digits', folder)
            if manifest["generation"] == 0 and manifest["rows"] != 0:
                raise _damaged(path, f'"rows" is {manifest["rows"]} but there is no generation', folder)
            if "migrated_from" in manifest and not _is_count(manifest["migrated_from"], 1):
                raise _damaged(path, f'"migrated_from" is {_shown(manifest["migrated_from"])}', folder)
        return EncoderInfo.from_dict(encoder), manifest

    @property
    def format_version(self) -> int:
        """Format of the files on disk (1: an older store, upgraded by the next compaction)."""
        return int(self.manifest["format_version"])

    @property
    def generation_path(self) -> Path | None:
        """Folder of the consolidated files (None: none yet, or a format-1 store with them at the top)."""
        generation = self.manifest.get("generation", 0) if self.format_version >= 2 else 0
        return self.path / f"gen-{generation:06d}" if generation else None

    def _manifest_stamp(self) -> tuple[int, ...] | None:
        try:
            info = (self.path / MANIFEST).stat()
        except OSError:
            return None
        return info.st_ino, info.st_dev, info.st_mtime_ns, info.st_size

    def _reload(self) -> None:
        """Read manifest, index, matrices and chunks; retried if a writer switched generations meanwhile."""
        for attempt in range(_READ_ATTEMPTS):
            stamp = self._manifest_stamp()
            try:
                encoder, manifest = self._read_manifest(self.path)
                index, audio, text = self._load_consolidated(manifest, encoder)
                chunks, last_seq = self._load_chunks(manifest, encoder)
            except _Vanished as exc:
                if attempt + 1 < _READ_ATTEMPTS and self._manifest_stamp() != stamp:
                    continue
                raise _damaged(exc.path, "missing", self.path) from None
            break
        encoder.require_same(self.encoder, f"Embedding store {self.path}")
        self.manifest, self._index, self._audio, self._text = manifest, index, audio, text
        self._chunks, self._last_seq = chunks, last_seq
        self._stamp = stamp
        self._chunk_names = frozenset(c.path.name for c in chunks)
        self._latest_cache = self._pending_cache = None

    def _load_consolidated(self, manifest: dict[str, Any], encoder: EncoderInfo,
                           ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        version = manifest["format_version"]
        if version == 1:
            return self._load_format_1(encoder)
        if not manifest.get("migrated_from"):
            for name in (ITEMS, AUDIO, TEXT):
                if (self.path / name).exists():
                    raise _damaged(self.path / name, f"not part of a format-{version} store (its files are in "
                                                     "gen-* folders)", self.path)
        generation, rows = int(manifest["generation"]), int(manifest["rows"])
        if generation == 0:
            return (pd.DataFrame({c: pd.Series(dtype=t) for c, t in _ITEM_DTYPES.items()}),
                    np.zeros((0, encoder.audio_dim), np.float32), np.zeros((0, encoder.text_dim), np.float32))
        folder = self.path / f"gen-{generation:06d}"
        items_path = folder / ITEMS
        index = self._read_index(items_path, _ITEM_COLUMNS, _ITEM_DTYPES)
        if len(index) != rows:
            raise _damaged(items_path, f"lists {len(index)} items, {MANIFEST} says {rows}", self.path)
        order = np.argsort(index["row"].to_numpy(), kind="stable")
        if not np.array_equal(index["row"].to_numpy()[order], np.arange(rows)):
            raise _damaged(items_path, f"its rows are not 0..{rows - 1}, each once", self.path)
        if ids_digest(index["id"].to_numpy()[order]) != manifest["ids_sha256"]:
            raise _damaged(items_path, f"its ids are not in the row order recorded in {MANIFEST} (rows swapped "
                                       "or edited)", self.path)
        bad_checks = ~index["check"].str.match(_CHECK_RE.pattern)
        if bad_checks.any():
            raise _damaged(items_path, f"row checksum {index['check'][bad_checks].iloc[0]!r} is not 16 hex "
                                       "digits", self.path)
        audio = self._map_matrix(folder / AUDIO, encoder.audio_dim, rows, exact=True)
        text = self._map_matrix(folder / TEXT, encoder.text_dim, rows, exact=True)
        return index, audio, text

    def _load_format_1(self, encoder: EncoderInfo) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """A format-1 index (no keys, float mtime) in the current columns; its rows are not checked."""
        index = self._read_index(self.path / ITEMS, _V1_COLUMNS, _V1_DTYPES)
        if index["row"].duplicated().any() or (index["row"] < 0).any():
            raise _damaged(self.path / ITEMS, "duplicate or negative rows", self.path)
        rows_needed = int(index["row"].max()) + 1 if len(index) else 0
        index = pd.DataFrame({
            "id": index["id"], "row": index["row"], "status": index["status"], "reason": index["reason"],
            "size": index["size"], "mtime_ns": np.round(index["mtime"].to_numpy() * 1e9).astype(np.int64),
            "key": "", "text_hash": "", "check": "",
        })
        return (index, self._map_matrix(self.path / AUDIO, encoder.audio_dim, rows_needed, exact=False),
                self._map_matrix(self.path / TEXT, encoder.text_dim, rows_needed, exact=False))

    def _read_index(self, path: Path, columns: tuple[str, ...], dtypes: dict[str, Any]) -> pd.DataFrame:
        try:
            index = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_filter=False,  # type: ignore[arg-type]
                                float_precision="round_trip", encoding="utf-8")
        except FileNotFoundError as exc:
            raise _Vanished(path) from exc
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise _damaged(path, f"cannot read it: {exc}", self.path) from exc
        if tuple(index.columns) != columns:
            raise _damaged(path, f"columns are {list(index.columns)}, expected {list(columns)}", self.path)
        if index["id"].duplicated().any():
            raise _damaged(path, f"id {index['id'][index['id'].duplicated()].iloc[0]!r} is listed twice", self.path)
        unknown = ~index["status"].isin(ITEM_STATUSES)
        if unknown.any():
            raise _damaged(path, f"status {index['status'][unknown].iloc[0]!r} is not one of {ITEM_STATUSES}",
                           self.path)
        return index

    def _map_matrix(self, path: Path, dim: int, rows: int, *, exact: bool) -> np.ndarray:
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise _Vanished(path) from exc
        except (OSError, ValueError, EOFError) as exc:
            raise _damaged(path, f"truncated or not a .npy file: {exc}", self.path) from exc
        if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.dtype != np.float32:
            raise _damaged(path, f"holds {matrix.dtype} {matrix.shape}, expected float32 (n, {dim})", self.path)
        if matrix.shape[0] < rows or (exact and matrix.shape[0] != rows):
            raise _damaged(path, f"has {matrix.shape[0]} rows but {ITEMS} lists {rows}", self.path)
        return matrix

    def _chunk_files(self, compacted_through: int) -> list[tuple[int, Path]]:
        folder = self.path / PENDING
        if not folder.is_dir():
            return []
        numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHUNK_RE.match(p.name)))
        return [(seq, p) for seq, p in numbered if seq > compacted_through]

    def _load_chunks(self, manifest: dict[str, Any], encoder: EncoderInfo) -> tuple[list[_Chunk], int]:
        through = int(manifest.get("compacted_through", 0))
        numbered = self._chunk_files(through)
        chunks = [self._read_chunk(path, encoder) for _, path in numbered]
        return chunks, max([through] + [seq for seq, _ in numbered])

    def _read_chunk(self, path: Path, encoder: EncoderInfo) -> _Chunk:
        def refuse(detail: str) -> BadInputError:
            return BadInputError(
                f"Embedding store chunk {path} is {detail}. Delete that file (only its batch is recomputed "
                f"on the next extraction) or delete the store folder {self.path}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                fields = {key: np.asarray(data[key]) for key in data.files}
        except FileNotFoundError as exc:
            raise _Vanished(path) from exc
        except Exception as exc:  # zip, header: the file cannot be used
            raise refuse(f"unreadable ({exc!r})") from exc
        if "mtime" in fields and "mtime_ns" not in fields:  # a format-1 chunk
            fields["mtime_ns"] = np.round(np.asarray(fields.pop("mtime"), np.float64) * 1e9).astype(np.int64)
            for key in ("key", "text_hash", "check"):
                fields[key] = np.full(len(fields.get("ids", [])), "", dtype=str)
        missing = [key for key in _CHUNK_KEYS if key not in fields]
        if missing:
            raise refuse(f"unreadable (no {', '.join(missing)})")
        n = len(fields["ids"])
        kinds = {**dict.fromkeys(_TEXT_KEYS, "U"), "size": "i", "mtime_ns": "i"}
        for key, kind in kinds.items():
            if fields[key].dtype.kind != kind or fields[key].shape != (n,):
                raise refuse(f"damaged ({key} holds {fields[key].dtype} {fields[key].shape}, expected {n} "
                             f"{'texts' if kind == 'U' else 'whole numbers'})")
        if fields["audio"].shape != (n, encoder.audio_dim) or fields["text"].shape != (n, encoder.text_dim) \
                or fields["audio"].dtype != np.float32 or fields["text"].dtype != np.float32:
            raise refuse(f"not matching the store (audio {fields['audio'].dtype} {fields['audio'].shape}, "
                         f"text {fields['text'].dtype} {fields['text'].shape}, {n} ids)")
        unknown = set(fields["status"].tolist()) - set(ITEM_STATUSES)
        bad_check = [c for c in fields["check"].tolist() if c and not _CHECK_RE.match(c)]
        if unknown or bad_check:
            raise refuse(f"damaged (status {sorted(unknown)} or checksum {bad_check[:1]} unknown)")
        return _Chunk(path, *(fields[key] for key in _CHUNK_KEYS))

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locking.exclusive(self.path, "embedding store", timeout=self.lock_timeout))
            except OSError as exc:  # creating the lock file on a full disk
                full = disk_full(self.path / LOCK, exc)
                if full is not None:
                    raise full from exc
                raise
            yield

    @contextlib.contextmanager
    def writing(self) -> Iterator[EmbeddingStore]:
        """Hold the store's exclusive lock for several writes (append/compact take it themselves).

        On entry the store is re-read if another process changed it since, and left-overs of killed
        writes (``*.tmp``, unused generations, merged chunks) are removed.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        with self._locked():
            self._lock_depth = 1
            try:
                if self._changed_on_disk():
                    self._reload()
                self._clean_leftovers(generation=int(self.manifest.get("generation", 0)),
                                      compacted_through=int(self.manifest.get("compacted_through", 0)),
                                      migrated=bool(self.manifest.get("migrated_from")))
                yield self
            finally:
                self._lock_depth = 0

    def _changed_on_disk(self) -> bool:
        through = int(self.manifest.get("compacted_through", 0))
        return (self._manifest_stamp() != self._stamp
                or frozenset(p.name for _, p in self._chunk_files(through)) != self._chunk_names)

    def _clean_leftovers(self, *, generation: int, compacted_through: int, migrated: bool) -> None:
        """Remove what killed writes left (only under the lock: no other writer is running)."""
        doomed: list[Path] = []
        folders = [self.path, self.path / PENDING]
        if self.path.is_dir():
            for entry in self.path.iterdir():
                match = _GEN_RE.match(entry.name)
                if match and int(match.group(1)) != generation:
                    doomed.append(entry)
                elif match:
                    folders.append(entry)
        for folder in folders:
            if folder.is_dir():
                doomed += [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
        pending = self.path / PENDING
        if pending.is_dir():
            doomed += [p for p in pending.iterdir()
                       if (m := _CHUNK_RE.match(p.name)) and int(m.group(1)) <= compacted_through]
        if migrated:
            doomed += [self.path / n for n in (ITEMS, AUDIO, TEXT) if (self.path / n).exists()]
        for path in doomed:
            _remove(path)

    # ------------------------------------------------------------------ writing
    def append(self, ids: Sequence[str], audio: np.ndarray, text: np.ndarray,
               status: Sequence[str], reason: Sequence[str], size: Sequence[int],
               mtime: Sequence[float] | None = None, *, mtime_ns: Sequence[int] | None = None,
               keys: Sequence[str] | None = None, text_hashes: Sequence[str] | None = None) -> None:
        """Add one batch as one atomically written chunk (later entries for an id win).

        ``mtime_ns`` (exact) or ``mtime`` (seconds) is required; ``keys``/``text_hashes`` default to "".
        """
        n = len(ids)
        audio = np.asarray(audio, dtype=np.float32)
        text = np.asarray(text, dtype=np.float32)
        if audio.shape != (n, self.encoder.audio_dim) or text.shape != (n, self.encoder.text_dim):
            raise ValueError(f"append: audio {audio.shape} / text {text.shape} do not fit {n} ids of "
                             f"{self.encoder.audio_dim}+{self.encoder.text_dim} dims")
        if mtime_ns is None:
            if mtime is None:
                raise ValueError("append: give mtime_ns (or mtime)")
            mtime_ns = np.round(np.asarray(mtime, dtype=np.float64) * 1e9).astype(np.int64).tolist()
        keys = [""] * n if keys is None else keys
        text_hashes = [""] * n if text_hashes is None else text_hashes
        if not len(status) == len(reason) == len(size) == len(mtime_ns) == len(keys) == len(text_hashes) == n:
            raise ValueError("append: ids, status, reason, size, mtime, keys and text_hashes must have the "
                             "same length")
        unknown = set(status) - set(ITEM_STATUSES)
        if unknown:
            raise ValueError(f"append: unknown status {sorted(unknown)}; use one of {ITEM_STATUSES}")
        if n == 0:
            return
        str_ids = [str(i) for i in ids]
        fields = {
            "ids": np.asarray(str_ids, dtype=str), "audio": audio, "text": text,
            "status": np.asarray(status, dtype=str), "reason": np.asarray(reason, dtype=str),
            "size": np.asarray(size, dtype=np.int64), "mtime_ns": np.asarray(mtime_ns, dtype=np.int64),
            "key": np.asarray(keys, dtype=str), "text_hash": np.asarray(text_hashes, dtype=str),
            "check": np.asarray(row_checks(str_ids, audio, text), dtype=str),
        }
        with self.writing():
            folder = self.path / PENDING
            path = folder / f"chunk-{self._last_seq + 1:06d}.npz"
            with _writing_file(path):
                folder.mkdir(exist_ok=True)
                buffer = io.BytesIO()      # the zip is complete in memory: a failed write leaves no
                np.savez(buffer, **fields)  # half-closed ZipFile behind to complain at garbage collection
                atomic.write_bytes(path, buffer.getvalue())
            self._last_seq += 1
            self._chunks.append(_Chunk(path, *(fields[key] for key in _CHUNK_KEYS)))
            self._chunk_names = self._chunk_names | {path.name}
            self._latest_cache = None
            self._pending_cache = None

    def compact(self) -> None:
        """Merge the pending chunks into a new generation and switch to it in one atomic step.

        Also upgrades a format-1 store. Row checksums of everything copied are verified first.
        """
        with self.writing():
            if not self._chunks and self.format_version == FORMAT_VERSION:
                return
            index, audio, text = self._merged()
            generation = (int(self.manifest.get("generation", 0)) if self.format_version >= 2
                          else 0) + 1
            folder = self.path / f"gen-{generation:06d}"
            manifest = {
                **{k: v for k, v in self.manifest.items() if k not in ("format_version",)},
                "format_version": FORMAT_VERSION, "generation": generation, "rows": len(index),
                "ids_sha256": ids_digest(index["id"].tolist()), "compacted_through": self._last_seq,
                "compacted": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            if self.format_version < FORMAT_VERSION:
                manifest["migrated_from"] = self.format_version
            _remove(folder)  # a generation of this number can only be left over from a killed compaction
            try:
                for name, matrix in ((AUDIO, audio), (TEXT, text)):
                    with _writing_file(folder / name), atomic.atomic_open(folder / name, "wb") as handle:
                        np.save(handle, matrix)
                with _writing_file(folder / ITEMS), atomic.atomic_open(folder / ITEMS, "w", newline="") as handle:
                    index.loc[:, list(_ITEM_COLUMNS)].to_csv(handle, index=False)
                atomic.fsync_dir(folder)
                with _writing_file(self.path / MANIFEST):
                    atomic.write_json(self.path / MANIFEST, manifest)  # the switch
            except BaseException:
                if self._on_disk_generation() != generation:
                    _remove(folder)
                raise
            atomic.fsync_dir(self.path)
            self._audio = self._text = np.zeros((0, 0), np.float32)  # release the maps before deleting
            self._chunks = []
            self._clean_leftovers(generation=generation, compacted_through=self._last_seq,
                                  migrated=bool(manifest.get("migrated_from")))
            self._reload()

    def _on_disk_generation(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return int(json.loads((self.path / MANIFEST).read_text(encoding="utf-8")).get("generation"))
        return None

    def _merged(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Latest entry of every id, in one (n, dim) pair of matrices; known rows keep their order."""
        latest = self._latest()
        ids = latest.index.to_numpy(dtype=object)
        old_row = pd.Series(self._index["row"].to_numpy(), index=self._index["id"].to_numpy())
        place = np.array(old_row.reindex(latest.index).to_numpy(dtype=float))
        is_new = np.isnan(place)
        place[is_new] = len(self._audio) + np.arange(int(is_new.sum()))
        order = np.argsort(place, kind="stable")
        ids = ids[order]
        audio, text, _ = self.load(ids.tolist())  # verifies the row checksums of what is copied
        checks = np.array(latest["check"].to_numpy(dtype=object)[order])
        missing = np.flatnonzero(checks == "")
        if len(missing):  # rows of a format-1 store: checksummed now
            checks[missing] = row_checks(ids[missing].tolist(), audio[missing], text[missing])
        picked = latest.iloc[order]
        index = pd.DataFrame({
            "id": ids, "row": np.arange(len(ids), dtype=np.int64), "status": picked["status"].to_numpy(),
            "reason": picked["reason"].to_numpy(), "size": picked["size"].to_numpy(dtype=np.int64),
            "mtime_ns": picked["mtime_ns"].to_numpy(dtype=np.int64), "key": picked["key"].to_numpy(),
            "text_hash": picked["text_hash"].to_numpy(), "check": checks,
        })
        return index, audio, text

    # ------------------------------------------------------------------ reading
    def _latest(self) -> pd.DataFrame:
        """Latest entry per id, indexed by id: status, reason, size, mtime_ns, key, text_hash, check,
        src (0 consolidated, 1 pending), pos (row in the consolidated or the concatenated pending
        matrices), chunk (index into the chunks, -1 when consolidated)."""
        if self._latest_cache is None:
            fields = ("status", "reason", "size", "mtime_ns", "key", "text_hash", "check")
            frames = [pd.DataFrame({"id": self._index["id"].to_numpy(),
                                    **{f: self._index[f].to_numpy() for f in fields},
                                    "src": 0, "pos": self._index["row"].to_numpy(), "chunk": -1})]
            offset = 0
            for number, chunk in enumerate(self._chunks):
                n = len(chunk.ids)
                frames.append(pd.DataFrame({
                    "id": chunk.ids.astype(object),
                    **{f: getattr(chunk, f).astype(object if getattr(chunk, f).dtype.kind == "U" else np.int64)
                       for f in fields},
                    "src": 1, "pos": np.arange(offset, offset + n), "chunk": number,
                }))
                offset += n
            both = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            self._latest_cache = both.drop_duplicates("id", keep="last").set_index("id")
        return self._latest_cache

    def _pending_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pending_cache is None:
            if self._chunks:
                self._pending_cache = (np.concatenate([c.audio for c in self._chunks]),
                                       np.concatenate([c.text for c in self._chunks]))
            else:
                self._pending_cache = (np.zeros((0, self.encoder.audio_dim), np.float32),
                                       np.zeros((0, self.encoder.text_dim), np.float32))
        return self._pending_cache

    def __len__(self) -> int:
        return len(self._latest())

    def items(self) -> pd.DataFrame:
        """One row per id (latest entry): id, status, reason, size, mtime (s), mtime_ns, key, text_hash."""
        latest = self._latest()
        mtime_ns = latest["mtime_ns"].to_numpy(dtype=np.int64)
        return pd.DataFrame({
            "id": latest.index.to_numpy(dtype=object).astype(str),
            "status": latest["status"].to_numpy(), "reason": latest["reason"].to_numpy(),
            "size": latest["size"].to_numpy(dtype=np.int64), "mtime": mtime_ns / 1e9, "mtime_ns": mtime_ns,
            "key": latest["key"].to_numpy(), "text_hash": latest["text_hash"].to_numpy(),
        })

    def _positions(self, ids: Sequence[str]) -> np.ndarray:
        return self._latest().index.get_indexer(pd.Index([str(i) for i in ids], dtype=object))

    def up_to_date(self, ids: Sequence[str], sizes: Sequence[int], mtimes: Sequence[float] | None = None, *,
                   mtime_ns: Sequence[int] | None = None, keys: Sequence[str] | None = None) -> np.ndarray:
        """True where the store holds ``id`` computed from a source of the same size and mtime
        (``mtime_ns`` exactly, or ``mtimes`` in seconds to a microsecond) and, given ``keys``, key.

        Items stored as ``audio_failed`` count as up to date (the same file would fail again);
        items of a format-1 store have no key, so they are never up to date when keys are given.
        """
        where = self._positions(ids)
        result = where >= 0
        if result.any():
            latest = self._latest()
            known = where[result]
            same = latest["size"].to_numpy()[known] == np.asarray(sizes, dtype=np.int64)[result]
            stored_ns = latest["mtime_ns"].to_numpy(dtype=np.int64)[known]
            if mtime_ns is not None:
                same &= stored_ns == np.asarray(mtime_ns, dtype=np.int64)[result]
            elif mtimes is not None:
                same &= np.abs(stored_ns / 1e9 - np.asarray(mtimes, dtype=np.float64)[result]) <= _MTIME_TOLERANCE_S
            else:
                raise ValueError("up_to_date: give mtime_ns (or mtimes)")
            if keys is not None:
                same &= latest["key"].to_numpy(dtype=object)[known] == np.asarray(keys, dtype=object)[result]
            result[result] = same
        return result

    def load(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(audio, text, found)`` in the order of ``ids``; rows not found are zeros.

        The matrices are in-memory copies (float32), independent of the store's files. Each row's
        checksum is verified: swapped or overwritten rows raise :class:`BadInputError` naming the files.
        """
        ids = [str(i) for i in ids]
        where = self._positions(ids)
        found = where >= 0
        if found.all() and len(where):
            latest = self._latest()
            pos = latest["pos"].to_numpy()[where]
            in_order = np.array_equal(pos, np.arange(pos[0], pos[0] + len(pos)))
            if in_order and (latest["src"].to_numpy()[where] == 0).all():
                # every id, consolidated, in row order (a source reopened): one sequential copy, no scatter
                start, stop = int(pos[0]), int(pos[0]) + len(pos)
                audio, text = _copy_rows(self._audio, start, stop), _copy_rows(self._text, start, stop)
                self._verify(ids, audio, text, where)
                return audio, text, found
        audio = np.zeros((len(where), self.encoder.audio_dim), np.float32)
        text = np.zeros((len(where), self.encoder.text_dim), np.float32)
        if found.any():
            latest = self._latest()
            src = latest["src"].to_numpy()[where[found]]
            pos = latest["pos"].to_numpy()[where[found]]
            targets = np.flatnonzero(found)
            mapped = src == 0
            rows = pos[mapped]
            if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
                rows = slice(int(rows[0]), int(rows[0]) + len(rows))  # contiguous: one sequential read
            audio[targets[mapped]] = self._audio[rows]
            text[targets[mapped]] = self._text[rows]
            if (~mapped).any():
                pending_audio, pending_text = self._pending_matrices()
                audio[targets[~mapped]] = pending_audio[pos[~mapped]]
                text[targets[~mapped]] = pending_text[pos[~mapped]]
            self._verify([ids[k] for k in targets], audio[targets], text[targets], where[found])
        return audio, text, found

    def _verify(self, ids: list[str], audio: np.ndarray, text: np.ndarray, where: np.ndarray) -> None:
        latest = self._latest()
        expected = latest["check"].to_numpy(dtype=object)[where]
        chunk = latest["chunk"].to_numpy()[where]
        bad = [k for k, (want, got) in enumerate(zip(expected, row_checks(ids, audio, text), strict=True))
               if want and want != got]
        if not bad:
            return
        shown = ", ".join(ids[k] for k in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        in_chunks = sorted({self._chunks[chunk[k]].path.name for k in bad if chunk[k] >= 0})
        gen = self.generation_path or self.path
        files = (f"{gen / AUDIO} and {gen / TEXT} do not match {gen / ITEMS}" if len(in_chunks) < len(bad)
                 else f"chunk {', '.join(in_chunks)} in {self.path / PENDING} is inconsistent")
        raise BadInputError(
            f"Embedding store files {files}: the vectors of {len(bad)} ids ({shown}) differ from their "
            f"checksums (rows swapped or overwritten). Delete the store folder {self.path} " + _ADVICE)

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.path)!r}, {self.encoder.label}, {len(self)} items)"


# ---------------------------------------------------------------------- per-sound .npy folders
def read_npy_vector(path: Path, dim: int) -> np.ndarray:
    """One embedding from a per-sound ``.npy`` file, checked: ``dim`` finite float numbers.

    float64/float16 are cast to float32; integer or other dtypes, a wrong size, NaN or inf raise
    :class:`BadInputError` naming the file.
    """
    advice = "Re-extract this file or delete it (its sound is then reported as missing)."
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise BadInputError(f"Embedding file {path} is missing. Restore it, or remove its row "
                            "from the metadata.") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise BadInputError(f"Embedding file {path} cannot be read as .npy ({exc}). {advice}") from exc
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise BadInputError(f"Embedding file {path} holds {kind} values; expected float32. {advice}")
    if array.size != dim or sum(s != 1 for s in array.shape) > 1:
        raise BadInputError(f"Embedding file {path} has shape {array.shape}; expected a vector of {dim} "
                            f"numbers. {advice}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
        vector = array.reshape(dim).astype(np.float32)
    if not np.isfinite(vector).all():
        raise BadInputError(f"Embedding file {path} contains NaN or infinite values. {advice}")
    return vector


NpyStat = tuple[int, int, int, int]
"""(size, mtime_ns, ctime_ns, inode) of one ``.npy`` file."""


def npy_file_stats(folder: str | os.PathLike[str]) -> dict[str, NpyStat]:
    """``{stem: (size, mtime_ns, ctime_ns, inode)}`` of the ``.npy`` files in ``folder`` (one listing,
    one stat each)."""
    stats: dict[str, NpyStat] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".npy") and not entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):  # removed while listing
                    info = entry.stat()
                    stats[entry.name[:-4]] = (int(info.st_size), int(info.st_mtime_ns), int(info.st_ctime_ns),
                                              int(info.st_ino))
    return stats


def _npy_key(stat: NpyStat) -> str:
    return ":".join(str(value) for value in stat)


def npy_item_state(ids: Sequence[str], audio_stats: dict[str, NpyStat],
                   text_stats: dict[str, NpyStat]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(sizes, mtime_ns, keys)`` of items read from an audio and a text ``.npy`` file each.

    The size is the sum of both files', the mtime the later one; the key names both files' size,
    mtime_ns, ctime_ns and inode. A file rewritten in place with its old size and its old mtime put
    back (``cp -p``, ``rsync -t``, ``touch -r``) still gets a new ctime, which no program can set, and a
    file replaced by another gets a new inode: either is noticed and the file is read again.
    """
    sizes = np.array([audio_stats[i][0] + text_stats[i][0] for i in ids], np.int64)
    mtimes = np.array([max(audio_stats[i][1], text_stats[i][1]) for i in ids], np.int64)
    keys = [f"{_npy_key(audio_stats[i])}|{_npy_key(text_stats[i])}" for i in ids]
    return sizes, mtimes, keys


def consolidate_npy_folders(ids: Sequence[str], audio_dir: str | os.PathLike[str],
                            text_dir: str | os.PathLike[str], store_path: str | os.PathLike[str],
                            encoder: EncoderInfo, job: jobs.Job | None = None, *, source: str = "",
                            notes: list[str] | None = None,
                            stats: tuple[dict[str, NpyStat], dict[str, NpyStat]] | None = None,
                            lock_timeout: float | None = None) -> EmbeddingStore:
    """Read ``<id>.npy`` from ``audio_dir`` and ``text_dir`` into the store at ``store_path``.

    Every file is keyed on its own size, mtime_ns, ctime_ns and inode, so a rerun reads only new or changed files
    (and resumes after a cancel: finished batches are kept); "Re-read N changed embedding file(s)
    of <source>" is appended to ``notes``. ``stats`` (:func:`npy_file_stats` of both folders) saves
    listing them again. Every vector is validated (:func:`read_npy_vector`). Returns the compacted store.
    """
    audio_dir, text_dir = Path(audio_dir), Path(text_dir)
    audio_stats, text_stats = stats if stats is not None else (npy_file_stats(audio_dir), npy_file_stats(text_dir))
    ids = [str(i) for i in ids]
    for folder, known in ((audio_dir, audio_stats), (text_dir, text_stats)):
        absent = next((i for i in ids if i not in known), None)
        if absent is not None:
            raise BadInputError(f"Embedding file {folder / f'{absent}.npy'} is missing. Restore it, or remove "
                                "its row from the metadata.")
    sizes, mtimes, keys = npy_item_state(ids, audio_stats, text_stats)
    store = EmbeddingStore.open(store_path, create_with=encoder, source=source, lock_timeout=lock_timeout)
    with store.writing():
        todo = np.flatnonzero(~store.up_to_date(ids, sizes, mtime_ns=mtimes, keys=keys))
        before = store.items().set_index("id")["key"].reindex([ids[k] for k in todo]).fillna("").tolist()
        changed = sum(old_part != new_part
                      for old, k in zip(before, todo, strict=True) if old.count("|") == 1
                      for old_part, new_part in zip(old.split("|"), keys[k].split("|"), strict=True))
        stage = "read embeddings"
        jobs.report(job, stage, 0, len(todo), f"{len(todo)} of {len(ids)} sounds to read")
        for start in range(0, len(todo), _CONSOLIDATE_BATCH):
            jobs.check(job)
            batch = todo[start:start + _CONSOLIDATE_BATCH]
            batch_ids = [ids[k] for k in batch]
            audio = np.stack([read_npy_vector(audio_dir / f"{i}.npy", encoder.audio_dim) for i in batch_ids])
            text = np.stack([read_npy_vector(text_dir / f"{i}.npy", encoder.text_dim) for i in batch_ids])
            store.append(batch_ids, audio, text, ["ok"] * len(batch), [""] * len(batch), sizes[batch],
                         mtime_ns=mtimes[batch], keys=[keys[k] for k in batch])
            jobs.report(job, stage, start + len(batch), len(todo))
        store.compact()
    if changed and notes is not None:
        notes.append(f"Re-read {changed} changed embedding file(s) of {source or audio_dir.parent}.")
    return store


def remove_store(path: str | os.PathLike[str], *, lock_timeout: float | None = None) -> None:
    """Delete a store's files (only if the folder looks like a store), holding its lock; the lock file stays."""
    folder = Path(path)
    names = set(os.listdir(folder)) if folder.is_dir() else set()
    if not names & {MANIFEST, ITEMS, AUDIO, TEXT, PENDING} and not any(_GEN_RE.match(n) for n in names):
        return
    timeout = locking.DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout
    with locking.exclusive(folder, "embedding store", timeout=timeout):
        (folder / MANIFEST).unlink(missing_ok=True)  # first: the folder stops being a store at once
        for entry in folder.iterdir():
            if entry.name != LOCK:
                _remove(entry)
