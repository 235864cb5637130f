"""Relabelling keys, class picker, undo/redo over the workspace; the export dialog."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QListWidget

from bst_core.errors import BadInputError
from bst_core.metrics import evaluate
from bst_core.taxonomy import BY_KEY, CLASS_KEYS
from bst_core.workspace import Workspace
from bst_gui.export_dialog import ExportDialog, label_problem
from bst_gui.relabel import ClassPicker, KeyLegend, RelabelController, chord_for, class_for_chord, rank_classes

pytestmark = pytest.mark.gui


class Host:
    """Stands in for the main window: a selection, a cursor that advances, a refresh log."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.position = 0
        self.selection: list[str] = [ids[0]]
        self.refreshed: list[list[str]] = []
        self.predicted = {i: CLASS_KEYS[n % len(CLASS_KEYS)] for n, i in enumerate(ids)}

    def advance(self) -> None:
        self.position = min(self.position + 1, len(self.ids) - 1)
        self.selection = [self.ids[self.position]]


def package_exporter(predictions, eval_ids, *, dev_report=None, total_parameters):
    """A ``(check, export)`` pair over bst_core.submission, for driving the dialog in tests."""
    from bst_core import submission

    def check(label):
        return submission.validate_submission(submission.submission_frame(predictions), eval_ids, label)

    def export(out_dir, label, authors):
        return submission.write_package(out_dir, label, predictions, eval_ids, dev_report=dev_report,
                                        dev_dataset="BSD10k", total_parameters=total_parameters, authors=authors)

    return check, export



@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws.sqlite")
    yield ws
    ws.close()


@pytest.fixture
def host() -> Host:
    return Host([f"s{i}" for i in range(10)])


@pytest.fixture
def controller(qtbot, workspace: Workspace, host: Host) -> RelabelController:
    return RelabelController(workspace=workspace, selected_ids=lambda: host.selection, advance=host.advance,
                             refresh=host.refreshed.append,
                             predictions=lambda ids: [host.predicted[i] for i in ids])


def test_chords_follow_the_class_codes() -> None:
    assert chord_for("fx-o") == "4, 1" and chord_for("m-sp") == "1, 1" and chord_for("fx-el") == "4, 8"
    chords = [chord_for(k) for k in CLASS_KEYS]
    assert len(set(chords)) == len(CLASS_KEYS)  # unambiguous
    assert all(class_for_chord(chord_for(k)) == k for k in CLASS_KEYS)
    assert class_for_chord("4 9") is None and class_for_chord("") is None


def test_class_action_writes_the_workspace_advances_and_undo_reverts(controller, workspace, host, qtbot) -> None:
    action = controller.class_actions["fx-v"]
    assert action.shortcut().toString() == "4, 2"
    with qtbot.waitSignal(controller.labels_changed) as changed:
        action.trigger()
    assert changed.args == [["s0"]]
    assert workspace.edited_labels() == {"s0": "fx-v"}
    assert host.position == 1 and host.refreshed == [["s0"]]
    controller.class_actions["ss-n"].trigger()
    assert workspace.edited_labels() == {"s0": "fx-v", "s1": "ss-n"}
    assert controller.undo_action.isEnabled() and not controller.redo_action.isEnabled()
    controller.undo_action.trigger()
    assert workspace.edited_labels() == {"s0": "fx-v"}
    assert controller.redo_action.isEnabled()
    controller.redo_action.trigger()
    assert workspace.label_of("s1") == "ss-n"
    host.selection = ["s1"]
    controller.clear_action.trigger()
    assert workspace.label_of("s1") == ""


def test_multi_selection_is_one_batch(controller, workspace, host) -> None:
    host.selection = ["s2", "s3", "s4"]
    assert controller.assign("is-k") == ["s2", "s3", "s4"]
    assert set(workspace.edited_labels()) == {"s2", "s3", "s4"}
    controller.undo()
    assert workspace.edited_labels() == {}


def test_accept_prediction_uses_each_clips_prediction(controller, workspace, host) -> None:
    host.selection = ["s0", "s1", "s2"]
    controller.accept_action.trigger()
    assert workspace.edited_labels() == {"s0": "m-sp", "s1": "m-si", "s2": "m-m"}
    controller.undo()
    assert workspace.edited_labels() == {}


