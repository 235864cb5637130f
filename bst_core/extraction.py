"""Compute embeddings of a corpus into a resumable store: decode, embed, append batch by batch.

One store per (source, encoder). Each item records what it was computed from: its audio file's
size, mtime_ns and a hash of the file's first and last 64 kB (the store's ``key``), and a hash of
the text that was embedded. An item stored as ``ok`` is reused when both still match; when only
the text (title/tags/description) changed, only its text vector is computed again; everything
else is computed: new or replaced files, and items that failed before (a file may have been fixed
since). Each batch is appended to the store as it finishes, so a crash or Cancel loses at most the
batch in flight and a rerun computes only what is missing. The whole run holds the store's lock
(a second extraction into the same store is refused). The store is compacted at the end, also
after a Cancel.

A file whose audio cannot be read never stops the job: its audio vector is zeros, its status is
``audio_failed`` with the reason in words, and its text vector is computed as for any other item.
Odd but usable audio (very short, silent, cut to the encoder's maximum length) is ``ok`` with
the warning kept as the item's ``reason``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from bst_core import jobs
from bst_core.audio import Decoded, decode
from bst_core.corpus import Corpus, EncoderInfo
from bst_core.encoders.base import Encoder
from bst_core.store import EmbeddingStore
from bst_core.text import text_for

STAGE = "extract"
CHECK_STAGE = "check files"
NO_AUDIO_FILE = "no audio file"
EDGE_BYTES = 64 * 1024
"""How much of each end of an audio file is hashed to notice a replaced file of the same size and time."""


@dataclass
class ExtractSummary:
    """What :func:`extract` did.

    ``failures``/``warnings`` map a reason group ("not an audio file", "very short") to the file
    names (each followed by the reason's detail, e.g. "click.wav (5 ms)", when it has one).
    ``changed``: items computed again because their file or text changed since they were stored
    (``text_only`` of them only in their text: their audio vector was kept). ``notes``: sentences
    about the store itself (e.g. an older store format recomputed).
    """

    computed: int = 0
    reused: int = 0
    failed: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    store_path: Path | None = None
    changed: int = 0
    text_only: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        """``"computed N, reused M, failed K"``, plus ``", changed C (T text only)"`` when some changed."""
        line = f"computed {self.computed}, reused {self.reused}, failed {self.failed}"
        if self.changed:
            line += f", changed {self.changed}" + (f" ({self.text_only} text only)" if self.text_only else "")
        return line

    def format(self, max_names: int | None = 20) -> str:
        """The summary line and notes, then failures (and warnings) grouped by reason, with file names."""
        lines = [self.line, *(f"  {note}" for note in self.notes)]
        if self.changed:
            lines.append(f"  recomputed because the audio file or its title/tags/description changed since "
                         f"the last run: {self.changed}" + (f" ({self.text_only} only the text)"
                                                             if self.text_only else ""))
        for title, groups in (("failed", self.failures), ("warning", self.warnings)):
            for reason, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                lines.append(f"  {title}: {reason} ({len(names)}):")
                shown = names if max_names is None else names[:max_names]
                lines.extend(f"    {name}" for name in shown)
                if len(names) > len(shown):
                    lines.append(f"    ... and {len(names) - len(shown)} more")
        return "\n".join(lines)


def reason_group(reason: str) -> str:
    """The words a reason is grouped by: ``"very short (5 ms)"`` → ``"very short"``."""
    return reason.split(" (", 1)[0].strip()


def _file_state(path: str) -> tuple[int, int, str]:
    """(size, mtime_ns, key) of the audio file; key = "size:mtime_ns:hash of the first and last 64 kB".

    (-1, 0, "") when there is no file or it cannot be read.
    """
    if not path:
        return -1, 0, ""
    try:
        info = os.stat(path)
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            digest.update(handle.read(EDGE_BYTES))
            if info.st_size > 2 * EDGE_BYTES:
                handle.seek(-EDGE_BYTES, os.SEEK_END)
            digest.update(handle.read(EDGE_BYTES))
    except OSError:
        return -1, 0, ""
    return int(info.st_size), int(info.st_mtime_ns), f"{info.st_size}:{info.st_mtime_ns}:{digest.hexdigest()}"


def text_hash(text: str) -> str:
    """What the store records of the text an item's text vector was computed from."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _display_name(item_id: str, path: str) -> str:
    """How a person finds the item: the id when it names the file (a folder source's relative
    path), else the file name ("12345.wav"), else the id (no file)."""
    name = Path(path).name if path else ""
    return item_id if not name or name in item_id else name


@dataclass(frozen=True)
class Batch:
    """One batch of work: what a worker needs to compute it (``rows`` of the corpus table stay with
    the writer). ``text_only``: the audio is unchanged, only the text vectors are computed."""

    index: int
    rows: np.ndarray
    paths: list[str]
    texts: list[str]
    text_only: bool = False

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class BatchResult:
    """What a worker computed for a :class:`Batch` (``audio``/``status``/``reasons`` are None for a
    text-only batch); ``worker`` names where it ran (for messages)."""

    text: np.ndarray
    audio: np.ndarray | None = None
    status: list[str] | None = None
    reasons: list[str] | None = None
    worker: str = ""


def compute_batch(encoder: Encoder, batch: Batch, on_item: Callable[[int], None] | None = None) -> BatchResult:
    """Decode and embed one batch; ``on_item(k)`` after the k-th file is decoded. Never raises for
    a bad file (its status says why); an error of the text encoder propagates."""
    if batch.text_only:
        return BatchResult(encoder.embed_text(batch.texts))
    decoded = []
    for k, path in enumerate(batch.paths):
        decoded.append(_decode_item(path, encoder))
        if on_item is not None:
            on_item(k)
    audio, status, reasons = _embed_batch(encoder, decoded)
    return BatchResult(encoder.embed_text(batch.texts), audio, status, reasons)


class Engine(Protocol):
    """Computes batches: the local one in this process, :class:`bst_core.ray_extract.RayEngine` on Ray.

    ``run`` yields each batch with its result as soon as it is done (in any order); the writer in
    this process appends it to the store. ``on_item(batch, k)`` may be called as files are decoded.
    Closing the generator (Cancel, an error) stops all work it started.
    """

    info: EncoderInfo

    def run(self, batches: Sequence[Batch], on_item: Callable[[Batch, int], None],
            job: jobs.Job | None) -> Iterator[tuple[Batch, BatchResult]]: ...


class LocalEngine:
    """One encoder in this process, one batch after the other."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.info = encoder.info

    def run(self, batches: Sequence[Batch], on_item: Callable[[Batch, int], None],
            job: jobs.Job | None) -> Iterator[tuple[Batch, BatchResult]]:
        for batch in batches:
            jobs.check(job)
            yield batch, compute_batch(self.encoder, batch, lambda k, b=batch: on_item(b, k))


def extract(corpus: Corpus, store_path: str | os.PathLike[str], encoder: Encoder | Engine, *,
            batch_size: int = 16, job: jobs.Job | None = None, lock_timeout: float | None = None) -> ExtractSummary:
    """Embed every item of ``corpus`` into the store at ``store_path`` (created if missing).

    ``encoder`` runs here (an :class:`Engine`, e.g. Ray's, computes elsewhere); this process is the
    one writer either way. Raises IncompatibleError when the store was made with another encoder,
    BadInputError when another process writes the store for longer than ``lock_timeout`` s (default
    :data:`bst_core.locking.DEFAULT_TIMEOUT`) or the disk is full. Cancel (via ``job``) keeps every
    finished batch; running again computes only the rest.
    """
    engine = LocalEngine(encoder) if isinstance(encoder, Encoder) else encoder
    store = EmbeddingStore.open(store_path, create_with=engine.info,
                                source=str(corpus.root) if corpus.root else "", lock_timeout=lock_timeout)
    with store.writing():
        return _extract_locked(corpus, store, engine, batch_size, job)


def _extract_locked(corpus: Corpus, store: EmbeddingStore, engine: Engine, batch_size: int,
                    job: jobs.Job | None) -> ExtractSummary:
    table = corpus.table
    ids = table["id"].astype(str).tolist()
    paths = (table["audio_path"].fillna("").astype(str).tolist() if "audio_path" in table.columns
             else [""] * len(ids))
    text_fields = table.reindex(columns=["title", "tags", "description"]).fillna("").astype(str)
    texts = [text_for(*fields) for fields in text_fields.itertuples(index=False, name=None)]
    hashes = np.array([text_hash(t) for t in texts], dtype=object)
    states = []
    for k, path in enumerate(paths):
        if k % 256 == 0:
            jobs.check(job)
            jobs.report(job, CHECK_STAGE, k, len(paths), "checking which files changed")
        states.append(_file_state(path))
    jobs.report(job, CHECK_STAGE, len(paths), len(paths))
    sizes = np.array([s for s, _, _ in states], np.int64)
    mtimes = np.array([m for _, m, _ in states], np.int64)
    keys = np.array([key for _, _, key in states], dtype=object)

    previous = store.items().set_index("id").reindex(ids)
    was_ok = (previous["status"] == "ok").to_numpy()
    stored_key = previous["key"].fillna("").to_numpy(dtype=object)
    legacy = was_ok & (stored_key == "")  # format-1 stores did not record keys
    same_audio = was_ok & (stored_key == keys) & (keys != "")
    same_text = (previous["text_hash"].fillna("").to_numpy(dtype=object) == hashes)
    reusable = same_audio & same_text
    text_todo = np.flatnonzero(same_audio & ~same_text)
    todo = np.flatnonzero(~same_audio)
    summary = ExtractSummary(reused=int(reusable.sum()), store_path=store.path,
                             changed=int((was_ok & ~reusable & ~legacy).sum()), text_only=len(text_todo))
    if legacy.any():
        summary.notes.append(
            f"The store {store.path} was written by an older BST Studio (store format 1), which did not record "
            f"what each sound was computed from: its {int(legacy.sum())} sounds were computed again.")
    work = [(rows, True) for rows in _chunks(text_todo, batch_size)] + [(rows, False) for rows in
                                                                        _chunks(todo, batch_size)]
    batches = [Batch(k, rows, [paths[r] for r in rows], [texts[r] for r in rows], text_only)
               for k, (rows, text_only) in enumerate(work)]
    total = len(text_todo) + len(todo)
    saved = 0
    previous_reasons = previous["reason"].to_numpy(dtype=object)

    def on_item(batch: Batch, k: int) -> None:
        row = batch.rows[k]
        jobs.report(job, STAGE, saved + k + 1, total, _display_name(ids[row], paths[row]),
                    computed=summary.computed, failed=summary.failed)

    def write(batch: Batch, result: BatchResult) -> None:
        rows = batch.rows
        batch_ids = [ids[row] for row in rows]
        if batch.text_only:   # audio unchanged: its vector and warnings are kept
            audio = store.load(batch_ids)[0]
            status, reasons = ["ok"] * len(rows), previous_reasons[rows].astype(str).tolist()
        else:
            audio, status, reasons = result.audio, result.status, result.reasons
        store.append(batch_ids, audio, result.text, status, reasons, sizes[rows],
                     mtime_ns=mtimes[rows], keys=keys[rows].tolist(), text_hashes=hashes[rows].tolist())
        for row, item_status, reason in zip(rows, status, reasons, strict=True):
            name = _display_name(ids[row], paths[row])
            if item_status == "ok":
                summary.computed += 1
                for warning in filter(None, reason.split("; ")):
                    _add(summary.warnings, warning, name)
            else:
                summary.failed += 1
                _add(summary.failures, reason, name)

    jobs.report(job, STAGE, 0, total, f"{total} to compute, {summary.reused} reused")
    try:
        with contextlib.closing(engine.run(batches, on_item, job)) as results:
            for batch, result in results:
                write(batch, result)
                saved += len(batch)
                jobs.report(job, STAGE, saved, total, "batch saved", computed=summary.computed,
                            failed=summary.failed)
    except BaseException:
        with contextlib.suppress(Exception):  # keep finished batches consolidated; report the first error
            store.compact()
        raise
    store.compact()
    return summary


def _chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[start:start + size] for start in range(0, len(rows), size)]


def _add(groups: dict[str, list[str]], reason: str, name: str) -> None:
    """File ``name`` under its reason's group; the detail, when there is one, follows the name."""
    group = reason_group(reason)
    groups.setdefault(group, []).append(name if group == reason else f"{name} {reason[len(group) + 1:]}")


def _decode_item(path: str, encoder: Encoder) -> Decoded:
    """Decode for the encoder; whatever goes wrong becomes this item's failure, never the job's."""
    if not path:
        return Decoded(np.zeros(0, np.float32), encoder.sample_rate, 0.0, "failed", NO_AUDIO_FILE)
    try:
        return decode(path, encoder.sample_rate, max_seconds=getattr(encoder, "max_seconds", None))
    except Exception as exc:  # decode reports bad files itself; this is for the unforeseen
        return Decoded(np.zeros(0, np.float32), encoder.sample_rate, 0.0, "failed",
                       f"could not decode ({type(exc).__name__}: {exc})")


def _embed_batch(encoder: Encoder, decoded: Sequence[Decoded]) -> tuple[np.ndarray, list[str], list[str]]:
    """Audio vectors (zeros where decoding or embedding failed), statuses and reasons.

    The decodable clips go to the encoder together; if that fails (seen with very short clips),
    each clip is embedded alone so one bad clip cannot sink the batch.
    """
    audio = np.zeros((len(decoded), encoder.info.audio_dim), np.float32)
    status = ["ok" if d.ok else "audio_failed" for d in decoded]
    reasons = [d.warning if d.ok else d.reason for d in decoded]
    good = [k for k, d in enumerate(decoded) if d.ok]
    if not good:
        return audio, status, reasons
    try:
        audio[good] = encoder.embed_audio([decoded[k].samples for k in good])
    except Exception:  # any encoder error: retry item by item below
        for k in good:
            try:
                audio[k] = encoder.embed_audio([decoded[k].samples])[0]
            except Exception as exc:  # recorded as this item's reason
                status[k] = "audio_failed"
                reasons[k] = f"audio encoder failed ({type(exc).__name__}: {exc})"
    return audio, status, reasons


def stale_items(corpus: Corpus, store: EmbeddingStore) -> tuple[list[str], list[str]]:
    """``(missing, changed)`` ids of ``corpus`` against ``store``, cheaply (one ``stat`` per file, one
    hash per text): ``missing`` are not in the store; ``changed`` have an audio file whose size or
    mtime differs from what was embedded, or a title/tags/description that changed since."""
    table = corpus.table
    ids = table["id"].astype(str).tolist()
    previous = store.items().set_index("id").reindex(ids)
    missing = previous["status"].isna().to_numpy()
    paths = (table["audio_path"].fillna("").astype(str).tolist() if "audio_path" in table.columns
             else [""] * len(ids))
    fields = [table[c].fillna("").astype(str).tolist() if c in table.columns else [""] * len(ids)
              for c in ("title", "tags", "description")]
    stored_hash = previous["text_hash"].fillna("").to_numpy(dtype=object).tolist()
    stored_size = previous["size"].fillna(-1).to_numpy(dtype=np.int64).tolist()
    stored_mtime = previous["mtime_ns"].fillna(0).to_numpy(dtype=np.int64).tolist()
    changed = []
    stat = os.stat
    for k, (path, title, tags, description) in enumerate(zip(paths, *fields, strict=True)):
        if missing[k]:
            continue
        if stored_hash[k] and stored_hash[k] != text_hash(text_for(title, tags, description)):
            changed.append(ids[k])
            continue
        try:
            info = stat(path) if path else None
        except OSError:
            info = None
        size, mtime = (info.st_size, info.st_mtime_ns) if info else (-1, 0)
        if (size, mtime) != (stored_size[k], stored_mtime[k]):
            changed.append(ids[k])
    return [i for i, m in zip(ids, missing, strict=True) if m], changed
