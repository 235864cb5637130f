"""Decode audio files to mono float32 at the rate an encoder wants, with reasons a person reads.

Formats: libsndfile (through ``soundfile``) is tried first: WAV (8/16/24/32-bit int, float), FLAC,
OGG/Vorbis and Opus, AIFF, and MP3 from libsndfile 1.1 on (``soundfile.available_formats()`` lists
them). A file libsndfile does not recognise goes to FFmpeg through PyAV (``av``, whose wheel carries
its own FFmpeg: no system FFmpeg needed): AAC and ALAC in M4A/MP4, WMA, Opus or Vorbis in Matroska,
WebM or MP4, AC-3, and the first audio stream of video files (.mp4, .mkv, .webm, .mov, ...). What
FFmpeg logs while decoding becomes the file's reason or warning ("decoder said (...)"), never raw
stderr. Any channel count is averaged to mono.

Resampling uses libsoxr (``soxr``, the resampler of SoX) at its "HQ" setting: a band-limited
polyphase resampler with a steep anti-alias filter, so no aliasing or droop in the pass band for
any rate pair (44.1 → 48 kHz as well as 44.1 → 22.05 kHz); it is fast C code, streams (a 2-hour
file never needs to be in memory at its source rate) and is actively maintained (librosa's
default resampler). Linear interpolation would alias; ``scipy.signal.resample`` (FFT) needs the
whole signal at once and rings at the edges.

Failures never raise: :func:`decode` returns ``status="failed"`` with a ``reason`` in words
("empty file (0 bytes)", "not an audio file", ...). Odd but valid audio (a 5 ms click, digital
silence, a file cut to the first ``max_seconds``) is ``status="ok"`` with a ``warning``. Reasons
and warnings are "<words> (<detail>)": the words before " (" are the same for every file with that
problem, so reports can group by them. Several warnings are joined by "; ".
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from bst_core import jobs
from bst_core.errors import BadInputError
from bst_core.jobs import Job

SOUNDFILE_EXTENSIONS: frozenset[str] = frozenset({
    ".wav", ".wave", ".bwf", ".rf64", ".w64", ".flac", ".ogg", ".oga", ".opus",
    ".aif", ".aiff", ".aifc", ".mp3", ".au", ".snd", ".caf",
})
"""Extensions of the formats libsndfile reads."""

FFMPEG_EXTENSIONS: frozenset[str] = frozenset({
    ".m4a", ".m4b", ".aac", ".alac", ".mp4", ".m4v", ".mov", ".3gp", ".3g2",   # MPEG-4 / QuickTime
    ".wma", ".wmv", ".asf",                                                  # Windows Media
    ".mkv", ".mka", ".webm",                                                 # Matroska
    ".ac3", ".eac3", ".mp2", ".amr", ".ape", ".wv", ".mpc", ".tta", ".dts",
    ".avi", ".flv", ".mpg", ".mpeg", ".vob",                                 # other video containers
})
"""Extensions of what only FFmpeg (PyAV) reads: their first audio stream is decoded."""

AUDIO_EXTENSIONS: frozenset[str] = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS
"""File name extensions treated as audio by the folder and CSV readers."""

RESAMPLE_QUALITY = "HQ"
"""libsoxr quality preset used for every resampling."""

VERY_SHORT_S = 0.1
"""Clips shorter than this decode fine but get a "very short" warning."""

_BLOCK_FRAMES = 1 << 18   # ~6 s at 44.1 kHz: most clips are one block; long files stream
_SALVAGE_FRAMES = 4096    # block size after a read error, to keep what precedes the damage

# Reasons (the part before " (" is the group key used by reports).
EMPTY_FILE = "empty file (0 bytes)"
NOT_AUDIO = "not an audio file"
CORRUPT = "truncated or corrupt audio"
PERMISSION = "permission denied"
NOT_FOUND = "file not found"
NOT_A_FILE = "not a file"
NO_SAMPLES = "no audio samples in the file"


@dataclass(frozen=True)
class Decoded:
    """Result of :func:`decode`.

    ``samples`` is float32 mono at ``sr`` (empty when failed); ``duration_s`` is the length of
    the whole file as its header states (even when only the first ``max_seconds`` were read).
    ``reason`` says why decoding failed; ``warning`` notes odd but usable audio.
    """

    samples: np.ndarray
    sr: int
    duration_s: float
    status: str                 # "ok" | "failed"
    reason: str = ""
    warning: str = ""
    source_sr: int = 0
    channels: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class AudioInfo(NamedTuple):
    """Cheap header facts from :func:`probe`."""

    duration_s: float
    sr: int
    channels: int


def format_duration(seconds: float) -> str:
    """"5 ms", "2.4 s", "12 min 3 s", "2 h 0 min": short words for reasons and warnings."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _failed(reason: str, target_sr: int) -> Decoded:
    return Decoded(np.zeros(0, np.float32), target_sr, 0.0, "failed", reason)


