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
from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.jobs import Progress
from bst_gui.app import display_problem, main
from bst_gui.jobs import JobRunner, describe_error, format_eta
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


def test_theme_choice_is_remembered_for_the_next_start(window: MainWindow, tmp_path: Path) -> None:
    assert window.theme_actions["dark"].isChecked()
    window.theme_actions["light"].trigger()
    assert window.theme_actions["light"].isChecked() and not window.theme_actions["dark"].isChecked()
    assert "next start" in window.statusBar().currentMessage()
    window.settings.sync()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert settings.theme() == "light"


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
    selected = window.current_id()
    assert selected and "No prediction yet" in window.clip_panel.guesses.text()
    progress: list[Progress] = []
    window.jobs.progress.connect(progress.append)
    assert window.start_cross_validation(SHORT_CV, tmp_path / "run")
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    assert window.result is not None and len(window.result.fold_reports) == 2
    # the run is this source's: its out-of-fold predictions fill the table and the clip panel at once
    assert window.session.run_is_for_source and window.predictions.origin == "out-of-fold"
    assert window.current_id() == selected and "No prediction yet" not in window.clip_panel.guesses.text()
    assert window.clip_panel.caption.text().startswith("Out-of-fold predictions of run run")
    assert window.library_view.caption_label.text() == window.clip_panel.caption.text()
    assert window.results_view.title.text() == f"Run run — trained on {window.result.dataset_label}"
    assert not window.results_view.notice.isVisibleTo(window.results_view)
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


