"""Decoding: formats, mono mix, resampling, and a status + reason for every nasty file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bst_core import audio
from bst_core.errors import BadInputError

SR = 44_100


def tone(seconds: float, sr: int = SR, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def write(path: Path, data: np.ndarray, sr: int = SR, **kwargs: object) -> Path:
    sf.write(path, data, sr, **kwargs)
    return path


@pytest.mark.parametrize(("name", "fmt", "subtype"), [
    ("u8.wav", "WAV", "PCM_U8"), ("s16.wav", "WAV", "PCM_16"), ("s24.wav", "WAV", "PCM_24"),
    ("s32.wav", "WAV", "PCM_32"), ("f32.wav", "WAV", "FLOAT"), ("f64.wav", "WAV", "DOUBLE"),
    ("a.flac", "FLAC", "PCM_16"), ("a.ogg", "OGG", "VORBIS"), ("a.aiff", "AIFF", "PCM_16"),
    ("a.mp3", "MP3", "MPEG_LAYER_III"),
])
def test_formats_decode_to_the_same_tone(tmp_path: Path, name: str, fmt: str, subtype: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"the installed libsndfile cannot read {fmt}")
    path = write(tmp_path / name, tone(1.0), format=fmt, subtype=subtype)
    out = audio.decode(path, 16_000)
    assert out.status == "ok", out.reason
    assert out.sr == 16_000 and out.samples.dtype == np.float32
    assert abs(len(out.samples) - 16_000) < 0.05 * 16_000     # MP3 adds encoder padding
    assert abs(out.duration_s - 1.0) < 0.06
    middle = out.samples[4000:12000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.08)


def test_stereo_and_multichannel_become_the_channel_mean(tmp_path: Path) -> None:
    left, right = tone(0.5, freq=300), tone(0.5, freq=900) * 0.5
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    out = audio.decode(path, SR)
    assert out.channels == 2
    np.testing.assert_allclose(out.samples, (left + right) / 2, atol=1e-6)
    six = write(tmp_path / "six.wav", tone(0.2, channels=6), subtype="PCM_16")
    assert audio.decode(six, SR).samples.ndim == 1


@pytest.mark.parametrize("source_sr", [8_000, 22_050, 44_100, 48_000, 96_000])
@pytest.mark.parametrize("target_sr", [22_050, 48_000])
def test_resampling_keeps_length_and_pitch(tmp_path: Path, source_sr: int, target_sr: int) -> None:
    path = write(tmp_path / "t.wav", tone(2.0, sr=source_sr, freq=1000.0), sr=source_sr, subtype="FLOAT")
    out = audio.decode(path, target_sr)
    assert abs(len(out.samples) - 2 * target_sr) <= 1
    spectrum = np.abs(np.fft.rfft(out.samples * np.hanning(len(out.samples))))
    peak_hz = np.argmax(spectrum) * target_sr / len(out.samples)
    assert peak_hz == pytest.approx(1000.0, abs=2.0)


def test_streamed_resampling_matches_one_shot_soxr(tmp_path: Path) -> None:
    import soxr

    rng = np.random.default_rng(0)
    data = (rng.standard_normal(3 * audio._BLOCK_FRAMES + 123) * 0.1).astype(np.float32)
    path = write(tmp_path / "long.wav", data, subtype="FLOAT")
    out = audio.decode(path, 22_050)
    expected = soxr.resample(data, SR, 22_050, quality=audio.RESAMPLE_QUALITY)
    assert len(out.samples) == len(expected)
    np.testing.assert_allclose(out.samples, expected, atol=1e-4)


# ---------------------------------------------------------------------- nasty files
def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    out = audio.decode(tmp_path / "empty.wav", 22_050)
    assert (out.status, out.reason) == ("failed", "empty file (0 bytes)")
    assert out.samples.size == 0


def test_text_renamed_to_wav_is_not_audio(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("these are my field notes, not a recording\n" * 20)
    out = audio.decode(tmp_path / "notes.wav", 22_050)
    assert (out.status, out.reason) == ("failed", "not an audio file")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert audio.decode(tmp_path / "gone.wav", 22_050).reason == "file not found"
    assert audio.decode(tmp_path, 22_050).reason == "not a file"


def test_header_only_wav_is_corrupt(tmp_path: Path) -> None:
    whole = write(tmp_path / "w.wav", tone(1.0)).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:30])
    out = audio.decode(tmp_path / "cut.wav", 22_050)
    assert out.status == "failed"
    assert out.reason.startswith("truncated or corrupt audio")


def test_wav_cut_in_the_middle_keeps_what_is_there(tmp_path: Path) -> None:
    whole = write(tmp_path / "w.wav", tone(2.0), subtype="PCM_16").read_bytes()
    (tmp_path / "half.wav").write_bytes(whole[: len(whole) // 2])
    out = audio.decode(tmp_path / "half.wav", SR)
    assert out.status == "ok"
    assert "shorter than its header" in out.warning
    assert abs(len(out.samples) - SR) < 100


def test_flac_cut_in_the_middle_salvages_the_start(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    whole = write(tmp_path / "n.flac", rng.standard_normal(2 * SR) * 0.1).read_bytes()
    (tmp_path / "half.flac").write_bytes(whole[: len(whole) // 2])
    out = audio.decode(tmp_path / "half.flac", SR)
    assert out.status == "ok"
    assert out.warning.startswith("cut off (decoded")
    assert 0.3 * SR < len(out.samples) < 1.2 * SR


def test_unreadable_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 where it bites (not as root: root reads any file); the os.access path always."""
    path = write(tmp_path / "locked.wav", tone(0.2))
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            assert audio.decode(path, 22_050).reason == "permission denied"
        finally:
            path.chmod(0o644)
    monkeypatch.setattr(audio.os, "access", lambda p, mode: False)
    out = audio.decode(path, 22_050)
    assert (out.status, out.reason) == ("failed", "permission denied")


