"""FFmpeg decoding through PyAV, for the files libsndfile does not recognise.

AAC and ALAC in M4A/MP4, WMA, Opus and Vorbis in Matroska/WebM/MP4, AC-3, and the first audio
stream of a video file. PyAV's wheel carries FFmpeg's libraries, so nothing is needed on the system.
:func:`bst_core.audio.decode` calls :func:`read_ffmpeg` only after libsndfile said "format not
recognised", so every format libsndfile reads keeps its decoder (and its exact samples).

The samples come out of FFmpeg as planar float at the stream's own rate; the channels are averaged
and the rate changed with the same libsoxr stream as the libsndfile path, so both paths give the
same mono signal for the same audio. Packets FFmpeg cannot decode are skipped (as the ``ffmpeg``
tool does) and what FFmpeg logs while reading the file becomes the file's reason or warning
("decoder said (...)"); FFmpeg's log is switched on only for that time and never reaches stderr.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import av.logging
import numpy as np
import soxr

from bst_core.audio import (
    CORRUPT,
    NOT_AUDIO,
    PERMISSION,
    RESAMPLE_QUALITY,
    AudioInfo,
    _Read,
    format_duration,
)
from bst_core.console import summarize_lines

_PADDING_S = 0.1
"""Decoded audio past the length the header states, up to this, is the codec's padding and is dropped."""
_LOG_LOCK = threading.Lock()   # FFmpeg's log level is process-wide
_MISDETECTED = "misdetection possible"
_TAG_NAMES = {"title": "title", "artist": "artist", "album": "album", "genre": "genre", "comment": "comment",
              "description": "comment", "date": "date", "copyright": "copyright", "track": "tracknumber",
              "license": "license"}
"""Container tags kept for a folder's table, under the names libsndfile gives the same tags."""


@contextlib.contextmanager
def _ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's warnings and errors while the block runs, as ``(level, component, message)``."""
    with _LOG_LOCK:
        previous = av.logging.get_level()
        repeated = av.logging.get_skip_repeated()
        av.logging.set_level(av.logging.WARNING)
        av.logging.set_skip_repeated(False)
        try:
            with av.logging.Capture() as logs:
                yield logs
        finally:
            av.logging.set_level(previous)
            av.logging.set_skip_repeated(repeated)


def _said(logs: list[tuple[int, str, str]]) -> str:
    """The log in a few words, repeats counted ("" when FFmpeg said nothing)."""
    return summarize_lines([message for level, _, message in logs if level <= av.logging.WARNING])


def _open_reason(exc: BaseException, logs: list[tuple[int, str, str]]) -> str:
    """Why FFmpeg could not open the file, in the words of :mod:`bst_core.audio`."""
    if isinstance(exc, PermissionError):
        return PERMISSION
    said = _said(logs)
    if isinstance(exc, av.error.InvalidDataError) and (not said or _MISDETECTED in said):
        return NOT_AUDIO            # no container format claims the bytes
    detail = said or getattr(exc, "strerror", "") or str(exc)
    return f"{CORRUPT} (FFmpeg: {detail})"


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The stream's length from the headers (None when no header says)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def read_ffmpeg(path: Path, target_sr: int, max_seconds: float | None) -> _Read:
    """Decode the first audio stream of ``path`` to mono float32 at ``target_sr`` (see the module doc)."""
    empty = np.zeros(0, np.float32)
    with _ffmpeg_log() as logs:
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            return _Read(empty, error=_open_reason(exc, logs))
        with container:
            stream = _audio_stream(container)
            if stream is None:
                kinds = sorted({s.type for s in container.streams})
                only = f"only {' and '.join(kinds)}" if kinds else "no streams at all"
                return _Read(empty, error=f"{NOT_AUDIO} (no audio stream, {only})")
            read = _decode_stream(container, stream, target_sr, max_seconds)
        said = _said(logs)
    if said:
        if read.error and not read.frames_read:
            read.error = f"{read.error.split(' (', 1)[0]} (FFmpeg: {said})"
        else:
            read.warnings = [*(read.warnings or []), f"decoder said ({said})"]
    return read


