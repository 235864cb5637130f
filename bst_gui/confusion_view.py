"""The 23 × 23 confusion matrix, grouped by top level, that filters the library when clicked.

:class:`ConfusionView` is a small toolbar (raw counts / row-normalised) over a
:class:`ConfusionCanvas` that paints the matrix itself: rows are the truth, columns the
prediction, both in taxonomy order with a BST colour chip beside each key and a coloured band per
top level. Clicking a cell emits ``cell_clicked(truth_key, predicted_key)``; Ctrl+click adds or
removes a cell and Shift+click selects the block from the last clicked cell, both emitting
``cells_selected(list of (truth_key, predicted_key))`` (the library then lists the union of their
clips). Selected cells are outlined; hovering shows the class names and the count. From the
keyboard (Tab into the matrix): the arrows move a cell cursor, Enter lists its clips, Ctrl+Enter
adds or removes it, Shift+Enter selects the block from the last cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from bst_core.taxonomy import BY_KEY, CLASS_KEYS, TOP_LEVEL_NAMES, classes_of_top, top_of
from bst_gui import style
from bst_gui.hover import HoverTips

MIN_CELL = 16
"""Smallest cell side in pixels (two digits stay readable); below it the matrix scrolls."""
MAX_CELL = 40
"""Largest cell side: a full-screen matrix does not grow past what helps reading."""
SELECTION_COLOUR = "#ff8c00"
"""Outline of selected cells (and tint of their keys): orange, apart from both blue ramps."""

_MOVES = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1), Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0),
          Qt.Key.Key_Home: (0, -99), Qt.Key.Key_End: (0, 99)}
"""Keys that move the matrix's keyboard cursor (row step, column step)."""
_ENTER = (Qt.Key.Key_Return, Qt.Key.Key_Enter)

MODES: tuple[str, ...] = ("counts", "row")
"""``counts``: raw numbers of clips; ``row``: percent of the true class (each row sums to 100)."""

LIGHT_RAMP = ("#ffffff", "#deebf7", "#9ecae1", "#4292c6", "#08519c", "#08306b")
"""Cell shading on a light palette: white → deep blue (ColorBrewer "Blues")."""
DARK_RAMP = ("#1c2433", "#1f3556", "#26508a", "#3272c8", "#6fa3f0", "#d4e4ff")
"""Cell shading on a dark palette: near-background navy → pale blue."""


# --- small painting helpers shared by the result widgets ---------------------------------------

def top_colour(top: str) -> QColor:
    """A representative BST colour of a top level (its middle class's colour)."""
    keys = classes_of_top(top)
    return QColor(BY_KEY[keys[len(keys) // 2]].colour) if keys else QColor("#888888")


def paint_chip(painter: QPainter, rect: QRectF | QRect, colour: str | QColor) -> None:
    """A rounded colour chip with a thin grey outline (visible on light and dark backgrounds)."""
    fill = QColor(colour)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(QPen(QColor(128, 128, 128, 200), 1))
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5), 2, 2)
    painter.restore()


def is_dark(widget: QWidget) -> bool:
    """True when the widget's palette has a dark background (the app's default look)."""
    return widget.palette().base().color().lightness() < 128


def ramp_colour(value: float, ramp: Sequence[str] = LIGHT_RAMP) -> QColor:
    """Colour of a cell whose value is ``value`` in [0, 1] on ``ramp`` (linear between stops)."""
    value = float(np.clip(value, 0.0, 1.0)) * (len(ramp) - 1)
    low = int(np.floor(value))
    high = min(low + 1, len(ramp) - 1)
    t = value - low
    a, b = QColor(ramp[low]), QColor(ramp[high])
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t)


