"""Extraction into a store: failures recorded (never fatal), resume after changes and cancel."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bst_core import locking
from bst_core.corpus import EncoderInfo
from bst_core.encoders.offline import OfflineEncoder
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.extraction import extract
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.sources.folder import read_audio_folder
from bst_core.store import EmbeddingStore
from bst_core.text import text_for

SR = 22_050


def wav(path: Path, seconds: float, level: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(len(path.name)).standard_normal(max(1, int(seconds * SR))) * level
    sf.write(path, samples.astype(np.float32), SR)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    for k in range(7):
        wav(root / "good" / f"clip_{k}.wav", 0.5)
    wav(root / "odd" / "click.wav", 0.005)
    wav(root / "odd" / "silence.wav", 0.5, level=0.0)
    (root / "bad").mkdir()
    (root / "bad" / "empty.wav").write_bytes(b"")
    (root / "bad" / "notes.wav").write_text("field notes, not audio\n" * 10)
    whole = wav(root / "bad" / "full.wav", 0.5).read_bytes()
    (root / "bad" / "full.wav").write_bytes(whole[:30])
    return root


def test_extract_records_failures_and_keeps_text(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    summary = extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=4)
    assert (summary.computed, summary.reused, summary.failed) == (9, 0, 3)
    text = summary.format()
    assert text.splitlines()[0] == "computed 9, reused 0, failed 3"
    assert summary.failures == {
        "empty file": ["bad/empty.wav (0 bytes)"],
        "not an audio file": ["bad/notes.wav"],
        "truncated or corrupt audio": ["bad/full.wav (libsndfile: Error in WAV file. No 'data' chunk marker.)"],
    }
    assert "  failed: empty file (1):\n    bad/empty.wav (0 bytes)" in text
    assert summary.warnings == {"very short": ["odd/click.wav (5 ms)"], "digital silence": ["odd/silence.wav"]}

    store = EmbeddingStore.open(tmp_path / "store")
    items = store.items().set_index("id")
    assert items.loc["bad/empty.wav", "status"] == "audio_failed"
    assert items.loc["bad/empty.wav", "reason"] == "empty file (0 bytes)"
    assert items.loc["odd/click.wav", "status"] == "ok"
    assert items.loc["odd/click.wav", "reason"] == "very short (5 ms)"
    audio, text_vectors, found = store.load(["bad/empty.wav", "good/clip_0.wav"])
    assert found.all()
    assert not audio[0].any() and audio[1].any()
    assert np.linalg.norm(text_vectors[0]) == pytest.approx(1.0, rel=1e-5)   # text still computed
    assert not (store.path / "pending").exists() or not any((store.path / "pending").iterdir())


def test_rerun_reuses_and_recomputes_only_changed_files(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    extract(corpus, tmp_path / "store", OfflineEncoder())
    again = extract(corpus, tmp_path / "store", OfflineEncoder())
    assert (again.computed, again.reused, again.failed) == (0, 9, 3)   # failures are retried, fail again
    touched = folder / "good" / "clip_3.wav"
    stat = touched.stat()
    os.utime(touched, (stat.st_atime, stat.st_mtime + 10))
    third = extract(corpus, tmp_path / "store", OfflineEncoder())
    assert (third.computed, third.reused) == (1, 8)


def test_a_fixed_file_is_picked_up(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    extract(corpus, tmp_path / "store", OfflineEncoder())
    wav(folder / "bad" / "empty.wav", 0.3)
    summary = extract(corpus, tmp_path / "store", OfflineEncoder())
    assert summary.computed == 1 and "empty file" not in summary.failures
    assert EmbeddingStore.open(tmp_path / "store").items().set_index("id").loc["bad/empty.wav", "status"] == "ok"


def test_cancel_keeps_finished_batches_and_rerun_completes(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)

    def cancel_after_first_batch(progress: Progress) -> None:
        if progress.stage == "extract" and progress.done >= 4:
            job.cancel()

    job = Job(cancel_after_first_batch)
    with pytest.raises(Cancelled):
        extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=4, job=job)
    store = EmbeddingStore.open(tmp_path / "store")
    assert len(store) == 4                                          # the first batch, kept
    assert not any((store.path / "pending").glob("*.npz"))         # compacted on cancel
    done_ok = int((store.items()["status"] == "ok").sum())
    rest = extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=4)
    assert rest.reused == done_ok                                   # ok items are not computed again
    assert rest.computed + rest.failed == len(corpus) - done_ok
    assert len(EmbeddingStore.open(tmp_path / "store")) == len(corpus)


class FussyEncoder(OfflineEncoder):
    """Fails any batch that holds a clip under 10 ms (like CLAP batches in the seed report),
    and any clip at all that is digital silence."""

    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if any(not np.any(c) for c in clips):
            raise ValueError("cannot embed silence")
        if len(clips) > 1 and any(len(c) < 0.01 * self.sample_rate for c in clips):
            raise RuntimeError("shape mismatch in batch")
        return super().embed_audio(clips)


def test_failing_batch_is_retried_one_by_one(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    summary = extract(corpus, tmp_path / "store", FussyEncoder(), batch_size=16)
    items = EmbeddingStore.open(tmp_path / "store").items().set_index("id")
    assert items.loc["odd/click.wav", "status"] == "ok"                   # saved by the retry
    assert items.loc["odd/silence.wav", "status"] == "audio_failed"
    assert items.loc["odd/silence.wav", "reason"] == "audio encoder failed (ValueError: cannot embed silence)"
    assert summary.failures["audio encoder failed"] == ["odd/silence.wav (ValueError: cannot embed silence)"]
    assert summary.computed == 8


def test_items_without_audio_keep_their_text(tmp_path: Path, folder: Path) -> None:
    corpus = read_audio_folder(folder)
    corpus.table.loc[0, "audio_path"] = ""
    summary = extract(corpus, tmp_path / "store", OfflineEncoder())
    assert summary.failures["no audio file"] == [corpus.table.loc[0, "id"]]
    audio, text, _ = EmbeddingStore.open(tmp_path / "store").load([corpus.table.loc[0, "id"]])
    assert not audio.any() and text.any()


def test_store_of_another_encoder_is_refused(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    extract(corpus, tmp_path / "store", OfflineEncoder())

    class Other(OfflineEncoder):
        info = EncoderInfo("offline-logmel-ngram", "2", 192, 512)

    with pytest.raises(IncompatibleError, match="cannot be mixed"):
        extract(corpus, tmp_path / "store", Other())


def test_progress_reports_each_item(folder: Path, tmp_path: Path) -> None:
    seen: list[Progress] = []
    summary = extract(read_audio_folder(folder), tmp_path / "store", OfflineEncoder(), batch_size=5,
                      job=Job(seen.append))
    steps = [p for p in seen if p.stage == "extract"]
    assert sorted({p.done for p in steps}) == list(range(0, 13))     # every item, in order
    assert [p.done for p in steps] == sorted(p.done for p in steps)
    assert all(p.total == 12 for p in steps)
    assert (steps[-1].data["computed"], steps[-1].data["failed"]) == (summary.computed, summary.failed)


# ---------------------------------------------------------------------- what changed since the last run
class CountingEncoder(OfflineEncoder):
    """Counts the clips it embeds."""

    audio_clips = 0

    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        type(self).audio_clips += len(clips)
        return super().embed_audio(clips)


def test_changed_text_recomputes_only_the_text_vector(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    store_path = tmp_path / "store"
    extract(corpus, store_path, OfflineEncoder())
    audio_before, text_before, _ = EmbeddingStore.open(store_path).load(corpus.ids)
    k = corpus.ids.index("good/clip_2.wav")
    corpus.table.loc[k, "title"] = "a completely different title"
    CountingEncoder.audio_clips = 0
    summary = extract(corpus, store_path, CountingEncoder())
    audio_after, text_after, _ = EmbeddingStore.open(store_path).load(corpus.ids)
    row = corpus.table.iloc[k]
    expected = OfflineEncoder().embed_text([text_for(row["title"], row["tags"], row["description"])])[0]
    np.testing.assert_allclose(text_after[k], expected, rtol=1e-6)
    np.testing.assert_array_equal(np.delete(text_after, k, 0), np.delete(text_before, k, 0))
    np.testing.assert_array_equal(audio_after, audio_before)
    assert CountingEncoder.audio_clips == 0          # the failed files are retried, but none decodes
    assert (summary.computed, summary.reused, summary.changed, summary.text_only) == (1, 8, 1, 1)
    assert summary.line == "computed 1, reused 8, failed 3, changed 1 (1 text only)"


def test_replaced_audio_with_the_same_size_and_time_is_noticed(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    extract(corpus, tmp_path / "store", OfflineEncoder())
    target = folder / "good" / "clip_4.wav"
    before = target.stat()
    old = EmbeddingStore.open(tmp_path / "store").load(["good/clip_4.wav"])[0]
    wav(target, 0.5, level=0.3)                       # other samples, same length
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    summary = extract(corpus, tmp_path / "store", OfflineEncoder())
    assert (summary.computed, summary.reused, summary.changed, summary.text_only) == (1, 8, 1, 0)
    assert not np.array_equal(EmbeddingStore.open(tmp_path / "store").load(["good/clip_4.wav"])[0], old)


def test_a_second_extraction_into_the_same_store_is_refused(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    with locking.exclusive(tmp_path / "store", "another extraction", timeout=1), \
            pytest.raises(BadInputError, match=r"store .* is being written by another process \(lock "):
        extract(corpus, tmp_path / "store", OfflineEncoder(), lock_timeout=0.2)
    assert extract(corpus, tmp_path / "store", OfflineEncoder()).computed == 9


def test_disk_full_keeps_finished_batches(folder: Path, tmp_path: Path, monkeypatch) -> None:
    corpus = read_audio_folder(folder)
    real_savez = np.savez
    calls = []

    def filling_up(*args, **kwargs) -> None:
        calls.append(1)
        if len(calls) == 2:  # the second batch's chunk
            raise OSError(errno.ENOSPC, "No space left on device")
        real_savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez", filling_up)
    with pytest.raises(BadInputError, match=r"disk full while writing .*chunk-\d+\.npz; free space"):
        extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=4)
    monkeypatch.undo()
    kept = EmbeddingStore.open(tmp_path / "store")
    assert len(kept) == 4 and not list(kept.path.rglob("*.tmp"))
    kept_ok = int((kept.items()["status"] == "ok").sum())
    rest = extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=4)
    assert rest.reused == kept_ok and rest.reused + rest.computed + rest.failed == len(corpus)


def test_store_of_the_older_format_is_recomputed_and_says_so(folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    store_path = tmp_path / "store"
    extract(corpus, store_path, OfflineEncoder())
    audio, text, _ = EmbeddingStore.open(store_path).load(corpus.ids)
    items = EmbeddingStore.open(store_path).items().set_index("id").reindex(corpus.ids)
    shutil.rmtree(store_path)
    store_path.mkdir()
    np.save(store_path / "audio.npy", audio)
    np.save(store_path / "text.npy", text)
    pd.DataFrame({"id": corpus.ids, "row": range(len(corpus)), "status": items["status"].to_numpy(),
                  "reason": items["reason"].to_numpy(), "size": items["size"].to_numpy(),
                  "mtime": items["mtime"].to_numpy()}).to_csv(store_path / "items.csv", index=False)
    (store_path / "manifest.json").write_text(json.dumps({
        "format": "bst-store", "format_version": 1, "encoder": OfflineEncoder().info.to_dict(),
        "source": str(folder), "created": "2026-01-01T00:00:00+00:00"}))
    summary = extract(corpus, store_path, OfflineEncoder())
    assert (summary.computed, summary.reused, summary.failed) == (9, 0, 3)
    assert any("older BST Studio" in note and "9" in note for note in summary.notes)
    assert "older BST Studio" in summary.format()
    assert extract(corpus, store_path, OfflineEncoder()).reused == 9