def _decode_stream(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                   target_sr: int, max_seconds: float | None) -> _Read:
    source_sr = int(stream.codec_context.sample_rate or stream.rate or 0)
    channels = int(stream.codec_context.layout.nb_channels) if stream.codec_context.layout else 0
    if source_sr <= 0:
        return _Read(np.zeros(0, np.float32), error=f"{CORRUPT} (FFmpeg: no sample rate)")
    duration = _duration_s(container, stream)
    want = math.inf if max_seconds is None else math.ceil(max_seconds * source_sr)
    planar = av.AudioResampler(format="fltp")   # float, the stream's own rate and channels
    resampler = None if source_sr == target_sr else soxr.ResampleStream(
        source_sr, target_sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    pieces: list[np.ndarray] = []
    got, bad_packets, error = 0, 0, ""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad_packets += 1   # a damaged packet: skip it, as the ffmpeg tool does
                continue
            for frame in frames:
                for block in planar.resample(frame):
                    samples = block.to_ndarray()
                    mono = samples[0] if samples.shape[0] == 1 else samples.mean(axis=0, dtype=np.float32)
                    mono = np.ascontiguousarray(mono[:max(0, int(min(want - got, len(mono))))], np.float32)
                    got += len(mono)
                    pieces.append(mono if resampler is None else resampler.resample_chunk(mono, last=False))
            if got >= want:
                break
    except av.FFmpegError as exc:   # the container itself breaks off: keep what was decoded
        error = f"{CORRUPT} (FFmpeg: {getattr(exc, 'strerror', '') or exc})"
    if resampler is not None:
        pieces.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    warnings = [f"skipped {bad_packets} damaged packets"] if bad_packets else []
    if duration is None:
        frames_total = got
        if got >= want:
            warnings.append(f"truncated to first {format_duration(got / source_sr)} (file length unknown)")
    else:
        frames_total = round(duration * source_sr)
        if 0 < got - frames_total <= _PADDING_S * source_sr:   # encoder padding past the stated end (AAC)
            samples = samples[:round(frames_total * target_sr / source_sr)]
            got = frames_total
    cap = int(min(frames_total, want))
    return _Read(np.ascontiguousarray(samples, np.float32), source_sr, channels, frames_total, cap, got,
                 error, warnings)


def _header(container: av.container.InputContainer) -> AudioInfo | str:
    stream = _audio_stream(container)
    if stream is None:
        return f"{NOT_AUDIO} (no audio stream)"
    duration = _duration_s(container, stream)
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    channels = int(stream.codec_context.layout.nb_channels) if stream.codec_context.layout else 0
    return AudioInfo(float("nan") if duration is None else duration, rate, channels)


def probe_ffmpeg(path: Path) -> AudioInfo | str:
    """Duration, rate and channels of the first audio stream from the headers, or the reason there are none."""
    with _ffmpeg_log() as logs:
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            return _open_reason(exc, logs)
        with container:
            return _header(container)


def ffmpeg_tags(path: str | Path) -> tuple[dict[str, str], float]:
    """Embedded text tags (named as libsndfile names them) and the duration in seconds of a file
    FFmpeg reads; ``({}, NaN)`` when it is not one (the file's reason comes at extraction)."""
    tags: dict[str, str] = {}
    with _ffmpeg_log():
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError):
            return {}, float("nan")
        with container:
            found = _header(container)
            if not isinstance(found, AudioInfo):
                return {}, float("nan")
            for key, value in container.metadata.items():
                name = _TAG_NAMES.get(key.lower())
                if name and str(value).strip() and name not in tags:
                    tags[name] = str(value).strip()
    return tags, found.duration_s
