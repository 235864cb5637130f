"""Extraction into a store: failures recorded (never fatal), resume after changes and cancel."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bst_core.corpus import EncoderInfo
from bst_core.encoders.offline import OfflineEncoder
from bst_core.errors import IncompatibleError
from bst_core.extraction import extract
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.sources.folder import read_audio_folder
from bst_core.store import EmbeddingStore

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