def _precheck(path: Path) -> str:
    """Reason the file cannot even be opened, or "" when it looks openable."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return NOT_FOUND
    except PermissionError:
        return PERMISSION
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if not path.is_file():
        return NOT_A_FILE
    if stat.st_size == 0:
        return EMPTY_FILE
    if not os.access(path, os.R_OK):
        return PERMISSION
    return ""


def describe_error(exc: BaseException) -> str:
    """Words for an exception raised while opening or reading an audio file."""
    if isinstance(exc, PermissionError):
        return PERMISSION
    if isinstance(exc, FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, sf.LibsndfileError):
        message = (exc.error_string or "").strip()
        if "Permission denied" in message:
            return PERMISSION
        if exc.code == 1:                    # SF_ERR_UNRECOGNISED_FORMAT
            return NOT_AUDIO
        return f"{CORRUPT} (libsndfile: {message})" if message else CORRUPT
    return f"{CORRUPT} ({exc})"


_SHORT_DATA = re.compile(r"^data\s*:\s*\d+\s*\(should be", re.MULTILINE)


def _header_promises_more(handle: sf.SoundFile) -> bool:
    """libsndfile's log says the file is shorter than its header (cut-off WAV/AIFF, OGG)."""
    log = handle.extra_info
    return bool(_SHORT_DATA.search(log)) or "lacks an end-of-stream bit" in log


@dataclass
class _Read:
    """What one decoder read of a file, before the common checks of :func:`decode`.

    ``frames``: the file's length in source frames as its header states; ``cap``: how many of them
    were wanted; ``frames_read``: how many were read; ``error``: why reading stopped early ("" when
    it did not); ``unrecognised``: libsndfile does not know the format (FFmpeg is tried next).
    """

    samples: np.ndarray
    source_sr: int = 0
    channels: int = 0
    frames: int = 0
    cap: int = 0
    frames_read: int = 0
    error: str = ""
    warnings: list[str] | None = None
    unrecognised: bool = False


def decode(path: str | os.PathLike[str], target_sr: int, *, max_seconds: float | None = None) -> Decoded:
    """Read ``path`` as mono float32 at ``target_sr``; never raises for a bad file.

    libsndfile first; FFmpeg (PyAV) when libsndfile does not recognise the format. Reads in blocks
    and stops after ``max_seconds`` (warning "truncated to first N s"), so a 2-hour file costs only
    what is kept. A file that breaks off midway keeps what was readable (warning "cut off
    (decoded ...)"); a file of which nothing is readable is ``failed``.
    """
    path = Path(path)
    reason = _precheck(path)
    if reason:
        return _failed(reason, target_sr)
    from bst_core.console import capture_library_output

    # Python warnings and what the C decoders (libmpg123, FFmpeg, ...) print become this file's words.
    with capture_library_output() as said:
        read = _read_soundfile(path, target_sr, max_seconds)
        if read.unrecognised:
            from bst_core.audio_ffmpeg import read_ffmpeg

            read = read_ffmpeg(path, target_sr, max_seconds)
    warnings = list(read.warnings or [])
    samples, source_sr, frames_read, cap = read.samples, read.source_sr, read.frames_read, read.cap
    duration_s = read.frames / source_sr if source_sr else 0.0
    if read.error and not frames_read:
        return _failed(said.fold_into(read.error), target_sr)
    if read.error or cap - frames_read > max(0.01 * cap, 0.05 * source_sr):
        warnings.append(f"cut off (decoded {format_duration(frames_read / source_sr)} "
                        f"of {format_duration(duration_s)})")
    if not len(samples):
        return _failed(said.fold_into(NO_SAMPLES), target_sr)
    if frames_read >= cap and cap < read.frames:
        warnings.append(f"truncated to first {format_duration(cap / source_sr)} "
                        f"(file is {format_duration(duration_s)})")
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        warnings.append("non-finite samples set to 0")
    if duration_s < VERY_SHORT_S:
        warnings.append(f"very short ({format_duration(duration_s)})")
    if not np.any(samples):
        warnings.append("digital silence")
    warnings.extend(said.notes)
    return Decoded(samples, target_sr, duration_s, "ok", "", "; ".join(warnings), source_sr, read.channels)


def _read_soundfile(path: Path, target_sr: int, max_seconds: float | None) -> _Read:
    """Decode with libsndfile (``unrecognised`` when it does not know the format)."""
    try:
        with sf.SoundFile(path) as handle:
            source_sr, channels, frames = handle.samplerate, handle.channels, handle.frames
            cap = frames if max_seconds is None else min(frames, math.ceil(max_seconds * source_sr))
            warnings = (["file is shorter than its header says (cut off?)"] if _header_promises_more(handle)
                        else [])
            samples, frames_read, read_error = _read_mono(handle, cap, source_sr, target_sr)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if isinstance(exc, sf.LibsndfileError) and exc.code == 1:   # SF_ERR_UNRECOGNISED_FORMAT
            return _Read(np.zeros(0, np.float32), unrecognised=True)
        return _Read(np.zeros(0, np.float32), error=describe_error(exc))
    return _Read(samples, source_sr, channels, frames, cap, frames_read,
                 describe_error(read_error) if read_error is not None else "", warnings)


