"""EmbeddingStore: round trip, append/resume, latest-wins, damage detection, npy consolidation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bst_core import store as store_module
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.jobs import Cancelled, Job
from bst_core.store import EmbeddingStore, consolidate_npy_folders

ENC = replace(CLAP_ENCODER, audio_dim=4, text_dim=3)


def _vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.standard_normal((n, 3)).astype(np.float32)


def _append(store: EmbeddingStore, ids: list[str], seed: int, *, status: str = "ok",
            size: int = 10, mtime: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    audio, text = _vectors(len(ids), seed)
    n = len(ids)
    store.append(ids, audio, text, [status] * n, ["" if status == "ok" else "empty file"] * n,
                 [size] * n, [mtime] * n)
    return audio, text


def test_round_trip_through_chunks_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = EmbeddingStore.open(path, create_with=ENC, source="/data")
    a1, t1 = _append(store, ["a", "b"], seed=1)
    a2, t2 = _append(store, ["c"], seed=2)
    expected_audio = np.vstack([a1, a2])
    expected_text = np.vstack([t1, t2])

    for reopened in (store, EmbeddingStore.open(path)):
        audio, text, found = reopened.load(["c", "zz", "a", "b"])
        assert found.tolist() == [True, False, True, True]
        np.testing.assert_array_equal(audio[[2, 3, 0]], expected_audio)
        np.testing.assert_array_equal(text[[2, 3, 0]], expected_text)
        assert not audio[1].any() and not text[1].any()
        assert len(reopened) == 3

    store.compact()
    assert not list((path / "pending").glob("chunk-*.npz"))
    reopened = EmbeddingStore.open(path)
    assert isinstance(reopened._audio, np.memmap)
    audio, text, found = reopened.load(["a", "b", "c"])
    assert found.all()
    np.testing.assert_array_equal(audio, expected_audio)
    np.testing.assert_array_equal(text, expected_text)
    assert reopened.encoder == ENC
    assert json.loads((path / "manifest.json").read_text())["source"] == "/data"
    audio[:] = 0  # a copy, not a view of the store's files
    assert EmbeddingStore.open(path).load(["a"])[0].any()


def test_latest_entry_per_id_wins_before_and_after_compaction(tmp_path: Path) -> None:
    store = EmbeddingStore.open(tmp_path / "s", create_with=ENC)
    _append(store, ["a", "b"], seed=1)
    store.compact()
    newer, _ = _append(store, ["a"], seed=2, status="audio_failed", size=11, mtime=200.0)

    def check(s: EmbeddingStore) -> None:
        items = s.items().set_index("id")
        assert items.loc["a", "status"] == "audio_failed"
        assert items.loc["a", "reason"] == "empty file"
        assert items.loc["a", "size"] == 11
        np.testing.assert_array_equal(s.load(["a"])[0][0], newer[0])
        assert len(s) == 2

    check(store)
    check(EmbeddingStore.open(tmp_path / "s"))
    store.compact()
    check(EmbeddingStore.open(tmp_path / "s"))


def test_up_to_date_compares_size_and_mtime(tmp_path: Path) -> None:
    store = EmbeddingStore.open(tmp_path / "s", create_with=ENC)
    _append(store, ["a", "b"], seed=1, size=10, mtime=1_700_000_000.123456)
    store.compact()
    store = EmbeddingStore.open(tmp_path / "s")
    result = store.up_to_date(["a", "b", "c", "a"], [10, 11, 10, 10],
                              [1_700_000_000.123456, 1_700_000_000.123456, 1.0, 1_700_000_001.0])
    assert result.tolist() == [True, False, False, False]


def test_crash_leftovers_lose_only_the_batch_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    audio, _ = _append(store, ["a"], seed=1)
    (path / "pending" / ".chunk-000002.npz.abc.tmp").write_bytes(b"half a batch")  # crash mid-write
    resumed = EmbeddingStore.open(path)
    assert resumed.up_to_date(["a", "b"], [10, 10], [100.0, 100.0]).tolist() == [True, False]
    _append(resumed, ["b"], seed=2)
    resumed.compact()
    assert not list((path / "pending").iterdir())
    assert sorted(p.name for p in path.iterdir()) == [".lock", "gen-000001", "manifest.json", "pending"]
    np.testing.assert_array_equal(EmbeddingStore.open(path).load(["a"])[0], audio)


def test_crash_during_compaction_leaves_a_readable_store(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    old, _ = _append(store, ["a", "b"], seed=1)
    store.compact()
    new_a, new_a_text = _append(store, ["a"], seed=2)
    new_c, _ = _append(store, ["c"], seed=3)
    real_open = store_module.atomic.atomic_open

    def failing_open(target, *args, **kwargs):
        if Path(target).name == "text.npy":
            raise OSError("power cut")
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(store_module.atomic, "atomic_open", failing_open)
    with pytest.raises(OSError, match="power cut"):
        store.compact()  # the new generation was not finished: the store still points at the old one
    monkeypatch.undo()
    assert len(list(path.glob("gen-*"))) == 1
    reopened = EmbeddingStore.open(path)
    expected = np.vstack([new_a, old[1:], new_c])
    audio, text, found = reopened.load(["a", "b", "c"])
    assert found.all()
    np.testing.assert_array_equal(audio, expected)
    np.testing.assert_array_equal(text[0], new_a_text[0])
    reopened.compact()
    np.testing.assert_array_equal(EmbeddingStore.open(path).load(["a", "b", "c"])[0], expected)


def _compacted(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    _append(store, ["a", "b", "c"], seed=1)
    store.compact()
    return path


def _gen(path: Path) -> Path:
    """The store's current generation folder (where items.csv, audio.npy and text.npy are)."""
    return path / f"gen-{json.loads((path / 'manifest.json').read_text())['generation']:06d}"


