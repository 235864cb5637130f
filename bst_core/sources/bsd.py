"""BSD10k / BSD35k-CS dataset folders, and the shipped per-sound embedding layout they use.

A dataset folder::

    audio/<sound_id>.wav
    metadata/BSD10k_metadata.csv  (or BSD35k-CS_metadata.csv, or any *_metadata.csv with
                                   sound_id and class_idx columns)
    features/clap_audio_embeddings/<sound_id>.npy
    features/clap_text_embeddings/<sound_id>.npy

The per-sound ``.npy`` files are read once into an :class:`~bst_core.store.EmbeddingStore` under
``paths.cache_dir()/stores/``; later opens memory-map it. Every cached sound is keyed on the size
mtime_ns, ctime_ns and inode of both its files (one stat each per open), so files overwritten in place are noticed
and only they are read again (a note says how many). The expected vector size is the one most
files have; files of another size are named.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs, paths, taxonomy
from bst_core.corpus import CLAP_ENCODER, CORPUS_COLUMNS, Corpus, EncoderInfo, official_dataset
from bst_core.errors import BadInputError
from bst_core.store import (
    FORMAT_VERSION,
    EmbeddingStore,
    NpyStat,
    consolidate_npy_folders,
    npy_file_stats,
    npy_item_state,
    remove_store,
)
from bst_core.textfile import read_csv_table, shorten

KIND = "bsd"
METADATA_NAMES: tuple[str, ...] = ("BSD10k_metadata.csv", "BSD35k-CS_metadata.csv")
AUDIO_FEATURES = Path("features") / "clap_audio_embeddings"
TEXT_FEATURES = Path("features") / "clap_text_embeddings"
TEXT_COLUMNS: tuple[str, ...] = ("title", "tags", "description")
_EXAMPLES = 3


# ---------------------------------------------------------------------- CSV helpers (shared by readers)
def read_metadata_csv(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """Every column as ``str`` exactly as written (names stripped); "NA"/"null" stay text.

    The encoding is detected (:func:`bst_core.textfile.read_csv_table`); when the cp1252 fallback
    was used, its note is appended to ``notes``. Unreadable files raise :class:`BadInputError`.
    """
    table = read_csv_table(path)
    if table.note and notes is not None:
        notes.append(table.note)
    return table.frame


def csv_columns(path: Path) -> list[str]:
    """Header of a CSV file; a file that cannot be read raises :class:`BadInputError` naming it."""
    return [str(c) for c in read_csv_table(path, header_only=True).frame.columns]


def metadata_csvs(folder: Path) -> list[Path]:
    """``folder/*_metadata.csv`` files, sorted, hidden ones ("._x_metadata.csv" from macOS) left out."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*_metadata.csv") if not p.name.startswith(".") and p.is_file())


def examples(values: Sequence[object], k: int = _EXAMPLES) -> str:
    """``"a, b, c, ..."``: the first ``k`` values for a note."""
    shown = ", ".join(str(v) for v in list(values)[:k])
    return shown + (", ..." if len(values) > k else "")


def text_frame(raw: pd.DataFrame) -> dict[str, pd.Series]:
    """title/tags/description columns of ``raw`` ("" where the column is absent)."""
    return {c: raw[c] if c in raw.columns else pd.Series([""] * len(raw), dtype=str) for c in TEXT_COLUMNS}


def audio_files(folder: Path) -> dict[str, Path]:
    """``{stem: absolute path}`` of the ``.wav`` files in ``folder`` (one directory listing)."""
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        return {e.name[:-4]: Path(e.path) for e in entries
                if e.name.lower().endswith(".wav") and not e.name.startswith(".")}


# ---------------------------------------------------------------------- shipped embeddings
@dataclass
class ShippedEmbeddings:
    """Embeddings of ``ids`` from a ``features/clap_*_embeddings`` layout, row-aligned to ``ids``."""

    audio: np.ndarray        # (n, audio_dim) float32, zeros where not found
    text: np.ndarray         # (n, text_dim) float32, zeros where not found
    found: np.ndarray        # (n,) bool: both .npy files exist
    encoder: EncoderInfo
    store_path: Path
    notes: list[str] = field(default_factory=list)


def cached_store_path(root: Path) -> Path:
    """Cache store of a dataset's shipped embeddings: ``cache_dir()/stores/<paths.folder_key(root)>-shipped``."""
    return paths.cache_dir() / "stores" / f"{paths.folder_key(root)}-shipped"


def _open_cache(store_path: Path, notes: list[str]) -> EmbeddingStore | None:
    """The cache store, or None (removed first) when it is missing, damaged or of an older format."""
    if not (store_path / "manifest.json").exists():
        remove_store(store_path)
        return None
    try:
        store = EmbeddingStore.open(store_path)
    except BadInputError as exc:
        notes.append(f"The cached embeddings were unusable and have been rebuilt ({exc}).")
        remove_store(store_path)
        return None
    if store.format_version < FORMAT_VERSION:
        notes.append("The cached embeddings were made by an older BST Studio and have been rebuilt.")
        remove_store(store_path)
        return None
    return store


def load_shipped_embeddings(root: Path, ids: Sequence[str], *,
                            job: jobs.Job | None = None) -> ShippedEmbeddings | None:
    """Embeddings of ``ids`` from ``root/features/clap_{audio,text}_embeddings/<id>.npy``.

    Returns None when either folder is absent. The first call reads the files into a cache store
    (progress stage "read embeddings"); later calls stat every file and memory-map the cache,
    reading again only files whose size, mtime_ns, ctime_ns or inode changed.
    """
    root = Path(root).resolve()
    audio_dir, text_dir = root / AUDIO_FEATURES, root / TEXT_FEATURES
    if not (audio_dir.is_dir() and text_dir.is_dir()):
        return None
    ids = [str(i) for i in ids]
    audio_stats, text_stats = npy_file_stats(audio_dir), npy_file_stats(text_dir)
    found = np.array([i in audio_stats and i in text_stats for i in ids], dtype=bool)
    have = [i for i, ok in zip(ids, found, strict=True) if ok]

    notes: list[str] = []
    store_path = cached_store_path(root)
    store = _open_cache(store_path, notes)
    if store is not None:
        sizes, mtimes, keys = npy_item_state(have, audio_stats, text_stats)
        fresh = store.up_to_date(have, sizes, mtime_ns=mtimes, keys=keys).all()
        try:  # the rows that stay are verified: a damaged cache is rebuilt, not updated
            audio, text, _ = store.load(have if fresh else store.items()["id"].tolist())
        except BadInputError as exc:
            notes.append(f"The cached embeddings were unusable and have been rebuilt ({exc}).")
            remove_store(store_path)
            store, fresh = None, False
        if fresh:
            return _aligned(audio, text, found, store, notes)
    encoder = _encoder_from_files(audio_dir, text_dir, have, store, (audio_stats, text_stats))
    if store is not None and store.encoder != encoder:
        notes.append(f"The shipped embeddings are now {encoder.audio_dim}+{encoder.text_dim} numbers per sound "
                     f"(the cache held {store.encoder.audio_dim}+{store.encoder.text_dim}); the cache was rebuilt.")
        remove_store(store_path)
    store = consolidate_npy_folders(have, audio_dir, text_dir, store_path, encoder, job, source=str(root),
                                    notes=notes, stats=(audio_stats, text_stats))
    audio, text, _ = store.load(have)
    return _aligned(audio, text, found, store, notes)


def _aligned(audio: np.ndarray, text: np.ndarray, found: np.ndarray, store: EmbeddingStore,
             notes: list[str]) -> ShippedEmbeddings:
    """Spread rows of the found ids over all ids (zeros where not found)."""
    if not found.all():
        full_audio = np.zeros((len(found), store.encoder.audio_dim), np.float32)
        full_text = np.zeros((len(found), store.encoder.text_dim), np.float32)
        full_audio[found], full_text[found] = audio, text
        audio, text = full_audio, full_text
    return ShippedEmbeddings(audio, text, found, store.encoder, store.path, notes)


def _encoder_from_files(audio_dir: Path, text_dir: Path, have: Sequence[str], store: EmbeddingStore | None,
                        stats: tuple[dict[str, NpyStat], dict[str, NpyStat]]) -> EncoderInfo:
    """CLAP encoder identity with the vector sizes most files have (see :func:`_majority_size`)."""
    known = store.encoder if store is not None else CLAP_ENCODER
    if not have:
        return known
    return replace(CLAP_ENCODER, audio_dim=_majority_size(audio_dir, have, stats[0], known.audio_dim),
                   text_dim=_majority_size(text_dir, have, stats[1], known.text_dim))


def _majority_size(folder: Path, have: Sequence[str], stats: dict[str, NpyStat], known: int) -> int:
    """The vector size most of ``have``'s files in ``folder`` hold (``known`` wins a tie).

    Files are grouped by their size on disk and one file per group is read, so the common case
    costs one header read. Files of another vector size raise :class:`BadInputError` naming them.
    """
    groups: dict[int, list[str]] = {}
    for item in have:
        groups.setdefault(stats[item][0], []).append(item)
    dims = {file_size: _vector_size(folder / f"{members[0]}.npy") for file_size, members in groups.items()}
    votes: Counter[int] = Counter()
    for file_size, members in groups.items():
        votes[dims[file_size]] += len(members)
    top = max(votes.values())
    tied = [dim for dim, count in votes.items() if count == top]
    expected = known if known in tied else max(tied)
    odd = [item for item in have if dims[stats[item][0]] != expected]
    if odd:
        shown = ", ".join(f"{item}.npy ({dims[stats[item][0]]})" for item in odd[:_EXAMPLES])
        more = f" and {len(odd) - _EXAMPLES} more" if len(odd) > _EXAMPLES else ""
        raise BadInputError(
            f"{len(odd)} of {len(have)} embedding files in {folder} do not hold {expected} numbers like the "
            f"others: {shown}{more}. Re-extract those files or delete them (their sounds are then reported "
            "as missing).")
    return expected


def _vector_size(path: Path) -> int:
    try:
        size = int(np.load(path, mmap_mode="r", allow_pickle=False).size)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInputError(f"Embedding file {path} cannot be read as .npy ({exc}). Re-extract this "
                            "file or delete it (its sound is then reported as missing).") from exc
    if size == 0:
        raise BadInputError(f"Embedding file {path} is empty. Re-extract this file or delete it.")
    return size


# ---------------------------------------------------------------------- the BSD reader
def find_bsd_metadata(root: Path) -> Path:
    """The metadata CSV of a BSD folder (known names first, then any with sound_id + class_idx)."""
    folder = Path(root) / "metadata"
    for name in METADATA_NAMES:
        if (folder / name).is_file():
            return folder / name
    for path in metadata_csvs(folder):
        if {"sound_id", "class_idx"} <= set(csv_columns(path)):
            return path
    raise BadInputError(
        f"{folder} holds no BSD metadata: expected {' or '.join(METADATA_NAMES)} (or a *_metadata.csv "
        "with sound_id and class_idx columns). Choose the dataset's root folder.")


def _code_kind(value: str) -> tuple[str, int]:
    """("target" | "other" | "top" | "unknown", code) of one class_idx cell."""
    try:
        number = float(value)
    except ValueError:
        return "unknown", -1
    if not number.is_integer():
        return "unknown", -1
    return taxonomy.classify_code(int(number)), int(number)


def _labels(raw: pd.DataFrame, meta_path: Path) -> tuple[np.ndarray, np.ndarray, pd.Series, list[str]]:
    """(codes, keep mask, labels of kept rows, notes) from class_idx; unknown codes raise."""
    text = raw["class_idx"].str.strip()
    parsed = {value: _code_kind(value) for value in text.unique()}
    kinds = text.map(lambda v: parsed[v][0]).to_numpy(dtype=object)
    codes = text.map(lambda v: parsed[v][1]).to_numpy(dtype=np.int64)
    bad = np.flatnonzero(kinds == "unknown")
    if len(bad):
        row = int(bad[0])
        raise BadInputError(
            f"{meta_path}: data row {row + 1} (sound_id {raw['id'].iloc[row]}) has class_idx "
            f"{shorten(text.iloc[row])}, which is not a Broad Sound Taxonomy code ({len(bad)} such rows). "
            "Fix or remove those rows.")
    keep = kinds == "target"
    labels = pd.Series(codes[keep], dtype=np.int64).map(
        {c.class_idx: c.key for c in taxonomy.classes()}).astype(str)
    notes = []
    for kind, words in (("other", 'an "-other" class (X99)'), ("top", "a top-level class only (X00)")):
        dropped = int((kinds == kind).sum())
        if dropped:
            notes.append(f"{dropped} rows labelled with {words} were left out: they are not target classes.")
    return codes, keep, labels, notes


def _class_column_notes(raw: pd.DataFrame, keep: np.ndarray, labels: pd.Series) -> list[str]:
    """Cross-check the ``class`` column against ``class_idx`` (class_idx wins)."""
    if "class" not in raw.columns:
        return []
    named = raw["class"].str.strip()[keep].reset_index(drop=True)
    looks_like_key = named.map({n: taxonomy.classify_label(n) != "unknown" for n in named.unique()})
    disagree = raw["id"][keep].reset_index(drop=True)[looks_like_key & (named != labels)].tolist()
    if not disagree:
        return []
    return [f"{len(disagree)} rows have a `class` that disagrees with `class_idx` (class_idx was used), "
            f"e.g. sound_id {examples(disagree)}."]


def read_bsd_dataset(root: str | os.PathLike[str], *, job: jobs.Job | None = None) -> Corpus:
    """A BSD10k/BSD35k-CS folder as a :class:`Corpus` (kind ``"bsd"``), with shipped embeddings.

    Rows labelled X00/X99 and rows whose ``.npy`` (either modality) is missing are left out and
    counted in ``notes``. Extra metadata columns are kept.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder. Choose the dataset's root folder.")
    meta_path = find_bsd_metadata(root)
    jobs.report(job, "read metadata", 0, None, meta_path.name)
    encoding_notes: list[str] = []
    raw = read_metadata_csv(meta_path, encoding_notes)
    missing = [c for c in ("sound_id", "class_idx") if c not in raw.columns]
    if missing:
        raise BadInputError(f"{meta_path} has no {' or '.join(missing)} column. Use the dataset's "
                            "original metadata file.")
    raw = raw.rename(columns={"sound_id": "id"})
    check_ids(raw["id"], meta_path, "sound_id")
    codes, keep, labels, label_notes = _labels(raw, meta_path)
    notes = [f"Metadata: {meta_path.name}, {len(raw)} rows.", *encoding_notes, *label_notes,
             *_class_column_notes(raw, keep, labels)]
    raw = raw.loc[keep].reset_index(drop=True)

    wavs = audio_files(root / "audio")
    confidence = raw["confidence"] if "confidence" in raw.columns else pd.Series([""] * len(raw))
    table = pd.DataFrame({
        "id": raw["id"],
        "audio_path": [str(wavs[i]) if i in wavs else "" for i in raw["id"]],
        **text_frame(raw),
        "label": labels,
        "confidence": pd.to_numeric(confidence, errors="coerce").astype(float),
        "source": KIND,
    })
    for column in raw.columns:
        if column not in table.columns:
            table[column] = raw[column]
    table["class_idx"] = codes[keep]
    table = table.loc[:, list(CORPUS_COLUMNS) + [c for c in table.columns if c not in CORPUS_COLUMNS]]

    dataset, synthetic = official_dataset(meta_path.name.removesuffix("_metadata.csv"), len(keep), root)
    corpus = Corpus(table, root=root, kind=KIND, notes=notes, dataset=dataset, synthetic=synthetic)
    shipped = load_shipped_embeddings(root, table["id"].tolist(), job=job)
    if shipped is None:
        corpus.notes.append(f"No shipped embeddings ({AUDIO_FEATURES} and {TEXT_FEATURES}); "
                            "compute them with `bst extract`.")
    else:
        corpus.notes += shipped.notes
        lacking = ~shipped.found
        if lacking.any():
            corpus.notes.append(
                f"{int(lacking.sum())} sounds have no .npy embedding (audio or text) under features/ and "
                f"were left out, e.g. {examples(table['id'][lacking].tolist())}.")
            corpus = corpus.subset(shipped.found)
            shipped.audio, shipped.text = shipped.audio[shipped.found], shipped.text[shipped.found]
        corpus.audio, corpus.text, corpus.encoder = shipped.audio, shipped.text, shipped.encoder
    no_audio = int((corpus.table["audio_path"] == "").sum())
    if no_audio:
        corpus.notes.append(f"{no_audio} sounds have no audio/<sound_id>.wav: they can be classified "
                            "but not played.")
    jobs.report(job, "read metadata", 1, 1, f"{len(corpus)} sounds")
    return corpus


_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SUSPECT = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"


def id_problem(value: str, *, allow_spaces: bool = False) -> str:
    """Why ``value`` cannot be kept as an id ("" when it can): ids are used exactly as written.

    Refused: empty, NUL, line breaks, other control characters, lone surrogates (file names that
    are not valid UTF-8) and, unless ``allow_spaces``, leading or trailing whitespace.
    """
    if value == "":
        return "is empty"
    if "\x00" in value:
        return "contains a NUL character"
    if _LINE_BREAKS.search(value):
        return "contains a line break"
    if _CONTROLS.search(value):
        return "contains a control character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds bytes that are not valid UTF-8"
    if not allow_spaces and value.strip() != value:
        return "has leading or trailing spaces"
    return ""


def check_ids(ids: pd.Series, meta_path: Path, column: str) -> None:
    """Refuse ids that cannot be kept exactly (see :func:`id_problem`) or that repeat, naming the
    file, the data row and the id."""
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise BadInputError(f"{meta_path}: data row {int(empty[0]) + 1} has an empty {column}. "
                            "Fill it in or remove the row.")
    suspect = ids.str.contains(_SUSPECT, regex=True) | (ids.str.strip() != ids)
    for row in np.flatnonzero(suspect.to_numpy(dtype=bool)):
        value = ids.iloc[row]
        problem = id_problem(value)
        if problem:
            raise BadInputError(
                f"{meta_path}: data row {row + 1} has {column} {shorten(value)}, which {problem}. Ids are "
                "used exactly as written: correct the value in the file (or remove the row).")
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise BadInputError(f"{meta_path}: {column} values appear more than once "
                            f"({examples(duplicated)}). Each sound must have one row.")

