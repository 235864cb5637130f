"""Formats libsndfile does not read (AAC/ALAC in M4A, Opus in WebM/MP4, WMA, video files) decode
through FFmpeg (PyAV); a folder with such files is embedded in full and every failure is named."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from bst_core import audio
from bst_core.encoders.offline import OfflineEncoder
from bst_core.errors import BadInputError
from bst_core.extraction import extract
from bst_core.sources.folder import read_audio_folder

SR = 44_100
TARGET_SR = 22_050
SECONDS = 2.0


def sine(seconds: float = SECONDS, sr: int = SR, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_with_pyav(path: Path, codec: str, *, rate: int = SR, seconds: float = SECONDS, freq: float = 440.0,
                    video: bool = False, bit_rate: int | None = None, title: str | None = None) -> Path:
    """A stereo sine encoded by FFmpeg (both channels alike), with a small video stream first if asked."""
    mono = sine(seconds, rate, freq)
    with av.open(str(path), "w") as out:
        if title:
            out.metadata["title"] = title
        picture = out.add_stream("mpeg4", rate=10) if video else None
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        if bit_rate:
            stream.bit_rate = bit_rate
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
            for _ in range(int(seconds * 10)):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                for packet in picture.encode(frame):
                    out.mux(packet)
            for packet in picture.encode():
                out.mux(packet)
        sample_format = stream.codec_context.codec.audio_formats[0].name
        convert = av.AudioResampler(format=sample_format, layout="stereo", rate=rate)
        step = stream.codec_context.frame_size or 1024
        for start in range(0, len(mono), step):
            chunk = np.ascontiguousarray(np.stack([mono[start:start + step]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for converted in convert.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def aligned_error(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 2048) -> float:
    """RMS of the difference after the best shift of up to ``max_lag`` samples, relative to the
    reference's RMS (lossy codecs delay and smear the signal a little); the edges are left out."""
    middle = reference[max_lag:-max_lag]
    best = np.inf
    for lag in range(-max_lag, max_lag + 1, 1):
        piece = decoded[max_lag + lag: max_lag + lag + len(middle)]
        if len(piece) == len(middle):
            best = min(best, float(np.sqrt(np.mean((piece - middle) ** 2))))
    return best / float(np.sqrt(np.mean(middle ** 2)))


CASES = [   # (file name, codec, rate, extra) — the first five libsndfile cannot open at all
    ("aac.m4a", "aac", SR, {}),
    ("alac.m4a", "alac", SR, {}),
    ("opus.webm", "libopus", 48_000, {}),
    ("opus.mp4", "libopus", 48_000, {}),
    ("wma.wma", "wmav2", SR, {"bit_rate": 128_000}),
    ("clip.mp4", "aac", SR, {"video": True}),
    ("clip.mkv", "libopus", 48_000, {"video": True}),
    ("clip.mov", "aac", SR, {"video": True}),
]


@pytest.mark.parametrize(("name", "codec", "rate", "extra"), CASES, ids=[c[0] for c in CASES])
def test_ffmpeg_formats_decode_to_the_source_sine(tmp_path: Path, name: str, codec: str, rate: int,
                                                  extra: dict) -> None:
    path = write_with_pyav(tmp_path / name, codec, rate=rate, **extra)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))                    # really a format libsndfile does not read
    decoded = audio.decode(path, TARGET_SR)
    assert decoded.ok, decoded.reason
    assert decoded.warning == ""
    assert (decoded.source_sr, decoded.channels) == (rate, 2)
    assert decoded.duration_s == pytest.approx(SECONDS, abs=0.05)   # codecs pad to whole frames (WMA: 2048)
    assert len(decoded.samples) == pytest.approx(SECONDS * TARGET_SR, abs=0.05 * TARGET_SR)
    reference = soxr.resample(sine(SECONDS, rate), rate, TARGET_SR, quality=audio.RESAMPLE_QUALITY)
    tolerance = 1e-3 if codec == "alac" else 0.1    # lossless is exact up to 16-bit quantisation
    assert aligned_error(decoded.samples, reference.astype(np.float32)) < tolerance
    assert audio.probe(path).duration_s == pytest.approx(decoded.duration_s, abs=1e-3)