def ensure_visible(widget: QWidget, rect: QRect) -> None:
    """Scroll the QScrollArea holding ``widget`` (if any) so that ``rect`` (widget coordinates) shows."""
    viewport = widget.parentWidget()
    area = viewport.parentWidget() if viewport is not None else None
    if isinstance(area, QScrollArea):
        centre = rect.center()
        area.ensureVisible(centre.x(), centre.y(), rect.width() // 2 + 4, rect.height() // 2 + 4)


def class_title(key: str) -> str:
    """``"fx-o Objects / House appliances"``."""
    return f"{key} {BY_KEY[key].name}" if key in BY_KEY else key


# --- the painted matrix --------------------------------------------------------------------------

class ConfusionCanvas(HoverTips, QWidget):
    """Paints the matrix; emits ``cell_clicked(truth_key, predicted_key)`` on a left click and
    ``cells_selected(list[tuple[str, str]])`` on Ctrl+click (toggle a cell) or Shift+click (a block)."""

    cell_clicked = Signal(str, str)
    cells_selected = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self._keys: tuple[str, ...] = CLASS_KEYS
        self._counts: np.ndarray | None = None
        self._mode = "counts"
        self._hover: tuple[int, int] | None = None
        self._selected: list[tuple[int, int]] = []   # (row, col), in the order they were picked
        self._anchor: tuple[int, int] | None = None  # the last plain or Ctrl click (Shift+click's corner)
        self._cursor = (0, 0)                         # the keyboard's cell
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._origin = QPoint(0, 0)
        self._cell = 24
        self._cache: QPixmap | None = None

    # data ---------------------------------------------------------------------------------------

    def set_matrix(self, counts: np.ndarray | Sequence[Sequence[int]] | None,
                   class_keys: Sequence[str] = CLASS_KEYS) -> None:
        """Show ``counts`` (rows truth, columns prediction, in ``class_keys`` order); None clears."""
        if counts is None:
            self._counts = None
        else:
            matrix = np.asarray(counts, dtype=np.int64)
            if matrix.shape != (len(class_keys), len(class_keys)):
                raise ValueError(f"confusion matrix of shape {matrix.shape} for {len(class_keys)} classes")
            self._counts = matrix
        self._keys = tuple(class_keys)
        self._hover = None
        self._selected, self._anchor = [], None
        self._relayout()
        self._invalidate()

    def counts(self) -> np.ndarray | None:
        return None if self._counts is None else self._counts.copy()

    def set_mode(self, mode: str) -> None:
        """``"counts"`` or ``"row"`` (row-normalised percent)."""
        if mode not in MODES:
            raise ValueError(f"unknown confusion mode {mode!r}; use one of {MODES}")
        self._mode = mode
        self._invalidate()

    @property
    def mode(self) -> str:
        return self._mode

    def selected_cells(self) -> list[tuple[str, str]]:
        """The selected cells as (truth key, predicted key), in the order they were picked."""
        return [(self._keys[r], self._keys[c]) for r, c in self._selected]

    def clips_in(self, cells: Sequence[tuple[str, str]]) -> int:
        """How many clips the (truth, prediction) cells hold together."""
        if self._counts is None:
            return 0
        index = {k: i for i, k in enumerate(self._keys)}
        return sum(int(self._counts[index[t], index[p]]) for t, p in set(cells) if t in index and p in index)

    def set_selected_cells(self, cells: Sequence[tuple[str, str]]) -> None:
        """Select these (truth, prediction) cells (unknown keys are ignored); no signal."""
        index = {k: i for i, k in enumerate(self._keys)}
        chosen = [(index[t], index[p]) for t, p in cells if t in index and p in index]
        self._selected = list(dict.fromkeys(chosen))
        self._anchor = self._selected[-1] if self._selected else None
        self.update()

    def display_values(self) -> np.ndarray | None:
        """What the cells show: counts, or fractions of each row (rows without clips are 0)."""
        if self._counts is None:
            return None
        if self._mode == "counts":
            return self._counts.astype(float)
        totals = self._counts.sum(axis=1, keepdims=True)
        return np.divide(self._counts, totals, out=np.zeros(self._counts.shape), where=totals > 0)

    # geometry -----------------------------------------------------------------------------------

    def _fonts(self) -> tuple[QFont, QFont, QFont]:
        base = QFont(self.font())
        key_font = QFont(base)
        key_font.setPointSizeF(max(7.0, base.pointSizeF() * 0.9))
        band_font = QFont(base)
        band_font.setPointSizeF(max(7.0, base.pointSizeF() * 0.85))
        band_font.setBold(True)
        cell_font = QFont(base)
        cell_font.setPointSizeF(max(6.5, min(base.pointSizeF() * 0.8, self._cell * 0.3)))
        return key_font, band_font, cell_font

    def _margins(self) -> tuple[int, int, int, int]:
        """left, top, right, bottom space around the cells."""
        key_font, band_font, _ = self._fonts()
        key_width = max(QFontMetrics(key_font).horizontalAdvance(k) for k in self._keys)
        band = QFontMetrics(band_font).height() + 6
        header = key_width + 12 + 6  # chip + gaps
        total_width = QFontMetrics(key_font).horizontalAdvance("00000") + 8
        return band + 4 + header, band + 4 + header, total_width, QFontMetrics(key_font).height() + 8

    def _relayout(self) -> None:
        left, top, right, bottom = self._margins()
        n = len(self._keys)
        cell = int(min((self.width() - left - right) / n, (self.height() - top - bottom) / n))
        self._cell = max(MIN_CELL, min(MAX_CELL, cell))
        grid_w = self._cell * n
        x = left + max(0, (self.width() - left - right - grid_w) // 2)
        y = top + max(0, (self.height() - top - bottom - grid_w) // 2)
        self._origin = QPoint(x, y)

    def resizeEvent(self, event) -> None:
        self._relayout()
        self._cache = None
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:
        left, top, right, bottom = self._margins()
        n = len(self._keys)
        return QSize(left + right + 28 * n, top + bottom + 28 * n)

    def minimumSizeHint(self) -> QSize:
        """Cells of :data:`MIN_CELL` pixels: readable; a smaller space scrolls (see ConfusionView)."""
        left, top, right, bottom = self._margins()
        n = len(self._keys)
        return QSize(left + right + MIN_CELL * n, top + bottom + MIN_CELL * n)

    def cell_rect(self, row: int, col: int) -> QRect:
        """Rectangle of cell (truth ``row``, prediction ``col``) in this widget's coordinates."""
        return QRect(self._origin.x() + col * self._cell, self._origin.y() + row * self._cell,
                     self._cell, self._cell)

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        """(row, col) under ``pos``, or None outside the cells."""
        n = len(self._keys)
        col = (pos.x() - self._origin.x()) // self._cell if pos.x() >= self._origin.x() else -1
        row = (pos.y() - self._origin.y()) // self._cell if pos.y() >= self._origin.y() else -1
        return (row, col) if 0 <= row < n and 0 <= col < n else None

    def _groups(self) -> list[tuple[str, int, int]]:
        """(top, first index, count) of each run of keys sharing a top level."""
        groups: list[tuple[str, int, int]] = []
        for i, key in enumerate(self._keys):
            top = top_of(key)
            if groups and groups[-1][0] == top:
                groups[-1] = (top, groups[-1][1], groups[-1][2] + 1)
            else:
                groups.append((top, i, 1))
        return groups

    # painting -----------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        """Blit the cached matrix, then the hover marks (hovering never repaints the 529 cells)."""
        painter = QPainter(self)
        if self._cache is None or self._cache.size() != self.size() * self.devicePixelRatioF():
            self._cache = self._render()
        painter.drawPixmap(0, 0, self._cache)
        if self._counts is not None:
            self._paint_selection(painter)
            if self._hover is not None:
                self._paint_hover(painter, *self._hover)
            if self.hasFocus():
                self._paint_cursor(painter)
        painter.end()

    def _render(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(self.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(self.palette().base().color())
        painter = QPainter(pixmap)
        if self._counts is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "No confusion matrix yet.\nRun a cross-validation or open a run folder.")
        else:
            key_font, band_font, cell_font = self._fonts()
            self._paint_cells(painter, cell_font)
            self._paint_separators(painter)
            self._paint_headers(painter, key_font, band_font)
            self._paint_totals(painter, cell_font)
            self._paint_corner(painter, key_font)
        painter.end()
        return pixmap

    def _invalidate(self) -> None:
        self._cache = None
        self.update()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._relayout()
            self._invalidate()
        super().changeEvent(event)

    def _paint_hover(self, painter: QPainter, row: int, col: int) -> None:
        """Outline the cell and tint its row and column keys."""
        tint = QColor(SELECTION_COLOUR)
        tint.setAlpha(45)
        cell = self.cell_rect(row, col)
        painter.fillRect(QRect(0, cell.top(), self._origin.x(), cell.height()), tint)
        painter.fillRect(QRect(cell.left(), 0, cell.width(), self._origin.y()), tint)
        painter.setPen(QPen(self.palette().text().color(), 1, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(cell.adjusted(1, 1, -2, -2))

    def _paint_cursor(self, painter: QPainter) -> None:
        """Keyboard focus: a ring around the whole matrix and a double outline on the cursor cell."""
        focus = QColor(style.current.focus)
        n = len(self._keys)
        grid = QRect(self.cell_rect(0, 0).topLeft(), self.cell_rect(n - 1, n - 1).bottomRight())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(focus, 2))
        painter.drawRect(grid.adjusted(-3, -3, 3, 3))
        cell = self.cell_rect(*self._cursor)
        painter.setPen(QPen(self.palette().base().color(), 3))
        painter.drawRect(cell.adjusted(1, 1, -2, -2))
        painter.setPen(QPen(focus, 2))
        painter.drawRect(cell.adjusted(1, 1, -2, -2))

    def _paint_selection(self, painter: QPainter) -> None:
        """Selected cells: a thick outline in the selection colour over a thin one in the background
        colour (visible on every shade of the ramp); their row and column keys tinted."""
        if not self._selected:
            return
        tint = QColor(SELECTION_COLOUR)
        tint.setAlpha(70)
        for row in {r for r, _ in self._selected}:
            cell = self.cell_rect(row, 0)
            painter.fillRect(QRect(0, cell.top(), self._origin.x(), cell.height()), tint)
        for col in {c for _, c in self._selected}:
            cell = self.cell_rect(0, col)
            painter.fillRect(QRect(cell.left(), 0, cell.width(), self._origin.y()), tint)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for row, col in self._selected:
            cell = self.cell_rect(row, col)
            painter.setPen(QPen(self.palette().base().color(), 1))
            painter.drawRect(cell.adjusted(0, 0, -1, -1))
            painter.setPen(QPen(QColor(SELECTION_COLOUR), 3))
            painter.drawRect(cell.adjusted(2, 2, -2, -2))

    def _paint_cells(self, painter: QPainter, font: QFont) -> None:
        values = self.display_values()
        assert values is not None and self._counts is not None
        if self._mode == "counts":
            peak = max(1.0, float(values.max()))
            shade = np.sqrt(values / peak)  # square root: off-diagonal confusions stay visible
        else:
            shade = values
        painter.setFont(font)
        metrics = QFontMetrics(font)
        narrow = QFont(font)
        narrow.setPointSizeF(max(5.0, font.pointSizeF() * 0.8))
        narrow.setStretch(QFont.Stretch.Condensed)
        narrow_metrics = QFontMetrics(narrow)
        dark = is_dark(self)
        ramp = DARK_RAMP if dark else LIGHT_RAMP
        grid = QColor("#2c2f36" if dark else "#e3e6ea")
        empty = self.palette().base().color()
        n = len(self._keys)
        for r in range(n):
            for c in range(n):
                rect = self.cell_rect(r, c)
                fill = ramp_colour(shade[r, c], ramp) if self._counts[r, c] else empty
                painter.fillRect(rect, fill)
                painter.setPen(grid)
                painter.drawRect(rect.adjusted(0, 0, -1, -1))
                text = self._cell_text(r, c, values[r, c])
                if text:
                    painter.setPen(style.readable_on(fill))
                    if metrics.horizontalAdvance(text) > rect.width() - 2:  # e.g. 4 digits: smaller type
                        painter.setFont(narrow)
                        if narrow_metrics.horizontalAdvance(text) > rect.width() - 1:
                            text = narrow_metrics.elidedText(text, Qt.TextElideMode.ElideRight, rect.width() - 1)
                        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
                        painter.setFont(font)
                    else:
                        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        # the diagonal (correct predictions) gets a fine outline
        painter.setPen(QPen(QColor("#c9ced6" if dark else "#2b2b2b"), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for i in range(n):
            painter.drawRect(self.cell_rect(i, i).adjusted(0, 0, -1, -1))

    def _cell_text(self, r: int, c: int, value: float) -> str:
        assert self._counts is not None
        count = int(self._counts[r, c])
        if count == 0:
            return ""
        if self._mode == "counts":
            return str(count)
        percent = 100 * value
        return f"{percent:.0f}" if percent >= 1 else "<1"

    def _paint_separators(self, painter: QPainter) -> None:
        n = len(self._keys)
        start, end = self.cell_rect(0, 0).topLeft(), self.cell_rect(n - 1, n - 1).bottomRight()
        line = QColor("#80868f" if is_dark(self) else "#5f6b7a")
        painter.setPen(QPen(line, 2))
        for _, first, _count in self._groups()[1:]:
            x = self._origin.x() + first * self._cell
            y = self._origin.y() + first * self._cell
            painter.drawLine(x, start.y(), x, end.y() + 1)
            painter.drawLine(start.x(), y, end.x() + 1, y)
        painter.setPen(QPen(line, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRect(start, end))

    def _paint_headers(self, painter: QPainter, key_font: QFont, band_font: QFont) -> None:
        band = QFontMetrics(band_font).height() + 6
        chip = max(8, min(12, self._cell - 10))
        ox, oy, cell = self._origin.x(), self._origin.y(), self._cell
        # class keys with chips: rows (left of the grid), columns (above it, rotated)
        for i, key in enumerate(self._keys):
            colour = BY_KEY[key].colour if key in BY_KEY else "#888888"
            # row header
            painter.setFont(key_font)
            painter.setPen(self.palette().text().color())
            y = oy + i * cell
            chip_rect = QRect(ox - 6 - chip, y + (cell - chip) // 2, chip, chip)
            paint_chip(painter, chip_rect, colour)
            text_rect = QRect(band + 4, y, chip_rect.left() - 4 - band - 4, cell)
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, key)
            # column header, reading bottom to top
            x = ox + i * cell
            chip_rect = QRect(x + (cell - chip) // 2, oy - 6 - chip, chip, chip)
            paint_chip(painter, chip_rect, colour)
            painter.save()
            painter.translate(x + cell / 2, chip_rect.top() - 4)
            painter.rotate(-90)
            length = chip_rect.top() - 4 - (band + 4)
            painter.drawText(QRectF(0, -cell / 2, length, cell),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, key)
            painter.restore()
        # top-level bands: left of the row keys (rotated) and above the column keys
        painter.setFont(band_font)
        metrics = QFontMetrics(band_font)
        for top, first, count in self._groups():
            fill = top_colour(top)
            name = TOP_LEVEL_NAMES.get(top, top)
            span = count * cell - 2
            # left band (vertical text)
            rect = QRectF(2, oy + first * cell + 1, band - 2, span)
            painter.fillRect(rect, fill)
            painter.setPen(style.readable_on(fill))
            painter.save()
            painter.translate(rect.center())
            painter.rotate(-90)
            label = _fitted(name, top, metrics, int(span) - 4)
            painter.drawText(QRectF(-span / 2, -band / 2, span, band), Qt.AlignmentFlag.AlignCenter, label)
            painter.restore()
            # top band
            rect = QRectF(ox + first * cell + 1, 2, span, band - 2)
            painter.fillRect(rect, fill)
            label = _fitted(name, top, metrics, int(span) - 4)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)

    def _paint_totals(self, painter: QPainter, font: QFont) -> None:
        assert self._counts is not None
        painter.setFont(font)
        painter.setPen(self.palette().placeholderText().color())
        n = len(self._keys)
        right = self.cell_rect(0, n - 1).right() + 6
        column_totals = self._counts.sum(axis=0)
        for r, total in enumerate(self._counts.sum(axis=1)):
            rect = self.cell_rect(r, n - 1)
            painter.drawText(QRect(right, rect.top(), 60, rect.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(int(total)))
        bottom = self.cell_rect(n - 1, 0).bottom() + 3
        height = QFontMetrics(font).height() + 2
        widest = max(QFontMetrics(font).horizontalAdvance(str(int(t))) for t in column_totals)
        if widest > self._cell - 2:  # too narrow for the column totals: leave them out
            return
        for c, total in enumerate(column_totals):
            rect = self.cell_rect(n - 1, c)
            painter.drawText(QRect(rect.left() - 6, bottom, rect.width() + 12, height),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, str(int(total)))
        painter.drawText(QRect(right, bottom, 60, height), Qt.AlignmentFlag.AlignLeft, "n")

    def _paint_corner(self, painter: QPainter, font: QFont) -> None:
        corner = QRect(4, 4, self._origin.x() - 12, self._origin.y() - 12)
        small = QFont(font)
        painter.setFont(small)
        painter.setPen(self.palette().text().color())
        unit = "clips" if self._mode == "counts" else "% of row"
        painter.drawText(corner, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
                         f"↓ truth\n→ prediction\ncells: {unit}")

    # interaction --------------------------------------------------------------------------------

    def hit_at(self, pos: QPoint) -> tuple[int, int] | None:
        return self.cell_at(pos) if self._counts is not None else None

    def hit_tooltip(self, hit: tuple[int, int]) -> str:
        return self.tooltip_text(*hit)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        hit = self.cell_at(event.position().toPoint()) if self._counts is not None else None
        if event.button() == Qt.MouseButton.LeftButton and hit is not None:
            modifiers = event.modifiers()
            if modifiers & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None:
                self._select_block(self._anchor, hit)
            elif modifiers & Qt.KeyboardModifier.ControlModifier:
                self._toggle(hit)
            else:
                self._selected, self._anchor = [hit], hit
                self.update()
                self.cell_clicked.emit(self._keys[hit[0]], self._keys[hit[1]])
        super().mouseReleaseEvent(event)

    # keyboard -----------------------------------------------------------------------------------

    def event(self, event: QEvent) -> bool:
        """The arrows and Enter belong to the matrix while it has focus (not to the window's shortcuts)."""
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and (event.key() in _MOVES or event.key() in _ENTER):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._counts is None:
            super().keyPressEvent(event)
            return
        n = len(self._keys)
        if event.key() in _MOVES:
            dr, dc = _MOVES[event.key()]
            self._cursor = (min(max(self._cursor[0] + dr, 0), n - 1), min(max(self._cursor[1] + dc, 0), n - 1))
            ensure_visible(self, self.cell_rect(*self._cursor))
            self.update()
            QToolTip.showText(self.mapToGlobal(self.cell_rect(*self._cursor).center()),
                              self.tooltip_text(*self._cursor), self)
        elif event.key() in _ENTER:
            modifiers = event.modifiers()
            if modifiers & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None:
                self._select_block(self._anchor, self._cursor)
            elif modifiers & Qt.KeyboardModifier.ControlModifier:
                self._toggle(self._cursor)
            else:
                self._selected, self._anchor = [self._cursor], self._cursor
                self.update()
                self.cell_clicked.emit(self._keys[self._cursor[0]], self._keys[self._cursor[1]])
        else:
            super().keyPressEvent(event)

    def cursor_cell(self) -> tuple[str, str]:
        """The keyboard's cell (truth, prediction)."""
        return self._keys[self._cursor[0]], self._keys[self._cursor[1]]

    def focusInEvent(self, event) -> None:
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:
        self.update()
        super().focusOutEvent(event)

    def _toggle(self, cell: tuple[int, int]) -> None:
        """Ctrl+click: add the cell to the selection, or take it out; emit the selection."""
        if cell in self._selected:
            self._selected.remove(cell)
        else:
            self._selected.append(cell)
        self._anchor = cell
        self.update()
        self.cells_selected.emit(self.selected_cells())

    def _select_block(self, corner: tuple[int, int], cell: tuple[int, int]) -> None:
        """Shift+click: every cell of the rectangle between ``corner`` and ``cell``; emit it."""
        rows = range(min(corner[0], cell[0]), max(corner[0], cell[0]) + 1)
        cols = range(min(corner[1], cell[1]), max(corner[1], cell[1]) + 1)
        self._selected = [(r, c) for r in rows for c in cols]
        self.update()
        self.cells_selected.emit(self.selected_cells())

    def tooltip_text(self, row: int, col: int) -> str:
        """What hovering cell (row, col) says, in words."""
        assert self._counts is not None
        truth, pred = self._keys[row], self._keys[col]
        count = int(self._counts[row, col])
        total = int(self._counts[row].sum())
        share = f" ({100 * count / total:.1f}% of {truth})" if total else ""
        verdict = "correct" if row == col else (
            "same top level" if top_of(truth) == top_of(pred) else "other top level")
        return (f"<b>truth</b> {class_title(truth)}<br><b>predicted</b> {class_title(pred)}<br>"
                f"{count} clip{'s' if count != 1 else ''}{share} · {verdict}<br>"
                "<i>click to list these clips · Ctrl+click adds the cell to the list, Shift+click a block</i>")


def _toggle(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setCheckable(True)
    button.setAutoRaise(False)
    return button


_SHORT_TOP_NAMES = {"is": "Instruments", "ss": "Soundsc.", "fx": "Effects"}


def _fitted(name: str, top: str, metrics: QFontMetrics, width: int) -> str:
    """The top-level name, a shorter form, or its key: the first that fits ``width``."""
    for text in (name, _SHORT_TOP_NAMES.get(top, name), top):
        if metrics.horizontalAdvance(text) <= width:
            return text
    return metrics.elidedText(top, Qt.TextElideMode.ElideRight, width)


class ConfusionView(QWidget):
    """Confusion matrix with a counts / row-normalised switch; a space too small for readable cells
    scrolls.

    Signals: ``cell_clicked(truth_key, predicted_key)``, ``cells_selected(list[tuple[str, str]])``.
    """

    cell_clicked = Signal(str, str)
    cells_selected = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = ConfusionCanvas()
        self.canvas.cell_clicked.connect(self.cell_clicked)
        self.canvas.cells_selected.connect(self.cells_selected)
        self.canvas.cell_clicked.connect(lambda *_: self._show_selection())
        self.canvas.cells_selected.connect(lambda *_: self._show_selection())
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.canvas)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setMinimumSize(120, 80)
        self.counts_button = _toggle("Counts", "Number of clips in each cell")
        self.row_button = _toggle("Row %", "Percent of each true class (every row sums to 100)")
        self.counts_button.setChecked(True)
        group = QButtonGroup(self)
        group.setExclusive(True)
        group.addButton(self.counts_button)
        group.addButton(self.row_button)
        self.row_button.toggled.connect(lambda on: self.canvas.set_mode("row" if on else "counts"))
        title = QLabel("<b>Confusion matrix</b>")
        self.caption = QLabel("")
        self.caption.setObjectName("muted")  # the app style sheet greys it
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # may be cut: tooltip
        bar = QHBoxLayout()
        bar.addWidget(title)
        bar.addSpacing(8)
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.counts_button)
        bar.addWidget(self.row_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.scroll, 1)
        self._caption = ""

    def set_matrix(self, counts: np.ndarray | Sequence[Sequence[int]] | None,
                   class_keys: Sequence[str] = CLASS_KEYS, *, caption: str = "") -> None:
        """Show a (23, 23) count matrix (rows truth, columns prediction); None clears."""
        self.canvas.set_matrix(counts, class_keys)
        total = 0 if counts is None else int(np.asarray(counts).sum())
        self._caption = caption or (f"{total:,} clips · click a cell to list them, Ctrl+click to add one"
                                    if total else "")
        self._show_selection()

    def _show_selection(self) -> None:
        cells = self.canvas.selected_cells()
        if len(cells) > 1:
            clips = self.canvas.clips_in(cells)
            self.caption.setText(f"{len(cells)} cells selected: {clips:,} clips · Ctrl+click adds or removes a cell")
        else:
            self.caption.setText(self._caption)
        self.caption.setToolTip(self.caption.text())

    def selected_cells(self) -> list[tuple[str, str]]:
        return self.canvas.selected_cells()

    def set_mode(self, mode: str) -> None:
        """``"counts"`` or ``"row"``; keeps the switch in step."""
        self.canvas.set_mode(mode)
        (self.row_button if mode == "row" else self.counts_button).setChecked(True)

    @property
    def mode(self) -> str:
        return self.canvas.mode


__all__ = ["DARK_RAMP", "LIGHT_RAMP", "MAX_CELL", "MIN_CELL", "MODES", "SELECTION_COLOUR", "ConfusionCanvas",
           "ConfusionView", "class_title", "ensure_visible", "is_dark",
           "paint_chip", "ramp_colour", "top_colour"]
