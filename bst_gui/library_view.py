"""The sound list: search box, filter bar and the table over :class:`LibraryModel`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFocusEvent, QIcon, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bst_core import taxonomy
from bst_core.library_query import LIBRARY_COLUMNS, Filters
from bst_gui.library_model import LibraryModel

SEARCH_HINT = "Search  ·  words  -exclude  class:fx-o  top:ss  pred:ss-u  score>0.5  ·  ~words by meaning (CLAP)"
WORDS_PREFIX = "~"
"""A search box text starting with this is a search by meaning (CLAP), run on Enter: ``words_search``."""
DEFAULT_SORT: tuple[str, Qt.SortOrder] = ("id", Qt.SortOrder.AscendingOrder)
"""The order a table opens in (ids of digits numerically, paths case-insensitively)."""
COLUMN_WIDTHS = {"id": 90, "title": 260, "duration_s": 64, "truth": 62, "prediction": 74,
                 "score": 66, "top": 42, "decision": 110, "edited": 60, "status": 70, "audio": 150}


def colour_icon(hex_colour: str, size: int = 12) -> QIcon:
    """A small square in a class colour, for menus and buttons."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(hex_colour))
    return QIcon(pixmap)


class _ChoiceButton(QToolButton):
    """A tool button with a menu of checkable choices (multi-select); ``changed`` on each toggle."""

    changed = Signal()

    def __init__(self, title: str, choices: list[tuple[str, str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        self._actions: dict[str, QAction] = {}
        for key, text, colour in choices:
            action = menu.addAction(colour_icon(colour), text)
            action.setCheckable(True)
            action.toggled.connect(self._toggled)
            self._actions[key] = action
        menu.addSeparator()
        menu.addAction("Any", self.clear)
        self.setMenu(menu)
        self._update_text()

    def selected(self) -> frozenset[str]:
        return frozenset(k for k, a in self._actions.items() if a.isChecked())

    def set_selected(self, keys: frozenset[str]) -> None:
        for key, action in self._actions.items():
            action.blockSignals(True)
            action.setChecked(key in keys)
            action.blockSignals(False)
        self._update_text()

    def clear(self) -> None:
        if self.selected():
            self.set_selected(frozenset())
            self.changed.emit()

    def _toggled(self) -> None:
        self._update_text()
        self.changed.emit()

    def _update_text(self) -> None:
        chosen = sorted(self.selected(), key=list(self._actions).index)
        shown = "any" if not chosen else ", ".join(chosen) if len(chosen) <= 3 else f"{len(chosen)} chosen"
        self.setText(f"{self._title}: {shown}")


class LibraryTable(QTableView):
    """The table: fixed row height, row selection, sortable; keeps its current id across resets."""

    def __init__(self, model: LibraryModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setTabKeyNavigation(False)
        vertical = self.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(22)
        vertical.hide()
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        header.setSortIndicatorShown(True)
        for column, name in enumerate(LIBRARY_COLUMNS):
            self.setColumnWidth(column, COLUMN_WIDTHS[name])
        header.setSectionResizeMode(LIBRARY_COLUMNS.index("title"), QHeaderView.ResizeMode.Stretch)
        # a defined order from the start, with its arrow: id ascending (enabling sorting applies it)
        header.setSortIndicator(LIBRARY_COLUMNS.index(DEFAULT_SORT[0]), DEFAULT_SORT[1])
        self.setSortingEnabled(True)

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Tab (or Shift+Tab) into the table selects a row: the current one, else the first."""
        super().focusInEvent(event)
        if event.reason() not in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason):
            return
        model = self.model()
        if model is None or not model.rowCount() or self.selectionModel().hasSelection():
            return
        current = self.currentIndex()
        row = current.row() if current.isValid() else 0
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().setCurrentIndex(model.index(row, 0), flags)
        self.scrollTo(model.index(row, 0))

    def sort_state(self) -> tuple[str, bool]:
        """(column name, descending) of the order shown."""
        header = self.horizontalHeader()
        section = header.sortIndicatorSection()
        name = LIBRARY_COLUMNS[section] if 0 <= section < len(LIBRARY_COLUMNS) else DEFAULT_SORT[0]
        return name, header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder

    def set_sort_state(self, column: str, descending: bool) -> None:
        """Sort by the column named ``column`` (unknown names: the default order)."""
        if column not in LIBRARY_COLUMNS:
            column, descending = DEFAULT_SORT[0], DEFAULT_SORT[1] == Qt.SortOrder.DescendingOrder
        self.sortByColumn(LIBRARY_COLUMNS.index(column),
                          Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder)


class LibraryView(QWidget):
    """Search box, filter bar, count and table. ``current_changed(id)`` ("" when none)."""

    current_changed = Signal(str)
    activated = Signal(str)
    words_search = Signal(str)       # "~dog barking" + Enter in the search box: the words after "~"

    def __init__(self, model: LibraryModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._remembered: str = ""

        self.search = QLineEdit()
        self.search.setPlaceholderText(SEARCH_HINT)
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search_changed)
        self.search.installEventFilter(self)
        self.count_label = QLabel()
        self.count_label.setObjectName("muted")
        self.problem_label = QLabel()
        self.problem_label.setObjectName("error")
        self.problem_label.hide()
        model.query_problems.connect(self._show_problems)
        self.caption_label = QLabel()          # which predictions the table shows
        self.caption_label.setObjectName("muted")
        self.caption_label.hide()

        self.predicted = _ChoiceButton("Predicted", [
            (c.key, f"{c.key}  {c.name}", c.colour) for c in taxonomy.classes()])
        self.top = _ChoiceButton("Top", [
            (t, f"{t}  {taxonomy.TOP_LEVEL_NAMES[t]}", taxonomy.colour(t)) for t in taxonomy.TOP_LEVELS])
        self.score_min = self._spin(0.0)
        self.score_max = self._spin(1.0)
        self.disagree = QCheckBox("Truth ≠ prediction")
        self.pair_button = QPushButton()
        self.pair_button.setToolTip("Showing the clips of one confusion cell or class; click to show all")
        self.pair_button.hide()
        self.pair_button.clicked.connect(self._clear_pair)
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear_filters)
        for widget in (self.predicted, self.top):
            widget.changed.connect(self._filters_from_widgets)
        for spin in (self.score_min, self.score_max):
            spin.valueChanged.connect(self._filters_from_widgets)
        self.disagree.toggled.connect(self._filters_from_widgets)

        self.table = LibraryTable(model)
        # a ranked list is in its own order: no column's arrow may claim otherwise (a header click sorts again)
        model.ranked_changed.connect(lambda ranked: self.table.horizontalHeader().setSortIndicatorShown(not ranked))
        self.table.selectionModel().currentRowChanged.connect(self._current_row_changed)
        self.table.doubleClicked.connect(lambda index: self.activated.emit(model.id_at(index.row())))
        model.modelAboutToBeReset.connect(self._remember_current)
        model.modelReset.connect(self._restore_current)
        model.visible_changed.connect(self._show_count)

        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.count_label)
        filter_row = QHBoxLayout()
        filter_row.setSpacing(6)
        filter_row.addWidget(self.predicted)
        filter_row.addWidget(self.top)
        filter_row.addWidget(QLabel("Score"))
        filter_row.addWidget(self.score_min)
        filter_row.addWidget(QLabel("–"))
        filter_row.addWidget(self.score_max)
        filter_row.addWidget(self.disagree)
        filter_row.addWidget(self.pair_button)
        filter_row.addStretch(1)
        filter_row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(4)
        layout.addLayout(search_row)
        layout.addWidget(self.problem_label)
        layout.addLayout(filter_row)
        layout.addWidget(self.caption_label)
        layout.addWidget(self.table, 1)
        self._show_count(len(model.visible_rows), model.total)

    @staticmethod
    def _spin(value: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(value)
        spin.setFixedWidth(64)
        return spin

    # --- filters -----------------------------------------------------------------------------------

    def _filters_from_widgets(self) -> None:
        current = self.model.filters
        self.model.set_filters(replace(
            current, predicted=self.predicted.selected(), tops=self.top.selected(),
            score_min=float(self.score_min.value()), score_max=float(self.score_max.value()),
            disagree=self.disagree.isChecked()))

    def set_filters(self, filters: Filters, caption: str = "") -> None:
        """Show ``filters`` in the bar and apply them; ``caption`` names an id/pair filter."""
        for widget in (self.score_min, self.score_max, self.disagree):
            widget.blockSignals(True)
        self.predicted.set_selected(filters.predicted)
        self.top.set_selected(filters.tops)
        self.score_min.setValue(filters.score_min)
        self.score_max.setValue(filters.score_max)
        self.disagree.setChecked(filters.disagree)
        for widget in (self.score_min, self.score_max, self.disagree):
            widget.blockSignals(False)
        self._show_pair(filters, caption)
        self.model.set_filters(filters)

    def _show_pair(self, filters: Filters, caption: str) -> None:
        parts = []
        if filters.truth is not None:
            parts.append(f"truth {filters.truth or '(none)'}")
        if filters.prediction is not None:
            parts.append(f"prediction {filters.prediction or '(none)'}")
        if filters.ids is not None:
            parts.append(f"{len(filters.ids)} chosen clips")
        if filters.ordered_ids is not None:
            parts.append(f"{len(filters.ordered_ids)} listed clips")
        self.pair_button.setText((caption or "  ·  ".join(parts)) + "   ✕")
        self.pair_button.setVisible(bool(parts))

    def _clear_pair(self) -> None:
        self.set_filters(replace(self.model.filters, truth=None, prediction=None, ids=None, ordered_ids=None))

    def clear_filters(self) -> None:
        """No search text, no filters: every row visible."""
        self.search.clear()
        self.set_filters(Filters())

    def set_caption(self, text: str) -> None:
        """Say above the table which predictions it shows ("" hides the line)."""
        self.caption_label.setText(text)
        self.caption_label.setToolTip(text)
        self.caption_label.setVisible(bool(text))

    def _show_problems(self, problems: list[str]) -> None:
        self.problem_label.setText("Not understood: " + "; ".join(problems) if problems else "")
        self.problem_label.setVisible(bool(problems))

    def _show_count(self, visible: int, total: int) -> None:
        self.count_label.setText(f"{visible:,} of {total:,} sounds" if visible != total else f"{total:,} sounds")

    # --- current row --------------------------------------------------------------------------------

    def current_id(self) -> str | None:
        index = self.table.currentIndex()
        if not index.isValid() or index.row() >= self.model.rowCount():
            return None
        return self.model.id_at(index.row())

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.id_at(r) for r in rows if r < self.model.rowCount()]

    def select_row(self, row: int) -> None:
        """Make ``row`` current and the only selection, scrolled into view."""
        if not 0 <= row < self.model.rowCount():
            return
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)

    def _remember_current(self) -> None:
        self._remembered = self.current_id() or ""

    def _restore_current(self) -> None:
        row = self.model.row_of(self._remembered) if self._remembered else None
        if row is not None:
            self.select_row(row)
        else:
            self.current_changed.emit("")

    def _current_row_changed(self, current: Any, _previous: Any) -> None:
        valid = current.isValid() and current.row() < self.model.rowCount()
        self.current_changed.emit(self.model.id_at(current.row()) if valid else "")

    # --- keys in the search box ---------------------------------------------------------------------

    def _search_changed(self, text: str) -> None:
        """The box's text as the table's query; a "~words" search by meaning filters nothing until Enter."""
        self.model.set_query("" if text.lstrip().startswith(WORDS_PREFIX) else text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            key = event.key() if isinstance(event, QKeyEvent) else None
            text = self.search.text().lstrip()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and text.startswith(WORDS_PREFIX):
                self.words_search.emit(text[len(WORDS_PREFIX):].strip())
                return True
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.model.rowCount():
                self.table.setFocus()
                if self.current_id() is None:
                    self.select_row(0)
                return True
            if key == Qt.Key.Key_Escape and self.search.text():
                self.search.clear()
                return True
        return super().eventFilter(watched, event)