_ITEMS_HEADER = "id,row,status,reason,size,mtime_ns,key,text_hash,check\n"


@pytest.mark.parametrize(("damage", "file_named"), [
    (lambda p: (_gen(p) / "audio.npy").write_bytes((_gen(p) / "audio.npy").read_bytes()[:-8]), "audio.npy"),
    (lambda p: (_gen(p) / "text.npy").write_bytes(b"not numpy"), "text.npy"),
    (lambda p: (_gen(p) / "text.npy").unlink(), "text.npy"),
    (lambda p: (p / "manifest.json").write_text("{broken"), "manifest.json"),
    (lambda p: (p / "manifest.json").write_text('{"format": "something-else"}'), "manifest.json"),
    (lambda p: (_gen(p) / "items.csv").write_text(_ITEMS_HEADER + "a,9,ok,,1,1,k,,0123456789abcdef\n"), "items.csv"),
    (lambda p: (_gen(p) / "items.csv").write_text("id;row\n"), "items.csv"),
    (lambda p: (_gen(p) / "items.csv").write_text(_ITEMS_HEADER + "a,0,fine,,1,1,k,,0123456789abcdef\n"
                                                  "b,1,ok,,1,1,k,,0123456789abcdef\nc,2,ok,,1,1,k,,0\n"), "items.csv"),
    (lambda p: (p / "audio.npy").write_bytes(b"old layout"), "audio.npy"),
    (lambda p: (p / "manifest.json").unlink(), "manifest.json"),
])
def test_damage_is_reported_naming_the_file(tmp_path: Path, damage, file_named: str) -> None:
    path = _compacted(tmp_path)
    damage(path)
    with pytest.raises(BadInputError, match=file_named) as caught:
        EmbeddingStore.open(path)
    assert "Delete" in str(caught.value)


def test_unreadable_chunk_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    _append(store, ["a"], seed=1)
    chunk = next((path / "pending").glob("chunk-*.npz"))
    chunk.write_bytes(chunk.read_bytes()[:50])
    with pytest.raises(BadInputError, match=chunk.name):
        EmbeddingStore.open(path)


def test_encoder_mismatch_and_missing_store(tmp_path: Path) -> None:
    path = _compacted(tmp_path)
    with pytest.raises(IncompatibleError, match="encoder"):
        EmbeddingStore.open(path, create_with=EncoderInfo("offline-logmel-ngram", "1", 4, 3))
    with pytest.raises(BadInputError, match="bst extract"):
        EmbeddingStore.open(tmp_path / "nothing-here")


def test_append_refuses_wrong_shapes(tmp_path: Path) -> None:
    store = EmbeddingStore.open(tmp_path / "s", create_with=ENC)
    with pytest.raises(ValueError, match="dims"):
        store.append(["a"], np.zeros((1, 5)), np.zeros((1, 3)), ["ok"], [""], [1], [1.0])
    with pytest.raises(ValueError, match="status"):
        store.append(["a"], np.zeros((1, 4)), np.zeros((1, 3)), ["fine"], [""], [1], [1.0])


