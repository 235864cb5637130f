"""Trusting stores and caches: per-file change detection, the odd file blamed, one writer at a time,
atomic compaction, damage detection, disk full, and stores of the older format."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import locking
from bst_core import store as store_module
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.sources import read_bsd_dataset
from bst_core.sources.bsd import AUDIO_FEATURES, cached_store_path
from bst_core.store import EmbeddingStore, remove_store
from bst_core.synthetic import write_bsd_dataset

ENC = replace(CLAP_ENCODER, audio_dim=4, text_dim=3)
BUSY = "is being written by another process"


def _vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.standard_normal((n, 3)).astype(np.float32)


def _append(store: EmbeddingStore, ids: list[str], seed: int) -> np.ndarray:
    audio, text = _vectors(len(ids), seed)
    n = len(ids)
    store.append(ids, audio, text, ["ok"] * n, [""] * n, [10] * n, [100.0] * n)
    return audio


def _compacted(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    audio = _append(store, ["a", "b", "c"], seed=1)
    store.compact()
    return path, audio


def _current(path: Path, name: str) -> Path:
    """Where the store's consolidated ``name`` is now: its generation folder (the root in format 1)."""
    generation = json.loads((path / "manifest.json").read_text()).get("generation")
    return path / f"gen-{generation:06d}" / name if generation else path / name


# ---------------------------------------------------------------------- 1. stale caches
def test_npy_files_overwritten_in_place_are_reread(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", n_per_class=2, dim=8)
    first = read_bsd_dataset(root)
    audio_dir = root / AUDIO_FEATURES
    folder_time = audio_dir.stat()
    new = {}
    for k in (1, 4, 9):  # an updated release copied over the old one: same names, count and sizes
        path = audio_dir / f"{first.ids[k]}.npy"
        before = path.stat()
        new[k] = np.full(8, k + 0.5, np.float32)
        np.save(path, new[k])
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 3_000_000_000))
        assert path.stat().st_size == before.st_size
    os.utime(audio_dir, ns=(folder_time.st_atime_ns, folder_time.st_mtime_ns))
    second = read_bsd_dataset(root)
    for k, vector in new.items():
        np.testing.assert_array_equal(second.audio[k], vector)
    unchanged = [k for k in range(len(first)) if k not in new]
    np.testing.assert_array_equal(second.audio[unchanged], first.audio[unchanged])
    assert f"Re-read 3 changed embedding file(s) of {root.resolve()}." in second.notes
    assert not any("Re-read" in note for note in read_bsd_dataset(root).notes)


def test_npy_file_rewritten_with_its_old_mtime_put_back_is_reread(tmp_path: Path) -> None:
    """cp -p / rsync -t restore size and mtime; the ctime (which no program can set) still differs."""
    root = write_bsd_dataset(tmp_path / "bsd", n_per_class=2, dim=8)
    first = read_bsd_dataset(root)
    path = root / AUDIO_FEATURES / f"{first.ids[3]}.npy"
    before = path.stat()
    time.sleep(0.01)  # the new ctime must differ at this filesystem's resolution
    np.save(path, np.full(8, 7.25, np.float32))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = read_bsd_dataset(root)
    np.testing.assert_array_equal(second.audio[3], np.full(8, 7.25, np.float32))
    assert f"Re-read 1 changed embedding file(s) of {root.resolve()}." in second.notes


