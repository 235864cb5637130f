"""Read any folder tree of audio files as an (unlabelled) corpus; the folder is never modified.

Every file whose extension is in :data:`bst_core.audio.AUDIO_EXTENSIONS` counts, at any depth.
Hidden files and folders (name starting with ".", e.g. macOS "._" resource forks) are skipped and
counted in the notes. For each file:

- ``id``: its path relative to the root, POSIX style ("birds/robin_01.wav").
- ``title``: the embedded title tag when there is one, else the file name without extension
  with "_" and "-" turned into spaces.
- ``tags``: the names of the folders between the root and the file, plus an embedded genre.
- ``description``: the embedded comment; plus the file-name words when an embedded title
  replaced them, so nothing the name says is lost.
- extra columns: ``duration_s`` (from the header, NaN when unreadable) and ``artist``/``album``
  etc. for every embedded tag found in any file.

Files that cannot be read are still listed: extraction records why later.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from bst_core import jobs
from bst_core.audio import AUDIO_EXTENSIONS
from bst_core.corpus import Corpus, empty_table
from bst_core.errors import BadInputError

_NAME_SEPARATORS = re.compile(r"[_\-\s]+")


def words_of_name(name: str) -> str:
    """``"dog_bark-close 02"`` → ``"dog bark close 02"``."""
    return _NAME_SEPARATORS.sub(" ", name).strip()


def _embedded(path: Path) -> tuple[dict[str, str], float]:
    """Embedded text tags (non-empty ones) and the duration in seconds; ({}, NaN) if unreadable."""
    try:
        with sf.SoundFile(path) as handle:
            tags = {k: v.strip() for k, v in handle.copy_metadata().items() if v and v.strip()}
            duration = handle.frames / handle.samplerate if handle.samplerate else float("nan")
            return tags, duration
    except (sf.LibsndfileError, RuntimeError, OSError):
        return {}, float("nan")


def _scan(root: Path, job: jobs.Job | None) -> tuple[list[Path], list[str]]:
    """Audio files under ``root`` in a stable order, plus notes on what was skipped."""
    found: list[Path] = []
    hidden = 0
    unreadable: list[str] = []

    def on_error(error: OSError) -> None:
        unreadable.append(f"{error.filename}: {error.strerror or error}")

    for folder, dirs, files in os.walk(root, onerror=on_error):
        jobs.check(job)
        hidden += sum(name.startswith(".") for name in dirs + files)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / name for name in sorted(files)
                     if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS)
        jobs.report(job, "scan", len(found), None, folder)
    notes = []
    if hidden:
        notes.append(f"skipped {hidden} hidden files or folders (names starting with '.')")
    notes.extend(f"could not list folder {entry}" for entry in unreadable)
    return found, notes


def read_audio_folder(root: str | os.PathLike[str], *, job: jobs.Job | None = None) -> Corpus:
    """All audio files under ``root`` as a corpus of kind ``"folder"`` (no labels, no embeddings)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder. Choose a folder that contains audio files.")
    paths, notes = _scan(root, job)
    if not paths:
        raise BadInputError(
            f"No audio files found in {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))} at any "
            "depth). Choose the folder that holds your sounds.")

    rows: list[dict[str, object]] = []
    for k, path in enumerate(paths):
        if k % 256 == 0:
            jobs.check(job)
            jobs.report(job, "read tags", k, len(paths))
        relative = path.relative_to(root)
        embedded, duration = _embedded(path)
        name_words = words_of_name(path.stem)
        title = embedded.pop("title", "") or name_words
        folder_tags = [words_of_name(part) for part in relative.parts[:-1]]
        genre = embedded.pop("genre", "")
        description = embedded.pop("comment", "")
        if title != name_words:
            description = f"{description} {name_words}".strip()
        rows.append({
            "id": relative.as_posix(), "audio_path": str(path), "title": title,
            "tags": " ".join([*folder_tags, *([genre] if genre else [])]),
            "description": description, "duration_s": duration,
            **embedded,
        })
    jobs.report(job, "read tags", len(paths), len(paths))

    found = pd.DataFrame(rows)
    table = empty_table(len(found))
    for column in found.columns:
        values = found[column]
        table[column] = values if column == "duration_s" else values.fillna("").astype(str)
    table["source"] = "folder"
    table["duration_s"] = table["duration_s"].astype(np.float64)
    return Corpus(table, root=root, kind="folder", notes=notes)
