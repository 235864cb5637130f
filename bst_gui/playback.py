"""Audition: play a clip through sounddevice, poll the position for the playhead.

The audio callback (:meth:`PlaybackBuffer.fill`) runs on PortAudio's thread and touches only
numpy arrays and Python ints under a tiny lock — never a Qt object. :class:`Audition` (UI thread)
polls the position with a ~30 Hz QTimer and emits signals for the playhead. Without PortAudio or
without an output device the app still runs: :attr:`AudioOutput.reason` says why it is silent, and
the playhead still moves at real-time speed (the poll advances the buffer by the time elapsed, as a
sound card would), so keyboard audition can be followed by eye.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

DEFAULT_SAMPLERATE = 44100
POLL_MS = 33


class PlaybackBuffer:
    """The samples being played and the read position: the only state the audio thread sees."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples = np.zeros(0, dtype=np.float32)
        self._position = 0
        self._playing = False
        self.loop = False

    def start(self, samples: np.ndarray, position: int = 0) -> None:
        with self._lock:
            self._samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
            self._position = int(min(max(position, 0), len(self._samples)))
            self._playing = len(self._samples) > 0

    def stop(self) -> None:
        with self._lock:
            self._playing = False

    def seek(self, position: int) -> None:
        with self._lock:
            self._position = int(min(max(position, 0), len(self._samples)))

    @property
    def position(self) -> int:
        return self._position

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def length(self) -> int:
        return len(self._samples)

    def advance(self, frames: int) -> None:
        """Move the position ``frames`` on, as :meth:`fill` would, without producing samples (the
        silent clock: no sound device)."""
        with self._lock:
            if not self._playing or frames <= 0:
                return
            length = len(self._samples)
            position = self._position + int(frames)
            if position >= length:
                if self.loop and length:
                    position %= length
                else:
                    position, self._playing = length, False
            self._position = position

    def fill(self, out: np.ndarray) -> None:
        """Write the next ``len(out)`` frames into ``out`` (frames × channels); silence when idle."""
        frames = len(out)
        with self._lock:
            samples, position, playing, loop = self._samples, self._position, self._playing, self.loop
            written = 0
            while playing and written < frames:
                take = min(frames - written, len(samples) - position)
                if take > 0:
                    out[written:written + take] = samples[position:position + take, None]
                    written += take
                    position += take
                if position >= len(samples):
                    if loop and len(samples):
                        position = 0
                    else:
                        playing = False
            out[written:] = 0
            self._position, self._playing = position, playing

    def callback(self, outdata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        """sounddevice OutputStream callback."""
        self.fill(outdata)


class AudioOutput:
    """One sounddevice output stream (mono float32), opened on first play and kept running.

    ``available`` is False with a ``reason`` in words when PortAudio or an output device is missing
    or the stream cannot start; then :meth:`play` returns False (nothing is heard) but the buffer
    still plays on a silent clock: :meth:`tick` (called by the UI's poll) moves its position by the
    time elapsed on ``clock`` (``time.monotonic``; tests pass their own).
    """

    def __init__(self, samplerate: int | None = None, *, sounddevice: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buffer = PlaybackBuffer()
        self.reason = ""
        self._stream: Any = None
        self._clock = clock
        self._ticked_at = 0.0            # clock time up to which the silent clock has advanced
        self._sd = sounddevice
        self.samplerate = samplerate or DEFAULT_SAMPLERATE
        if self._sd is None:
            try:
                import sounddevice as sd
            except OSError as exc:          # the PortAudio library is not installed
                self.reason = f"no sound: PortAudio is not installed ({exc})"
                return
            except ImportError:
                self.reason = "no sound: the sounddevice package is not installed"
                return
            self._sd = sd
        try:
            device = self._sd.query_devices(kind="output")
        except Exception as exc:  # PortAudioError, ValueError: no default output device
            self.reason = f"no sound: no audio output device ({_first_line(exc)})"
            return
        if samplerate is None:
            self.samplerate = int(device.get("default_samplerate") or DEFAULT_SAMPLERATE)

    @property
    def available(self) -> bool:
        return not self.reason

    def _ensure_stream(self) -> bool:
        if self._stream is not None:
            return True
        if not self.available:
            return False
        try:
            stream = self._sd.OutputStream(samplerate=self.samplerate, channels=1, dtype="float32",
                                           callback=self.buffer.callback)
            stream.start()
        except Exception as exc:  # device busy, unsupported rate, ...
            self.reason = f"no sound: the audio output could not start ({_first_line(exc)})"
            return False
        self._stream = stream
        return True

    @property
    def heard(self) -> bool:
        """A stream is running: what plays is heard (else the silent clock moves the position)."""
        return self._stream is not None

    def play(self, samples: np.ndarray, start_s: float = 0.0) -> bool:
        """Play ``samples`` (mono, at :attr:`samplerate`) from ``start_s``; False when silent (the
        position then moves on the silent clock)."""
        heard = self._ensure_stream()
        self.buffer.start(samples, int(start_s * self.samplerate))
        self._ticked_at = self._clock()
        return heard

    def tick(self) -> None:
        """Silent: advance the position by the time elapsed since the last tick (a no-op when heard)."""
        if self.heard or not self.buffer.playing:
            return
        now = self._clock()
        frames = int((now - self._ticked_at) * self.samplerate)
        if frames > 0:
            self.buffer.advance(frames)
            self._ticked_at += frames / self.samplerate

    def stop(self) -> None:
        self.buffer.stop()

    def seek(self, seconds: float) -> None:
        self.tick()
        self.buffer.seek(int(seconds * self.samplerate))
        self._ticked_at = self._clock()

    @property
    def playing(self) -> bool:
        return self.buffer.playing

    @property
    def position_s(self) -> float:
        return self.buffer.position / self.samplerate

    def close(self) -> None:
        self.buffer.stop()
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:
                pass
            self._stream = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class Audition(QObject):
    """Playback for the UI: the current clip, play/stop/replay/seek, loop, playhead polling.

    A play request before the clip's samples arrived is remembered and honoured by
    :meth:`set_clip`. ``silent`` is emitted once with the reason when no sound can be made; the
    clip then plays on the silent clock (playhead, ``state_changed``, end of clip, loop all as if heard).
    """

    position_changed = Signal(float)     # seconds, ~30 Hz while playing
    state_changed = Signal(bool)         # playing
    silent = Signal(str)                 # reason, emitted once

    def __init__(self, output: AudioOutput | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.output = output if output is not None else AudioOutput()
        self.clip_id = ""
        self._samples: np.ndarray | None = None
        self._pending_play: float | None = None
        self._was_playing = False
        self._told_silent = False
        self._start_s = 0.0             # where play starts when stopped (set by seek)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def samplerate(self) -> int:
        return self.output.samplerate

    @property
    def playing(self) -> bool:
        return self.output.playing

    @property
    def loop(self) -> bool:
        return self.output.buffer.loop

    @property
    def loaded(self) -> bool:
        """The current clip's samples are there (it can play at once)."""
        return self._samples is not None

    def set_loop(self, on: bool) -> None:
        self.output.buffer.loop = bool(on)

    def set_clip(self, clip_id: str, samples: np.ndarray | None) -> None:
        """The clip to audition (``samples`` None while loading or when unplayable)."""
        if clip_id != self.clip_id:
            self.stop()
            self._pending_play = None
            self._start_s = 0.0
            self.clip_id = clip_id
        self._samples = samples
        if samples is not None and self._pending_play is not None:
            start, self._pending_play = self._pending_play, None
            self.play(start)

    def request_play(self, clip_id: str, start_s: float = 0.0) -> None:
        """Play ``clip_id`` as soon as its samples are there."""
        if clip_id != self.clip_id:
            self.set_clip(clip_id, None)
        if self._samples is None:
            self._pending_play = start_s
        else:
            self.play(start_s)

    def play(self, start_s: float | None = None) -> bool:
        """Play the clip from ``start_s`` (default: the last seek, else 0); True when it is heard.

        Silent (no sound device), it still plays on the silent clock and returns False."""
        if self._samples is None:
            if self.clip_id:
                self._pending_play = start_s or 0.0
            return False
        start = self._start_s if start_s is None else start_s
        heard = self.output.play(self._samples, start)
        if not heard:
            self._tell_silent()
        self._timer.start()
        self._set_state(self.output.playing)
        self.position_changed.emit(start)
        return heard

    def stop(self) -> None:
        self._pending_play = None
        self.output.stop()
        self._start_s = 0.0
        self._poll()

    def toggle(self) -> None:
        """Space: stop when playing, else play from the start (or the last seek)."""
        if self.playing:
            self.stop()
        elif self._pending_play is not None:
            self._pending_play = None
        else:
            self.play()

    def replay(self) -> None:
        self.play(0.0)

    def seek(self, seconds: float) -> None:
        """Move the playhead; keeps playing when playing, else the next play starts there."""
        seconds = max(0.0, float(seconds))
        if self.playing:
            self.output.seek(seconds)
        else:
            self._start_s = seconds
        self.position_changed.emit(seconds)

    def _tell_silent(self) -> None:
        if not self._told_silent:
            self._told_silent = True
            self.silent.emit(self.output.reason or "no sound")

    def poll(self) -> None:
        """What the ~30 Hz timer does: move the silent clock, emit the position and the state."""
        self._poll()

    def _poll(self) -> None:
        self.output.tick()
        playing = self.output.playing
        self.position_changed.emit(self.output.position_s if playing else self._start_s)
        if not playing:
            self._timer.stop()
        self._set_state(playing)

    def _set_state(self, playing: bool) -> None:
        if playing != self._was_playing:
            self._was_playing = playing
            self.state_changed.emit(playing)

    def close(self) -> None:
        self._timer.stop()
        self.output.close()