def test_format_1_cache_is_rebuilt(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", n_per_class=1, dim=8)
    first = read_bsd_dataset(root)
    cache = cached_store_path(root)
    remove_store(cache)
    encoder = replace(CLAP_ENCODER, audio_dim=8, text_dim=8)
    _write_format_1(cache, first.ids, first.audio, first.text, encoder)
    second = read_bsd_dataset(root)
    np.testing.assert_array_equal(second.audio, first.audio)
    assert "The cached embeddings were made by an older BST Studio and have been rebuilt." in second.notes
    assert json.loads((cache / "manifest.json").read_text())["format_version"] == store_module.FORMAT_VERSION


# ---------------------------------------------------------------------- 2. the odd file is blamed
def test_odd_vector_size_names_the_odd_files(tmp_path: Path) -> None:
    root = write_bsd_dataset(tmp_path / "bsd", n_per_class=2, dim=8)
    ids = read_bsd_dataset(root).ids
    remove_store(cached_store_path(root))
    odd = [ids[0], ids[7]]  # the very first file is one of them
    for sound_id in odd:
        np.save(root / AUDIO_FEATURES / f"{sound_id}.npy", np.zeros(4, np.float32))
    with pytest.raises(BadInputError) as caught:
        read_bsd_dataset(root)
    message = str(caught.value)
    assert all(re.search(rf"\b{i}\.npy", message) for i in odd), message
    assert not any(re.search(rf"\b{i}\.npy", message) for i in ids if i not in odd), message
    assert f"2 of {len(ids)}" in message and "8" in message


# ---------------------------------------------------------------------- 3. one writer at a time
def test_two_writers_keep_every_item(tmp_path: Path) -> None:
    path = tmp_path / "s"
    one = EmbeddingStore.open(path, create_with=ENC)
    two = EmbeddingStore.open(path, create_with=ENC)
    a = _append(one, ["a"], 1)
    b = _append(two, ["b"], 2)  # must not reuse one's chunk number
    c = _append(one, ["c"], 3)
    one.compact()
    d = _append(two, ["d"], 4)  # two's view is stale: the store was compacted meanwhile
    two.compact()
    audio, _, found = EmbeddingStore.open(path).load(["a", "b", "c", "d"])
    assert found.all()
    np.testing.assert_array_equal(audio, np.vstack([a, b, c, d]))


_HOLDER = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_then_is_refused(tmp_path: Path) -> None:
    path, _ = _compacted(tmp_path)
    store = EmbeddingStore.open(path, lock_timeout=0.3)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path / ".lock"), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(BadInputError, match=BUSY) as caught:
            _append(store, ["z"], 5)
        assert 0.25 <= time.monotonic() - started < 5
        assert str(path / ".lock") in str(caught.value) and str(path) in str(caught.value)
        with pytest.raises(BadInputError, match=BUSY):
            store.compact()
    finally:
        holder.kill()
        holder.wait()
    _append(store, ["z"], 5)  # the holder is gone: writing works again
    assert len(EmbeddingStore.open(path)) == 4


def test_a_writer_waits_for_a_short_hold(tmp_path: Path) -> None:
    path, _ = _compacted(tmp_path)
    held = threading.Event()

    def hold() -> None:
        with locking.exclusive(path, "test", timeout=1):
            held.set()
            time.sleep(0.4)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    _append(EmbeddingStore.open(path, lock_timeout=5), ["z"], 5)
    thread.join()
    assert len(EmbeddingStore.open(path)) == 4