# ---------------------------------------------------------------------- consolidation of .npy folders
def _npy_folders(tmp_path: Path, ids: list[str]) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    audio_dir, text_dir = tmp_path / "fa", tmp_path / "ft"
    audio_dir.mkdir()
    text_dir.mkdir()
    audio, text = _vectors(len(ids), seed=5)
    for i, sound_id in enumerate(ids):
        np.save(audio_dir / f"{sound_id}.npy", audio[i])
        np.save(text_dir / f"{sound_id}.npy", text[i])
    return audio_dir, text_dir, audio, text


def _counting_reader(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = store_module.read_npy_vector

    def counting(path: Path, dim: int) -> np.ndarray:
        calls.append(Path(path))
        return real(path, dim)

    monkeypatch.setattr(store_module, "read_npy_vector", counting)
    return calls


def test_consolidate_reads_once_and_rereads_only_changes(tmp_path: Path, monkeypatch) -> None:
    ids = [str(i) for i in range(10)]
    audio_dir, text_dir, audio, text = _npy_folders(tmp_path, ids)
    calls = _counting_reader(monkeypatch)
    store = consolidate_npy_folders(ids, audio_dir, text_dir, tmp_path / "s", ENC)
    assert len(calls) == 20
    got_audio, got_text, found = store.load(ids)
    assert found.all()
    np.testing.assert_array_equal(got_audio, audio)
    np.testing.assert_array_equal(got_text, text)

    calls.clear()
    consolidate_npy_folders(ids, audio_dir, text_dir, tmp_path / "s", ENC)
    assert calls == []
    changed = np.arange(4, dtype=np.float64)  # float64 is accepted and cast
    np.save(audio_dir / "3.npy", changed)
    store = consolidate_npy_folders(ids, audio_dir, text_dir, tmp_path / "s", ENC)
    assert sorted(p.name for p in calls) == ["3.npy", "3.npy"]
    np.testing.assert_array_equal(store.load(["3"])[0][0], changed.astype(np.float32))


def test_consolidate_resumes_after_cancel(tmp_path: Path, monkeypatch) -> None:
    ids = [str(i) for i in range(10)]
    audio_dir, text_dir, _, _ = _npy_folders(tmp_path, ids)
    monkeypatch.setattr(store_module, "_CONSOLIDATE_BATCH", 4)
    job = Job(lambda p: job.cancel() if p.done >= 4 else None)
    with pytest.raises(Cancelled):
        consolidate_npy_folders(ids, audio_dir, text_dir, tmp_path / "s", ENC, job)
    assert len(EmbeddingStore.open(tmp_path / "s")) == 4
    calls = _counting_reader(monkeypatch)
    store = consolidate_npy_folders(ids, audio_dir, text_dir, tmp_path / "s", ENC)
    assert len(calls) == 12 and len(store) == 10


@pytest.mark.parametrize(("vector", "message"), [
    (np.zeros(5, np.float32), "shape"),
    (np.zeros((2, 2), np.float32), "shape"),
    (np.array([1.0, np.nan, 0.0, 0.0], np.float32), "NaN"),
    (np.array([1.0, np.inf, 0.0, 0.0], np.float64), "infinite"),
    (np.array([1e300, 0.0, 0.0, 0.0], np.float64), "infinite"),  # overflows float32
    (np.arange(4, dtype=np.int32), "int32"),
])
def test_bad_vectors_are_refused_naming_the_file(tmp_path: Path, vector: np.ndarray, message: str) -> None:
    audio_dir, text_dir, _, _ = _npy_folders(tmp_path, ["1", "2"])
    np.save(audio_dir / "2.npy", vector)
    with pytest.raises(BadInputError, match=message) as caught:
        consolidate_npy_folders(["1", "2"], audio_dir, text_dir, tmp_path / "s", ENC)
    assert str(audio_dir / "2.npy") in str(caught.value)


def test_row_vector_and_missing_file(tmp_path: Path) -> None:
    audio_dir, text_dir, audio, _ = _npy_folders(tmp_path, ["1", "2"])
    np.save(audio_dir / "1.npy", audio[0][None, :])  # (1, dim) is accepted
    store = consolidate_npy_folders(["1", "2"], audio_dir, text_dir, tmp_path / "s", ENC)
    np.testing.assert_array_equal(store.load(["1"])[0][0], audio[0])
    (text_dir / "2.npy").unlink()
    with pytest.raises(BadInputError, match=r"2\.npy is missing"):
        consolidate_npy_folders(["1", "2"], audio_dir, text_dir, tmp_path / "s2", ENC)