def test_without_workspace_or_selection_nothing_is_written(qtbot, workspace, host) -> None:
    messages: list[str] = []
    idle = RelabelController(workspace=None, selected_ids=lambda: ["x"])
    idle.message.connect(messages.append)
    assert not idle.class_actions["fx-o"].isEnabled()
    assert idle.assign("fx-o") == [] and "Open a sound source" in messages[-1]
    empty = RelabelController(workspace=workspace, selected_ids=lambda: [])
    empty.message.connect(messages.append)
    assert empty.assign("fx-o") == [] and "Select" in messages[-1]
    assert workspace.edited_labels() == {}


def test_key_chord_on_a_focused_widget_assigns(controller, workspace, host, qtbot) -> None:
    widget = QListWidget()
    qtbot.addWidget(widget)
    controller.attach(widget)
    widget.show()
    qtbot.waitExposed(widget)
    widget.windowHandle().requestActivate()  # shortcuts only fire in the active window
    qtbot.waitUntil(widget.isActiveWindow, timeout=2000)
    widget.setFocus()
    qtbot.keyClick(widget, Qt.Key.Key_5)
    qtbot.keyClick(widget, Qt.Key.Key_3)
    assert workspace.edited_labels() == {"s0": "ss-u"}
    qtbot.keyClick(widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert workspace.edited_labels() == {}


def test_class_picker_filters_and_enter_assigns(controller, workspace, host, qtbot) -> None:
    assert rank_classes("vehic") == ["fx-v"]
    assert rank_classes("fx-o")[0] == "fx-o"
    assert rank_classes("piano")[0] == "is-k"
    assert rank_classes("") == list(CLASS_KEYS)
    picker = controller.open_picker()
    assert isinstance(picker, ClassPicker)
    qtbot.keyClicks(picker.search, "guitar")
    assert picker.visible_keys() == ["is-s"]
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert workspace.edited_labels() == {"s0": "is-s"}
    picker = controller.open_picker()
    qtbot.keyClicks(picker.search, "fx")
    assert picker.visible_keys()[:2] == ["fx-o", "fx-v"]
    qtbot.keyClick(picker.search, Qt.Key.Key_Down)
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert workspace.label_of("s1") == "fx-v"


def test_legend_shows_every_class_and_the_last_edit(controller, qtbot) -> None:
    legend = KeyLegend(controller)
    qtbot.addWidget(legend)
    controller.assign("fx-a")
    assert "fx-a Animals" in legend.status.text()
    texts = " ".join(label.text() for label in legend.findChildren(type(legend.status)))
    assert all(key in texts for key in CLASS_KEYS)
    assert "moves to the next clip" in texts


def test_undo_and_redo_select_the_clip_they_changed(qtbot, workspace, host) -> None:
    selected: list[list[str]] = []
    controller = RelabelController(workspace=workspace, selected_ids=lambda: host.selection, advance=host.advance,
                                   select=lambda ids: selected.append(list(ids)))
    controller.assign("fx-v")                 # s0, then the cursor moves to s1
    controller.assign("ss-n")                 # s1, then s2
    assert host.selection == ["s2"] and selected == []
    controller.undo()
    assert selected == [["s1"]]               # back to the clip whose label was undone
    controller.undo()
    assert selected[-1] == ["s0"]
    controller.redo()
    assert selected[-1] == ["s0"]
    host.selection = ["s3", "s4"]
    controller.assign("is-k")
    controller.undo()
    assert selected[-1] == ["s3", "s4"]       # a batch: all of its clips


def _close_and_settle(window) -> None:
    """Close ``window`` and let every job and import it started end (a thread outliving its window aborts)."""
    from PySide6.QtCore import QTimer

    from bst_gui.jobs import JobRunner, warm_up_imports

    for timer in window.findChildren(QTimer):
        timer.stop()
    window.close()
    for runner in window.findChildren(JobRunner):
        if runner.busy:
            runner.cancel()
        assert runner.wait(60_000), f"job {runner.title!r} did not end"
    warm_up_imports().join(120)      # the window's background imports end inside the test, not in teardown


def test_undo_in_the_main_window_moves_the_selection_back(qtbot, tmp_path, bsd_root) -> None:
    from bst_gui.main_window import MainWindow
    from bst_gui.playback import AudioOutput
    from bst_gui.settings import Settings

    class NoDevice:
        def query_devices(self, kind=None):
            raise RuntimeError("no device in tests")

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, AudioOutput(sounddevice=NoDevice()))
    qtbot.addWidget(window)
    window.show_error = lambda *a, **k: pytest.fail(f"error shown: {a}")
    window.show()
    window.open_source(bsd_root)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=120_000)
    window.library_view.select_row(3)
    first = window.current_id()
    window.relabel.class_actions["fx-v"].trigger()
    assert window.current_id() != first                     # labelling moved on
    window.relabel.undo_action.trigger()
    assert window.current_id() == first                     # undo: back to the undone clip
    assert window.workspace.label_of(first) == ""
    _close_and_settle(window)


