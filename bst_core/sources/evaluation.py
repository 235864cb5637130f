"""The challenge evaluation folder: ``audio/<anonymous_id>.wav`` + ``metadata/*_metadata.csv``.

Labels are not released, so every row has ``label == ""``. Every metadata row is kept (a row
without audio can still be classified from its text); mismatches between metadata and audio are
reported in ``notes``. If ``features/clap_{audio,text}_embeddings/`` exist they are loaded like
BSD's; when some sounds lack them, none are used and the notes say to run ``bst extract``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs
from bst_core.corpus import CORPUS_COLUMNS, SYNTHETIC_MARKER, Corpus
from bst_core.errors import BadInputError
from bst_core.sources.bsd import (
    AUDIO_FEATURES,
    TEXT_FEATURES,
    audio_files,
    check_ids,
    csv_columns,
    examples,
    load_shipped_embeddings,
    metadata_csvs,
    read_metadata_csv,
    text_frame,
)

KIND = "evaluation"
PREFERRED_METADATA = "BSD2k_metadata.csv"
ID_COLUMN = "anonymous_id"


def find_evaluation_metadata(root: Path) -> Path:
    """``metadata/BSD2k_metadata.csv``, else the first ``metadata/*_metadata.csv`` with anonymous_id."""
    folder = Path(root) / "metadata"
    if (folder / PREFERRED_METADATA).is_file():
        return folder / PREFERRED_METADATA
    for path in metadata_csvs(folder):
        if ID_COLUMN in csv_columns(path):
            return path
    raise BadInputError(
        f"{folder} holds no evaluation metadata: expected {PREFERRED_METADATA} (or a *_metadata.csv "
        f"with an {ID_COLUMN} column). Choose the evaluation set's root folder.")


def read_evaluation_folder(root: str | os.PathLike[str], *, job: jobs.Job | None = None) -> Corpus:
    """The evaluation folder as a :class:`Corpus` (kind ``"evaluation"``, rows in metadata order)."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder. Choose the evaluation set's root folder.")
    meta_path = find_evaluation_metadata(root)
    jobs.report(job, "read metadata", 0, None, meta_path.name)
    encoding_notes: list[str] = []
    raw = read_metadata_csv(meta_path, encoding_notes)
    if ID_COLUMN not in raw.columns:
        raise BadInputError(f"{meta_path} has no {ID_COLUMN} column. Use the evaluation set's "
                            "original metadata file.")
    ids = raw[ID_COLUMN]
    check_ids(ids, meta_path, ID_COLUMN)

    wavs = audio_files(root / "audio")
    table = pd.DataFrame({
        "id": ids,
        "audio_path": [str(wavs[i]) if i in wavs else "" for i in ids],
        **text_frame(raw),
        "label": "",
        "confidence": np.nan,
        "source": KIND,
    })
    for column in raw.columns:
        if column not in table.columns and column != ID_COLUMN:
            table[column] = raw[column]
    table = table.loc[:, list(CORPUS_COLUMNS) + [c for c in table.columns if c not in CORPUS_COLUMNS]]

    notes = [f"Metadata: {meta_path.name}, {len(table)} rows.", *encoding_notes]
    without_audio = table["id"][table["audio_path"] == ""].tolist()
    if without_audio:
        notes.append(f"{len(without_audio)} metadata rows have no audio/<anonymous_id>.wav (kept; their "
                     f"text can still be classified), e.g. {examples(without_audio)}.")
    known = set(table["id"])
    unlisted = sorted(stem for stem in wavs if stem not in known)
    if unlisted:
        notes.append(f"{len(unlisted)} audio files are not in the metadata and were ignored, "
                     f"e.g. {examples(unlisted)}.")

    corpus = Corpus(table, root=root, kind=KIND, notes=notes, synthetic=(root / SYNTHETIC_MARKER).exists())
    shipped = load_shipped_embeddings(root, corpus.ids, job=job)
    if shipped is not None:
        corpus.notes += shipped.notes
        if shipped.found.all():
            corpus.audio, corpus.text, corpus.encoder = shipped.audio, shipped.text, shipped.encoder
        else:
            lacking = table["id"][~shipped.found].tolist()
            corpus.notes.append(
                f"{len(lacking)} of {len(table)} sounds have no .npy under {AUDIO_FEATURES} or "
                f"{TEXT_FEATURES}, e.g. {examples(lacking)}; the shipped embeddings were not used. "
                "Compute embeddings for all sounds with `bst extract`.")
    jobs.report(job, "read metadata", 1, 1, f"{len(corpus)} sounds")
    return corpus
