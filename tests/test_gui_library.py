"""Library table model and view: filtering, sorting, roles, search box and filter bar."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QModelIndex, Qt

from bst_core import taxonomy
from bst_core.corpus import empty_table
from bst_core.library_query import LIBRARY_COLUMNS, Filters, library_frame
from bst_gui import style
from bst_gui.library_model import LibraryModel
from bst_gui.library_view import LibraryView

pytestmark = pytest.mark.gui

COL = {name: i for i, name in enumerate(LIBRARY_COLUMNS)}


def make_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = empty_table(n)
    table["id"] = [str(1000 + i) for i in range(n)]
    words = ["dog", "rain", "door", "piano", "city", "engine"]
    table["title"] = [f"{words[i % len(words)]} take {i}" for i in range(n)]
    table["tags"] = [words[(i + 1) % len(words)] for i in range(n)]
    table["label"] = [taxonomy.CLASS_KEYS[i % taxonomy.NUM_CLASSES] for i in range(n)]
    table["audio_path"] = [f"/sounds/{1000 + i}.wav" for i in range(n)]
    table["duration_s"] = rng.uniform(0.1, 30, n)
    status = ["text only: empty file (0 bytes)" if i % 10 == 3 else "ok" for i in range(n)]
    return library_frame(table, status)


@pytest.fixture()
def model(qtbot: Any) -> LibraryModel:
    model = LibraryModel()
    model.set_frame(make_frame())
    ids = model.frame["id"].tolist()
    rng = np.random.default_rng(1)
    labels = [taxonomy.CLASS_KEYS[(i * 7) % taxonomy.NUM_CLASSES] for i in range(len(ids))]
    probs = rng.dirichlet(np.ones(taxonomy.NUM_CLASSES), size=len(ids))
    model.set_predictions(ids, labels, probs.max(axis=1), probs, rng.dirichlet([1, 1], size=len(ids)))
    return model


def visible(model: LibraryModel) -> list[str]:
    return [model.id_at(r) for r in range(model.rowCount())]


def test_model_shows_every_row_with_display_text_and_roles(model: LibraryModel) -> None:
    assert model.rowCount() == 60 and model.columnCount() == len(LIBRARY_COLUMNS)
    index = model.index(0, COL["truth"])
    key = model.data(index)
    background, text = style.class_colours(key)
    assert model.data(index, Qt.ItemDataRole.BackgroundRole) == background
    assert model.data(index, Qt.ItemDataRole.ForegroundRole) == text
    assert taxonomy.BY_KEY[key].name in model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(0, COL["duration_s"])).endswith(" s")
    assert model.data(model.index(0, COL["score"])) == f"{model.frame['score'][0]:.2f}"
    assert model.headerData(COL["score"], Qt.Orientation.Horizontal) == "Score"
    assert model.data(QModelIndex()) is None
    assert model.probabilities("1000") is not None and model.attention_of("1000") is not None


def test_audio_status_column_names_what_the_prediction_was_made_from(model: LibraryModel) -> None:
    column = COL["audio"]
    assert model.headerData(column, Qt.Orientation.Horizontal) == "Audio"
    row = model.row_of("1003")
    index = model.index(row, column)
    assert model.data(index) == "text only: empty file (0 bytes)"
    assert model.data(index, Qt.ItemDataRole.ForegroundRole) is not None       # shown as a notice
    assert model.data(model.index(model.row_of("1000"), column)) == "ok"
    assert model.data(model.index(model.row_of("1000"), column), Qt.ItemDataRole.ForegroundRole) is None
    # the predictions' own status replaces it for the rows they cover
    model.set_predictions(["1000"], ["fx-o"], [0.5], audio_status=["text only: not an audio file"])
    assert model.record("1000")["audio"] == "text only: not an audio file"
    assert model.record("1003")["audio"] == "text only: empty file (0 bytes)"


def test_class_colours_have_readable_text() -> None:
    for cls in taxonomy.classes():
        background = cls.colour
        text = style.readable_text(background)
        lum_bg, lum_text = style.luminance(background), style.luminance(text)
        contrast = (max(lum_bg, lum_text) + 0.05) / (min(lum_bg, lum_text) + 0.05)
        assert contrast >= 4.0, (cls.key, background, text, contrast)
        assert style.readable_on(background).name() == text     # one formula for every widget


def test_query_and_filters_select_rows(model: LibraryModel) -> None:
    model.set_query("dog")
    assert visible(model) and all("dog" in model.record(i)["title"] + model.record(i)["tags"]
                                  for i in visible(model))
    model.set_query("dog -take")
    assert visible(model) == []
    model.set_query("")
    model.set_filters(Filters(truth="fx-o", prediction=model.record("1000")["prediction"]))
    frame = model.frame
    expected = frame.loc[(frame["truth"] == "fx-o") & (frame["prediction"] == model.record("1000")["prediction"]),
                         "id"].tolist()
    assert visible(model) == expected
    model.set_filters(Filters(disagree=True))
    assert all(model.record(i)["truth"] != model.record(i)["prediction"] for i in visible(model))
    model.set_filters(Filters())
    assert model.rowCount() == 60


def test_sort_by_every_column_keeps_rows_and_orders_them(model: LibraryModel) -> None:
    for column, name in enumerate(LIBRARY_COLUMNS):
        model.sort(column, Qt.SortOrder.AscendingOrder)
        assert sorted(visible(model)) == sorted(model.frame["id"])
        if name in ("duration_s", "score"):
            values = [model.record(i)[name] for i in visible(model)]
            assert values == sorted(values)
    model.sort(COL["score"], Qt.SortOrder.DescendingOrder)
    values = [model.record(i)["score"] for i in visible(model)]
    assert values == sorted(values, reverse=True)


def test_sort_keeps_the_selection_on_the_same_clip(qtbot: Any, model: LibraryModel) -> None:
    view = LibraryView(model)
    qtbot.addWidget(view)
    view.select_row(5)
    chosen = view.current_id()
    view.table.sortByColumn(COL["score"], Qt.SortOrder.DescendingOrder)
    assert view.current_id() == chosen
    assert view.selected_ids() == [chosen]


def test_search_box_and_filter_bar_drive_the_model(qtbot: Any, model: LibraryModel) -> None:
    view = LibraryView(model)
    qtbot.addWidget(view)
    qtbot.keyClicks(view.search, "piano")
    assert 0 < model.rowCount() < 60
    assert "of 60 sounds" in view.count_label.text()
    view.search.clear()
    view.disagree.setChecked(True)
    assert model.filters.disagree
    view.score_min.setValue(0.2)
    assert model.filters.score_min == pytest.approx(0.2)
    view.clear_filters()
    assert model.rowCount() == 60 and not model.filters.active

    view.search.setText("class:nonsense")
    assert model.rowCount() == 0
    assert view.problem_label.isVisibleTo(view) and "nonsense" in view.problem_label.text()


def test_pair_filter_button_shows_and_clears(qtbot: Any, model: LibraryModel) -> None:
    view = LibraryView(model)
    qtbot.addWidget(view)
    view.set_filters(Filters(truth="fx-o", prediction="fx-a"))
    assert view.pair_button.isVisibleTo(view) and "fx-o" in view.pair_button.text()
    view.pair_button.click()
    assert model.filters.truth is None and not view.pair_button.isVisibleTo(view)


def test_down_from_the_search_box_goes_to_the_table(qtbot: Any, model: LibraryModel) -> None:
    view = LibraryView(model)
    qtbot.addWidget(view)
    view.show()
    view.search.setFocus()
    qtbot.keyClick(view.search, Qt.Key.Key_Down)
    assert view.current_id() == model.id_at(0)
    qtbot.keyClicks(view.search, "xyz")
    qtbot.keyClick(view.search, Qt.Key.Key_Escape)
    assert view.search.text() == ""


def test_edits_and_durations_update_in_place_without_losing_the_selection(qtbot: Any, model: LibraryModel) -> None:
    view = LibraryView(model)
    qtbot.addWidget(view)
    view.select_row(3)
    chosen = view.current_id()
    model.set_edited({chosen: "ss-n"})
    assert model.record(chosen)["edited"] == "ss-n" and model.record(chosen)["status"] == "edited"
    assert view.current_id() == chosen
    model.set_durations(np.array([0, 1]), np.array([2.0, 3.0]))
    assert model.frame["duration_s"][:2].tolist() == [2.0, 3.0]


def test_large_corpus_filters_through_arrays(qtbot: Any) -> None:
    """35k rows: one search is a handful of vectorised matches (timing lives in benchmarks/)."""
    model = LibraryModel()
    model.set_frame(make_frame(35_000))
    model.set_query("engine take")
    # "engine" is the title word of rows i % 6 == 5 and the tag of rows i % 6 == 4
    assert model.rowCount() == sum(1 for i in range(35_000) if i % 6 in (4, 5))
    model.sort(COL["title"], Qt.SortOrder.DescendingOrder)
    assert model.rowCount() == len(set(visible(model)))
