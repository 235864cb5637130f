"""Audition without a sound device: the playhead runs on a silent clock, Play reads Stop, Right replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt

from bst_gui.audition import PLAY_BUTTON_TEXT, PLAY_TEXT
from bst_gui.playback import AudioOutput, Audition, PlaybackBuffer

pytestmark = pytest.mark.gui

RATE = 1000


class NoDevice:
    def query_devices(self, kind: str | None = None) -> dict:
        raise RuntimeError("Error querying device -1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def silent() -> tuple[Audition, FakeClock]:
    clock = FakeClock()
    audition = Audition(AudioOutput(RATE, sounddevice=NoDevice(), clock=clock))
    audition.set_clip("a", np.zeros(2 * RATE, np.float32))      # 2 s
    return audition, clock


def test_buffer_advance_moves_like_the_sound_card() -> None:
    buffer = PlaybackBuffer()
    buffer.start(np.zeros(10, np.float32))
    buffer.advance(4)
    assert buffer.position == 4 and buffer.playing
    buffer.advance(10)
    assert buffer.position == 10 and not buffer.playing         # the end stops it
    buffer.loop = True
    buffer.start(np.zeros(10, np.float32), 8)
    buffer.advance(5)
    assert buffer.position == 3 and buffer.playing              # a loop wraps


def test_silent_playback_moves_the_playhead_at_real_time_speed(qtbot: Any, silent) -> None:
    audition, clock = silent
    positions: list[float] = []
    states: list[bool] = []
    reasons: list[str] = []
    audition.position_changed.connect(positions.append)
    audition.state_changed.connect(states.append)
    audition.silent.connect(reasons.append)
    assert audition.play() is False                              # nothing is heard ...
    assert audition.playing and states == [True]                 # ... but it plays
    assert len(reasons) == 1 and "no audio output device" in reasons[0]
    clock.now += 0.5
    audition.poll()
    assert positions[-1] == pytest.approx(0.5, abs=1 / RATE)
    clock.now += 0.75
    audition.poll()
    assert positions[-1] == pytest.approx(1.25, abs=1 / RATE)
    audition.replay()                                            # Right: from the start
    assert positions[-1] == 0.0 and audition.playing
    clock.now += 0.25
    audition.poll()
    assert positions[-1] == pytest.approx(0.25, abs=1 / RATE)
    clock.now += 5                                               # past the end: stops by itself
    audition.poll()
    assert not audition.playing and states == [True, False]
    audition.set_loop(True)
    audition.play()
    clock.now += 2.5
    audition.poll()
    assert audition.playing and audition.output.position_s == pytest.approx(0.5, abs=1 / RATE)
    audition.stop()
    assert not audition.playing and states[-1] is False
    assert len(reasons) == 1                                     # said once


def test_the_poll_timer_drives_the_silent_clock(qtbot: Any) -> None:
    audition = Audition(AudioOutput(RATE, sounddevice=NoDevice()))   # the real clock
    audition.set_clip("a", np.zeros(60 * RATE, np.float32))
    positions: list[float] = []
    audition.position_changed.connect(positions.append)
    audition.play()
    qtbot.waitUntil(lambda: len(positions) > 3 and positions[-1] > 0, timeout=5000)
    assert positions == sorted(positions)                         # it only moves forward
    audition.close()


def _close_and_settle(window) -> None:
    """Close ``window`` and let every job and import it started end (a thread outliving its window aborts)."""
    from PySide6.QtCore import QTimer

    from bst_gui.jobs import JobRunner, warm_up_imports

    for timer in window.findChildren(QTimer):
        timer.stop()
    window.close()
    import shiboken6

    for runner in window.findChildren(JobRunner):
        if not shiboken6.isValid(runner):   # deleted with its view while the window closed
            continue
        if runner.busy:
            runner.cancel()
        assert runner.wait(60_000), f"job {runner.title!r} did not end"
    warm_up_imports().join(120)      # the window's background imports end inside the test, not in teardown


@pytest.fixture()
def window(qtbot: Any, tmp_path: Path):
    from bst_gui.main_window import MainWindow
    from bst_gui.settings import Settings

    clock = FakeClock()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings, AudioOutput(sounddevice=NoDevice(), clock=clock))
    win.clock = clock  # type: ignore[attr-defined]
    win.show_error = lambda *a, **k: pytest.fail(f"error shown: {a}")
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    _close_and_settle(win)


def test_without_sound_play_reads_stop_and_right_replays_from_the_start(qtbot: Any, window, bsd_root: Path) -> None:
    window.open_source(bsd_root)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=120_000)
    assert window.silent_label.isVisibleTo(window)                # the notice stays
    button = next(a for a in window._toolbar.actions() if a.text() in PLAY_BUTTON_TEXT)
    assert window.play_action.text() == PLAY_TEXT[False] and button.text() == PLAY_BUTTON_TEXT[False]
    table = window.library_view.table
    window.library_view.select_row(0)
    table.setFocus()
    qtbot.waitUntil(lambda: window.audition.clip_id == window.current_id() and window.audition.loaded,
                    timeout=10_000)
    qtbot.keyClick(table, Qt.Key.Key_Space)
    assert window.audition.playing
    assert window.play_action.text() == "Stop" and button.text() == "■ Stop"
    assert "no sound output" in button.toolTip()
    said = window.statusBar().currentMessage()
    assert said.startswith("Playback is silent (") and "no sound:" not in said, said
    length = window.audition.output.buffer.length / window.audition.samplerate
    window.clock.now += length / 2
    window.audition.poll()
    assert window.audition.output.position_s == pytest.approx(length / 2, abs=0.001)
    qtbot.keyClick(table, Qt.Key.Key_Right)                      # replay from the start
    assert window.audition.playing and window.audition.output.position_s == 0.0
    window.clock.now += length / 4
    window.audition.poll()
    assert window.audition.output.position_s == pytest.approx(length / 4, abs=0.001)
    qtbot.keyClick(table, Qt.Key.Key_Space)                      # Space again stops
    assert not window.audition.playing
    assert window.play_action.text() == PLAY_TEXT[False] and button.text() == PLAY_BUTTON_TEXT[False]
