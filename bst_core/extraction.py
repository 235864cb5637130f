"""Compute embeddings of a corpus into a resumable store: decode, embed, append batch by batch.

One store per (source, encoder). An item is reused when the store holds it as ``ok`` from a file
of the same size and modification time; everything else is computed: new or changed files, and
items that failed before (a file may have been fixed or made readable since). Each batch is
appended to the store as it finishes, so a crash or Cancel loses at most the batch in flight and
a rerun computes only what is missing. The store is compacted at the end, also after a Cancel.

A file whose audio cannot be read never stops the job: its audio vector is zeros, its status is
``audio_failed`` with the reason in words, and its text vector is computed as for any other item.
Odd but usable audio (very short, silent, cut to the encoder's maximum length) is ``ok`` with
the warning kept as the item's ``reason``.

Limitation: an item is keyed by its audio file, so a changed title/tags/description with an
unchanged file keeps its old text vector; extract into a new store after editing metadata.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bst_core import jobs
from bst_core.audio import Decoded, decode
from bst_core.corpus import Corpus
from bst_core.encoders.base import Encoder
from bst_core.store import EmbeddingStore
from bst_core.text import text_for

STAGE = "extract"
NO_AUDIO_FILE = "no audio file"


@dataclass
class ExtractSummary:
    """What :func:`extract` did.

    ``failures``/``warnings`` map a reason group ("not an audio file", "very short") to the file
    names (each followed by the reason's detail, e.g. "click.wav (5 ms)", when it has one).
    """

    computed: int = 0
    reused: int = 0
    failed: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    store_path: Path | None = None

    @property
    def line(self) -> str:
        return f"computed {self.computed}, reused {self.reused}, failed {self.failed}"

    def format(self, max_names: int | None = 20) -> str:
        """The summary line, then failures (and warnings) grouped by reason, with file names."""
        lines = [self.line]
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


def _file_state(path: str) -> tuple[int, float]:
    """(size, mtime) of the audio file; (-1, 0.0) when there is none or it cannot be stat'ed."""
    if not path:
        return -1, 0.0
    try:
        info = os.stat(path)
    except OSError:
        return -1, 0.0
    return int(info.st_size), float(info.st_mtime)


def _display_name(item_id: str, path: str) -> str:
    """How a person finds the item: the id when it names the file (a folder source's relative
    path), else the file name ("12345.wav"), else the id (no file)."""
    name = Path(path).name if path else ""
    return item_id if not name or name in item_id else name


def extract(corpus: Corpus, store_path: str | os.PathLike[str], encoder: Encoder, *,
            batch_size: int = 16, job: jobs.Job | None = None) -> ExtractSummary:
    """Embed every item of ``corpus`` into the store at ``store_path`` (created if missing).

    Raises IncompatibleError when the store was made with another encoder. Cancel (via ``job``)
    keeps every finished batch; running again computes only the rest.
    """
    store = EmbeddingStore.open(store_path, create_with=encoder.info,
                                source=str(corpus.root) if corpus.root else "")
    table = corpus.table
    ids = table["id"].astype(str).tolist()
    paths = (table["audio_path"].fillna("").astype(str).tolist() if "audio_path" in table.columns
             else [""] * len(ids))
    states = [_file_state(p) for p in paths]
    sizes = np.array([s for s, _ in states], np.int64)
    mtimes = np.array([m for _, m in states], np.float64)

    previous = store.items().set_index("id")["status"].reindex(ids).to_numpy()
    reusable = store.up_to_date(ids, sizes, mtimes) & (previous == "ok")
    todo = np.flatnonzero(~reusable)
    summary = ExtractSummary(reused=int(reusable.sum()), store_path=store.path)
    text_fields = table.reindex(columns=["title", "tags", "description"]).fillna("")
    jobs.report(job, STAGE, 0, len(todo), f"{len(todo)} to compute, {summary.reused} reused")
    try:
        for start in range(0, len(todo), batch_size):
            jobs.check(job)
            batch = todo[start:start + batch_size]
            decoded = []
            for k, row in enumerate(batch):
                decoded.append(_decode_item(paths[row], encoder))
                jobs.report(job, STAGE, start + k + 1, len(todo), _display_name(ids[row], paths[row]),
                            computed=summary.computed, failed=summary.failed)
            audio, status, reasons = _embed_batch(encoder, decoded)
            text = encoder.embed_text([text_for(*text_fields.iloc[row]) for row in batch])
            store.append([ids[row] for row in batch], audio, text, status, reasons,
                         sizes[batch], mtimes[batch])
            for row, item_status, reason in zip(batch, status, reasons, strict=True):
                name = _display_name(ids[row], paths[row])
                if item_status == "ok":
                    summary.computed += 1
                    for warning in filter(None, reason.split("; ")):
                        _add(summary.warnings, warning, name)
                else:
                    summary.failed += 1
                    _add(summary.failures, reason, name)
            jobs.report(job, STAGE, start + len(batch), len(todo), "batch saved",
                        computed=summary.computed, failed=summary.failed)
    finally:
        store.compact()
    return summary


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
