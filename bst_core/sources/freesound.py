"""Read a Freesound-style metadata CSV as a corpus (kind ``"csv"``).

Columns (names matched without regard to case):

- ``id`` or ``sound_id`` (required): the sound's id, kept exactly as written; an id with spaces at
  either end, a control character or a line break is refused.
- ``title``, ``tags``, ``description`` (optional, "" when absent).
- ``class`` (optional): a BST class key ("fx-o") or a three-digit code ("401"); or ``class_idx``
  (codes). Rows whose class is not one of the 23 targets ("fx-other", a top level only, a word
  from another taxonomy) are kept *unlabelled*, so they can still be classified, and counted in
  the notes; the original value stays in its column.
- ``confidence`` (optional): number, NaN when empty.
- the audio: a column ``path``, ``file``, ``filename``, ``file_path``, ``audio_path`` or
  ``audio_file`` (relative paths are taken from ``audio_dir`` when given, else from the CSV's
  folder), or else a folder (``audio_dir``, else ``<csv folder>/audio`` when it exists, else the
  CSV's folder) holding ``<id>.<ext>`` or Freesound's download names ``<id>__<user>__<name>.<ext>``.
  Paths that lead outside that folder ("../x.wav", "/abs/x.wav") are used, and counted in a note.

Every other column is kept (a column named ``label`` or ``source`` is kept as ``csv_label`` /
``csv_source``, since the corpus uses those names).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs, taxonomy
from bst_core.audio import AUDIO_EXTENSIONS
from bst_core.corpus import CORPUS_COLUMNS, Corpus
from bst_core.errors import BadInputError
from bst_core.sources.bsd import check_ids, examples, read_metadata_csv, text_frame

KIND = "csv"
ID_COLUMNS: tuple[str, ...] = ("id", "sound_id")
PATH_COLUMNS: tuple[str, ...] = ("path", "file", "filename", "file_path", "audio_path", "audio_file")
CLASS_COLUMNS: tuple[str, ...] = ("class", "class_idx")
_RESERVED = {"label": "csv_label", "source": "csv_source"}


def label_of(value: str) -> tuple[str, str]:
    """``(target key or "", kind)`` for a class cell: a key ("fx-o") or a code ("401").

    ``kind`` is "target", "other", "top", "empty" or "unknown" (see :mod:`bst_core.taxonomy`).
    """
    text = value.strip().lower()
    if not text:
        return "", "empty"
    if text.isdigit():
        code = int(text)
        kind = taxonomy.classify_code(code)
        return (taxonomy.key_for_code(code) if kind == "target" else ""), kind
    kind = taxonomy.classify_label(text)
    return (text if kind == "target" else ""), kind


def _labels(raw: pd.DataFrame, column: str | None) -> tuple[list[str], list[str]]:
    if column is None:
        return [""] * len(raw), []
    results = [label_of(v) for v in raw[column]]
    kinds = pd.Series([kind for _, kind in results])
    notes = []
    words = {"other": 'an "-other" class', "top": "a top-level class only",
             "unknown": "a value that is not a BST class"}
    for kind, what in words.items():
        rows = raw[column][(kinds == kind).to_numpy()]
        if len(rows):
            shown = examples(rows.unique().tolist())
            notes.append(f"{len(rows)} rows have {what} in `{column}` (e.g. {shown}); kept unlabelled.")
    return [key for key, _ in results], notes


def _index_audio(folder: Path) -> dict[str, Path]:
    """``{id: path}`` for the audio files directly in ``folder``: ``<id>.<ext>`` and
    ``<id>__<user>__<name>.<ext>`` (Freesound's download names); ``.wav`` wins over other
    extensions, an exact ``<id>`` name over a download name."""
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
    index: dict[str, Path] = {}
    rank: dict[str, tuple[int, int]] = {}
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in AUDIO_EXTENSIONS:
            continue
        for key, exact in ((stem, 0), (stem.split("__", 1)[0], 1)):
            score = (exact, 0 if ext.lower() == ".wav" else 1)
            if key not in rank or score < rank[key]:
                index[key], rank[key] = folder / name, score
    return index


def _inside(path: str, folder: Path) -> bool:
    """Whether ``path`` (absolute) lies under ``folder``, judged on the names ("a/../b" counts as "b")."""
    return os.path.normpath(path).startswith(os.path.join(os.path.normpath(folder), ""))


def _audio_paths(raw: pd.DataFrame, ids: pd.Series, csv_path: Path, audio_dir: Path | None,
                 columns: dict[str, str]) -> tuple[list[str], list[str]]:
    """Absolute audio path per row ("" when none was found) and notes."""
    path_column = next((columns[c] for c in PATH_COLUMNS if c in columns), None)
    if path_column is not None:
        base = audio_dir or csv_path.parent
        values = [v.strip() for v in raw[path_column]]
        paths = [str((base / v).absolute()) if v else "" for v in values]
        missing = [p for p in paths if p and not Path(p).is_file()]
        notes = [f"Audio paths from column `{path_column}` (relative to {base})."]
        outside = [v for v, p in zip(values, paths, strict=True) if p and not _inside(p, base)]
        if outside:
            where = "its folder" if audio_dir is None else f"the audio folder {base}"
            notes.append(f"{len(outside)} audio path(s) of {csv_path.name} point outside {where}, "
                         f"e.g. {examples(outside)}.")
        if missing:
            notes.append(f"{len(missing)} files named in `{path_column}` do not exist, e.g. "
                         f"{examples(missing)}.")
        empty = sum(1 for p in paths if not p)
        if empty:
            notes.append(f"{empty} rows have an empty `{path_column}`: only their text is used.")
        return paths, notes
    folder = audio_dir if audio_dir is not None else (
        csv_path.parent / "audio" if (csv_path.parent / "audio").is_dir() else csv_path.parent)
    index = _index_audio(folder)
    paths = [str(index[i].absolute()) if i in index else "" for i in ids]
    lacking = [i for i, p in zip(ids, paths, strict=True) if not p]
    notes = [f"Audio files looked up by id in {folder}."]
    if lacking:
        notes.append(f"{len(lacking)} ids have no audio file there (e.g. {examples(lacking)}): only "
                     "their text is used.")
    return paths, notes


def read_freesound_csv(path: str | os.PathLike[str], *, audio_dir: str | os.PathLike[str] | None = None,
                       job: jobs.Job | None = None) -> Corpus:
    """A Freesound metadata CSV as a :class:`Corpus` (see the module docstring for the columns)."""
    csv_path = Path(path).expanduser().absolute()
    if not csv_path.is_file():
        raise BadInputError(f"{csv_path} does not exist. Choose a Freesound metadata .csv file.")
    folder = None if audio_dir is None else Path(audio_dir).expanduser().absolute()
    if folder is not None and not folder.is_dir():
        raise BadInputError(f"Audio folder {folder} does not exist. Choose the folder that holds the sounds.")
    jobs.report(job, "read metadata", 0, None, csv_path.name)
    encoding_notes: list[str] = []
    raw = read_metadata_csv(csv_path, encoding_notes)
    columns = {c.lower(): c for c in raw.columns}   # lower-case name → name as written
    id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise BadInputError(
            f"{csv_path} has no `id` or `sound_id` column (columns: {', '.join(raw.columns) or 'none'}). "
            "Add a column with each sound's id, or rename the existing one.")
    ids = raw[id_column]
    check_ids(ids, csv_path, id_column)

    renamed = raw.rename(columns={columns[c]: c for c in ("title", "tags", "description") if c in columns})
    class_column = next((columns[c] for c in CLASS_COLUMNS if c in columns), None)
    labels, notes = _labels(raw, class_column)
    audio_paths, audio_notes = _audio_paths(raw, ids, csv_path, folder, columns)
    confidence = (pd.to_numeric(raw[columns["confidence"]], errors="coerce").to_numpy(dtype=float)
                  if "confidence" in columns else np.full(len(raw), np.nan))

    table = pd.DataFrame({
        "id": ids, "audio_path": pd.Series(audio_paths, dtype=str), **text_frame(renamed),
        "label": pd.Series(labels, dtype=str), "confidence": confidence, "source": KIND,
    })
    used = {id_column, *(columns[c] for c in ("title", "tags", "description", "confidence") if c in columns)}
    for column in raw.columns:
        if column in used:
            continue
        name = _RESERVED.get(column, column)
        if name in CORPUS_COLUMNS:   # e.g. a path column called audio_path: already used
            name = f"csv_{name}"
        table[name] = raw[column].to_numpy()
    notes = [f"Metadata: {csv_path.name}, {len(table)} rows.", *encoding_notes, *notes, *audio_notes]
    jobs.report(job, "read metadata", 1, 1, f"{len(table)} sounds")
    return Corpus(table, root=csv_path, kind=KIND, notes=notes)