def test_a_locked_workspace_is_not_shown_as_saved(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from bst_core import workspace as workspace_module

    monkeypatch.setattr(workspace_module, "BUSY_TIMEOUT_S", 0.05)
    open_source(qtbot, window, bsd_root)
    table = window.library_view.table
    window.library_view.select_row(0)
    table.setFocus()
    first = window.current_id()
    qtbot.keyClick(table, Qt.Key.Key_4)
    qtbot.keyClick(table, Qt.Key.Key_1)                       # fx-o, saved; the cursor moves on
    second = window.current_id()
    assert window.library.record(first)["edited"] == "fx-o" and second != first

    other = sqlite3.connect(window.workspace.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")                         # another program holds the database
    try:
        qtbot.keyClick(table, Qt.Key.Key_5)
        qtbot.keyClick(table, Qt.Key.Key_3)                   # ss-u: cannot be saved
        assert window.library.record(second)["edited"] == ""  # the table keeps the old label
        assert window.current_id() == second                  # and does not move on
        assert len(window.errors) == 1
        title, message, _details = window.errors[0]
        assert "not being saved" in title and "is locked by another program (another BST Studio window?); " \
            "close it and try again" in message and "move it away" not in message
        assert "is locked by another program" in window.statusBar().currentMessage()
        qtbot.keyClick(table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)   # undo: not saved either
        assert window.library.record(first)["edited"] == "fx-o"
        assert window.statusBar().currentMessage().startswith("Undo not saved: ")
        assert len(window.errors) == 1                        # the dialog once; the status bar each time
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert window.workspace.edited_labels() == {first: "fx-o"}
    qtbot.keyClick(table, Qt.Key.Key_5)
    qtbot.keyClick(table, Qt.Key.Key_3)                       # free again: saved and shown
    assert window.library.record(second)["edited"] == "ss-u"
    assert window.workspace.label_of(second) == "ss-u"


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


def test_a_run_of_other_data_shows_its_results_but_keeps_its_predictions_out(
        qtbot: Any, window: MainWindow, eval_root: Path, trained_run: Path) -> None:
    open_source(qtbot, window, eval_root)
    window.load_run(trained_run)
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    run = window.result
    assert run is not None and not window.session.run_is_for_source
    assert window.results_view.title.text() == f"Run {trained_run.name} — trained on {run.dataset_label}"
    assert "BSD10k-synthetic" in run.dataset_label
    assert window.results_view.notice.isVisibleTo(window.results_view)
    assert (window.library.frame["prediction"] == "").all()        # no out-of-fold predictions here
    assert window.predictions is None and not window.library_view.caption_label.isVisibleTo(window)
    assert "No prediction yet" in window.clip_panel.guesses.text()
    assert window.show_confusion_cell(*run.oof[["truth", "prediction"]].iloc[0]) == 0
    assert "trained on" in window.statusBar().currentMessage()

    assert window.start_prediction()
    wait_job(qtbot, window)
    caption = window.session.prediction_caption()
    assert caption == f"predictions of run {trained_run.name} on this source (2 fold model(s))"
    assert window.clip_panel.caption.text() == caption[0].upper() + caption[1:]
    assert window.library_view.caption_label.text() == caption[0].upper() + caption[1:]
    assert (window.library.frame["prediction"] != "").all()


def test_undecodable_audio_is_predicted_from_text_only_and_says_so(
        qtbot: Any, window: MainWindow, eval_root: Path, trained_run: Path, tmp_path: Path) -> None:
    from bst_core.workspace import read_labels_csv

    copy = tmp_path / "eval"
    shutil.copytree(eval_root, copy)
    vectors = sorted((copy / "features" / "clap_audio_embeddings").glob("*.npy"))
    mute = vectors[0].stem
    np.save(vectors[0], np.zeros_like(np.load(vectors[0])))   # no usable audio for this item
    open_source(qtbot, window, copy)
    status = window.library.record(mute)["audio"]
    assert status.startswith("text only: ")
    window.load_run(trained_run)
    wait_job(qtbot, window)
    assert window.start_prediction()
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    assert window.select_id(mute)
    reason = status.removeprefix("text only: ")
    panel = window.clip_panel
    assert panel.text_only.isVisibleTo(panel) and panel.text_only.text() == \
        f"Predicted from text only (audio: {reason})."
    assert panel.attention.weights is None and "no audio attention" in panel.attention.note
    other = next(i for i in window.current_ids() if i != mute)
    window.select_id(other)
    assert not panel.text_only.isVisibleTo(panel) and panel.attention.weights is not None
    exported = read_labels_csv(window.export_labels(tmp_path / "labels.csv")).set_index("id")
    assert exported.loc[mute, "audio_status"] == status and exported.loc[other, "audio_status"] == "ok"



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


def test_a_job_whose_runner_is_deleted_still_ends_its_thread(qtbot: Any) -> None:
    """A view closed while its background job runs: the job's thread ends with the work (it used to
    idle in its event loop for ever, and Qt aborted the process at exit)."""
    import threading

    from PySide6.QtCore import QObject

    from bst_gui import jobs as gui_jobs

    owner = QObject()
    runner = JobRunner(owner)
    release, seen = threading.Event(), []

    def slow(job: Any) -> str:
        seen.append(job)
        release.wait(30)
        return "done"

    from PySide6.QtCore import QTimer

    before = gui_jobs.threads_left_running()
    assert runner.start("Slow", slow)
    qtbot.waitUntil(lambda: bool(seen))
    import shiboken6

    QTimer.singleShot(50, lambda: shiboken6.delete(owner))   # the runner goes with its owner mid-wait
    threading.Timer(0.3, release.set).start()
    assert runner.wait(20_000)                 # ends when the work ends, not at the timeout
    assert not shiboken_valid(runner)
    qtbot.waitUntil(lambda: gui_jobs.threads_left_running() == before, timeout=10_000)


def shiboken_valid(obj: Any) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)


def test_progress_helpers() -> None:
    assert Progress("fold 2/4", 5, 10).overall_fraction == pytest.approx(1.5 / 4)
    assert Progress("extract", 3, 4).overall_fraction == pytest.approx(0.75)
    assert Progress("read", 0, None).overall_fraction is None
    # time left is the core's: the series "fold */4" started 30 s ago and is 1.5/4 done
    assert Progress("fold 2/4", 5, 10, elapsed_s=3, series_elapsed_s=30).eta_s == pytest.approx(50)
    assert Progress("extract", 1, 1000, elapsed_s=5).eta_s is None          # too early to say
    assert format_eta(Progress("extract", 3, 4, elapsed_s=30).eta_s) == "about 10 s left"
    assert format_eta(30) == "about 30 s left" and format_eta(600) == "about 10 min left"
    assert format_eta(None) == ""

    from bst_core.jobs import Job

    seen: list[Progress] = []
    job = Job(seen.append)
    job.progress("fold 1/2", 1, 2)
    job.progress("fold 2/2", 0, 2)
    assert seen[1].elapsed_s == 0 and seen[1].series_elapsed_s >= seen[0].series_elapsed_s


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
    from bst_core.audio import envelope
    from bst_gui.clip_panel import log_frequency, plain_text, text_only_reason

    assert text_only_reason("text only: empty file (0 bytes)") == "empty file (0 bytes)"
    assert text_only_reason("ok") == "" and text_only_reason("") == ""
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


# --- dialogs agree with the CLI; extraction keeps the table ----------------------------------------------

def test_dialog_defaults_and_choices_come_from_the_core_config(qtbot: Any, tmp_path: Path) -> None:
    from bst_core.config import DEFAULT_ENCODER, ENCODER_NAMES, MISSING_AUDIO, MODES
    from bst_gui.run_dialogs import ExtractDialog, TrainDialog

    extract = ExtractDialog()
    qtbot.addWidget(extract)
    assert extract.options().encoder == DEFAULT_ENCODER and tuple(extract.encoders) == ENCODER_NAMES
    train = TrainDialog(tmp_path / "run")
    qtbot.addWidget(train)
    assert train.config() == TrainConfig()
    assert tuple(train.mode.itemData(i) for i in range(train.mode.count())) == MODES
    assert tuple(train.missing_audio.itemData(i) for i in range(train.missing_audio.count())) == MISSING_AUDIO


def test_extraction_fills_the_audio_column_without_losing_the_table(qtbot: Any, window: MainWindow,
                                                                     tmp_path: Path) -> None:
    import soundfile

    from bst_gui.run_dialogs import ExtractOptions

    folder = tmp_path / "sounds"
    folder.mkdir()
    t = np.arange(8000) / 16000
    for k in range(4):
        soundfile.write(folder / f"tone{k}.wav", 0.3 * np.sin(2 * np.pi * (200 + 100 * k) * t), 16000)
    (folder / "empty.wav").write_bytes(b"")
    open_source(qtbot, window, folder)
    assert not window.session.has_embeddings
    assert (window.library.frame["audio"] == "").all()         # nothing computed yet: no claim
    window.library_view.search.setText("tone")
    shown = window.library.rowCount()
    assert window.start_extraction(ExtractOptions("offline", None, False))
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    assert window.session.has_embeddings and window.library.rowCount() == shown   # search kept
    audio = dict(zip(window.library.frame["title"], window.library.frame["audio"], strict=True))
    assert audio["empty"].startswith("text only: empty file") and audio["tone0"] == "ok"


def test_closing_the_source_resets_every_view(qtbot: Any, window: MainWindow, bsd_root: Path,
                                             trained_run: Path) -> None:
    open_source(qtbot, window, bsd_root)
    window.load_run(trained_run)                      # this source's run: its out-of-fold predictions show
    wait_job(qtbot, window)
    assert window.session.run_is_for_source and window.library_view.caption_label.isVisibleTo(window)
    workspace = window.workspace
    window.close_source()
    assert window.corpus is None and window.result is None and window.workspace is None
    assert window.stack.currentWidget() is window.welcome and window.library.rowCount() == 0
    assert window.results_view.data is None and not window.library_view.caption_label.isVisibleTo(window)
    assert not window.export_labels_action.isEnabled()
    window.predict_action.trigger()                   # with nothing open Predict says why
    assert window.errors[-1][1].startswith("Nothing to predict: open a source first")
    assert "open a source first" in window.statusBar().currentMessage()
    with pytest.raises(Exception, match="closed"):
        workspace.edited_labels()


def test_no_two_actions_share_a_shortcut(window: MainWindow) -> None:
    """A shortcut on two actions fires neither (Qt: "ambiguous shortcut")."""
    from collections import defaultdict

    from PySide6.QtGui import QAction

    owners: dict[str, set[str]] = defaultdict(set)
    for action in {*window.findChildren(QAction), *window.actions()}:
        for key in action.shortcuts():
            if not key.isEmpty():
                owners[key.toString()].add(action.text())
    shared = {key: names for key, names in owners.items() if len(names) > 1}
    assert not shared, shared


def test_after_the_welcome_page_the_results_tab_is_in_front(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    """Docks shown again come to the front of their tab group; the one in front before must return
    (a new user first saw an empty "Relabel next" instead of the results)."""
    window.open_source(bsd_root)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)
    qtbot.wait(50)
    assert window._tab_in_front(window.results_dock) is window.results_dock
    window.training_dock.raise_()
    qtbot.wait(20)
    window.close_source()
    qtbot.wait(20)
    window.open_source(bsd_root)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)
    qtbot.wait(50)
    assert window._tab_in_front(window.results_dock) is window.training_dock