def _read_mono(handle: sf.SoundFile, cap: int, source_sr: int,
               target_sr: int) -> tuple[np.ndarray, int, BaseException | None]:
    """Stream up to ``cap`` frames, averaging channels and resampling block by block.

    Returns the samples, the number of source frames read, and the read error that stopped it
    early (None when it read to the end or to ``cap``).
    """
    stream = None if source_sr == target_sr else soxr.ResampleStream(
        source_sr, target_sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    pieces: list[np.ndarray] = []
    remaining = cap
    error: BaseException | None = None
    block_frames = _BLOCK_FRAMES
    while remaining > 0:
        start = cap - remaining
        try:
            block = handle.read(min(block_frames, remaining), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            if block_frames > _SALVAGE_FRAMES and handle.seekable():
                # Damaged stream: go back and salvage what decodes, in small steps.
                handle.seek(start)
                block_frames = _SALVAGE_FRAMES
                continue
            error = exc
            break
        if not len(block):
            break
        remaining -= len(block)
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        pieces.append(mono if stream is None else stream.resample_chunk(mono, last=False))
    if stream is not None:
        pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), cap - remaining, error


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration, sample rate and channels from the header (cheap); BadInputError if unreadable."""
    path = Path(path)
    reason = _precheck(path)
    if not reason:
        try:
            info = sf.info(str(path))
        except sf.LibsndfileError as exc:
            if exc.code != 1:   # libsndfile knows the format but not this file; else FFmpeg's turn
                reason = describe_error(exc)
            else:
                from bst_core.audio_ffmpeg import probe_ffmpeg

                found = probe_ffmpeg(path)
                if isinstance(found, AudioInfo):
                    return found
                reason = found
        except (RuntimeError, OSError) as exc:
            reason = describe_error(exc)
        else:
            return AudioInfo(info.frames / info.samplerate, info.samplerate, info.channels)
    raise BadInputError(f"{path}: {reason}. Check that the file is a readable audio file.")


def ffmpeg_tags(path: str | os.PathLike[str]) -> tuple[dict[str, str], float]:
    """Tags and duration of a file only FFmpeg reads (:func:`bst_core.audio_ffmpeg.ffmpeg_tags`; PyAV is
    imported on first use)."""
    from bst_core.audio_ffmpeg import ffmpeg_tags as read_tags

    return read_tags(Path(path))


def envelope(samples: np.ndarray, sr: int, points: int = 1600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, mins, maxs)`` of ``samples``: at most ``points`` min/max pairs for drawing a waveform.

    Each pair covers ``step = ceil(len / points)`` samples (the last one padded with its final
    sample); ``times`` is the start of each pair in seconds.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not len(x):
        empty = np.zeros(0, np.float32)
        return empty.astype(np.float64), empty, empty
    step = max(1, math.ceil(len(x) / max(1, points)))
    pad = (-len(x)) % step
    if pad:
        x = np.concatenate([x, np.full(pad, x[-1], np.float32)])
    grid = x.reshape(-1, step)
    times = np.arange(len(grid), dtype=np.float64) * step / sr
    return times, grid.min(axis=1), grid.max(axis=1)


def probe_durations(paths: Sequence[str | os.PathLike[str]] | np.ndarray, job: Job | None = None, *,
                    batch: int = 256) -> np.ndarray:
    """Durations in seconds from the file headers (NaN where a path is empty or unreadable).

    Reports progress per batch as stage ``"durations"`` with ``positions=(start, stop)`` and
    ``seconds`` (that batch's durations), so a table can fill in as it goes; cancellable.
    """
    out = np.full(len(paths), np.nan)
    for start in range(0, len(paths), batch):
        jobs.check(job)
        stop = min(start + batch, len(paths))
        for k in range(start, stop):
            if paths[k]:
                with contextlib.suppress(BadInputError):
                    out[k] = probe(paths[k]).duration_s
        jobs.report(job, "durations", stop, len(paths), positions=(start, stop), seconds=out[start:stop].copy())
    return out


def spectrogram(samples: np.ndarray, sr: int, *, n_fft: int = 1024, hop: int = 256, max_frames: int = 2000,
                floor_db: float = -100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude STFT in dB for display: ``(freqs (F,), times (T,), db (F, T))``.

    Hann window; the hop grows for long signals so at most ``max_frames`` columns are made.
    dB is relative to full scale (a full-scale sine ≈ 0 dB), clipped at ``floor_db``.
    """
    x = np.asarray(samples, dtype=np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n_frames = 1 + (len(x) - n_fft) // hop
    if n_frames > max_frames:
        hop = math.ceil((len(x) - n_fft) / (max_frames - 1))
        n_frames = 1 + (len(x) - n_fft) // hop
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames] * window
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) * (2.0 / window.sum())
    db = np.maximum(20.0 * np.log10(np.maximum(magnitude, 1e-12)), floor_db).astype(np.float32)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    times = (np.arange(n_frames) * hop + n_fft / 2) / sr
    return freqs, times, db.T
