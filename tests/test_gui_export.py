"""The export dialog: messages never move the layout, author cells edit on one click, nothing guessed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QAbstractItemView, QLineEdit

from bst_core import submission
from bst_core.taxonomy import CLASS_KEYS
from bst_gui.export_dialog import AUTHOR_FIELDS, ExportDialog, authors_for_yaml

pytestmark = pytest.mark.gui


@pytest.fixture()
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _shown(qtbot: Any, dialog: ExportDialog) -> ExportDialog:
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def _geometry(dialog: ExportDialog) -> dict[str, Any]:
    widgets = {"label": dialog.label_edit, "folder": dialog.folder_edit, "authors": dialog.authors,
               "write": dialog.write_button, "error": dialog.label_error, "target": dialog.target_label}
    return {"hint": dialog.sizeHint(), "size": dialog.size(), **{k: w.geometry() for k, w in widgets.items()}}


def test_messages_coming_and_going_do_not_move_the_layout(qtbot: Any, settings: QSettings, tmp_path: Path) -> None:
    dialog = _shown(qtbot, ExportDialog(label="Zheng_SCUT_task1_1", out_dir=str(tmp_path), settings=settings))
    qtbot.wait(10)
    calm = _geometry(dialog)
    assert dialog.label_error.text() == "" and "task1" in dialog.target_label.text()
    dialog.label_edit.setText("not a label")                       # a label problem shows, the target goes
    qtbot.wait(10)
    assert "part" in dialog.label_error.text() and "task1/<label>/" in dialog.target_label.text()
    assert _geometry(dialog) == calm
    dialog.show_problems(["Author 1: enter the email.", "3 evaluation id(s) have no prediction."])
    qtbot.wait(10)
    assert dialog.problems.isVisible() and dialog.listed_problems()[0] == "Author 1: enter the email."
    assert _geometry(dialog) == calm
    dialog.show_problems([])
    dialog.label_edit.setText("Zheng_SCUT_task1_1")
    qtbot.wait(10)
    assert not dialog.problems.isVisible() and _geometry(dialog) == calm


def test_an_author_cell_edits_on_a_single_click(qtbot: Any, settings: QSettings, tmp_path: Path) -> None:
    dialog = _shown(qtbot, ExportDialog(label="Zheng_SCUT_task1_1", out_dir=str(tmp_path), settings=settings))
    table = dialog.authors
    rect = table.visualItemRect(table.item(0, 2))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert table.state() == QAbstractItemView.State.EditingState and table.currentColumn() == 2
    editor = next(e for e in table.viewport().findChildren(QLineEdit) if e.isVisible())
    qtbot.keyClicks(editor, "han@example.org")
    assert editor.text() == "han@example.org"
    qtbot.keyClick(editor, Qt.Key.Key_Tab)                      # Tab commits and edits the next cell
    assert table.item(0, 2).text() == "han@example.org"
    assert table.currentColumn() == 3 and table.state() == QAbstractItemView.State.EditingState


def test_no_affiliation_is_guessed_from_the_label(qtbot: Any, settings: QSettings, tmp_path: Path) -> None:
    dialog = _shown(qtbot, ExportDialog(label="Zheng_SCUT_task1_1", out_dir=str(tmp_path), settings=settings))
    for column, value in enumerate(("Zheng", "Han", "han@example.org")):
        dialog.authors.item(0, column).setText(value)
    assert all(dialog.authors.item(0, c).text() == "" for c in (3, 4))   # nothing filled in
    author = dialog.options()["authors"][0]
    assert "affiliation" not in author and "SCUT" not in str(author)
    dialog.authors.item(0, AUTHOR_FIELDS.index("abbreviation")).setText("SCUT")
    assert dialog.options()["authors"][0]["affiliation"] == {"abbreviation": "SCUT"}
    rows = [{"lastname": "Zheng", "firstname": "Han", "email": "h@example.org", "affiliation": "South China U."}]
    assert authors_for_yaml(rows, "Zheng_SCUT_task1_1")[0]["affiliation"] == {"institute": "South China U."}

    # what the dialog gives is a valid package, written as typed
    ids = [f"uuid-{i}" for i in range(23)]
    predictions = SimpleNamespace(ids=ids, labels=list(CLASS_KEYS), scores=np.linspace(0.2, 0.9, 23))
    package = submission.write_package(tmp_path / "out", "Zheng_SCUT_task1_1", predictions, ids,
                                       dev_dataset="BSD10k", total_parameters=1000,
                                       authors=authors_for_yaml(rows))
    assert submission.validate_package(package, ids) == []
    meta = yaml.safe_load((package / "Zheng_SCUT_task1_1.meta.yaml").read_text(encoding="utf-8"))
    assert meta["submission"]["authors"][0]["affiliation"] == {"institute": "South China U."}
