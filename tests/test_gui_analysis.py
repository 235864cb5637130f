"""The analysis features in the real window, offscreen: Similar (S), Why this label, Relabel next,
Runs side by side, the map linked with the table, and search by words refusing without CLAP."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clap_search_fixtures import ClassWordsEncoder

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, QSettings, Qt

from bst_core import pipeline
from bst_core.config import TrainConfig
from bst_core.library_query import Filters, library_frame
from bst_core.run_compare import compare_runs
from bst_gui.library_model import LibraryModel
from bst_gui.main_window import MainWindow
from bst_gui.map_view import points_in_polygon
from bst_gui.playback import AudioOutput
from bst_gui.settings import Settings

pytestmark = pytest.mark.gui

SHORT_CV = TrainConfig(folds=2, epochs=2, patience=None, seed=3)
OTHER_CV = TrainConfig(mode="audio", folds=2, epochs=6, patience=None, seed=11)


class NoDevice:
    def query_devices(self, kind: str | None = None) -> dict:
        raise RuntimeError("no sound device in the tests")


@pytest.fixture()
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    # Collect earlier tests' closed windows here, on the GUI thread: a numba compile (UMAP) in a worker
    # thread would otherwise collect their Qt wrappers there, and Qt aborts on that.
    gc.collect()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings, AudioOutput(sounddevice=NoDevice()))
    win.errors = []   # type: ignore[attr-defined]
    win.show_error = lambda title, message, details="": win.errors.append((title, message, details))
    win.show_info = lambda title, message: None
    win.confirm_close_during_job = lambda: True
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.analysis.jobs.shutdown(60_000)
    if win.jobs.busy:
        win.jobs.cancel()
        win.jobs.wait(60_000)
    win.close()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    from bst_core.sources import read_bsd_dataset
    from bst_core.training import cross_validate

    run_dir = tmp_path_factory.mktemp("runs") / "run-both"
    cross_validate(read_bsd_dataset(bsd_root), run_dir, SHORT_CV)
    return run_dir


@pytest.fixture(scope="module")
def second_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    from bst_core.sources import read_bsd_dataset
    from bst_core.training import cross_validate

    run_dir = tmp_path_factory.mktemp("runs") / "run-audio"
    cross_validate(read_bsd_dataset(bsd_root), run_dir, OTHER_CV)
    return run_dir


def wait_job(qtbot: Any, win: MainWindow, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=timeout)


def wait_analysis(qtbot: Any, win: MainWindow, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not win.analysis.jobs.busy(), timeout=timeout)


def open_with_run(qtbot: Any, win: MainWindow, root: Path, run: Path | None = None) -> None:
    win.open_source(root)
    wait_job(qtbot, win)
    if run is not None:
        win.load_run(run)
        wait_job(qtbot, win)
    assert not win.errors, win.errors


# --- the table's ordered-id filter -----------------------------------------------------------------

def test_an_ordered_id_filter_shows_exactly_those_rows_in_that_order(qtbot: Any) -> None:
    frame = library_frame(pd.DataFrame({"id": ["a", "b", "c", "d"], "title": ["w", "x", "y", "z"],
                                        "label": ["fx-o", "fx-a", "m-sp", "ss-n"]}))
    model = LibraryModel()
    model.set_frame(frame)
    model.set_filters(Filters(ordered_ids=("c", "a", "zz", "d")))
    assert model.visible_ids() == ["c", "a", "d"]
    model.sort(0, Qt.SortOrder.AscendingOrder)                # a header click sorts the listed rows
    assert model.visible_ids() == ["a", "c", "d"]
    model.set_filters(Filters(ordered_ids=("d", "b")))         # a new list shows in its own order again
    assert model.visible_ids() == ["d", "b"]
    model.set_filters(Filters())
    assert model.visible_ids() == ["a", "b", "c", "d"]         # and clearing it keeps the person's sort


def test_new_shortcuts_clash_with_none_of_the_window(window: MainWindow) -> None:
    seen: dict[str, str] = {}
    for action in window.findChildren(type(window.analysis.similar.action)):
        for shortcut in action.shortcuts():
            key = shortcut.toString()
            assert key not in seen or seen[key] == action.text(), f"{key}: {seen.get(key)} and {action.text()}"
            seen[key] = action.text()
    assert seen["S"] == "More like this"


# --- Similar ----------------------------------------------------------------------------------------

def test_similar_lists_the_duplicate_first_ready_to_audition(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_with_run(qtbot, window, bsd_root)
    corpus = window.corpus
    ids = [str(i) for i in corpus.ids]
    query, twin = ids[3], ids[40]
    audio, text = np.array(corpus.audio, copy=True), np.array(corpus.text, copy=True)
    audio[40], text[40] = audio[3], text[3]                  # the same sound twice under two ids
    window.session.replace_corpus(replace(corpus, audio=audio, text=text))
    assert window.select_id(query)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    window.library_view.table.setFocus()
    qtbot.keyClick(window.library_view.table, Qt.Key.Key_S)
    wait_analysis(qtbot, window)
    shown = window.current_ids()
    assert shown[0] == twin and query not in shown
    assert shown == window.analysis.similar.last["id"].tolist() and len(shown) == window.analysis.similar.k
    assert window.current_id() == twin
    assert "similar to" in window.library_view.pair_button.text()
    window.advance(1)                                           # Down: the next most similar
    assert window.current_id() == shown[1]
    window.library_view.pair_button.click()                     # cleared like any other filter
    assert len(window.current_ids()) == len(corpus)


# --- Why this label ------------------------------------------------------------------------------------

def test_why_this_label_lists_the_nearest_training_clips_after_a_run(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                                     trained_run: Path) -> None:
    from bst_core.explain import LatentIndex

    open_with_run(qtbot, window, bsd_root)
    panel = window.clip_panel
    window.select_id(str(window.corpus.ids[5]))
    assert "Train or load a run" in panel.explain_note.text() and not panel.explanation_ids()
    window.load_run(trained_run)
    wait_job(qtbot, window)
    target = str(window.corpus.ids[7])
    window.select_id(target)
    qtbot.waitUntil(lambda: len(panel.explanation_ids()) == 5, timeout=120_000)
    expected = LatentIndex(pipeline.load_ensemble(trained_run), window.corpus).explain(window.corpus, target, 5)
    assert panel.explanation_ids() == expected.neighbours["id"].tolist()
    assert target not in panel.explanation_ids()
    truth = window.result.oof.set_index("id")["truth"]
    first = panel.explain_list.item(0)
    assert first.text().startswith(truth[panel.explanation_ids()[0]])
    assert "2 fold models" in panel.explain_note.text()
    # moving on never leaves the old clip's list on screen
    window.select_id(str(window.corpus.ids[8]))
    assert not panel.explanation_ids()
    qtbot.waitUntil(lambda: len(panel.explanation_ids()) == 5, timeout=60_000)
    # a double click goes to the training clip (it is in the open source)
    neighbour = panel.explanation_ids()[0]
    panel.explain_open.emit(neighbour)
    assert window.current_id() == neighbour
    wait_analysis(qtbot, window)


# --- Relabel next --------------------------------------------------------------------------------------

def test_relabel_queue_follows_relabel_next_and_advances_after_a_relabel(qtbot: Any, window: MainWindow,
                                                                         bsd_root: Path, trained_run: Path) -> None:
    from bst_core.label_issues import relabel_next

    open_with_run(qtbot, window, bsd_root, trained_run)
    analysis = window.analysis
    analysis.show_queue()
    qtbot.waitUntil(lambda: analysis.queue.queue is not None, timeout=120_000)
    labels = pipeline.truth_of(window.corpus).to_dict()
    expected = relabel_next(window.result.predictions(), labels)["id"].tolist()
    assert analysis.queue.ids == expected
    assert analysis.queue_view.model.ids() == expected
    analysis.show_queue()                                      # ready: the table walks the queue
    assert window.current_ids() == expected and window.current_id() == expected[0]
    window.relabel.assign("fx-o")
    assert window.workspace.label_of(expected[0]) == "fx-o"
    assert window.current_id() == expected[1]                  # on to the next queue item
    assert analysis.queue_view.table.currentIndex().row() == 1
    edited = [c.key for c in analysis.queue_view.model.columns].index("edited")
    assert analysis.queue_view.model.index(0, edited).data() == "fx-o"
    window.relabel.assign("fx-a")
    assert window.current_id() == expected[2]


# --- Runs ----------------------------------------------------------------------------------------------

def test_runs_view_lists_two_runs_and_the_clips_whose_prediction_changed(
        qtbot: Any, window: MainWindow, bsd_root: Path, trained_run: Path, second_run: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    open_with_run(qtbot, window, bsd_root, trained_run)
    analysis = window.analysis
    analysis.runs_action.trigger()
    analysis.runs.add(second_run)
    wait_analysis(qtbot, window)
    view = analysis.runs_view
    assert {Path(r.run_dir) for r in view.runs} == {trained_run, second_run}
    view.choose(trained_run, second_run)
    expected = compare_runs(pipeline.load_run(trained_run), pipeline.load_run(second_run))
    assert len(expected.changed), "the two runs should disagree on some clips"
    assert view.changed_model.ids() == expected.changed["id"].tolist()
    hf = view.metric_model.frame.set_index("id").loc["hF"]
    assert hf["a"] == expected.report.table1()[2][1] and hf["b"] == expected.report.table1()[2][2]
    assert view.class_model.rowCount() == 23
    view.show_button.click()
    assert window.current_ids() == expected.changed["id"].tolist()
    view.changed_table.doubleClicked.emit(view.changed_model.index(2, 0))
    assert window.current_id() == expected.changed["id"].iloc[2]
    assert view.report_button.isEnabled()
    from bst_core.report import report_runs

    runs_in_view = [r.run_dir for r in view.runs]
    for suffix in (".md", ".csv", ".tex"):               # the tables of `bst report`, byte for byte
        out = analysis.runs.save_report(tmp_path / f"report{suffix}")
        assert out.read_text() == report_runs(runs_in_view).render(suffix)
    from PySide6.QtWidgets import QFileDialog  # a name typed without suffix takes the chosen type's

    chosen = (str(tmp_path / "typed"), "CSV (*.csv)")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *_a, **_k: chosen))
    view.report_button.click()
    assert (tmp_path / "typed.csv").read_text() == report_runs(runs_in_view).render(".csv")


# --- Map ----------------------------------------------------------------------------------------------

def test_map_selection_and_table_selection_follow_each_other(qtbot: Any, window: MainWindow, bsd_root: Path) -> None:
    open_with_run(qtbot, window, bsd_root)
    analysis = window.analysis
    analysis.map_action.trigger()
    qtbot.waitUntil(lambda: len(analysis.map_view.ids) == len(window.corpus), timeout=120_000)
    analysis.jobs.cancel("umap")            # the PCA map is enough here (UMAP: the render script and benchmark)
    wait_analysis(qtbot, window)
    view = analysis.map_view
    # table → map: the selected clip is ringed
    target = view.ids[10]
    window.select_id(target)
    qtbot.waitUntil(lambda: view.highlighted_ids() == [target], timeout=5_000)
    # map → table: a lasso (the polygon a drag draws) lists exactly the clips inside it, all selected
    centre = view.xy.mean(axis=0)
    span = view.xy.std(axis=0)
    polygon = np.array([centre - span, [centre[0] + span[0], centre[1] - span[1]], centre + span,
                        [centre[0] - span[0], centre[1] + span[1]]])
    inside = [view.ids[k] for k in np.flatnonzero(points_in_polygon(view.xy, polygon))]
    assert 0 < len(inside) < len(view.ids)
    view.box.polygon_drawn.emit(polygon)
    assert sorted(window.current_ids()) == sorted(inside)
    assert sorted(window.selected_ids()) == sorted(inside)
    qtbot.waitUntil(lambda: sorted(view.highlighted_ids()) == sorted(inside), timeout=5_000)
    # map → table: a click on a point makes its clip current
    window.clear_filters()
    row = 25
    scene = view.box.mapViewToScene(QPointF(float(view.xy[row, 0]), float(view.xy[row, 1])))
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=view.plot.mapFromScene(scene))
    qtbot.waitUntil(lambda: window.current_id() == view.ids[row] or _near(view, row), timeout=5_000)


def _near(view: Any, row: int) -> bool:
    """A click may land on a point drawn on top of the target (same pixel): accept any point within 3 px."""
    current = view.highlighted_ids()
    if not current:
        return False
    other = view._row_of[current[0]]
    px, py = view.box.viewPixelSize()
    dx, dy = (view.xy[other] - view.xy[row]) / np.array([px, py])
    return bool(np.hypot(dx, dy) <= 3 + 1e-6)


def test_points_in_polygon_is_the_even_odd_rule() -> None:
    xy = np.array([[0.5, 0.5], [1.2, 0.5], [0.3, 1.2], [2.5, 2.5], [0.1, 0.9]])
    triangle = np.array([[0, 0], [2, 0], [0, 2]])
    assert points_in_polygon(xy, triangle).tolist() == [True, True, True, False, True]


# --- search by words --------------------------------------------------------------------------------

def test_search_by_words_says_it_needs_clap_with_offline_embeddings(qtbot: Any, window: MainWindow,
                                                                    bsd_root: Path) -> None:
    from bst_core.encoders.offline import OFFLINE_ENCODER

    open_with_run(qtbot, window, bsd_root)
    window.session.replace_corpus(replace(window.corpus, encoder=OFFLINE_ENCODER))   # an offline store
    search = window.library_view.search
    search.setFocus()
    search.setText("~dog barking")
    assert window.library.rowCount() == len(window.corpus)     # "~words" filters nothing by itself
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert "needs CLAP" in window.library_view.problem_label.text()
    assert window.library_view.problem_label.isVisibleTo(window.library_view)
    assert not window.analysis.jobs.busy("words")


class WordsEncoder:
    """Stands in for the CLAP text tower: embeds any words as one chosen clip's audio vector."""

    def __init__(self, info: Any, vector: np.ndarray) -> None:
        self.info, self.vector = info, vector

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.vector, (len(texts), 1)).astype(np.float32)