def test_five_ms_clip_is_ok_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path / "click.wav", tone(0.005))
    out = audio.decode(path, 22_050)
    assert out.status == "ok"
    assert out.warning == "very short (5 ms)"
    assert 100 <= len(out.samples) <= 112


def test_digital_silence_is_ok_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path / "silence.wav", np.zeros(SR), subtype="PCM_24")
    out = audio.decode(path, 22_050)
    assert (out.status, out.warning) == ("ok", "digital silence")
    assert len(out.samples) == 22_050 and not out.samples.any()


def test_zero_frames_is_failed(tmp_path: Path) -> None:
    path = write(tmp_path / "none.wav", np.zeros(0))
    assert audio.decode(path, 22_050).reason == audio.NO_SAMPLES


def test_non_finite_float_samples_are_zeroed(tmp_path: Path) -> None:
    data = tone(0.5).astype(np.float32)
    data[100:110] = np.nan
    path = write(tmp_path / "nan.wav", data, subtype="FLOAT")
    out = audio.decode(path, SR)
    assert out.status == "ok" and np.isfinite(out.samples).all()
    assert "non-finite" in out.warning


def test_long_file_is_capped_without_reading_it_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10-minute file stands in for the 2-hour case: cheap to write, same code path.

    The cap must hold and the file must be read in blocks that stop at the cap.
    """
    sr = 8_000
    path = tmp_path / "long.flac"
    with sf.SoundFile(path, "w", sr, 1, format="FLAC") as handle:
        for _ in range(10):
            handle.write(np.zeros(60 * sr, np.int16) + 1)
    requested: list[int] = []
    original_read = sf.SoundFile.read

    def counting_read(self: sf.SoundFile, frames: int = -1, *args: object, **kwargs: object) -> np.ndarray:
        requested.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    out = audio.decode(path, 16_000, max_seconds=30)
    assert out.status == "ok"
    assert out.duration_s == pytest.approx(600.0)
    assert len(out.samples) == 30 * 16_000
    assert out.warning == "truncated to first 30.0 s (file is 10 min 0 s)"
    assert sum(requested) == 30 * sr and max(requested) <= audio._BLOCK_FRAMES


def test_two_hour_wav_costs_only_the_cap(tmp_path: Path) -> None:
    """A real 2-hour 44.1 kHz WAV header over a sparse file (no disk space, no write time):
    decoding with max_seconds=30 reads 30 s and never holds the 2 hours in memory."""
    import struct
    import tracemalloc

    frames = 2 * 3600 * SR
    data_bytes = frames * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16)
              + b"data" + struct.pack("<I", data_bytes))
    path = tmp_path / "two_hours.wav"
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    assert audio.probe(path).duration_s == 7200.0
    tracemalloc.start()
    try:
        out = audio.decode(path, 48_000, max_seconds=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.status == "ok" and len(out.samples) == 30 * 48_000
    assert out.duration_s == 7200.0
    assert out.warning == "truncated to first 30.0 s (file is 2 h 0 min); digital silence"
    assert peak < 40e6            # the whole file as float32 would be 1.27 GB


def test_durations_read_like_words() -> None:
    assert audio.format_duration(0.005) == "5 ms"
    assert audio.format_duration(7200) == "2 h 0 min"


# ---------------------------------------------------------------------- GUI helpers
def test_probe_reads_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "p.wav", tone(1.5, sr=48_000, channels=2), sr=48_000)
    assert audio.probe(path) == (1.5, 48_000, 2)
    (tmp_path / "bad.wav").write_bytes(b"")
    with pytest.raises(BadInputError, match="empty file"):
        audio.probe(tmp_path / "bad.wav")


def test_envelope_bounds_the_waveform() -> None:
    samples = tone(3.0).astype(np.float32)
    times, mins, maxs = audio.envelope(samples, 44_100, points=500)
    assert len(mins) <= 500 and len(mins) == len(maxs) == len(times)
    assert maxs.max() == samples.max() and mins.min() == samples.min()
    assert (mins <= maxs).all() and times[0] == 0 and np.all(np.diff(times) > 0)
    wave = np.sin(np.linspace(0, 200, 10_000)).astype(np.float32)
    times, mins, maxs = audio.envelope(wave, 1000, points=100)
    assert len(times) == 100 and times[1] == pytest.approx(0.1)
    assert [len(a) for a in audio.envelope(np.zeros(0, np.float32), 1000)] == [0, 0, 0]


def test_probe_durations_reports_batches_and_skips_bad_files(tmp_path: Path) -> None:
    from bst_core.jobs import Cancelled, Job

    good = write(tmp_path / "a.wav", tone(1.5))
    (tmp_path / "bad.wav").write_bytes(b"")
    paths = np.array([str(good), "", str(tmp_path / "bad.wav"), str(good)], dtype=object)
    seen = []
    out = audio.probe_durations(paths, Job(seen.append), batch=3)
    assert out[0] == pytest.approx(1.5) and out[3] == pytest.approx(1.5)
    assert np.isnan(out[1]) and np.isnan(out[2])
    assert [p.data["positions"] for p in seen] == [(0, 3), (3, 4)]
    job = Job()
    job.cancel()
    with pytest.raises(Cancelled):
        audio.probe_durations(paths, job)


def test_spectrogram_peaks_at_the_tone() -> None:
    sr = 22_050
    freqs, times, db = audio.spectrogram(tone(2.0, sr=sr, freq=2000.0).astype(np.float32), sr)
    assert db.shape == (len(freqs), len(times))
    assert freqs[np.argmax(db.mean(axis=1))] == pytest.approx(2000.0, abs=sr / 1024)
    assert db.max() == pytest.approx(20 * np.log10(0.5), abs=1.5)
    _, long_times, _ = audio.spectrogram(np.zeros(sr * 600, np.float32), sr, max_frames=300)
    assert len(long_times) <= 300
