"""Readers that turn a folder or a CSV into a :class:`~bst_core.corpus.Corpus`.

``open_source`` detects the kind of source; each reader can also be called directly.
``read_audio_folder`` and ``read_freesound_csv`` are imported on first use.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from bst_core import jobs
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.predictions import AUDIO_OK, text_only
from bst_core.sources.bsd import csv_columns, examples, metadata_csvs, read_bsd_dataset
from bst_core.sources.evaluation import read_evaluation_folder
from bst_core.store import EmbeddingStore

KINDS: tuple[str, ...] = ("bsd", "evaluation", "folder", "csv")


class TruthFromSubfoldersError(BadInputError):
    """Truth from subfolders was asked for a source that is not a folder of sounds."""

__all__ = [
    "KINDS", "attach_store", "detect_kind", "open_source", "read_audio_folder", "read_bsd_dataset",
    "read_evaluation_folder", "read_freesound_csv",
]


def __getattr__(name: str) -> Any:
    """Lazy re-exports of the folder and Freesound CSV readers."""
    if name == "read_audio_folder":
        from bst_core.sources.folder import read_audio_folder
        return read_audio_folder
    if name == "read_freesound_csv":
        from bst_core.sources.freesound import read_freesound_csv
        return read_freesound_csv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detect_kind(path: str | os.PathLike[str]) -> str:
    """``"bsd"`` (metadata with sound_id + class_idx), ``"evaluation"`` (metadata with anonymous_id),
    ``"csv"`` (a .csv file) or ``"folder"`` (any other folder).

    A ``metadata/*_metadata.csv`` that cannot be read raises :class:`BadInputError` naming it: an
    unreadable dataset is never taken for a folder of sounds.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise BadInputError(f"{path} is neither a folder nor a .csv file. Choose a dataset folder, a "
                            "folder of sounds, or a Freesound metadata CSV.")
    if not path.is_dir():
        raise BadInputError(f"{path} does not exist. Choose an existing folder or .csv file.")
    headers = [set(csv_columns(p)) for p in metadata_csvs(path / "metadata")]   # unreadable ones raise
    if any({"sound_id", "class_idx"} <= columns for columns in headers):
        return "bsd"
    if any("anonymous_id" in columns for columns in headers):
        return "evaluation"
    return "folder"


def open_source(path: str | os.PathLike[str], *, store: str | os.PathLike[str] | None = None,
                truth_from_subfolders: bool = False, job: jobs.Job | None = None) -> Corpus:
    """Read any source (kind from :func:`detect_kind`); with ``store``, take embeddings from it.
    ``truth_from_subfolders``: a folder of sounds is labelled by its class-named subfolders
    (:func:`~bst_core.sources.folder.read_audio_folder`); refused for the other kinds."""
    kind = detect_kind(path)
    if truth_from_subfolders and kind != "folder":
        raise TruthFromSubfoldersError(
            f"{path} is read as a {kind} source, not a folder of sounds: only a folder of sounds takes its "
            "truth from class-named subfolders.")
    if kind == "bsd":
        corpus = read_bsd_dataset(path, job=job)
    elif kind == "evaluation":
        corpus = read_evaluation_folder(path, job=job)
    elif kind == "csv":
        from bst_core.sources.freesound import read_freesound_csv
        corpus = read_freesound_csv(path, job=job)
    else:
        from bst_core.sources.folder import read_audio_folder
        corpus = read_audio_folder(path, truth_from_subfolders=truth_from_subfolders, job=job)
    return corpus if store is None else attach_store(corpus, store)


def attach_store(corpus: Corpus, store_path: str | os.PathLike[str] | EmbeddingStore) -> Corpus:
    """A copy of ``corpus`` with audio/text (and encoder) from the store (a path, or a store already
    open), in the corpus's row order.

    Every id must be in the store; otherwise :class:`BadInputError` says to run ``bst extract``.
    """
    store = store_path if isinstance(store_path, EmbeddingStore) else EmbeddingStore.open(store_path)
    audio, text, found = store.load(corpus.ids)
    if not found.all():
        absent = [i for i, ok in zip(corpus.ids, found, strict=True) if not ok]
        raise BadInputError(
            f"{len(absent)} of {len(corpus)} sounds have no embeddings in the store {store.path} "
            f"(e.g. {examples(absent)}). Run `bst extract` for this source with that store first.")
    notes = list(corpus.notes)
    items = store.items().set_index("id").reindex(corpus.ids)
    failed = items[items["status"] == "audio_failed"]
    if len(failed):
        notes.append(f"{len(failed)} sounds have no audio embedding (zeros; their text is used), "
                     f"e.g. {examples([f'{i} ({r})' for i, r in zip(failed.index, failed['reason'], strict=True)])}.")
    table = corpus.table.copy()
    table["audio_status"] = [AUDIO_OK if status != "audio_failed" else text_only(str(reason))
                             for status, reason in zip(items["status"], items["reason"], strict=True)]
    return replace(corpus, table=table, audio=audio, text=text, encoder=store.encoder, notes=notes,
                   store=store.path)
