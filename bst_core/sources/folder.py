"""Read any folder tree of audio files as an (unlabelled) corpus; the folder is never modified.

Every file whose extension is in :data:`bst_core.audio.AUDIO_EXTENSIONS` counts, at any depth.
Hidden files and folders (name starting with ".", e.g. macOS "._" resource forks) are skipped and
counted in the notes. For each file:

- ``id``: its path relative to the root, POSIX style ("birds/robin_01.wav"), exactly. Files whose
  path cannot be an id as it is (control characters, line breaks, bytes that are not UTF-8) are
  left out and counted in the notes.
- ``title``: the embedded title tag when there is one, else the file name without extension
  with "_" and "-" turned into spaces.
- ``tags``: the names of the folders between the root and the file, plus an embedded genre.
- ``description``: the embedded comment; plus the file-name words when an embedded title
  replaced them, so nothing the name says is lost.
- extra columns: ``duration_s`` (from the header, NaN when unreadable) and ``artist``/``album``
  etc. for every embedded tag found in any file.

Files that cannot be read are still listed: extraction records why later.

With ``truth_from_subfolders`` (a librarian's sorted folders, ``sounds/fx-o/door.wav``), the
innermost folder named after a BST class (:func:`class_of_folder`: its key "fx-o", its code "401",
its name "Vehicles" or "Objects - House appliances", or the key followed by words, "fx-o objects")
gives the sound's truth (``label``); sounds in no such folder stay unlabelled and are counted in the
notes. The class folders are then left out of ``tags`` (the text would otherwise carry the answer).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from bst_core import jobs
from bst_core.audio import AUDIO_EXTENSIONS, ffmpeg_tags
from bst_core.corpus import Corpus, empty_table
from bst_core.errors import BadInputError
from bst_core.sources.bsd import examples, id_problem
from bst_core.sources.header_cache import Header, HeaderCache, Stamp, now_ns, stamp_of
from bst_core.taxonomy import BY_CODE, CLASS_KEYS, classes
from bst_core.textfile import shorten

_OWN_TAGS = frozenset({"title", "genre", "comment"})
"""Embedded tags that go into title, tags and description rather than a column of their own."""
_NAME_SEPARATORS = re.compile(r"[_\-\s]+")
_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")


def _normal(text: str) -> str:
    return _NOT_ALPHANUMERIC.sub(" ", text.lower()).strip()


_CLASS_BY_NAME: dict[str, str] = {_normal(c.name): c.key for c in classes()}


def class_of_folder(name: str) -> str:
    """The BST class key a folder name stands for ("" when none): the key itself ("fx-o", any case),
    the key followed by words ("fx-o objects", "fx-o_objects"), the class code ("401") or the
    class name ("Vehicles", "Objects - House appliances")."""
    text = name.strip().lower()
    first = re.split(r"[\s_]+", text, maxsplit=1)[0] if text else ""
    if first in CLASS_KEYS:
        return first
    if text.isdigit() and int(text) in BY_CODE:
        return BY_CODE[int(text)].key
    return _CLASS_BY_NAME.get(_normal(text), "")


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
    except sf.LibsndfileError as exc:
        return ffmpeg_tags(path) if exc.code == 1 else ({}, float("nan"))   # 1: a format only FFmpeg reads
    except (RuntimeError, OSError):
        return {}, float("nan")


def _scan(root: Path, job: jobs.Job | None) -> tuple[list[str], list[str], list[str]]:
    """Audio files under ``root`` in a stable order: their relative POSIX paths and absolute paths,
    plus notes on what was skipped."""
    relative: list[str] = []
    found: list[str] = []
    hidden = 0
    other: list[str] = []   # files that are not audio by their extension
    unreadable: list[str] = []
    top = str(root)

    def on_error(error: OSError) -> None:
        unreadable.append(f"{error.filename}: {error.strerror or error}")

    for folder, dirs, files in os.walk(top, onerror=on_error):
        jobs.check(job)
        hidden += sum(name.startswith(".") for name in dirs + files)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = "" if folder == top else os.path.relpath(folder, top).replace(os.sep, "/") + "/"
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                relative.append(prefix + name)
                found.append(os.path.join(folder, name))
            else:
                other.append(prefix + name)
        jobs.report(job, "scan", len(found), None, folder)
    notes = []
    if other:
        notes.append(f"skipped {len(other)} files that are not audio by their extension: {examples(other, 10)}")
    if hidden:
        notes.append(f"skipped {hidden} hidden files or folders (names starting with '.')")
    notes.extend(f"could not list folder {entry}" for entry in unreadable)
    return relative, found, notes


def _usable(relative: list[str], paths: list[str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Files whose relative path can be an id as it is (relative and absolute paths), and (relative
    path, problem) of the others."""
    usable: tuple[list[str], list[str]] = ([], [])
    refused: list[tuple[str, str]] = []
    for item_id, path in zip(relative, paths, strict=True):
        problem = id_problem(item_id, allow_spaces=True)
        if problem:
            refused.append((item_id, problem))
        else:
            usable[0].append(item_id)
            usable[1].append(path)
    return usable[0], usable[1], refused