def test_search_by_words_lists_the_nearest_sounds_first_and_keeps_the_words(qtbot: Any, window: MainWindow,
                                                                             bsd_root: Path) -> None:
    from bst_core.similar import normalise_rows

    open_with_run(qtbot, window, bsd_root)                     # the synthetic dataset ships CLAP-identity vectors
    corpus = window.corpus
    target = 12
    window.analysis._encoder = WordsEncoder(corpus.encoder, np.asarray(corpus.audio)[target])
    search = window.library_view.search
    search.setFocus()
    search.setText("~dog barking")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    wait_analysis(qtbot, window)
    similarity = normalise_rows(np.asarray(corpus.audio)) @ normalise_rows(np.asarray(corpus.audio)[[target]])[0]
    expected = [str(corpus.ids[k]) for k in np.argsort(-similarity, kind="stable")[:50]]
    assert window.current_ids()[0] == str(corpus.ids[target])
    assert window.current_ids() == expected
    assert search.text() == "~dog barking"
    assert "by words" in window.library_view.pair_button.text()
    header = window.library_view.table.horizontalHeader()
    assert not header.isSortIndicatorShown()                   # ranked: no column's arrow claims the order
    window.library_view.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)   # a column sort again: its arrow
    assert header.isSortIndicatorShown() and not window.library.ranked


