"""The synthetic corpus generator: layout, determinism, learnable class structure."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile
from sklearn.neighbors import NearestCentroid

from bst_core import synthetic
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS, top_of


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _features(root: Path, ids: list[str]) -> np.ndarray:
    return np.hstack([
        np.stack([np.load(root / "features" / f"clap_{m}_embeddings" / f"{i}.npy") for i in ids])
        for m in ("audio", "text")])


def test_bsd_layout(bsd_root: Path) -> None:
    rows = _read_csv(bsd_root / "metadata" / "BSD10k_metadata.csv")
    assert list(rows[0]) == list(synthetic.BSD_COLUMNS)
    assert len(rows) == 23 * 12 and len({r["sound_id"] for r in rows}) == len(rows)
    assert sorted({r["class"] for r in rows}) == sorted(CLASS_KEYS)
    assert all(int(r["class_idx"]) // 100 == int(r["class_idx"][0]) and r["class_top"] == top_of(r["class"])
               for r in rows)
    description = _read_csv(bsd_root / "metadata" / "BST_description.csv")
    assert [d["class_key"] for d in description] == list(CLASS_KEYS)
    some = rows[0]["sound_id"]
    vector = np.load(bsd_root / "features" / "clap_audio_embeddings" / f"{some}.npy")
    assert vector.shape == (512,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    info = soundfile.info(str(bsd_root / "audio" / f"{some}.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 1, "PCM_16", 11025)


def test_generation_is_deterministic_and_refuses_non_empty_folders(tmp_path: Path) -> None:
    a = synthetic.write_bsd_dataset(tmp_path / "a", n_per_class=1, dim=8, with_audio=False)
    b = synthetic.write_bsd_dataset(tmp_path / "b", n_per_class=1, dim=8, with_audio=False)
    meta = "metadata/BSD10k_metadata.csv"
    assert (a / meta).read_bytes() == (b / meta).read_bytes()
    some = _read_csv(a / meta)[0]["sound_id"]
    npy = f"features/clap_text_embeddings/{some}.npy"
    assert (a / npy).read_bytes() == (b / npy).read_bytes()
    assert not (a / "audio").exists()
    with pytest.raises(FileExistsError):
        synthetic.write_bsd_dataset(a, n_per_class=1, dim=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no staging folder left behind


def test_other_rows_and_missing_npy(tmp_path: Path) -> None:
    root = synthetic.write_bsd_dataset(tmp_path / "d", n_per_class=1, dim=8, with_other_rows=4,
                                       missing_npy=2, name="BSD35k-CS")
    rows = _read_csv(root / "metadata" / "BSD35k-CS_metadata.csv")
    codes = sorted(int(r["class_idx"]) for r in rows if int(r["class_idx"]) % 100 in (0, 99))
    assert codes == [100, 199, 200, 299]
    assert all(r["confidence"] == "" for r in rows)
    audio = len(list((root / "features" / "clap_audio_embeddings").glob("*.npy")))
    text = len(list((root / "features" / "clap_text_embeddings").glob("*.npy")))
    assert (audio, text) == (26, 26)


def test_evaluation_folder_layout(eval_root: Path) -> None:
    rows = _read_csv(eval_root / "metadata" / "BSD2k_metadata.csv")
    assert list(rows[0]) == list(synthetic.EVALUATION_COLUMNS) and len(rows) == 40
    ids = [r["anonymous_id"] for r in rows]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    truth = synthetic.truth_csv_path(eval_root)
    assert truth.parent == eval_root.parent and truth.is_file()
    truth_rows = _read_csv(truth)
    assert [t["id"] for t in truth_rows] == ids
    assert {t["class"] for t in truth_rows} == set(CLASS_KEYS)
    assert sorted(p.stem for p in (eval_root / "audio").glob("*.wav")) == sorted(ids)


def test_centroids_are_fixed_unit_vectors_sharing_top_levels() -> None:
    audio, text = synthetic.class_centroids(64)
    again, _ = synthetic.class_centroids(64)
    np.testing.assert_array_equal(audio, again)
    assert audio.shape == text.shape == (23, 64)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-6)
    similarity = audio @ audio.T
    same_top = np.array([[top_of(a) == top_of(b) for b in CLASS_KEYS] for a in CLASS_KEYS])
    off_diagonal = ~np.eye(23, dtype=bool)
    assert similarity[same_top & off_diagonal].mean() > similarity[~same_top].mean() + 0.3
    assert not np.allclose(synthetic.class_centroids(64, structure_seed=7)[0], audio)


def test_a_model_trained_on_bsd_predicts_evaluation_well_but_not_perfectly(bsd_root: Path,
                                                                          eval_root: Path) -> None:
    rows = _read_csv(bsd_root / "metadata" / "BSD10k_metadata.csv")
    x_train = _features(bsd_root, [r["sound_id"] for r in rows])
    y_train = [r["class"] for r in rows]
    truth = _read_csv(synthetic.truth_csv_path(eval_root))
    x_test = _features(eval_root, [t["id"] for t in truth])
    y_test = np.array([t["class"] for t in truth])
    predicted = NearestCentroid().fit(x_train, y_train).predict(x_test)
    leaf = float((predicted == y_test).mean())
    top = float(np.mean([top_of(p) == top_of(t) for p, t in zip(predicted, y_test, strict=True)]))
    assert 0.4 < leaf < 1.0  # chance is about 0.04
    assert top > leaf
    audio_only = NearestCentroid().fit(x_train[:, :512], y_train).predict(x_test[:, :512])
    assert float((audio_only == y_test).mean()) < leaf  # the text modality adds information


def test_make_corpus_in_memory() -> None:
    corpus = synthetic.make_corpus(n_per_class=3, dim=16, seed=2)
    assert len(corpus) == 69 and corpus.audio.shape == corpus.text.shape == (69, 16)
    assert corpus.encoder.audio_dim == 16
    assert corpus.table["label"].map(CLASS_INDEX).notna().all()
    assert corpus.table["id"].is_unique