def _headers(cache: HeaderCache, ids: list[str], paths: list[str], job: jobs.Job | None) -> list[Header]:
    """Tags and duration of each file: remembered when its stamp is unchanged, else read (and remembered)."""
    stamps: list[Stamp | None] = []
    for k, path in enumerate(paths):
        if k % 4096 == 0:
            jobs.check(job)
        try:
            stamps.append(stamp_of(os.stat(path)))
        except OSError:
            stamps.append(None)
    known = [k for k, stamp in enumerate(stamps) if stamp is not None]
    remembered = cache.lookup([ids[k] for k in known], [stamps[k] for k in known])  # type: ignore[misc]
    headers: list[Header | None] = [None] * len(paths)
    for k, header in zip(known, remembered, strict=True):
        headers[k] = header
    for k, path in enumerate(paths):
        if headers[k] is not None:
            continue
        if k % 64 == 0:
            jobs.check(job)
        if k % 256 == 0:
            jobs.report(job, "read tags", k, len(paths))
        read_at = now_ns()
        tags, duration = headers[k] = _embedded(Path(path))
        stamp = stamps[k]
        if stamp is not None:
            cache.put(ids[k], stamp, (tags, duration), read_at_ns=read_at,
                      readable=bool(tags) or not math.isnan(duration))
    return headers   # type: ignore[return-value]


def read_audio_folder(root: str | os.PathLike[str], *, truth_from_subfolders: bool = False,
                      job: jobs.Job | None = None) -> Corpus:
    """All audio files under ``root`` as a corpus of kind ``"folder"`` (no embeddings); unlabelled,
    or labelled by their class-named subfolders with ``truth_from_subfolders`` (module docstring).
    Headers of files unchanged since the last open come from :mod:`bst_core.sources.header_cache`."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder. Choose a folder that contains audio files.")
    relative, paths, notes = _scan(root, job)
    relative, paths, refused = _usable(relative, paths)
    if refused:
        reasons = sorted({problem for _, problem in refused})
        notes.append(f"{len(refused)} audio files were left out: their names cannot be used as ids as they are "
                     f"({'; '.join(reasons)}), e.g. {examples([shorten(name) for name, _ in refused])}. "
                     "Rename them to include them.")
    if not paths and refused:
        raise BadInputError(f"No usable audio files in {root}: {notes[-1]}")
    if not paths:
        raise BadInputError(
            f"No audio files found in {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS))} at any "
            "depth). Choose the folder that holds your sounds.")

    cache = HeaderCache.load(root)
    headers = _headers(cache, relative, paths, job)
    jobs.report(job, "read tags", len(paths), len(paths))
    cache.save()
    columns: dict[str, list[object]] = {name: [] for name in ("title", "tags", "description", "duration_s", "label")}
    titles, tag_texts, descriptions, durations, labels = columns.values()
    extra: dict[str, dict[int, str]] = {}   # embedded tags beyond title/genre/comment: column → {row: value}
    folder_of: dict[str, tuple[str, list[str], str]] = {}   # folder prefix → (label, folder tags, joined)
    for k, (item_id, (embedded, duration)) in enumerate(zip(relative, headers, strict=True)):
        if k % 4096 == 0:
            jobs.check(job)
        prefix, _, name = item_id.rpartition("/")
        meaning = folder_of.get(prefix)
        if meaning is None:
            meaning = folder_of[prefix] = _folder_meaning(prefix, truth_from_subfolders)
        label, folder_tags, joined = meaning
        name_words = words_of_name(os.path.splitext(name)[0])
        title = embedded.get("title", "") or name_words
        genre = embedded.get("genre", "")
        description = embedded.get("comment", "")
        if title != name_words:
            description = f"{description} {name_words}".strip()
        titles.append(title)
        tag_texts.append((f"{joined} {genre}" if folder_tags else genre) if genre else joined)
        descriptions.append(description)
        durations.append(duration)
        labels.append(label)
        for tag, value in embedded.items():
            if tag not in _OWN_TAGS:
                extra.setdefault(tag, {})[k] = value

    table = empty_table(len(paths))
    table["id"] = pd.Series(relative, dtype=object).astype(str)
    table["audio_path"] = pd.Series(paths, dtype=object).astype(str)
    for column, values in columns.items():
        table[column] = values if column == "duration_s" else pd.Series(values, dtype=object).astype(str)
    for tag, values in extra.items():
        if tag not in table.columns:   # a tag named like a standard column never replaces it
            table[tag] = pd.Series([values.get(k, "") for k in range(len(paths))], dtype=object).astype(str)
    table["source"] = "folder"
    if truth_from_subfolders:
        notes.extend(_truth_notes(table))
    table["duration_s"] = table["duration_s"].astype(np.float64)
    return Corpus(table, root=root, kind="folder", notes=notes)


def _folder_meaning(prefix: str, truth_from_subfolders: bool) -> tuple[str, list[str], str]:
    """(label, tags, tags joined by spaces) given by the folders of a relative path prefix ("birds/robins")."""
    folders = tuple(prefix.split("/")) if prefix else ()
    label = ""
    if truth_from_subfolders:
        label = next((key for key in map(class_of_folder, reversed(folders)) if key), "")
        folders = tuple(part for part in folders if not class_of_folder(part))
    tags = [words_of_name(part) for part in folders]
    return label, tags, " ".join(tags)


def _truth_notes(table: pd.DataFrame) -> list[str]:
    """What taking truth from the class-named subfolders gave, for the source report."""
    labelled = table["label"] != ""
    notes = [f"truth from class-named subfolders: {int(labelled.sum())} of {len(table)} sounds labelled, "
             f"{table.loc[labelled, 'label'].nunique()} classes"]
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} sounds are in no class-named folder (e.g. "
                     f"{examples(table.loc[~labelled, 'id'].tolist())}) and stay unlabelled; name a folder "
                     "after a class (its key such as fx-o, its code 401 or its name) to label them")
    return notes