def test_the_queue_dock_drives_the_table_with_up_and_down(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                         trained_run: Path) -> None:
    open_with_run(qtbot, window, bsd_root, trained_run)
    analysis = window.analysis
    analysis.show_queue()
    qtbot.waitUntil(lambda: analysis.queue.queue is not None, timeout=120_000)
    ids = analysis.queue.ids
    table = analysis.queue_view.table
    table.setFocus()
    table.selectRow(3)
    assert window.current_id() == ids[3] and analysis.queue.active
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert window.current_id() == ids[4]


# --- zero-shot labels -------------------------------------------------------------------------------

def test_zero_shot_labels_fill_the_table_from_the_class_descriptions(qtbot: Any, window: MainWindow, bsd_root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core import text_search
    from bst_core.zero_shot import zero_shot_predictions

    open_with_run(qtbot, window, bsd_root)                     # the synthetic dataset's vectors are CLAP's
    encoder = ClassWordsEncoder(window.corpus.encoder)
    monkeypatch.setattr(text_search, "joint_encoder_for", lambda corpus, **_kw: encoder)
    assert window.zero_shot_action.isEnabled() and window.zero_shot_blocker() == ""
    window.zero_shot_action.trigger()
    wait_job(qtbot, window)
    assert not window.errors, window.errors
    shown = window.predictions
    assert shown is not None and shown.origin == "zero-shot" and shown.n_models == 0
    expected = zero_shot_predictions(window.corpus, encoder)
    np.testing.assert_array_equal(shown.probs, expected.probs)
    assert "zero-shot" in window.session.prediction_caption()
    frame = window.library.frame.set_index("id")
    first = str(window.corpus.ids[0])
    assert frame.loc[first, "prediction"] == expected.labels[0]


def test_zero_shot_labels_with_offline_embeddings_say_they_need_clap(qtbot: Any, window: MainWindow,
                                                                    bsd_root: Path) -> None:
    from bst_core.encoders.offline import OFFLINE_ENCODER

    open_with_run(qtbot, window, bsd_root)
    window.session.replace_corpus(replace(window.corpus, encoder=OFFLINE_ENCODER))
    assert not window.start_zero_shot()
    title, message, _ = window.errors[-1]
    assert "need CLAP" in title and "Analysis › Extract embeddings" in message and "--" not in message
    assert window.predictions is None or window.predictions.origin != "zero-shot"