def test_exclusive_helper(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with locking.exclusive(folder, "run folder", timeout=0.1) as lock_file:
        assert lock_file == folder / ".lock" and lock_file.exists()
        with pytest.raises(BadInputError, match=rf"The run folder .*run {BUSY} \(lock .*\.lock\); wait for it"), \
                locking.exclusive(folder, "run folder", timeout=0.1):
            pass
    with locking.exclusive(folder, "run folder", timeout=0.1):
        pass


# ---------------------------------------------------------------------- 3. atomic compaction
def test_compaction_switches_generations_in_one_step(tmp_path: Path, monkeypatch) -> None:
    path, _ = _compacted(tmp_path)
    store = EmbeddingStore.open(path)
    before = json.loads((path / "manifest.json").read_text())
    newer = _append(store, ["a"], 2)
    real = store_module.atomic.write_json

    def failing(target, obj) -> None:
        if Path(target).name == "manifest.json":
            raise OSError("power cut")
        real(target, obj)

    monkeypatch.setattr(store_module.atomic, "write_json", failing)
    with pytest.raises(OSError, match="power cut"):
        store.compact()  # every new file was written, the switch was not
    monkeypatch.undo()
    assert json.loads((path / "manifest.json").read_text()) == before
    assert [p.name for p in path.glob("gen-*")] == [f"gen-{before['generation']:06d}"]
    reopened = EmbeddingStore.open(path)
    np.testing.assert_array_equal(reopened.load(["a"])[0][0], newer[0])  # the chunk still counts
    reopened.compact()
    assert len(list(path.glob("gen-*"))) == 1 and not list((path / "pending").glob("*.npz"))
    np.testing.assert_array_equal(EmbeddingStore.open(path).load(["a"])[0][0], newer[0])


def test_merged_chunks_left_behind_by_a_crash_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    _append(store, ["a"], 1)
    newer = _append(store, ["a"], 2)
    first_chunk = sorted((path / "pending").glob("chunk-*.npz"))[0]
    saved = first_chunk.read_bytes()
    store.compact()
    first_chunk.write_bytes(saved)  # as if the crash came after the switch, before this chunk was deleted
    np.testing.assert_array_equal(EmbeddingStore.open(path).load(["a"])[0][0], newer[0])


def test_a_reader_keeps_its_generation_while_a_writer_compacts(tmp_path: Path) -> None:
    path, audio = _compacted(tmp_path)
    reader = EmbeddingStore.open(path)
    writer = EmbeddingStore.open(path)
    _append(writer, ["a"], 7)
    writer.compact()
    np.testing.assert_array_equal(reader.load(["a", "b", "c"])[0], audio)


# ---------------------------------------------------------------------- 4. damage detection
@pytest.mark.parametrize("edit", [
    lambda m: m["encoder"].update(audio_dim="4"),
    lambda m: m["encoder"].update(text_dim=-3),
    lambda m: m["encoder"].update(audio_dim=True),
    lambda m: m["encoder"].update(name=7),
    lambda m: m.update(encoder=["x"]),
    lambda m: m.update(format_version="2"),
    lambda m: m.update(rows=-1),
    lambda m: m.update(rows="3"),
    lambda m: m.update(generation=-1),
    lambda m: m.update(compacted_through=1.5),
    lambda m: m.update(ids_sha256=12),
    lambda m: m.update(source=5),
], ids=["dim-str", "dim-negative", "dim-bool", "name-int", "encoder-list", "version-str", "rows-negative",
        "rows-str", "generation-negative", "compacted-float", "digest-int", "source-int"])
def test_bad_manifest_fields_are_refused(tmp_path: Path, edit) -> None:
    path, _ = _compacted(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match=r"manifest\.json"):
        EmbeddingStore.open(path)


def test_swapped_rows_in_the_index_are_refused(tmp_path: Path) -> None:
    path, _ = _compacted(tmp_path)
    items = _current(path, "items.csv")
    frame = pd.read_csv(items, dtype=str, keep_default_na=False)
    frame.loc[[0, 1], "row"] = frame.loc[[1, 0], "row"].to_numpy()
    frame.to_csv(items, index=False)
    with pytest.raises(BadInputError, match=r"items\.csv"):
        EmbeddingStore.open(path).load(["a", "b", "c"])


def test_swapped_matrix_rows_are_refused(tmp_path: Path) -> None:
    path, _ = _compacted(tmp_path)
    audio_path = _current(path, "audio.npy")
    matrix = np.load(audio_path)
    matrix[[0, 1]] = matrix[[1, 0]]
    np.save(audio_path, matrix)
    store = EmbeddingStore.open(path)
    with pytest.raises(BadInputError, match=r"audio\.npy") as caught:
        store.load(["c", "a", "b"])
    assert "a, b" in str(caught.value)
    np.testing.assert_array_equal(store.load(["c"])[2], [True])  # untouched rows still load


def test_damaged_chunk_fields_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    _append(store, ["a", "b"], 1)
    chunk = next((path / "pending").glob("chunk-*.npz"))
    with np.load(chunk) as data:
        fields = {k: data[k] for k in data.files}
    fields["size"] = fields["size"].astype(str)
    np.savez(chunk, **fields)
    with pytest.raises(BadInputError, match=chunk.name):
        EmbeddingStore.open(path)


# ---------------------------------------------------------------------- 5. disk full, leftovers
@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos; file write failed: "
                 "[Errno 28] No space left on device"),
], ids=["oserror", "wrapped"])
def test_disk_full_during_compaction_keeps_the_store(tmp_path: Path, monkeypatch, error: Exception) -> None:
    path, audio = _compacted(tmp_path)
    store = EmbeddingStore.open(path)
    newer = _append(store, ["d"], 2)

    def full(*args, **kwargs) -> None:
        raise error

    monkeypatch.setattr(store_module.np, "save", full)
    with pytest.raises(BadInputError, match=r"disk full while writing .*audio\.npy; free space and run again "
                                            r"\(finished work is kept\)"):
        store.compact()
    monkeypatch.undo()
    assert not list(path.rglob("*.tmp")) and len(list(path.glob("gen-*"))) == 1
    got, _, found = EmbeddingStore.open(path).load(["a", "b", "c", "d"])
    assert found.all()
    np.testing.assert_array_equal(got, np.vstack([audio, newer]))


