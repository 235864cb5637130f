"""Consolidated, resumable embedding store: one folder, memory-mapped matrices, append-only chunks.

Layout of a store folder::

    manifest.json           {"format": "bst-store", "format_version": 1, "encoder": {...}, "source", "created"}
    items.csv               consolidated index: id,row,status,reason,size,mtime (row = row in the .npy)
    audio.npy text.npy      consolidated float32 (n, dim) matrices, opened with mmap_mode="r"
    pending/chunk-<seq>.npz batches appended since the last compaction, each written atomically

Appending writes one chunk per batch, so a crash loses at most the batch in flight; a rerun asks
:meth:`EmbeddingStore.up_to_date` which items still need computing. The latest entry per id wins.
:meth:`EmbeddingStore.compact` merges the chunks into the matrices; it keeps every id's row, so the
old index stays valid against the new matrices and a crash between its file replacements leaves a
readable store. One writer at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import atomic, jobs
from bst_core.corpus import EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError

FORMAT = "bst-store"
FORMAT_VERSION = 1
ITEM_STATUSES: tuple[str, ...] = ("ok", "audio_failed")
"""``ok``: both vectors computed; ``audio_failed``: audio vector is zeros, text computed, ``reason`` says why."""

MANIFEST, ITEMS, AUDIO, TEXT, PENDING = "manifest.json", "items.csv", "audio.npy", "text.npy", "pending"
_ITEM_COLUMNS = ("id", "row", "status", "reason", "size", "mtime")
_ITEM_DTYPES = {"id": str, "row": np.int64, "status": str, "reason": str, "size": np.int64,
                "mtime": np.float64}
_CHUNK_RE = re.compile(r"^chunk-(\d+)\.npz$")
_CHUNK_KEYS = ("ids", "audio", "text", "status", "reason", "size", "mtime")
_MTIME_TOLERANCE_S = 1e-6
_CONSOLIDATE_BATCH = 1024


@dataclass
class _Chunk:
    path: Path
    ids: np.ndarray
    audio: np.ndarray
    text: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    size: np.ndarray
    mtime: np.ndarray


def _damaged(file: Path, detail: str, store: Path) -> BadInputError:
    return BadInputError(
        f"Embedding store file {file} is damaged ({detail}). Delete the store folder {store} "
        "and extract again (`bst extract`, or reopen the dataset) to rebuild it.")


class EmbeddingStore:
    """Embeddings of many sounds, keyed by id, with the size/mtime of the source they came from.

    Use :meth:`open`; the constructor is internal.
    """

    def __init__(self, path: Path, encoder: EncoderInfo, manifest: dict[str, object]) -> None:
        self.path = path
        self.encoder = encoder
        self.manifest = manifest
        self._index = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _ITEM_DTYPES.items()})
        self._audio: np.ndarray = np.zeros((0, encoder.audio_dim), np.float32)
        self._text: np.ndarray = np.zeros((0, encoder.text_dim), np.float32)
        self._chunks: list[_Chunk] = []
        self._last_seq = 0
        self._latest_cache: pd.DataFrame | None = None
        self._pending_cache: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create_with: EncoderInfo | None = None,
             source: str = "") -> EmbeddingStore:
        """Open the store at ``path``; create it when missing and ``create_with`` is given.

        Raises :class:`IncompatibleError` when the store was made with another encoder than
        ``create_with``, :class:`BadInputError` naming the file when the store is damaged.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if folder.exists() and not folder.is_dir():
            raise BadInputError(f"{folder} is a file, not an embedding store folder. Choose a folder.")
        if not manifest_path.exists():
            leftovers = [n for n in (ITEMS, AUDIO, TEXT, PENDING) if (folder / n).exists()]
            if leftovers:
                raise _damaged(manifest_path, f"missing, but {', '.join(leftovers)} exist", folder)
            if create_with is None:
                raise BadInputError(
                    f"No embedding store in {folder} (no {MANIFEST}). Run `bst extract` to create one, "
                    "or choose the folder that holds manifest.json.")
            return cls._create(folder, create_with, source)
        store = cls(folder, *cls._read_manifest(folder))
        if create_with is not None:
            create_with.require_same(store.encoder, f"Embedding store {folder}")
        store._load_consolidated()
        store._load_chunks()
        return store

    @classmethod
    def _create(cls, folder: Path, encoder: EncoderInfo, source: str) -> EmbeddingStore:
        manifest: dict[str, object] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "encoder": encoder.to_dict(),
            "source": source, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store = cls(folder, encoder, manifest)
        folder.mkdir(parents=True, exist_ok=True)
        store._write_consolidated(store._index, store._audio, store._text)
        atomic.write_json(folder / MANIFEST, manifest)  # last: its presence marks a complete store
        return store

    @staticmethod
    def _read_manifest(folder: Path) -> tuple[EncoderInfo, dict[str, object]]:
        path = folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _damaged(path, f"not readable JSON: {exc}", folder) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _damaged(path, f'not a BST embedding store manifest (format is not "{FORMAT}")', folder)
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise IncompatibleError(
                f"Embedding store {folder} has format version {version!r}; this BST Studio reads "
                f"version {FORMAT_VERSION}. Update BST Studio or extract again into a new store.")
        try:
            encoder = EncoderInfo.from_dict(manifest["encoder"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(path, f"encoder entry unreadable: {exc!r}", folder) from exc
        return encoder, manifest

    def _load_consolidated(self) -> None:
        items_path = self.path / ITEMS
        try:
            index = pd.read_csv(items_path, dtype=_ITEM_DTYPES, keep_default_na=False, na_filter=False,
                                float_precision="round_trip", encoding="utf-8")
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise _damaged(items_path, f"cannot read it: {exc}", self.path) from exc
        if tuple(index.columns) != _ITEM_COLUMNS:
            raise _damaged(items_path, f"columns are {list(index.columns)}, expected {list(_ITEM_COLUMNS)}",
                           self.path)
        if index["id"].duplicated().any() or index["row"].duplicated().any() or (index["row"] < 0).any():
            raise _damaged(items_path, "duplicate ids or rows", self.path)
        rows_needed = int(index["row"].max()) + 1 if len(index) else 0
        self._audio = self._map_matrix(AUDIO, self.encoder.audio_dim, rows_needed)
        self._text = self._map_matrix(TEXT, self.encoder.text_dim, rows_needed)
        self._index = index

    def _map_matrix(self, name: str, dim: int, rows_needed: int) -> np.ndarray:
        path = self.path / name
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise _damaged(path, f"truncated or not a .npy file: {exc}", self.path) from exc
        if matrix.ndim != 2 or matrix.shape[1] != dim or matrix.dtype != np.float32:
            raise _damaged(path, f"holds {matrix.dtype} {matrix.shape}, expected float32 (n, {dim})",
                           self.path)
        if matrix.shape[0] < rows_needed:
            raise _damaged(path, f"has {matrix.shape[0]} rows but {ITEMS} refers to row {rows_needed - 1}",
                           self.path)
        return matrix

    def _load_chunks(self) -> None:
        folder = self.path / PENDING
        if not folder.is_dir():
            return
        numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHUNK_RE.match(p.name)))
        self._chunks = [self._read_chunk(path) for _, path in numbered]
        self._last_seq = numbered[-1][0] if numbered else 0

    def _read_chunk(self, path: Path) -> _Chunk:
        try:
            with np.load(path, allow_pickle=False) as data:
                chunk = _Chunk(path, *(np.asarray(data[key]) for key in _CHUNK_KEYS))
        except Exception as exc:  # zip, header, missing key: all mean the file cannot be used
            raise BadInputError(
                f"Embedding store chunk {path} is unreadable ({exc!r}). Delete that file (only its batch "
                f"is recomputed on the next extraction) or delete the store folder {self.path}.") from exc
        n = len(chunk.ids)
        shapes_ok = (chunk.audio.shape == (n, self.encoder.audio_dim)
                     and chunk.text.shape == (n, self.encoder.text_dim)
                     and all(len(a) == n for a in (chunk.status, chunk.reason, chunk.size, chunk.mtime)))
        if not shapes_ok:
            raise BadInputError(
                f"Embedding store chunk {path} does not match the store (audio {chunk.audio.shape}, "
                f"text {chunk.text.shape}, {n} ids). Delete that file or the store folder {self.path}.")
        return chunk

    # ------------------------------------------------------------------ writing
    def append(self, ids: Sequence[str], audio: np.ndarray, text: np.ndarray,
               status: Sequence[str], reason: Sequence[str],
               size: Sequence[int], mtime: Sequence[float]) -> None:
        """Add one batch as one atomically written chunk (later entries for an id win)."""
        n = len(ids)
        audio = np.asarray(audio, dtype=np.float32)
        text = np.asarray(text, dtype=np.float32)
        if audio.shape != (n, self.encoder.audio_dim) or text.shape != (n, self.encoder.text_dim):
            raise ValueError(f"append: audio {audio.shape} / text {text.shape} do not fit {n} ids of "
                             f"{self.encoder.audio_dim}+{self.encoder.text_dim} dims")
        if not len(status) == len(reason) == len(size) == len(mtime) == n:
            raise ValueError("append: ids, status, reason, size and mtime must have the same length")
        unknown = set(status) - set(ITEM_STATUSES)
        if unknown:
            raise ValueError(f"append: unknown status {sorted(unknown)}; use one of {ITEM_STATUSES}")
        if n == 0:
            return
        folder = self.path / PENDING
        folder.mkdir(exist_ok=True)
        path = folder / f"chunk-{self._last_seq + 1:06d}.npz"
        chunk = _Chunk(path, np.asarray([str(i) for i in ids], dtype=str), audio, text,
                       np.asarray(status, dtype=str), np.asarray(reason, dtype=str),
                       np.asarray(size, dtype=np.int64), np.asarray(mtime, dtype=np.float64))
        with atomic.atomic_open(path, "wb") as handle:
            np.savez(handle, **{key: getattr(chunk, key) for key in _CHUNK_KEYS})
        self._last_seq += 1
        self._chunks.append(chunk)
        self._latest_cache = None
        self._pending_cache = None

    def compact(self) -> None:
        """Merge the pending chunks into ``audio.npy``/``text.npy``/``items.csv``, then drop them."""
        if not self._chunks:
            return
        latest = self._latest()
        base_rows = int(self._index["row"].max()) + 1 if len(self._index) else 0
        old_row = pd.Series(self._index["row"].to_numpy(), index=self._index["id"].to_numpy())
        rows = np.array(old_row.reindex(latest.index).to_numpy(dtype=float))
        is_new = np.isnan(rows)
        rows[is_new] = base_rows + np.arange(int(is_new.sum()))
        rows = rows.astype(np.int64)
        total = base_rows + int(is_new.sum())

        pending_audio, pending_text = self._pending_matrices()
        from_chunk = latest["src"].to_numpy() == 1
        pos = latest["pos"].to_numpy()
        matrices = []
        for mapped, pending, dim in ((self._audio, pending_audio, self.encoder.audio_dim),
                                     (self._text, pending_text, self.encoder.text_dim)):
            merged = np.zeros((total, dim), np.float32)
            merged[:base_rows] = mapped[:base_rows]
            merged[rows[from_chunk]] = pending[pos[from_chunk]]
            matrices.append(merged)
        index = pd.DataFrame({
            "id": latest.index.to_numpy(), "row": rows, "status": latest["status"].to_numpy(),
            "reason": latest["reason"].to_numpy(), "size": latest["size"].to_numpy(),
            "mtime": latest["mtime"].to_numpy(),
        }).sort_values("row", kind="stable")
        self._audio = self._text = np.zeros((0, 0), np.float32)  # release the maps before replacing
        self._write_consolidated(index, *matrices)
        for chunk in self._chunks:
            with contextlib.suppress(FileNotFoundError):
                chunk.path.unlink()
        for leftover in (self.path / PENDING).glob(".chunk-*.tmp"):  # temp files of a crashed append
            with contextlib.suppress(OSError):
                leftover.unlink()
        self._chunks = []
        self._last_seq = 0
        self._latest_cache = self._pending_cache = None
        self._load_consolidated()

    def _write_consolidated(self, index: pd.DataFrame, audio: np.ndarray, text: np.ndarray) -> None:
        for name, matrix in ((AUDIO, audio), (TEXT, text)):
            with atomic.atomic_open(self.path / name, "wb") as handle:
                np.save(handle, np.ascontiguousarray(matrix, dtype=np.float32))
        with atomic.atomic_open(self.path / ITEMS, "w", newline="") as handle:
            index.loc[:, list(_ITEM_COLUMNS)].to_csv(handle, index=False)

    # ------------------------------------------------------------------ reading
    def _latest(self) -> pd.DataFrame:
        """Latest entry per id, indexed by id: status, reason, size, mtime, src (0 consolidated,
        1 pending), pos (row in the consolidated or the concatenated pending matrices)."""
        if self._latest_cache is None:
            frames = [pd.DataFrame({
                "id": self._index["id"].to_numpy(), "status": self._index["status"].to_numpy(),
                "reason": self._index["reason"].to_numpy(), "size": self._index["size"].to_numpy(),
                "mtime": self._index["mtime"].to_numpy(), "src": 0, "pos": self._index["row"].to_numpy(),
            })]
            offset = 0
            for chunk in self._chunks:
                n = len(chunk.ids)
                frames.append(pd.DataFrame({
                    "id": chunk.ids.astype(object), "status": chunk.status.astype(object),
                    "reason": chunk.reason.astype(object), "size": chunk.size, "mtime": chunk.mtime,
                    "src": 1, "pos": np.arange(offset, offset + n),
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
        """One row per id (latest entry): id, status, reason, size, mtime."""
        latest = self._latest()
        return pd.DataFrame({
            "id": latest.index.to_numpy(dtype=object).astype(str),
            "status": latest["status"].to_numpy(), "reason": latest["reason"].to_numpy(),
            "size": latest["size"].to_numpy(dtype=np.int64), "mtime": latest["mtime"].to_numpy(dtype=float),
        })

    def _positions(self, ids: Sequence[str]) -> np.ndarray:
        return self._latest().index.get_indexer(pd.Index([str(i) for i in ids], dtype=object))

    def up_to_date(self, ids: Sequence[str], sizes: Sequence[int], mtimes: Sequence[float]) -> np.ndarray:
        """True where the store holds ``id`` computed from a source of the same size and mtime.

        Items stored as ``audio_failed`` count as up to date (the same file would fail again).
        """
        where = self._positions(ids)
        result = where >= 0
        if result.any():
            latest = self._latest()
            known = where[result]
            same_size = latest["size"].to_numpy()[known] == np.asarray(sizes, dtype=np.int64)[result]
            same_time = np.abs(latest["mtime"].to_numpy()[known]
                               - np.asarray(mtimes, dtype=np.float64)[result]) <= _MTIME_TOLERANCE_S
            result[result] = same_size & same_time
        return result

    def load(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(audio, text, found)`` in the order of ``ids``; rows not found are zeros.

        The matrices are in-memory copies (float32), independent of the store's files.
        """
        where = self._positions(ids)
        found = where >= 0
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
        return audio, text, found

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


def consolidate_npy_folders(ids: Sequence[str], audio_dir: str | os.PathLike[str],
                            text_dir: str | os.PathLike[str], store_path: str | os.PathLike[str],
                            encoder: EncoderInfo, job: jobs.Job | None = None, *,
                            source: str = "") -> EmbeddingStore:
    """Read ``<id>.npy`` from ``audio_dir`` and ``text_dir`` once into the store at ``store_path``.

    Each item's size is the sum of both files' sizes, its mtime the later of the two, so a rerun
    reads only new or changed files (and resumes after a cancel: finished batches are kept).
    Every vector is validated (:func:`read_npy_vector`). Returns the compacted store.
    """
    audio_dir, text_dir = Path(audio_dir), Path(text_dir)
    store = EmbeddingStore.open(store_path, create_with=encoder, source=source)
    ids = [str(i) for i in ids]
    sizes = np.zeros(len(ids), np.int64)
    mtimes = np.zeros(len(ids), np.float64)
    for k, item in enumerate(ids):
        for folder in (audio_dir, text_dir):
            path = folder / f"{item}.npy"
            try:
                info = path.stat()
            except FileNotFoundError as exc:
                raise BadInputError(f"Embedding file {path} is missing. Restore it, or remove its row "
                                    "from the metadata.") from exc
            sizes[k] += info.st_size
            mtimes[k] = max(mtimes[k], info.st_mtime)
    todo = np.flatnonzero(~store.up_to_date(ids, sizes, mtimes))
    stage = "read embeddings"
    jobs.report(job, stage, 0, len(todo), f"{len(todo)} of {len(ids)} sounds to read")
    for start in range(0, len(todo), _CONSOLIDATE_BATCH):
        jobs.check(job)
        batch = todo[start:start + _CONSOLIDATE_BATCH]
        batch_ids = [ids[k] for k in batch]
        audio = np.stack([read_npy_vector(audio_dir / f"{i}.npy", encoder.audio_dim) for i in batch_ids])
        text = np.stack([read_npy_vector(text_dir / f"{i}.npy", encoder.text_dim) for i in batch_ids])
        store.append(batch_ids, audio, text, ["ok"] * len(batch), [""] * len(batch),
                     sizes[batch], mtimes[batch])
        jobs.report(job, stage, start + len(batch), len(todo))
    store.compact()
    return store


def remove_store(path: str | os.PathLike[str]) -> None:
    """Delete a store folder (only if it looks like one: it holds a manifest or store files)."""
    folder = Path(path)
    if folder.is_dir() and any((folder / n).exists() for n in (MANIFEST, ITEMS, AUDIO, TEXT, PENDING)):
        shutil.rmtree(folder)
