"""Synthetic corpora with a learnable class structure: the shared test and demo data.

Every class has a fixed random unit centroid per modality (:func:`class_centroids`, the same
``structure_seed`` for BSD and evaluation folders, so a model trained on one predicts the other).
Classes of one top level share a top-level component, so most confusions stay inside a top level.
A sample is its class centroid, pulled part of the way towards another class (usually one of the
same top level) and plus Gaussian noise, then L2-normalised like a CLAP vector (float32).
With 12 sounds per class and 512 dims a small MLP reaches roughly 65 % leaf accuracy on audio
alone and 80 % on audio + text: clearly above chance (4 %) and clearly imperfect.

Audio files are 0.25 s, 44.1 kHz, 16-bit tones whose pitch depends on the class. Text fields use
words from the class's examples and, with ``nasty_text``, the strings of :data:`NASTY_TEXTS`
(commas, quotes, newlines, HTML, emoji, other scripts, a leading "=", "NA", ...).

Folders are built in a temporary sibling folder and renamed into place, so a crash never leaves
a half-written dataset.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile

from bst_core import atomic, taxonomy
from bst_core.corpus import CLAP_ENCODER, SYNTHETIC_MARKER, Corpus, empty_table
from bst_core.taxonomy import CLASS_KEYS, TOP_LEVEL_INDEX, TOP_LEVELS

STRUCTURE_SEED = 1821
SAMPLE_RATE = 44100
CLIP_SECONDS = 0.25
BSD_COLUMNS: tuple[str, ...] = ("sound_id", "class", "class_idx", "class_top", "confidence", "uploader",
                                "license", "title", "tags", "description")
EVALUATION_COLUMNS: tuple[str, ...] = ("anonymous_id", "title", "tags", "description")

NASTY_TEXTS: tuple[str, ...] = (
    'door slam, hard, "very" loud',
    "line one\nline two\n\nline four",
    "windows line\r\nbreak",
    '<a href="https://freesound.org/people/someone/">link</a> &amp; <b>bold</b><br/>',
    "🔔 ベルの音 铃声 звонок جرس घंटी 🎶",
    "=SUM(A1:A2)",
    "",
    "NA",
    "null",
    "N/A",
    "nan",
    "  leading and trailing spaces  ",
    '"fully quoted"',
    "tab\tseparated",
    "C:\\samples\\kick.wav",
    "#not a comment; semi;colons",
)
"""Text values that break naive CSV handling; every one appears verbatim when ``nasty_text``."""

_TOP_WEIGHT, _LEAF_WEIGHT = 0.8, 0.6   # centroid = top component + leaf component (then normalised)
_NOISE = 1.0                           # norm of the isotropic noise added to a unit centroid
_MIX_MAX = 0.8                         # a sample moves up to this far towards another class
_CROSS_TOP = 0.25                      # probability that the other class may be of any top level
_TOP_OF_CLASS = np.array([TOP_LEVELS.index(taxonomy.top_of(k)) for k in CLASS_KEYS])
_LICENSES = ("http://creativecommons.org/publicdomain/zero/1.0/",
             "http://creativecommons.org/licenses/by/4.0/",
             "http://creativecommons.org/licenses/by-nc/4.0/")
_UPLOADERS = ("field_rec", "Ana.Sánchez", "山田", "klangkünstler", "user_42", "o'brien")
_GENERIC_TAGS = ("field-recording", "stereo", "44.1khz", "loop", "short", "sample", "freesound")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def class_centroids(dim: int, structure_seed: int = STRUCTURE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(audio_centroids, text_centroids)``, each (23, dim) float32 unit rows in CLASS_KEYS order."""
    rng = np.random.default_rng(structure_seed)
    result = []
    for _modality in ("audio", "text"):
        tops = _unit(rng.standard_normal((len(TOP_LEVELS), dim)))
        leaves = _unit(rng.standard_normal((len(CLASS_KEYS), dim)))
        result.append(_unit(_TOP_WEIGHT * tops[_TOP_OF_CLASS] + _LEAF_WEIGHT * leaves).astype(np.float32))
    return result[0], result[1]