def test_an_edit_the_workspace_cannot_save_is_not_shown_as_saved(qtbot, tmp_path, host) -> None:
    import sqlite3

    ws = Workspace(tmp_path / "locked.sqlite", busy_timeout_s=0.05)
    ws.assign(["s0"], "fx-o")
    controller = RelabelController(workspace=ws, selected_ids=lambda: host.selection, advance=host.advance,
                                   refresh=host.refreshed.append,
                                   predictions=lambda ids: [host.predicted[i] for i in ids])
    failures: list[str] = []
    controller.save_failed.connect(failures.append)
    other = sqlite3.connect(tmp_path / "locked.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with qtbot.assertNotEmitted(controller.labels_changed):
            assert controller.assign("ss-n") == []
            assert controller.accept_predictions() == []
            assert controller.undo() == []
            assert controller.redo() == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(failures) == 4 and all("is locked by another program" in f for f in failures)
    assert failures[0].startswith("Label edit not saved") and failures[2].startswith("Undo not saved")
    assert host.position == 0 and host.refreshed == []           # the cursor stayed, nothing refreshed
    assert ws.edited_labels() == {"s0": "fx-o"}
    controller.assign("ss-n")                                    # free again: saved and shown
    assert ws.edited_labels() == {"s0": "ss-n"} and host.refreshed == [["s0"]]
    ws.close()


# --- export dialog -------------------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _predictions(ids: list[str]) -> SimpleNamespace:
    return SimpleNamespace(ids=ids, labels=[CLASS_KEYS[i % 23] for i in range(len(ids))],
                           scores=np.linspace(0.2, 0.9, len(ids)))


def test_label_problems_are_explained_in_words() -> None:
    assert label_problem("Zheng_SCUT_task1_1") == ""
    assert "1, 2, 3 or 4" in label_problem("Zheng_SCUT_task1_5")
    assert "4" in label_problem("Zheng_task1_1") and "part" in label_problem("Zheng_task1_1")
    assert "letters" in label_problem("Zh3ng_SCUT_task1_1")
    assert "'task1'" in label_problem("Zheng_SCUT_task2_1")


def test_export_dialog_refuses_an_invalid_label(qtbot, settings, tmp_path) -> None:
    calls: list[tuple] = []
    dialog = ExportDialog(label="not a label", out_dir=str(tmp_path), settings=settings,
                          export=lambda *a: calls.append(a) or tmp_path)
    qtbot.addWidget(dialog)
    assert not dialog.write_button.isEnabled()
    assert "parts" in dialog.label_error.text() or "part" in dialog.label_error.text()
    assert dialog.try_accept() is False and calls == []
    assert any("Lastname_Abbreviation_task1_N" in p for p in dialog.listed_problems())
    dialog.label_edit.setText("Zheng_SCUT_task1_1")
    assert dialog.write_button.isEnabled() and dialog.label_error.text() == ""


def test_export_dialog_lists_core_problems_and_writes_nothing(qtbot, settings, tmp_path) -> None:
    eval_ids = [f"uuid-{i}" for i in range(30)]
    check, export = package_exporter(_predictions(eval_ids[:-3]), eval_ids, total_parameters=7_319_513)
    out = tmp_path / "out"
    dialog = ExportDialog(label="Zheng_SCUT_task1_1", out_dir=str(out), settings=settings, check=check,
                          export=export)
    qtbot.addWidget(dialog)
    assert dialog.try_accept() is False
    problems = dialog.listed_problems()
    assert any("3 evaluation id(s) have no prediction" in p for p in problems)
    assert not out.exists()
    # the writer's own refusal (check skipped) is listed the same way
    dialog._check = None
    assert dialog.try_accept() is False
    assert any("no prediction" in p for p in dialog.listed_problems()) and not out.exists()


def test_export_dialog_writes_a_valid_package_and_remembers(qtbot, settings, tmp_path) -> None:
    eval_ids = [f"uuid-{i}" for i in range(30)]
    truth = [CLASS_KEYS[i % 23] for i in range(30)]
    check, export = package_exporter(_predictions(eval_ids), eval_ids, total_parameters=7_319_513,
                                     dev_report=evaluate(truth, truth))
    out = tmp_path / "out"
    dialog = ExportDialog(label="Zheng_SCUT_task1_2", out_dir=str(out), settings=settings, check=check,
                          export=export)
    qtbot.addWidget(dialog)
    dialog.authors.item(0, 0).setText("Zheng")
    dialog.authors.item(0, 1).setText("Han")
    dialog.authors.item(0, 2).setText("han@example")
    assert dialog.try_accept() is False
    assert any("not an email address" in p for p in dialog.listed_problems())
    dialog.authors.item(0, 2).setText("han@example.org")
    dialog.authors.item(0, 3).setText("SCUT")
    assert dialog.try_accept() is True
    package = out / "task1" / "Zheng_SCUT_task1_2"
    assert dialog.written_path == package
    assert (package / "Zheng_SCUT_task1_2.output.csv").is_file()
    meta = (package / "Zheng_SCUT_task1_2.meta.yaml").read_text(encoding="utf-8")
    assert "han@example.org" in meta and "SCUT" in meta
    assert dialog.options()["authors"][0]["corresponding"] is True

    again = ExportDialog(settings=settings)  # remembered: label, folder, authors
    qtbot.addWidget(again)
    assert again.label == "Zheng_SCUT_task1_2" and again.out_dir == str(out)
    assert again.author_rows()[0]["email"] == "han@example.org"


def test_export_dialog_without_export_callable_only_collects_options(qtbot, settings, tmp_path) -> None:
    dialog = ExportDialog(label="Zheng_SCUT_task1_1", out_dir=str(tmp_path), settings=settings)
    qtbot.addWidget(dialog)
    assert dialog.try_accept() is True
    assert dialog.options() == {"out_dir": str(tmp_path), "label": "Zheng_SCUT_task1_1", "authors": None}
    with pytest.raises(BadInputError):
        package_exporter(_predictions(["a"]), ["a"], total_parameters=0)[1](str(tmp_path), "Zheng_SCUT_task1_1",
                                                                              None)
    assert BY_KEY  # the taxonomy is loaded


def test_controller_over_a_window_like_host(qtbot, workspace) -> None:
    """The MainWindow path: workspace attribute, selection falls back to the current row, the
    library frame's prediction column feeds "accept", source_changed refreshes the actions."""
    from PySide6.QtCore import QObject, Signal

    class Window(QObject):
        source_changed = Signal()

        def __init__(self) -> None:
            super().__init__()
            self.workspace = None
            self.moved = 0
            self.refreshed: list[list[str]] = []
            self.library = SimpleNamespace(frame=pd.DataFrame({"id": ["a", "b"], "prediction": ["fx-n", ""]}))

        def selected_ids(self) -> list[str]:
            return []

        def current_id(self) -> str:
            return "a"

        def advance(self) -> None:
            self.moved += 1

        def refresh_labels(self, ids) -> None:
            self.refreshed.append(list(ids))

        def select_id(self, sound_id: str) -> bool:
            self.selected = sound_id
            return True

    window = Window()
    controller = RelabelController(window)
    assert controller.parent() is window and not controller.class_actions["fx-o"].isEnabled()
    window.workspace = workspace  # a source is opened (its workspace has no edits yet)
    window.source_changed.emit()
    assert controller.class_actions["fx-o"].isEnabled()
    controller.accept_action.trigger()
    assert workspace.edited_labels() == {"a": "fx-n"}
    assert window.moved == 1 and window.refreshed == [["a"]]
    controller.undo_action.trigger()
    assert window.selected == "a" and workspace.edited_labels() == {}
