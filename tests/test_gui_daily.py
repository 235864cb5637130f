"""The app as a daily tool (issue 8): fast import, quitting during a job, a session that comes back,
a defined table order, the results page, a window that fits 1366×768, truth from subfolders, search
by status/edited/decision, the hierarchical abstain column and honest feedback."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtTest import QTest

from bst_core.config import TrainConfig
from bst_core.library_query import LIBRARY_COLUMNS, Filters
from bst_gui import jobs as gui_jobs
from bst_gui.main_window import MainWindow
from bst_gui.playback import AudioOutput
from bst_gui.run_dialogs import TrainDialog
from bst_gui.settings import Settings

pytestmark = pytest.mark.gui

SHORT_CV = TrainConfig(folds=2, epochs=2, patience=None, seed=3)
SMALL_SCREEN = QSize(1366, 768)


class NoDevice:
    def query_devices(self, kind: str | None = None) -> dict:
        raise RuntimeError("no device in tests")


def settings_at(folder: Path) -> Settings:
    return Settings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))


def make_window(qtbot: Any, folder: Path) -> MainWindow:
    win = MainWindow(settings_at(folder), AudioOutput(sounddevice=NoDevice()))
    win.errors = []   # type: ignore[attr-defined]
    win.infos = []    # type: ignore[attr-defined]
    win.show_error = lambda title, message, details="": win.errors.append((title, message, details))
    win.show_info = lambda title, message: win.infos.append((title, message))
    win.confirm_close_during_job = lambda: True
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    return win


@pytest.fixture(autouse=True)
def _abandoned_threads_end(qtbot: Any) -> Any:
    """Jobs abandoned on closing a window end on their own; no test leaves one running."""
    yield
    qtbot.waitUntil(lambda: gui_jobs.threads_left_running() == 0, timeout=60_000)


@pytest.fixture()
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    win = make_window(qtbot, tmp_path)
    yield win
    if win.jobs.busy:
        win.jobs.cancel()
        win.jobs.wait(60_000)
    win.close()


def wait_jobs(qtbot: Any, win: MainWindow, timeout: int = 120_000) -> None:
    """Until no job runs and nothing is left to restore."""
    qtbot.waitUntil(lambda: not win.jobs.busy and win._restore_plan is None, timeout=timeout)


def open_source(qtbot: Any, win: MainWindow, path: Path, **kwargs: Any) -> None:
    win.open_source(path, **kwargs)
    wait_jobs(qtbot, win)
    assert not win.errors, win.errors


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    from bst_core.sources import read_bsd_dataset
    from bst_core.training import cross_validate

    run_dir = tmp_path_factory.mktemp("runs") / "run"
    cross_validate(read_bsd_dataset(bsd_root), run_dir, SHORT_CV)
    return run_dir


def wav(path: Path, seconds: float = 0.3, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
    sf.write(path, noise, 16000)


# --- start and stay fast --------------------------------------------------------------------------

def test_importing_the_main_window_imports_neither_torch_nor_sklearn() -> None:
    code = ("import sys, bst_gui.main_window; "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_closing_during_a_long_step_abandons_the_job_without_waiting(qtbot: Any, window: MainWindow,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bst_gui.main_window.CLOSE_WAIT_MS", 50)
    release, applied, job_seen = threading.Event(), [], []

    def long_step(job: Any) -> str:          # a torch step that reaches no safe point for a long time
        job_seen.append(job)
        release.wait(60)
        return "late result"

    assert window._start("Long step", long_step, kind="step", on_success=applied.append)
    qtbot.waitUntil(lambda: bool(job_seen))
    window.close()
    assert not window.isVisible()                       # closed while the step still runs
    assert not window.jobs.busy and job_seen[0].cancelled   # cancelled and given up on
    assert gui_jobs.threads_left_running() >= 1         # the thread is left to end on its own
    release.set()
    qtbot.waitUntil(lambda: gui_jobs.threads_left_running() == 0, timeout=10_000)
    assert applied == []                                # its late result is never shown


def test_a_job_strip_and_cancel_are_gone_before_the_result_dialog(qtbot: Any, window: MainWindow) -> None:
    seen: list[tuple[bool, bool, bool]] = []

    def on_success(_result: Any) -> None:            # where a result dialog would open
        seen.append((window.job_status.isVisible(), window.cancel_action.isEnabled(), window.jobs.busy))

    assert window._start("Quick", lambda job: 1, kind="quick", on_success=on_success)
    assert window.job_status.isVisible()
    qtbot.waitUntil(lambda: bool(seen))
    assert seen == [(False, False, False)]


# --- a defined order, the results page, a window that fits ---------------------------------------

def test_the_table_opens_by_id_ascending_with_the_arrow_shown(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_source(qtbot, window, bsd_root)
    header = window.library_view.table.horizontalHeader()
    assert header.isSortIndicatorShown() and header.sortIndicatorSection() == LIBRARY_COLUMNS.index("id")
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    ids = [int(i) for i in window.current_ids()]
    assert ids == sorted(ids)
    assert window.current_id() == str(ids[0])


def test_the_window_fits_a_1366x768_screen(qtbot: Any, window: MainWindow, bsd_root: Path, tmp_path: Path) -> None:
    hint = window.minimumSizeHint()
    assert hint.width() <= SMALL_SCREEN.width() and hint.height() <= SMALL_SCREEN.height(), hint
    open_source(qtbot, window, bsd_root)
    hint = window.minimumSizeHint()
    assert hint.width() <= SMALL_SCREEN.width() and hint.height() <= SMALL_SCREEN.height(), hint
    window.resize(SMALL_SCREEN)
    qtbot.waitUntil(lambda: window.size() == SMALL_SCREEN)
    assert window.grab().size() == SMALL_SCREEN
    assert window.library_view.table.viewport().height() > 100      # rows are visible, not squeezed out


def test_results_page_shows_the_results_full_size_and_a_cell_goes_back(qtbot: Any, window: MainWindow,
                                                                       bsd_root: Path, trained_run: Path) -> None:
    assert not window.results_page_action.isEnabled()             # no run yet
    open_source(qtbot, window, bsd_root)
    window.load_run(trained_run)
    wait_jobs(qtbot, window)
    window.results_page_action.trigger()
    assert window.page == "results" and window.stack.currentWidget() is window.results_view
    assert not window.results_dock.isVisible() and not window.clip_dock.isVisible()
    oof = window.result.oof
    truth, pred = oof[["truth", "prediction"]].iloc[0]
    window.show_confusion_cell(truth, pred)                          # a click on the matrix
    assert window.page == "library" and window.results_dock.widget() is window.results_view
    assert window.results_dock.isVisible() and window.clip_dock.isVisible()
    window.clip_dock.hide()
    window.reset_layout()
    assert window.clip_dock.isVisible() and window.results_dock.widget() is window.results_view


# --- a session that comes back ----------------------------------------------------------------------

def test_reopening_the_app_restores_source_run_predictions_and_table(qtbot: Any, tmp_path: Path, bsd_root: Path,
                                                                     trained_run: Path) -> None:
    first = make_window(qtbot, tmp_path)
    open_source(qtbot, first, bsd_root)
    first.load_run(trained_run)
    wait_jobs(qtbot, first)
    first.library_view.table.sortByColumn(LIBRARY_COLUMNS.index("score"), Qt.SortOrder.DescendingOrder)
    first.library_view.search.setText("-zzzz")
    tops = frozenset(first.library.frame["top"].value_counts().index[:2])     # the two most shown top levels
    first.library_view.set_filters(Filters(tops=tops))
    chosen = first.current_ids()[3]
    assert first.select_id(chosen)
    shown = first.current_ids()
    first.close()

    second = make_window(qtbot, tmp_path)
    assert second.restore_session()
    wait_jobs(qtbot, second)
    assert not second.errors, second.errors
    assert second.source_path == bsd_root.resolve() or second.source_path == bsd_root
    assert second.run_dir == trained_run and second.session.run_is_for_source
    assert second.predictions is not None and second.predictions.origin == "out-of-fold"
    assert second.library_view.table.sort_state() == ("score", True)
    header = second.library_view.table.horizontalHeader()
    assert header.sortIndicatorSection() == LIBRARY_COLUMNS.index("score")
    assert second.library_view.search.text() == "-zzzz"
    assert second.library.filters.tops == tops and second.library_view.top.selected() == tops
    assert second.current_ids() == shown and second.current_id() == chosen
    assert second.settings.source_memory(second.source_path).runs[0] == str(trained_run)
    second.close()


def test_ensemble_predictions_come_back_by_predicting_again(qtbot: Any, tmp_path: Path, eval_root: Path,
                                                            trained_run: Path) -> None:
    from bst_gui.run_dialogs import ExtractOptions

    first = make_window(qtbot, tmp_path)
    open_source(qtbot, first, eval_root)
    if not first.session.has_embeddings:
        first.start_extraction(ExtractOptions("offline", None, False))
        wait_jobs(qtbot, first)
    first.load_run(trained_run)
    wait_jobs(qtbot, first)
    assert not first.session.run_is_for_source
    assert first.start_prediction()
    wait_jobs(qtbot, first)
    first.close()

    second = make_window(qtbot, tmp_path)
    assert second.restore_session()
    wait_jobs(qtbot, second)
    p = second.predictions
    assert p is not None and p.origin == "ensemble" and p.run_dir == trained_run
    assert "predictions of run run on this source" in second.library_view.caption_label.text().lower()
    second.close()


def test_after_loading_a_run_the_clip_panel_shows_its_prediction_at_once(qtbot: Any, window: MainWindow,
                                                                          bsd_root: Path, trained_run: Path) -> None:
    open_source(qtbot, window, bsd_root)
    assert "No prediction yet" in window.clip_panel.guesses.text()
    window.load_run(trained_run)
    wait_jobs(qtbot, window)
    assert "No prediction yet" not in window.clip_panel.guesses.text()
    assert window.clip_panel.guesses.text()


def test_load_run_starts_in_the_runs_folder_and_train_dialog_remembers(qtbot: Any, window: MainWindow,
                                                                       bsd_root: Path, trained_run: Path) -> None:
    from bst_core import paths

    assert window.runs_folder() == paths.data_dir() / "runs"
    open_source(qtbot, window, bsd_root)
    window.load_run(trained_run)
    wait_jobs(qtbot, window)
    assert window.runs_folder() == trained_run.parent               # this source's runs are there
    window._fill_runs_menu()
    assert window.runs_menu.actions()[0].text().startswith(trained_run.name)

    long_dir = Path("/very/long/path") / ("deep-folder-" * 12) / "BSD10k-20260101-120000"
    dialog = TrainDialog(long_dir)
    qtbot.addWidget(dialog)
    dialog.folds.setValue(3)
    dialog.epochs.setValue(7)
    values = dialog.values()
    again = TrainDialog(long_dir, remembered=values)
    qtbot.addWidget(again)
    assert again.folds.value() == 3 and again.epochs.value() == 7
    assert again.run_path.toolTip() == str(long_dir) and again.run_path.path == str(long_dir)
    again.resize(500, 400)
    again.show()
    qtbot.waitUntil(lambda: "…" in again.run_path.text())           # elided in the middle
    assert again.run_path.text().startswith("/very") and again.run_path.text().endswith("120000")


# --- truth from subfolders ----------------------------------------------------------------------------

def test_a_librarians_sorted_folder_gives_truth_and_the_toggle_is_remembered(qtbot: Any, window: MainWindow,
                                                                             tmp_path: Path) -> None:
    root = tmp_path / "sounds"
    for k, key in enumerate(("fx-o", "fx-o", "ss-u", "Vehicles")):
        wav(root / key / f"take {k}.wav", seed=k)
    window.settings.set_flag("truth_from_subfolders", True)         # as the open dialog's toggle leaves it
    window.ask_open_path = lambda kind: str(root)
    window.ask_and_open("folder")
    wait_jobs(qtbot, window)
    assert window.corpus is not None and window.corpus.labelled
    truth = dict(zip(window.library.frame["id"], window.library.frame["truth"], strict=True))
    assert truth == {"fx-o/take 0.wav": "fx-o", "fx-o/take 1.wav": "fx-o", "ss-u/take 2.wav": "ss-u",
                     "Vehicles/take 3.wav": "fx-v"}
    window.close_source()
    window.open_source(root)                                           # recent / restore: as read last time
    wait_jobs(qtbot, window)
    assert window.corpus is not None and window.corpus.labelled


def test_a_sorted_folder_with_unsorted_sounds_cross_validates_its_labelled_part(qtbot: Any, window: MainWindow,
                                                                                tmp_path: Path) -> None:
    from bst_gui.run_dialogs import ExtractOptions

    root = tmp_path / "library"
    for c, folder in enumerate(("fx-o", "Vehicles", "ss-u")):
        for k in range(8):
            wav(root / folder / f"take {k}.wav", seconds=0.2 + 0.05 * k, seed=10 * c + k)
    wav(root / "to sort" / "new.wav", seed=99)
    open_source(qtbot, window, root, truth_from_subfolders=True)
    window.start_extraction(ExtractOptions("offline", None, False))
    wait_jobs(qtbot, window)
    assert window.start_cross_validation(SHORT_CV, tmp_path / "run")
    assert "1 without a label are left out" in window.statusBar().currentMessage()
    wait_jobs(qtbot, window)
    assert not window.errors, window.errors
    assert window.session.run_is_for_source
    assert set(window.result.oof["id"]) == set(window.corpus.ids) - {"to sort/new.wav"}
    window.library_view.disagree.setChecked(True)                  # truth ≠ prediction works on it
    frame = window.library.frame
    wrong = int(((frame["truth"] != "") & (frame["prediction"] != "") & (frame["truth"] != frame["prediction"])).sum())
    assert window.library.rowCount() == wrong


# --- search and the hierarchical abstain --------------------------------------------------------------

def test_search_status_edited_and_unknown_fields(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_source(qtbot, window, bsd_root)
    view = window.library_view
    view.search.setText("status:ok")
    assert window.library.rowCount() == len(window.library.frame[window.library.frame["status"] == "ok"])
    view.search.setText("edited")
    assert window.library.rowCount() == 0
    view.search.setText("colour:red")
    assert view.problem_label.isVisibleTo(window) and "not understood" in view.problem_label.text().lower()
    view.search.setText("decision:top")
    assert "abstain threshold" in view.problem_label.text()


def test_abstain_threshold_adds_the_decision_column_and_its_filter(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                                   trained_run: Path) -> None:
    from bst_core.abstain import abstain_frame

    column = LIBRARY_COLUMNS.index("decision")
    assert not window.abstain_action.isChecked()                      # off by default
    open_source(qtbot, window, bsd_root)
    window.load_run(trained_run)
    wait_jobs(qtbot, window)
    assert window.library_view.table.isColumnHidden(column)
    counts = {t: int((~abstain_frame(window.predictions, t)["decision"].str.contains("-")).sum())
              for t in np.round(np.arange(0.2, 1.0, 0.05), 2)}
    threshold = max(counts, key=counts.get)          # a short run's scores vary: where abstentions are
    abstained = counts[threshold]
    assert abstained > 0, counts
    window.set_abstain_threshold(float(threshold))
    assert not window.library_view.table.isColumnHidden(column)
    assert window.settings.flag("abstain", False) and window.settings.number("abstain_threshold", 0) == threshold
    window.library_view.search.setText("abstained")
    assert window.library.rowCount() == abstained
    text = window.library.data(window.library.index(0, column))
    assert text.endswith(", leaf unsure")
    window.set_abstain_threshold(None)
    assert window.library_view.table.isColumnHidden(column) and not window.settings.flag("abstain", True)


def test_tab_into_the_table_selects_a_row(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_source(qtbot, window, bsd_root)
    table = window.library_view.table
    table.selectionModel().clear()
    table.clearFocus()
    window.activateWindow()
    for _ in range(40):                                # through the filter bar to the table
        if table.hasFocus():
            break
        QTest.keyClick(window.focusWidget() or window, Qt.Key.Key_Tab)
    assert table.hasFocus()
    assert table.selectionModel().hasSelection() and window.current_id() is not None


# --- wording: the app's words, not command-line flags ------------------------------------------------

def test_core_refusals_that_name_cli_flags_are_told_in_the_apps_words(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core.checkpoints import find_clap_checkpoint
    from bst_core.pipeline import PartialRunError
    from bst_gui.jobs import describe_error

    monkeypatch.delenv("BST_CLAP_CHECKPOINT", raising=False)
    for given in (None, tmp_path / "nowhere.pt"):
        with pytest.raises(Exception) as caught:
            find_clap_checkpoint(given)
        assert "--checkpoint" in str(caught.value)                  # the CLI's words stay the core's
        message, _ = describe_error(caught.value)
        assert "--" not in message and "Browse…" in message and "Extract dialog" in message
    partial = PartialRunError(tmp_path / "run", 2, 5, [3, 4, 5], "… pass --allow-partial")
    message, _ = describe_error(partial)
    assert "--" not in message and "Analysis › Cross-validate…" in message and "3, 4, 5" in message
    # a source without embeddings, a store of other files, an unusable download: the app's menus
    from bst_core import pipeline
    from bst_core.checkpoints import UnusableDownload

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    sf.write(sounds / "a.wav", np.zeros(4410, dtype=np.float32), 44100)
    with pytest.raises(pipeline.NoEmbeddingsError) as caught:
        pipeline.open_source(sounds, require_embeddings=True)
    assert "bst extract" in str(caught.value)
    message, _ = describe_error(caught.value)
    assert "--" not in message and "bst " not in message and "Analysis › Extract embeddings…" in message
    stale = pipeline.StoreOutOfDate(sounds, tmp_path / "s.store", "The store holds other files.", "… --out X")
    message, _ = describe_error(stale)
    assert "--" not in message and "The store holds other files." in message and "Extract embeddings" in message
    download = UnusableDownload("https://example.org/x.pt", tmp_path / ".x.part", "no state dict", "… --checkpoint")
    message, _ = describe_error(download)
    assert "--" not in message and "Browse…" in message and "no state dict" in message


def test_cross_validation_status_speaks_percent(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                tmp_path: Path) -> None:
    open_source(qtbot, window, bsd_root)
    assert window.start_cross_validation(SHORT_CV, tmp_path / "run")
    wait_jobs(qtbot, window)
    message = window.statusBar().currentMessage()
    assert message.startswith("Cross-validation finished: hF ") and "%" in message
    assert "No prediction yet" not in window.clip_panel.guesses.text()     # the clip panel follows at once


def test_a_long_status_message_keeps_a_gap_before_the_source_entry(qtbot: Any, window: MainWindow,
                                                                    bsd_root: Path) -> None:
    from bst_gui.main_window import STATUS_GAP

    open_source(qtbot, window, bsd_root)
    window.resize(SMALL_SCREEN)
    window.statusBar().showMessage("Relabel next: the relabel keys label the clip and move on; Space plays. " * 3)
    qtbot.wait(20)
    label = window.source_label
    text_left = label.mapTo(window.statusBar(), label.contentsRect().topLeft()).x()
    assert text_left - label.geometry().left() >= STATUS_GAP   # the label's text starts after its gap


def test_zero_shot_labels_come_back_by_computing_them_again(qtbot: Any, tmp_path: Path, bsd_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from clap_search_fixtures import ClassWordsEncoder

    from bst_core import text_search

    first = make_window(qtbot, tmp_path)
    open_source(qtbot, first, bsd_root)
    encoder = ClassWordsEncoder(first.corpus.encoder)
    monkeypatch.setattr(text_search, "joint_encoder_for", lambda corpus, **_kw: encoder)
    assert first.start_zero_shot()
    wait_jobs(qtbot, first)
    shown = first.predictions
    assert shown is not None and shown.origin == "zero-shot"
    first.close()

    second = make_window(qtbot, tmp_path)
    assert second.restore_session()
    wait_jobs(qtbot, second)
    assert not second.errors, second.errors
    again = second.predictions
    assert again is not None and again.origin == "zero-shot"
    np.testing.assert_array_equal(again.probs, shown.probs)
    second.close()
