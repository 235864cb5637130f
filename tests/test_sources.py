"""Readers: BSD dataset folders, evaluation folders, kind detection, attaching a store."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import store as store_module
from bst_core.corpus import CLAP_ENCODER, CORPUS_COLUMNS
from bst_core.errors import BadInputError
from bst_core.sources import attach_store, detect_kind, open_source, read_bsd_dataset, read_evaluation_folder
from bst_core.sources.bsd import cached_store_path
from bst_core.store import EmbeddingStore
from bst_core.synthetic import NASTY_TEXTS, write_bsd_dataset, write_evaluation_folder
from bst_core.taxonomy import CLASS_KEYS

SMALL = {"n_per_class": 2, "dim": 8}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """The metadata as the standard library reads it (independent of the pandas reader)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _rewrite_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _bump_mtime(folder: Path) -> None:
    """Make a folder change visible even on file systems with coarse timestamps."""
    info = folder.stat()
    os.utime(folder, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))


# ---------------------------------------------------------------------- BSD
def test_bsd_dataset_reads_every_row_with_embeddings(bsd_root: Path) -> None:
    corpus = read_bsd_dataset(bsd_root)
    rows = _csv_rows(bsd_root / "metadata" / "BSD10k_metadata.csv")
    assert corpus.kind == "bsd" and len(corpus) == len(rows) == 23 * 12
    assert list(corpus.table.columns[: len(CORPUS_COLUMNS)]) == list(CORPUS_COLUMNS)
    assert {"class", "class_idx", "class_top", "uploader", "license"} <= set(corpus.table.columns)
    assert corpus.ids == [r["sound_id"] for r in rows]
    assert set(corpus.labels) == set(CLASS_KEYS)
    assert corpus.table["confidence"].between(1, 5).all()
    assert corpus.encoder == CLAP_ENCODER
    assert corpus.audio.shape == corpus.text.shape == (len(rows), 512)
    assert corpus.audio.dtype == np.float32
    k = 17
    sound_id = corpus.ids[k]
    np.testing.assert_array_equal(
        corpus.audio[k], np.load(bsd_root / "features" / "clap_audio_embeddings" / f"{sound_id}.npy"))
    np.testing.assert_array_equal(
        corpus.text[k], np.load(bsd_root / "features" / "clap_text_embeddings" / f"{sound_id}.npy"))
    assert corpus.table["audio_path"][k] == str((bsd_root / "audio" / f"{sound_id}.wav").absolute())


def test_bsd_nasty_text_round_trips_exactly(bsd_root: Path) -> None:
    corpus = read_bsd_dataset(bsd_root)
    rows = _csv_rows(bsd_root / "metadata" / "BSD10k_metadata.csv")
    for column in ("title", "tags", "description", "uploader", "license"):
        assert corpus.table[column].tolist() == [r[column] for r in rows], column
    written = set(corpus.table[["title", "tags", "description"]].to_numpy().ravel())
    assert set(NASTY_TEXTS) <= written


