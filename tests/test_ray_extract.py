"""Extraction on a real local Ray instance (no mocks): same store as the local engine, a worker that
dies mid-batch costs only that batch, Cancel stops the workers and keeps what was written.

One Ray instance for the module (``ray.init(num_cpus=2)``: start-up takes seconds), shut down at
the end; no usage report, no dashboard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bst_core.cli import main
from bst_core.encoders.offline import OfflineEncoder
from bst_core.extraction import ExtractSummary, extract
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.ray_extract import TEST_EXIT_ENV, EncoderSpec, RayOptions, extract_on_ray
from bst_core.sources.folder import read_audio_folder
from bst_core.store import EmbeddingStore

pytestmark = pytest.mark.slow
SR = 22_050


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 sounds: tones of different pitch and length, a 5 ms click, silence, an empty file, a text file."""
    root = tmp_path_factory.mktemp("ray") / "sounds"
    (root / "tones").mkdir(parents=True)
    for k in range(10):
        t = np.arange(int(SR * (0.5 + 0.1 * k))) / SR
        sf.write(root / "tones" / f"tone_{k:02d}.wav", (0.2 * np.sin(2 * np.pi * (200 + 60 * k) * t)), SR)
    sf.write(root / "click.wav", np.ones(int(0.005 * SR)) * 0.5, SR)
    sf.write(root / "silence.wav", np.zeros(SR), SR)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("not audio")
    return root


def contents(store_path: Path) -> pd.DataFrame:
    """id → status, reason, key, text_hash, and the two vectors, sorted by id."""
    store = EmbeddingStore.open(store_path)
    items = store.items().sort_values("id").reset_index(drop=True)
    audio, text, _ = store.load(items["id"].tolist())
    items["audio"], items["text"] = list(audio), list(text)
    return items