def test_disk_full_during_append_loses_only_that_batch(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s"
    store = EmbeddingStore.open(path, create_with=ENC)
    kept = _append(store, ["a"], 1)

    def full(*args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.np, "savez", full)
    with pytest.raises(BadInputError,
                       match=r"disk full while writing .*chunk-000002\.npz; .*\(finished work is kept\)"):
        _append(store, ["b"], 2)
    monkeypatch.undo()
    assert not list(path.rglob("*.tmp"))
    assert [p.name for p in (path / "pending").iterdir()] == ["chunk-000001.npz"]
    reopened = EmbeddingStore.open(path)
    np.testing.assert_array_equal(reopened.load(["a"])[0], kept)
    assert len(reopened) == 1


def test_leftover_temp_files_are_cleaned_on_the_next_write(tmp_path: Path) -> None:
    path, _ = _compacted(tmp_path)
    (path / "pending").mkdir(exist_ok=True)
    litter = [path / ".manifest.json.x1.tmp", path / "pending" / ".chunk-000009.npz.x2.tmp",
              _current(path, ".audio.npy.x3.tmp"), path / "gen-000099"]
    for item in litter[:3]:
        item.write_bytes(b"half")
    litter[3].mkdir()
    store = EmbeddingStore.open(path)
    assert all(p.exists() for p in litter)  # readers never delete
    _append(store, ["z"], 9)
    assert not any(p.exists() for p in litter)


# ---------------------------------------------------------------------- stores of format 1
def _write_format_1(path: Path, ids: list[str], audio: np.ndarray, text: np.ndarray,
                    encoder: EncoderInfo = ENC) -> None:
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "audio.npy", audio)
    np.save(path / "text.npy", text)
    pd.DataFrame({"id": ids, "row": range(len(ids)), "status": "ok", "reason": "", "size": 10,
                  "mtime": 100.0}).to_csv(path / "items.csv", index=False)
    (path / "manifest.json").write_text(json.dumps({
        "format": "bst-store", "format_version": 1, "encoder": encoder.to_dict(), "source": "",
        "created": "2026-01-01T00:00:00+00:00"}))


def test_format_1_store_is_read_and_upgraded_on_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "old"
    audio, text = _vectors(2, 1)
    _write_format_1(path, ["a", "b"], audio, text)
    store = EmbeddingStore.open(path)
    assert store.format_version == 1
    got_audio, got_text, found = store.load(["a", "b"])
    assert found.all()
    np.testing.assert_array_equal(got_audio, audio)
    np.testing.assert_array_equal(got_text, text)
    assert store.up_to_date(["a"], [10], [100.0]).all()
    assert not store.up_to_date(["a"], [10], mtime_ns=[100 * 10**9], keys=["10:100000000000:x"]).any()
    newer = _append(store, ["c"], 2)
    store.compact()
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == store_module.FORMAT_VERSION and manifest["migrated_from"] == 1
    assert not any((path / n).exists() for n in ("items.csv", "audio.npy", "text.npy"))
    reopened = EmbeddingStore.open(path)
    np.testing.assert_array_equal(reopened.load(["a", "b", "c"])[0], np.vstack([audio, newer]))