def test_bsd_drops_other_and_top_rows_and_counts_them(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", with_other_rows=5, **SMALL)
    corpus = read_bsd_dataset(root)
    assert len(corpus) == 46
    assert set(corpus.labels) == set(CLASS_KEYS)
    notes = " ".join(corpus.notes)
    assert '3 rows labelled with an "-other" class (X99)' in notes
    assert "2 rows labelled with a top-level class only (X00)" in notes


def test_bsd_rows_without_npy_are_reported_and_left_out(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", missing_npy=3, **SMALL)
    present = {p.stem for p in (root / "features" / "clap_audio_embeddings").glob("*.npy")} & \
        {p.stem for p in (root / "features" / "clap_text_embeddings").glob("*.npy")}
    corpus = read_bsd_dataset(root)
    assert len(corpus) == 43 and set(corpus.ids) == present
    assert corpus.audio.shape == (43, 8)
    assert any(note.startswith("3 sounds have no .npy embedding") for note in corpus.notes)


def test_bsd_35k_has_no_confidence(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd35", name="BSD35k-CS", **SMALL)
    corpus = read_bsd_dataset(root)
    assert corpus.table["confidence"].isna().all()
    assert corpus.encoder == replace(CLAP_ENCODER, audio_dim=8, text_dim=8)


def test_bsd_unknown_code_names_the_file_and_row(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", **SMALL)
    meta = root / "metadata" / "BSD10k_metadata.csv"
    rows = _csv_rows(meta)
    rows[4]["class_idx"] = "777"
    _rewrite_csv(meta, rows)
    with pytest.raises(BadInputError, match=r"BSD10k_metadata\.csv: data row 5 \(sound_id \d+\) has class_idx '777'"):
        read_bsd_dataset(root)


def test_bsd_metadata_found_by_columns_or_refused(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", **SMALL)
    (root / "metadata" / "BSD10k_metadata.csv").rename(root / "metadata" / "Mine_metadata.csv")
    assert detect_kind(root) == "bsd"
    assert len(read_bsd_dataset(root)) == 46
    (root / "metadata" / "Mine_metadata.csv").rename(root / "metadata" / "notes.csv")
    with pytest.raises(BadInputError, match="holds no BSD metadata"):
        read_bsd_dataset(root)


def test_second_open_reads_no_npy_files(bsd_root: Path, monkeypatch) -> None:
    first = read_bsd_dataset(bsd_root)

    def no_reading(path: Path, dim: int) -> np.ndarray:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(store_module, "read_npy_vector", no_reading)
    second = read_bsd_dataset(bsd_root)
    np.testing.assert_array_equal(second.audio, first.audio)
    np.testing.assert_array_equal(second.text, first.text)


def test_changed_feature_folder_rereads_only_changed_files(tmp_path: Path, monkeypatch) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", **SMALL)
    first = read_bsd_dataset(root)
    audio_dir = root / "features" / "clap_audio_embeddings"
    new_vector = np.full(8, 0.5, np.float32)
    np.save(audio_dir / f"{first.ids[3]}.npy", new_vector.astype(np.float64))
    _bump_mtime(audio_dir)
    calls: list[str] = []
    real = store_module.read_npy_vector
    monkeypatch.setattr(store_module, "read_npy_vector",
                        lambda path, dim: calls.append(Path(path).name) or real(path, dim))
    second = read_bsd_dataset(root)
    assert calls == [f"{first.ids[3]}.npy"] * 2  # audio + text of that one sound
    np.testing.assert_array_equal(second.audio[3], new_vector)
    np.testing.assert_array_equal(np.delete(second.audio, 3, 0), np.delete(first.audio, 3, 0))

    (audio_dir / f"{first.ids[5]}.npy").unlink()  # removing a file is noticed, not served from the cache
    third = read_bsd_dataset(root)
    assert first.ids[5] not in third.ids and len(third) == len(first) - 1


def test_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", **SMALL)
    first = read_bsd_dataset(root)
    cache = cached_store_path(root)
    (cache / "audio.npy").write_bytes(b"garbage")
    second = read_bsd_dataset(root)
    np.testing.assert_array_equal(second.audio, first.audio)
    assert any("rebuilt" in note for note in second.notes)


# ---------------------------------------------------------------------- evaluation
def test_evaluation_folder(eval_root: Path) -> None:
    corpus = read_evaluation_folder(eval_root)
    rows = _csv_rows(eval_root / "metadata" / "BSD2k_metadata.csv")
    assert corpus.kind == "evaluation" and len(corpus) == 40
    assert corpus.ids == [r["anonymous_id"] for r in rows]
    assert (corpus.labels == "").all()
    assert all(Path(p).is_file() for p in corpus.table["audio_path"])
    for column in ("title", "tags", "description"):
        assert corpus.table[column].tolist() == [r[column] for r in rows]
    assert corpus.audio.shape == (40, 512) and corpus.encoder == CLAP_ENCODER
    np.testing.assert_array_equal(
        corpus.text[0], np.load(eval_root / "features" / "clap_text_embeddings" / f"{corpus.ids[0]}.npy"))
    assert corpus.notes == ["Metadata: BSD2k_metadata.csv, 40 rows."]


def test_evaluation_mismatches_are_reported(tmp_path: Path, eval_root: Path) -> None:
    root = tmp_path / "eval"
    shutil.copytree(eval_root, root)
    ids = [r["anonymous_id"] for r in _csv_rows(root / "metadata" / "BSD2k_metadata.csv")]
    (root / "audio" / f"{ids[2]}.wav").unlink()
    shutil.copy(root / "audio" / f"{ids[0]}.wav", root / "audio" / "stray-file.wav")
    (root / "features" / "clap_text_embeddings" / f"{ids[7]}.npy").unlink()
    corpus = read_evaluation_folder(root)
    assert corpus.ids == ids  # rows without audio are kept, in metadata order
    assert corpus.table["audio_path"][2] == ""
    notes = " ".join(corpus.notes)
    assert f"1 metadata rows have no audio/<anonymous_id>.wav (kept; their text can still be classified), " \
           f"e.g. {ids[2]}." in notes
    assert "1 audio files are not in the metadata and were ignored, e.g. stray-file." in notes
    assert "1 of 40 sounds have no .npy" in notes and ids[7] in notes
    assert corpus.audio is None and corpus.text is None


def test_evaluation_without_features(tmp_path: Path) -> None:
    root = write_evaluation_folder(tmp_path / "ev", n=5, dim=8, with_features=False)
    corpus = read_evaluation_folder(root)
    assert len(corpus) == 5 and corpus.audio is None and corpus.encoder is None


# ---------------------------------------------------------------------- detection, store attachment
def test_detect_kind(tmp_path: Path, bsd_root: Path, eval_root: Path) -> None:
    (tmp_path / "sounds").mkdir()
    (tmp_path / "list.csv").write_text("id\n1\n")
    (tmp_path / "notes.txt").write_text("hi")
    assert detect_kind(bsd_root) == "bsd"
    assert detect_kind(eval_root) == "evaluation"
    assert detect_kind(tmp_path / "sounds") == "folder"
    assert detect_kind(tmp_path / "list.csv") == "csv"
    with pytest.raises(BadInputError, match=r"notes\.txt"):
        detect_kind(tmp_path / "notes.txt")
    with pytest.raises(BadInputError, match="does not exist"):
        detect_kind(tmp_path / "missing")


def _store_for(corpus, path: Path, *, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = len(corpus) - skip
    rng = np.random.default_rng(3)
    audio = rng.standard_normal((n, 8)).astype(np.float32)
    text = rng.standard_normal((n, 8)).astype(np.float32)
    encoder = replace(CLAP_ENCODER, name="offline-logmel-ngram", audio_dim=8, text_dim=8)
    store = EmbeddingStore.open(path, create_with=encoder)
    status = ["audio_failed"] + ["ok"] * (n - 1)
    store.append(corpus.ids[::-1][:n], audio, text, status, ["empty file"] + [""] * (n - 1), [1] * n, [1.0] * n)
    return audio[::-1], text[::-1]


def test_attach_store_fills_embeddings_in_corpus_order(tmp_path: Path) -> None:
    root = write_evaluation_folder(tmp_path / "ev", n=6, dim=8, with_features=False)
    corpus = read_evaluation_folder(root)
    audio, text = _store_for(corpus, tmp_path / "store")
    attached = open_source(root, store=tmp_path / "store")
    np.testing.assert_array_equal(attached.audio, audio)
    np.testing.assert_array_equal(attached.text, text)
    assert attached.encoder.name == "offline-logmel-ngram"
    assert corpus.audio is None  # the input corpus is not modified
    assert any("1 sounds have no audio embedding" in n and "empty file" in n for n in attached.notes)


def test_attach_store_refuses_missing_ids(tmp_path: Path) -> None:
    root = write_evaluation_folder(tmp_path / "ev", n=6, dim=8, with_features=False)
    corpus = read_evaluation_folder(root)
    _store_for(corpus, tmp_path / "store", skip=2)
    with pytest.raises(BadInputError, match=r"2 of 6 sounds have no embeddings.*bst extract"):
        attach_store(corpus, tmp_path / "store")


def test_metadata_with_bom_and_na_strings(tmp_path: Path) -> None:
    root = write_evaluation_folder(tmp_path / "ev", n=3, dim=8, with_features=False)
    meta = root / "metadata" / "BSD2k_metadata.csv"
    rows = _csv_rows(meta)
    rows[0]["title"], rows[1]["title"], rows[2]["tags"] = "NA", "null", ""
    _rewrite_csv(meta, rows)
    meta.write_bytes(b"\xef\xbb\xbf" + meta.read_bytes())
    table = read_evaluation_folder(root).table
    assert table["title"][:2].tolist() == ["NA", "null"] and table["tags"][2] == ""
    assert isinstance(table, pd.DataFrame)


def test_open_source_dispatches_folders_and_csv(tmp_path: Path, eval_root: Path) -> None:
    pytest.importorskip("bst_core.sources.folder")
    pytest.importorskip("bst_core.sources.freesound")
    folder = open_source(eval_root / "audio")
    assert folder.kind == "folder" and len(folder) == 40
    listing = tmp_path / "sounds.csv"
    listing.write_text("id,name,tags,description\n123,dog bark,dog,a dog\n", encoding="utf-8")
    assert open_source(listing).kind == "csv"


def test_duplicate_evaluation_ids_are_refused(tmp_path: Path) -> None:
    root = write_evaluation_folder(tmp_path / "ev", n=3, dim=8, with_features=False)
    meta = root / "metadata" / "BSD2k_metadata.csv"
    rows = _csv_rows(meta)
    rows[2]["anonymous_id"] = rows[0]["anonymous_id"]
    _rewrite_csv(meta, rows)
    with pytest.raises(BadInputError, match=r"BSD2k_metadata\.csv: anonymous_id values appear more than once"):
        read_evaluation_folder(root)