def assert_same_store(ray_store: Path, local_store: Path, atol: float = 1e-5) -> None:
    a, b = contents(ray_store), contents(local_store)
    columns = ["id", "status", "reason", "size", "mtime_ns", "key", "text_hash"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    np.testing.assert_allclose(np.stack(a["audio"]), np.stack(b["audio"]), atol=atol)
    np.testing.assert_allclose(np.stack(a["text"]), np.stack(b["text"]), atol=atol)


def same_summary(x: ExtractSummary, y: ExtractSummary) -> None:
    assert (x.computed, x.reused, x.failed, x.changed) == (y.computed, y.reused, y.failed, y.changed)
    assert x.failures == y.failures and x.warnings == y.warnings


def test_ray_store_is_the_local_one_and_resumes(ray_instance, folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)
    local = extract(corpus, tmp_path / "local", OfflineEncoder(), batch_size=4)
    seen: list[Progress] = []
    on_ray = extract_on_ray(corpus, tmp_path / "ray", EncoderSpec("offline"), batch_size=4, job=Job(seen.append))
    same_summary(on_ray, local)
    assert on_ray.failures == {"empty file": ["empty.wav (0 bytes)"], "not an audio file": ["notes.wav"]}
    assert "computed by 2 Ray workers" in on_ray.notes
    assert_same_store(tmp_path / "ray", tmp_path / "local")
    saved = [p.done for p in seen if p.stage == "extract"]
    assert saved == sorted(saved) and saved[-1] == len(corpus)

    again = extract_on_ray(corpus, tmp_path / "ray", EncoderSpec("offline"), batch_size=4)
    assert (again.computed, again.reused) == (0, 12)               # nothing to do: no worker started
    corpus.table.loc[corpus.table["id"] == "tones/tone_03.wav", "title"] = "a new title"
    text_only = extract_on_ray(corpus, tmp_path / "ray", EncoderSpec("offline"), batch_size=4)
    extract(corpus, tmp_path / "local", OfflineEncoder(), batch_size=4)
    assert (text_only.computed, text_only.text_only) == (1, 1)
    assert_same_store(tmp_path / "ray", tmp_path / "local")


def test_a_worker_dying_mid_batch_costs_only_that_batch(ray_instance, folder: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "worker-exited"
    monkeypatch.setenv(TEST_EXIT_ENV, f"1:{marker}")     # the worker of batch 1 exits after its first file
    corpus = read_audio_folder(folder)
    on_ray = extract_on_ray(corpus, tmp_path / "ray", EncoderSpec("offline"), batch_size=4)
    assert marker.exists()                                 # it did die
    local = extract(corpus, tmp_path / "local", OfflineEncoder(), batch_size=4)
    same_summary(on_ray, local)
    assert_same_store(tmp_path / "ray", tmp_path / "local")
    assert any("retr" in note.lower() or "died" in note.lower() for note in on_ray.notes), on_ray.notes


def test_a_file_that_kills_every_worker_fails_alone(ray_instance, folder: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core import ray_extract

    monkeypatch.setattr(ray_extract, "RETRIES", 1)           # fewer deaths per try keep the test short
    monkeypatch.setenv(TEST_EXIT_ENV, "always:tone_05.wav")
    corpus = read_audio_folder(folder)
    corpus = corpus.subset(corpus.table["id"].isin([f"tones/tone_{k:02d}.wav" for k in range(2, 8)]).to_numpy())
    on_ray = extract_on_ray(corpus, tmp_path / "ray", EncoderSpec("offline"), batch_size=3)
    local = extract(corpus, tmp_path / "local", OfflineEncoder(), batch_size=3)
    assert (on_ray.computed, on_ray.failed) == (local.computed - 1, local.failed + 1)
    assert on_ray.failures[ray_extract.WORKER_DIED] == ["tones/tone_05.wav (2 times)"]
    a, b = contents(tmp_path / "ray").set_index("id"), contents(tmp_path / "local").set_index("id")
    assert a.loc["tones/tone_05.wav", "status"] == "audio_failed"
    assert not a.loc["tones/tone_05.wav", "audio"].any()
    np.testing.assert_allclose(a.loc["tones/tone_05.wav", "text"], b.loc["tones/tone_05.wav", "text"], atol=1e-6)
    others = a.index != "tones/tone_05.wav"
    np.testing.assert_allclose(np.stack(a["audio"][others]), np.stack(b["audio"][others]), atol=1e-5)


def test_cancel_stops_the_workers_and_keeps_what_was_written(ray_instance, folder: Path, tmp_path: Path) -> None:
    corpus = read_audio_folder(folder)

    def cancel_after_first_batch(progress: Progress) -> None:
        if progress.stage == "extract" and progress.message == "batch saved":
            job.cancel()

    job = Job(cancel_after_first_batch)
    with pytest.raises(Cancelled):
        extract_on_ray(corpus, tmp_path / "store", EncoderSpec("offline"), batch_size=2, job=job)
    kept = EmbeddingStore.open(tmp_path / "store").items()
    assert 2 <= len(kept) < len(corpus)
    deadline = time.monotonic() + 20
    while ray_instance.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)                                    # the killed workers give their CPUs back
    assert ray_instance.available_resources().get("CPU", 0) == 2
    rest = extract_on_ray(corpus, tmp_path / "store", EncoderSpec("offline"), batch_size=2)
    assert rest.reused == int((kept["status"] == "ok").sum())          # what was written is not redone
    assert rest.computed + rest.failed + rest.reused == len(corpus)


@pytest.mark.clap
def test_random_weight_clap_on_ray_matches_the_local_encoder(ray_instance, tmp_path: Path) -> None:
    from clap_fixtures import tone, write_random_checkpoint, write_tiny_roberta_files

    from bst_core.encoders.clap import ClapEncoder

    text_dir = write_tiny_roberta_files(tmp_path / "roberta-base")
    checkpoint = tmp_path / "630k-audioset-fusion-best.pt"
    write_random_checkpoint(checkpoint, text_dir)
    root = tmp_path / "sounds"
    root.mkdir()
    for k, seconds in enumerate((1.0, 2.5, 12.0)):               # 12 s: the fusion model's random crops
        sf.write(root / f"clip_{k}.wav", tone(seconds, seed=k), 48_000)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00")
    corpus = read_audio_folder(root)
    local = extract(corpus, tmp_path / "local", ClapEncoder(checkpoint=checkpoint, text_files=text_dir),
                    batch_size=2)
    spec = EncoderSpec("clap", str(checkpoint), str(text_dir))
    on_ray = extract_on_ray(corpus, tmp_path / "ray", spec, RayOptions(workers=1), batch_size=2)
    same_summary(on_ray, local)
    assert on_ray.failed == 1
    assert_same_store(tmp_path / "ray", tmp_path / "local", atol=1e-4)


def test_cli_engine_flags(ray_instance, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", str(folder), "--out", str(tmp_path / "s"), "--workers", "2", "-q"]) == 2
    assert "need --engine ray" in capsys.readouterr().err
    assert main(["extract", str(folder), "--out", str(tmp_path / "s"), "--engine", "ray", "--workers", "9",
                 "-q"]) == 2
    assert "room for 2 workers" in capsys.readouterr().err
    assert main(["extract", str(folder), "--out", str(tmp_path / "s"), "--engine", "ray", "--workers", "1",
                 "--json", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("{") and '"computed": 12' in out


def test_no_ray_processes_are_left_behind_by_a_local_instance(folder: Path, tmp_path: Path) -> None:
    """Without a Ray in this process the engine starts its own and shuts it down (runs last)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    summary = extract_on_ray(read_audio_folder(folder), tmp_path / "s", EncoderSpec("offline"),
                             RayOptions(workers=1), batch_size=8)
    assert summary.computed == 12
    assert not ray.is_initialized()