def _sample(centroids: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, dim = len(classes), centroids.shape[1]
    everyone = np.arange(len(centroids))
    other = np.array([
        rng.choice(everyone[(everyone != c) & ((_TOP_OF_CLASS[c] == _TOP_OF_CLASS) | (rng.random() < _CROSS_TOP))])
        for c in classes], dtype=int)
    mix = rng.uniform(0.0, _MIX_MAX, n)[:, None]
    base = _unit((1 - mix) * centroids[classes] + mix * centroids[other])
    noisy = base + _NOISE / np.sqrt(dim) * rng.standard_normal((n, dim))
    return _unit(noisy).astype(np.float32)


def make_embeddings(labels: Sequence[str], *, dim: int = 512, seed: int = 0,
                    structure_seed: int = STRUCTURE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(audio, text)`` float32 unit vectors for class keys ``labels`` (a top key gives its top's mean)."""
    audio_c, text_c = class_centroids(dim, structure_seed)
    rng = np.random.default_rng(seed)
    result = []
    for centroids in (audio_c, text_c):
        tops = _unit(np.stack([centroids[t == _TOP_OF_CLASS].mean(axis=0) for t in range(len(TOP_LEVELS))]))
        table = np.vstack([centroids, tops])  # rows 23.. are top-level centroids
        index = np.array([taxonomy.CLASS_INDEX[k] if k in taxonomy.CLASS_INDEX
                          else len(CLASS_KEYS) + TOP_LEVELS.index(taxonomy.top_of(k)) for k in labels], dtype=int)
        result.append(_sample_any(table, index, rng))
    return result[0], result[1]


def _sample_any(table: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Like :func:`_sample` but rows ≥ 23 (top-level centroids) are only noised, never mixed."""
    out = np.empty((len(index), table.shape[1]), np.float32)
    target = index < len(CLASS_KEYS)
    if target.any():
        out[target] = _sample(table[: len(CLASS_KEYS)], index[target], rng)
    if (~target).any():
        dim = table.shape[1]
        noisy = table[index[~target]] + _NOISE / np.sqrt(dim) * rng.standard_normal(((~target).sum(), dim))
        out[~target] = _unit(noisy)
    return out


def make_corpus(*, n_per_class: int = 12, dim: int = 512, seed: int = 0) -> Corpus:
    """An in-memory labelled :class:`Corpus` (kind ``"synthetic"``) without files: for fast tests."""
    rng = np.random.default_rng(seed)
    labels = [k for k in CLASS_KEYS for _ in range(n_per_class)]
    rng.shuffle(labels)
    table = empty_table(len(labels))
    table["id"] = [str(i) for i in _unique_ints(rng, len(labels))]
    table["label"] = labels
    texts = [_text_fields(k, rng, nasty=None) for k in labels]
    for column, values in zip(("title", "tags", "description"), zip(*texts, strict=True), strict=True):
        table[column] = list(values)
    table["source"] = "synthetic"
    audio, text = make_embeddings(labels, dim=dim, seed=seed)
    encoder = replace(CLAP_ENCODER, audio_dim=dim, text_dim=dim)
    return Corpus(table, audio, text, encoder, None, "synthetic", [], synthetic=True)


# ---------------------------------------------------------------------- text and audio
def _unique_ints(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.arange(1000, 1000 + max(50 * n, 10_000)), size=n, replace=False)


def _words(key: str) -> list[str]:
    if key in taxonomy.BY_KEY:
        return [w.strip() for w in taxonomy.BY_KEY[key].examples.split(";") if w.strip()]
    top = taxonomy.top_of(key)
    return [taxonomy.TOP_LEVEL_NAMES[top].lower(), "miscellaneous", "various"]


def _text_fields(key: str, rng: np.random.Generator, nasty: str | None) -> tuple[str, str, str]:
    """(title, tags, description) for a sound of class ``key``; ``nasty`` goes into one field."""
    words = _words(key)
    phrase = str(rng.choice(words))
    title = f"{phrase} {int(rng.integers(1, 100))}"
    picked = {w.replace(" ", "-") for w in rng.choice(words, size=min(3, len(words)), replace=False)}
    tags = " ".join([*sorted(picked), str(rng.choice(_GENERIC_TAGS))])
    description = f"A recording of {phrase}, {rng.choice(['close', 'distant', 'indoors', 'outdoors'])}."
    if nasty is not None:
        field = int(rng.integers(0, 3))
        if field == 0:
            title = nasty
        elif field == 1:
            tags = nasty
        else:
            description = nasty
    return title, tags, description


def _tone(class_position: int, rng: np.random.Generator) -> np.ndarray:
    """0.25 s tone, pitch rising by a quarter octave per class (110 Hz … 5 kHz), with short fades."""
    t = np.arange(int(SAMPLE_RATE * CLIP_SECONDS)) / SAMPLE_RATE
    frequency = 110.0 * 2 ** (class_position / 4)
    signal = rng.uniform(0.3, 0.6) * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(len(t))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)
    return (signal * fade).astype(np.float32)


def _pitch_position(key: str) -> int:
    if key in taxonomy.CLASS_INDEX:
        return taxonomy.CLASS_INDEX[key]
    return len(CLASS_KEYS) + TOP_LEVELS.index(taxonomy.top_of(key))


def _write_csv(path: Path, header: Sequence[str], rows: Iterator[Sequence[object]] | list[Sequence[object]]) -> None:
    """CSV via the standard library writer (independent of the pandas reader under test)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _write_sounds(root: Path, ids: Sequence[str], labels: Sequence[str], *, dim: int, seed: int,
                  with_audio: bool, with_features: bool) -> None:
    rng = np.random.default_rng(seed + 7919)
    if with_audio:
        (root / "audio").mkdir(parents=True)
        for sound_id, key in zip(ids, labels, strict=True):
            soundfile.write(root / "audio" / f"{sound_id}.wav", _tone(_pitch_position(key), rng),
                            SAMPLE_RATE, subtype="PCM_16")
    if with_features:
        audio, text = make_embeddings(labels, dim=dim, seed=seed)
        for name, matrix in (("clap_audio_embeddings", audio), ("clap_text_embeddings", text)):
            folder = root / "features" / name
            folder.mkdir(parents=True)
            for sound_id, vector in zip(ids, matrix, strict=True):
                np.save(folder / f"{sound_id}.npy", vector)


@contextlib.contextmanager
def _building(root: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to ``root`` (which must be absent or empty)."""
    root = Path(root)
    if root.exists():
        if not root.is_dir() or any(root.iterdir()):
            raise FileExistsError(f"{root} already exists and is not empty; choose a new folder.")
        root.rmdir()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        yield staging
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_taxonomy_description(path: Path) -> None:
    _write_csv(path, ("class_idx", "class_key", "class_key_long", "top_level", "second_level",
                      "description", "examples"),
               [(c.class_idx, c.key, f"{c.top_name} > {c.name}", c.top_name, c.name, c.description, c.examples)
                for c in taxonomy.classes()])


# ---------------------------------------------------------------------- dataset folders
def write_bsd_dataset(root: str | os.PathLike[str], *, n_per_class: int = 12, name: str = "BSD10k",
                      dim: int = 512, seed: int = 0, with_audio: bool = True, with_other_rows: int = 0,
                      missing_npy: int = 0, nasty_text: bool = True) -> Path:
    """Write a BSD-layout dataset folder at ``root`` (absent or empty) and return its path.

    ``n_per_class`` sounds for each of the 23 classes, rows shuffled, metadata
    ``metadata/<name>_metadata.csv`` (confidence 1-5, empty when ``name`` contains "35k"),
    ``metadata/BST_description.csv``, ``audio/<id>.wav`` (``with_audio``), shipped-layout
    ``features/clap_{audio,text}_embeddings/<id>.npy``. ``with_other_rows`` adds that many X99/X00
    rows (alternating, with files); ``missing_npy`` deletes that many ``.npy`` files of target rows
    (alternating audio/text, one file per sound).
    """
    rng = np.random.default_rng(seed)
    labels = [k for k in CLASS_KEYS for _ in range(n_per_class)]
    for j in range(with_other_rows):
        top = TOP_LEVELS[j // 2 % len(TOP_LEVELS)]
        labels.append(f"{top}-other" if j % 2 == 0 else top)
    order = rng.permutation(len(labels))
    labels = [labels[i] for i in order]
    ids = [str(i) for i in _unique_ints(rng, len(labels))]
    crowd = "35k" in name.lower()

    rows = []
    for k, (sound_id, key) in enumerate(zip(ids, labels, strict=True)):
        nasty = NASTY_TEXTS[k // 2 % len(NASTY_TEXTS)] if nasty_text and k % 2 == 0 else None
        title, tags, description = _text_fields(key, rng, nasty)
        top = taxonomy.top_of(key)
        code = taxonomy.BY_KEY[key].class_idx if key in taxonomy.BY_KEY else \
            TOP_LEVEL_INDEX[top] * 100 + (99 if key.endswith("-other") else 0)
        confidence = "" if crowd else str(int(rng.integers(1, 6)))
        rows.append((sound_id, key, code, top, confidence, str(rng.choice(_UPLOADERS)),
                     str(rng.choice(_LICENSES)), title, tags, description))

    with _building(Path(root)) as staging:
        _write_csv(staging / "metadata" / f"{name}_metadata.csv", BSD_COLUMNS, rows)
        _write_taxonomy_description(staging / "metadata" / "BST_description.csv")
        (staging / SYNTHETIC_MARKER).write_text("Synthetic test data made by bst_core.synthetic.\n")
        _write_sounds(staging, ids, labels, dim=dim, seed=seed, with_audio=with_audio, with_features=True)
        targets = [i for i, key in zip(ids, labels, strict=True) if key in taxonomy.CLASS_INDEX]
        for j, sound_id in enumerate(rng.choice(targets, size=missing_npy, replace=False)):
            modality = "clap_audio_embeddings" if j % 2 == 0 else "clap_text_embeddings"
            (staging / "features" / modality / f"{sound_id}.npy").unlink()
    return Path(root)


def truth_csv_path(eval_root: str | os.PathLike[str]) -> Path:
    """Where :func:`write_evaluation_folder` puts the labels: ``<parent>/<folder name>_truth.csv``."""
    root = Path(eval_root)
    return root.parent / f"{root.name}_truth.csv"


def write_evaluation_folder(root: str | os.PathLike[str], *, n: int = 40, dim: int = 512, seed: int = 1,
                            with_features: bool = True, with_audio: bool = True,
                            write_truth: bool = True) -> Path:
    """Write an evaluation-layout folder (anonymous UUID ids, no labels) at ``root``; return its path.

    ``metadata/BSD2k_metadata.csv`` (anonymous_id,title,tags,description), ``audio/<id>.wav``,
    optionally shipped-layout features. Classes cycle through all 23 (shuffled); the labels go to
    :func:`truth_csv_path` (``id,class``), outside the folder.
    """
    rng = np.random.default_rng(seed)
    labels = [CLASS_KEYS[i % len(CLASS_KEYS)] for i in range(n)]
    rng.shuffle(labels)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    rows = []
    for k, (sound_id, key) in enumerate(zip(ids, labels, strict=True)):
        nasty = NASTY_TEXTS[k // 3 % len(NASTY_TEXTS)] if k % 3 == 0 else None
        rows.append((sound_id, *_text_fields(key, rng, nasty)))

    root = Path(root)
    with _building(root) as staging:
        _write_csv(staging / "metadata" / "BSD2k_metadata.csv", EVALUATION_COLUMNS, rows)
        (staging / SYNTHETIC_MARKER).write_text("Synthetic test data made by bst_core.synthetic.\n")
        _write_sounds(staging, ids, labels, dim=dim, seed=seed, with_audio=with_audio,
                      with_features=with_features)
    if write_truth:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("id", "class"))
        writer.writerows(zip(ids, labels, strict=True))
        atomic.write_text(truth_csv_path(root), buffer.getvalue())
    return root


def flip_labels(corpus: Corpus, fraction: float, *, seed: int = 0) -> tuple[Corpus, list[str]]:
    """A copy of ``corpus`` whose labels are wrong for ``round(fraction * n)`` items, chosen and
    relabelled deterministically from ``seed`` (each to a uniformly drawn *other* class); also the
    ids of the flipped items. For measuring label-error detection (:mod:`bst_core.label_issues`)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], not {fraction}")
    rng = np.random.default_rng(seed)
    labels = corpus.table["label"].astype(str).to_numpy(dtype=object).copy()
    rows = np.sort(rng.choice(len(labels), size=round(fraction * len(labels)), replace=False))
    for row in rows:
        others = [k for k in CLASS_KEYS if k != labels[row]]
        labels[row] = others[int(rng.integers(len(others)))]
    table = corpus.table.copy()
    table["label"] = labels
    return replace(corpus, table=table), [str(corpus.table["id"].iloc[r]) for r in rows]