def test_lossless_alac_matches_the_libsndfile_path_sample_for_sample(tmp_path: Path) -> None:
    write_with_pyav(tmp_path / "a.m4a", "alac")
    sf.write(tmp_path / "a.wav", np.stack([sine()] * 2, axis=1), SR, subtype="PCM_16")
    via_ffmpeg = audio.decode(tmp_path / "a.m4a", TARGET_SR).samples
    via_libsndfile = audio.decode(tmp_path / "a.wav", TARGET_SR).samples
    np.testing.assert_allclose(via_ffmpeg, via_libsndfile, atol=2e-4)


def test_max_seconds_caps_an_m4a(tmp_path: Path) -> None:
    path = write_with_pyav(tmp_path / "long.m4a", "aac", seconds=3.0)
    decoded = audio.decode(path, TARGET_SR, max_seconds=1.0)
    assert decoded.ok
    assert len(decoded.samples) == pytest.approx(TARGET_SR, abs=2)
    assert decoded.warning == "truncated to first 1.0 s (file is 3.0 s)"


def test_bad_files_get_reasons_and_ffmpeg_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    good = write_with_pyav(tmp_path / "good.m4a", "aac").read_bytes()
    (tmp_path / "text.m4a").write_text("not audio at all\n" * 40)
    (tmp_path / "cut.m4a").write_bytes(good[:len(good) // 2])          # the index (moov) is at the end
    write_with_pyav(tmp_path / "opus.webm", "libopus", rate=48_000)
    damaged = (tmp_path / "opus.webm").read_bytes()
    (tmp_path / "damaged.webm").write_bytes(damaged[:600] + bytes(range(256)) * 40)
    with av.open(str(tmp_path / "silent_film.mp4"), "w") as out:
        picture = out.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            for packet in picture.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8),
                                                                     format="rgb24")):
                out.mux(packet)
        for packet in picture.encode():
            out.mux(packet)
    capfd.readouterr()

    assert audio.decode(tmp_path / "text.m4a", TARGET_SR).reason == audio.NOT_AUDIO
    cut = audio.decode(tmp_path / "cut.m4a", TARGET_SR)
    assert cut.reason == "truncated or corrupt audio (FFmpeg: moov atom not found)"
    film = audio.decode(tmp_path / "silent_film.mp4", TARGET_SR)
    assert film.reason == "not an audio file (no audio stream, only video)"
    broken = audio.decode(tmp_path / "damaged.webm", TARGET_SR)
    assert broken.ok
    assert "decoder said (" in broken.warning and "cut off (decoded" in broken.warning
    with pytest.raises(BadInputError, match="moov atom not found"):
        audio.probe(tmp_path / "cut.m4a")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_folder_with_m4a_and_video_is_embedded_in_full(tmp_path: Path) -> None:
    """The issue's case: a folder of 4 sounds with one .m4a was "computed 3, failed 0"."""
    root = tmp_path / "sounds"
    (root / "birds").mkdir(parents=True)
    sf.write(root / "birds" / "robin.wav", sine(1.0, freq=880.0), SR)
    sf.write(root / "rain.flac", sine(1.0, freq=220.0), SR)
    write_with_pyav(root / "door.m4a", "aac", seconds=1.0, title="Door slam")
    write_with_pyav(root / "street.mkv", "libopus", rate=48_000, seconds=1.0, video=True)
    (root / "broken.m4a").write_bytes((root / "door.m4a").read_bytes()[:300])
    (root / "notes.txt").write_text("not a sound")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")

    corpus = read_audio_folder(root)
    assert sorted(corpus.ids) == ["birds/robin.wav", "broken.m4a", "door.m4a", "rain.flac", "street.mkv"]
    table = corpus.table.set_index("id")
    assert table.loc["door.m4a", "title"] == "Door slam"               # the container's title tag
    assert table.loc["door.m4a", "duration_s"] == pytest.approx(1.0, abs=0.02)
    assert table.loc["street.mkv", "duration_s"] == pytest.approx(1.0, abs=0.02)
    assert any("cover.jpg" in note and "notes.txt" in note for note in corpus.notes), corpus.notes

    summary = extract(corpus, tmp_path / "store", OfflineEncoder(), batch_size=2)
    assert (summary.computed, summary.failed) == (4, 1)
    assert summary.failures == {"truncated or corrupt audio": ["broken.m4a (FFmpeg: moov atom not found)"]}
    assert "broken.m4a" in summary.format()
