"""The real main window, offscreen: open, cross-validate, confusion → clips, relabel, export, cancel."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt

from bst_core import taxonomy
from bst_core.errors import BadInputError
from bst_core.jobs import Progress
from bst_core.training import TrainConfig
from bst_gui.app import display_problem, main
from bst_gui.jobs import JobRunner, describe_error, format_eta, overall_fraction
from bst_gui.main_window import MainWindow
from bst_gui.playback import AudioOutput, Audition, PlaybackBuffer
from bst_gui.settings import Settings

pytestmark = pytest.mark.gui

SHORT_CV = TrainConfig(folds=2, epochs=2, patience=None, seed=3)
LABEL = "Tester_BST_task1_1"


class FakeStream:
    """Stands in for sounddevice.OutputStream: keeps the callback so tests can pull audio."""

    def __init__(self, *, samplerate: int, channels: int, dtype: str, callback: Any) -> None:
        self.samplerate, self.callback, self.started = samplerate, callback, False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass

    def pull(self, frames: int) -> np.ndarray:
        out = np.ones((frames, 1), np.float32)
        self.callback(out, frames, None, None)
        return out[:, 0]


class FakeSoundDevice:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def query_devices(self, kind: str | None = None) -> dict:
        return {"name": "fake output", "default_samplerate": 44100}

    def OutputStream(self, **kwargs: Any) -> FakeStream:
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


class NoDevice:
    def query_devices(self, kind: str | None = None) -> dict:
        raise RuntimeError("Error querying device -1")


@pytest.fixture()
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings, AudioOutput(sounddevice=FakeSoundDevice()))
    win.errors = []   # type: ignore[attr-defined]
    win.infos = []    # type: ignore[attr-defined]
    win.show_error = lambda title, message, details="": win.errors.append((title, message, details))
    win.show_info = lambda title, message: win.infos.append((title, message))
    win.confirm_close_during_job = lambda: True
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    if win.jobs.busy:
        win.jobs.cancel()
        win.jobs.wait(60_000)
    win.close()


def wait_job(qtbot: Any, win: MainWindow, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=timeout)


def open_source(qtbot: Any, win: MainWindow, path: Path) -> None:
    win.open_source(path)
    wait_job(qtbot, win)
    assert not win.errors, win.errors


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    """A finished 2-fold run on the synthetic BSD dataset (trained once for the module)."""
    from bst_core.sources import read_bsd_dataset
    from bst_core.training import cross_validate

    run_dir = tmp_path_factory.mktemp("runs") / "run"
    cross_validate(read_bsd_dataset(bsd_root), run_dir, SHORT_CV)
    return run_dir


# --- start, welcome, no display ----------------------------------------------------------------------

def test_welcome_page_offers_every_source_and_how_to_get_data(window: MainWindow) -> None:
    assert window.stack.currentWidget() is window.welcome
    assert set(window.welcome.buttons) == {"bsd", "evaluation", "folder", "csv", "demo"}
    text = " ".join(label.text() for label in window.welcome.findChildren(type(window.source_label)))
    assert "BSD10k" in text and "CLAP checkpoint" in text


def test_without_a_display_it_says_how_to_run(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    assert "xvfb-run bst-studio" in display_problem({}, "linux")
    assert display_problem({"DISPLAY": ":0"}, "linux") == ""
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") == ""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([]) == 2
    assert "xvfb-run" in capsys.readouterr().err


def test_recent_sources_and_layout_are_remembered(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                  tmp_path: Path) -> None:
    open_source(qtbot, window, bsd_root)
    window.close()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert settings.recent_sources()[0] == str(bsd_root)
    assert settings.window_state() is not None and settings.window_geometry() is not None


# --- library -------------------------------------------------------------------------------------------

def test_open_dataset_fills_the_table_with_coloured_classes(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_source(qtbot, window, bsd_root)
    assert window.stack.currentWidget() is window.library_view
    assert window.library.rowCount() == len(window.corpus) > 0
    truth_column = 3
    index = window.library.index(0, truth_column)
    key = window.library.data(index)
    assert key in taxonomy.CLASS_KEYS
    assert window.library.data(index, Qt.ItemDataRole.BackgroundRole).name() == taxonomy.colour(key)
    assert window.workspace is not None
    window.library_view.search.setText(f"truth:{key}")
    assert set(window.library.frame.set_index("id").loc[window.current_ids(), "truth"]) == {key}


def test_corrupt_sources_and_files_give_readable_messages(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                          tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\x01\x02 this is not a metadata table \xff\xfe")
    window.open_source(broken)
    wait_job(qtbot, window)
    assert window.errors, "a corrupt CSV must produce a message"
    _title, message, _details = window.errors[-1]
    assert "broken.csv" in message and "Traceback" not in message
    assert window.corpus is None

    copy = tmp_path / "bsd"
    shutil.copytree(bsd_root, copy)
    window.errors.clear()
    open_source(qtbot, window, copy)
    record = window.library.frame.iloc[0]
    Path(record["audio_path"]).write_bytes(b"RIFF....WAVEfmt this file is damaged" * 10)
    window.select_id(record["id"])
    qtbot.waitUntil(lambda: window.clip_panel.audio_state.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: "Cannot play" in window.clip_panel.audio_state.text(), timeout=10_000)
    assert "corrupt" in window.clip_panel.audio_state.text() or "not an audio" in window.clip_panel.audio_state.text()


# --- cross-validation, confusion cell, relabel ---------------------------------------------------------

def test_cross_validation_then_confusion_cell_shows_exactly_those_clips(qtbot: Any, window: MainWindow,
                                                                        bsd_root: Path, tmp_path: Path) -> None:
    open_source(qtbot, window, bsd_root)
    progress: list[Progress] = []
    window.jobs.progress.connect(progress.append)
    assert window.start_cross_validation(SHORT_CV, tmp_path / "run")
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    assert window.result is not None and len(window.result.fold_reports) == 2
    assert any("epoch" in p.data for p in progress)
    if window.training_curves is not None:
        assert window.training_curves.folds() == [1, 2]

    oof = window.result.oof
    pairs = oof.groupby(["truth", "prediction"]).size().sort_values()
    truth, pred = pairs.index[0]
    expected = set(oof.loc[(oof["truth"] == truth) & (oof["prediction"] == pred), "id"].astype(str))

    assert window.results_view is not None
    canvas = window.results_view.confusion.canvas
    window.results_dock.show()
    window.results_dock.raise_()
    qtbot.waitUntil(canvas.isVisible)
    rect = canvas.cell_rect(taxonomy.CLASS_INDEX[truth], taxonomy.CLASS_INDEX[pred])
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=rect.center())
    assert set(window.current_ids()) == expected
    assert window.current_id() in expected          # first clip selected, ready to audition
    assert window.library_view.table.hasFocus() or window.focusWidget() is window.library_view.table

    # a bar of the per-class chart filters by truth
    count = window.show_class(truth)
    assert count == int((oof["truth"] == truth).sum())


def test_relabel_keys_write_the_database_and_undo(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                  tmp_path: Path) -> None:
    if window.relabel is None:
        pytest.skip("bst_gui.relabel not available")
    open_source(qtbot, window, bsd_root)
    table = window.library_view.table
    window.library_view.select_row(0)
    table.setFocus()
    first = window.current_id()
    qtbot.keyClick(table, Qt.Key.Key_4)
    qtbot.keyClick(table, Qt.Key.Key_1)          # chord 4 1 = fx-o (class code 401)
    assert window.workspace.label_of(first) == "fx-o"
    assert window.library.record(first)["edited"] == "fx-o"
    assert window.library.record(first)["status"] == "edited"
    assert window.current_id() != first          # moved on to the next clip
    qtbot.keyClick(table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.workspace.label_of(first) == ""
    assert window.library.record(first)["edited"] == ""
    qtbot.keyClick(table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.workspace.label_of(first) == "fx-o"

    from bst_core.workspace import read_labels_csv

    exported = read_labels_csv(window.export_labels(tmp_path / "labels.csv"))
    assert exported.set_index("id").loc[first, "edited_label"] == "fx-o"
    assert len(exported) == len(window.corpus)


# --- predict + export ------------------------------------------------------------------------------------

def test_predict_evaluation_folder_and_export_a_valid_package(qtbot: Any, window: MainWindow, eval_root: Path,
                                                              trained_run: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core.submission import read_submission_csv, validate_package_dir

    open_source(qtbot, window, eval_root)
    window.load_run(trained_run)
    wait_job(qtbot, window)
    assert window.run_dir == trained_run
    assert window.predict_action.isEnabled()
    assert window.start_prediction()
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    assert window.export_action.isEnabled()
    first = window.current_ids()[0]
    assert window.library.probabilities(first) is not None

    package = window.export_package(tmp_path / "out", LABEL)
    assert validate_package_dir(package, window.corpus.ids) == []
    frame = read_submission_csv(package / f"{LABEL}.output.csv")
    assert frame["id"].tolist() == window.corpus.ids

    with pytest.raises(BadInputError):
        window.export_package(tmp_path / "out2", "not a label")

    # the Export action's dialog writes through export_package; a bad label is refused inline
    from PySide6.QtWidgets import QDialog

    from bst_gui import export_dialog

    answers = iter(["bad label!", "Tester_BST_task1_2"])
    refused: list[bool] = []

    def fill_and_accept(dialog: Any) -> int:
        dialog.folder_edit.setText(str(tmp_path / "via-dialog"))
        for label in answers:
            dialog.label_edit.setText(label)
            if dialog.try_accept():
                return QDialog.DialogCode.Accepted
            refused.append(True)
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(export_dialog.ExportDialog, "exec", fill_and_accept)
    written = window.ask_export()
    assert refused == [True]
    assert written == tmp_path / "via-dialog" / "task1" / "Tester_BST_task1_2"
    assert validate_package_dir(written, window.corpus.ids) == []


# --- cancel, close, errors ------------------------------------------------------------------------------

def test_cancel_keeps_earlier_results(qtbot: Any, window: MainWindow, bsd_root: Path, tmp_path: Path) -> None:
    open_source(qtbot, window, bsd_root)
    assert window.start_cross_validation(SHORT_CV, tmp_path / "first")
    wait_job(qtbot, window)
    earlier, predictions = window.result, window.library.frame["prediction"].copy()
    assert earlier is not None

    with qtbot.waitSignal(window.jobs.progress, timeout=60_000):
        assert window.start_cross_validation(TrainConfig(folds=2, epochs=500, patience=None, seed=5),
                                             tmp_path / "second")
    with qtbot.waitSignal(window.jobs.cancelled, timeout=60_000):
        window.job_status.cancel_button.click()
    assert window.result is earlier
    assert window.library.frame["prediction"].equals(predictions)
    assert not window.errors
    from bst_core.runs import RunFolder
    assert RunFolder(tmp_path / "second").status == "cancelled"


def test_closing_during_a_job_asks_then_cancels(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                tmp_path: Path) -> None:
    open_source(qtbot, window, bsd_root)
    with qtbot.waitSignal(window.jobs.progress, timeout=60_000):
        window.start_cross_validation(TrainConfig(folds=2, epochs=500, patience=None), tmp_path / "run")
    asked: list[bool] = []
    window.confirm_close_during_job = lambda: asked.append(True) or False
    window.close()
    assert asked and window.isVisible() and window.jobs.busy
    window.confirm_close_during_job = lambda: True
    window.close()
    assert not window.isVisible() and not window.jobs.busy


def test_job_errors_become_readable_messages(qtbot: Any) -> None:
    runner = JobRunner()
    failures: list[tuple[str, str, str]] = []
    runner.failed.connect(lambda *args: failures.append(args))

    def broken(job: Any) -> None:
        raise ValueError("shape mismatch (3, 4)")

    with qtbot.waitSignal(runner.finished, timeout=10_000):
        runner.start("Broken job", broken)
    title, message, details = failures[-1]
    assert title == "Broken job" and message == "Something went wrong: shape mismatch (3, 4)"
    assert "Traceback" in details

    def bad_input(job: Any) -> None:
        raise BadInputError("/data/x.csv has no sound_id column. Use the original file.")

    with qtbot.waitSignal(runner.finished, timeout=10_000):
        runner.start("Open", bad_input)
    assert failures[-1][1] == "/data/x.csv has no sound_id column. Use the original file."
    assert failures[-1][2] == ""
    assert describe_error(PermissionError(13, "denied", "/x"))[0].startswith("Permission denied")
    runner.shutdown()


def test_progress_helpers() -> None:
    assert overall_fraction(Progress("fold 2/4", 5, 10)) == pytest.approx(1.5 / 4)
    assert overall_fraction(Progress("extract", 3, 4)) == pytest.approx(0.75)
    assert overall_fraction(Progress("read", 0, None)) is None
    assert format_eta(30) == "about 30 s left" and format_eta(600) == "about 10 min left"
    assert format_eta(None) == ""


# --- audition ----------------------------------------------------------------------------------------------

def test_playback_buffer_plays_loops_and_stops() -> None:
    buffer = PlaybackBuffer()
    out = np.ones((4, 1), np.float32)
    buffer.fill(out)
    assert not out.any()                      # idle: silence
    buffer.start(np.arange(1, 6, dtype=np.float32))
    buffer.fill(out)
    assert out[:, 0].tolist() == [1, 2, 3, 4] and buffer.playing
    buffer.fill(out)
    assert out[:, 0].tolist() == [5, 0, 0, 0] and not buffer.playing
    buffer.loop = True
    buffer.start(np.arange(1, 4, dtype=np.float32))
    buffer.fill(out)
    assert out[:, 0].tolist() == [1, 2, 3, 1] and buffer.playing


def test_without_an_output_device_playback_is_silent_and_says_why_once(qtbot: Any) -> None:
    output = AudioOutput(sounddevice=NoDevice())
    assert not output.available and "no audio output device" in output.reason
    audition = Audition(output)
    reasons: list[str] = []
    audition.silent.connect(reasons.append)
    audition.set_clip("a", np.zeros(100, np.float32))
    assert not audition.play()
    assert not audition.play()
    assert len(reasons) == 1


def test_keyboard_audition(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_source(qtbot, window, bsd_root)
    table = window.library_view.table
    window.library_view.select_row(0)
    table.setFocus()
    first = window.current_id()
    qtbot.waitUntil(lambda: window.audition.clip_id == first and window.audition.loaded,
                    timeout=10_000)
    qtbot.keyClick(table, Qt.Key.Key_Space)
    assert window.audition.playing
    stream = window.audition.output._stream
    assert stream.pull(256).any()             # the callback delivers the clip's samples
    qtbot.keyClick(table, Qt.Key.Key_Left)
    assert not window.audition.playing
    qtbot.keyClick(table, Qt.Key.Key_Right)
    assert window.audition.playing and window.audition.output.buffer.position == 0
    window.autoplay_action.setChecked(True)
    qtbot.keyClick(table, Qt.Key.Key_Down)
    second = window.current_id()
    assert second != first
    qtbot.waitUntil(lambda: window.audition.clip_id == second and window.audition.playing, timeout=10_000)
    qtbot.keyClick(table, Qt.Key.Key_Space)
    assert not window.audition.playing
    window.loop_action.trigger()
    assert window.audition.loop

    # a click on the waveform seeks (and plays) there
    data = window.clip_panel.data
    assert data is not None and data.ok
    plot = window.clip_panel.waveform
    view = plot.getPlotItem().getViewBox()
    target = view.mapViewToScene(view.viewRect().center())
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(target))
    assert window.audition.playing
    assert window.audition.output.position_s == pytest.approx(data.shown_s / 2, abs=0.05)


def test_clip_display_helpers(qtbot: Any) -> None:
    from bst_gui.clip_panel import envelope, log_frequency, plain_text

    assert plain_text("<p>Truck, recorded <b>close</b>.<br>More at <a href='x'>here</a> &amp; there</p>") == \
        "Truck, recorded close.\nMore at here & there"

    samples = np.sin(np.linspace(0, 200, 10_000)).astype(np.float32)
    times, mins, maxs = envelope(samples, 1000, points=100)
    assert len(times) == len(mins) == len(maxs) == 100
    assert mins.min() == samples.min() and maxs.max() == samples.max()
    db = np.tile(np.arange(513, dtype=np.float32)[:, None], (1, 4))   # value = bin number
    shown = log_frequency(db, 44100, rows=64, fmin=40.0)
    assert shown.shape == (64, 4)
    assert np.all(np.diff(shown[:, 0]) >= 0)                            # low → high frequency
    assert shown[-1, 0] == pytest.approx(512) and shown[0, 0] == pytest.approx(40 / 22050 * 512, rel=1e-3)
