"""Per-class hP / hR / hF bars in taxonomy order, in the BST colours; a click filters the library.

Each class is one row: colour chip, key and name, then a thick hF bar in the class colour with its
value, and two thin bars for hP and hR. Rows are grouped under their top level. A class that is in
the truth but never predicted (dropped in the reference mode) says so instead of showing a bar.
Clicking a row emits ``class_clicked(key)``; from the keyboard (Tab in), Up/Down move a row cursor
and Enter does the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QToolTip, QWidget

from bst_core.metrics import MetricReport
from bst_core.taxonomy import BY_KEY, CLASS_KEYS, TOP_LEVEL_NAMES, top_of
from bst_gui import style
from bst_gui.confusion_view import ensure_visible, is_dark, paint_chip, top_colour
from bst_gui.hover import HoverTips

_ROW_HEIGHT = 26
_GROUP_HEIGHT = 20
_MIN_SCALE = 0.8
TICK_LABEL_GAP = 4
"""Pixels kept free between two percent-tick labels."""


class ClassBars(HoverTips, QWidget):
    """Painted per-class bars. Signals: ``class_clicked(key)``."""

    class_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(320, 300)
        self._table: pd.DataFrame | None = None
        self._keys: tuple[str, ...] = CLASS_KEYS
        self._mean_hf: float | None = None
        self._absent = "reference"
        self._hover: str | None = None
        self._rows: dict[str, QRect] = {}
        self._cache: QPixmap | None = None
        self._cursor = 0                      # the keyboard's row (index into keys())
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # data ---------------------------------------------------------------------------------------

    def set_report(self, report: MetricReport | None) -> None:
        """Show a report's per-class table (None clears)."""
        if report is None:
            self.set_per_class(None)
        else:
            self.set_per_class(report.per_class, mean_hf=report.hF, absent=report.absent)

    def set_per_class(self, per_class: pd.DataFrame | None, *, mean_hf: float | None = None,
                      absent: str = "reference") -> None:
        """Show ``per_class`` (index class keys; columns hP, hR, hF, n_true, n_pred, included).

        Values are fractions; NaN where undefined. ``mean_hf`` draws a dashed reference line.
        """
        if per_class is not None:
            missing = [c for c in ("hP", "hR", "hF") if c not in per_class.columns]
            if missing:
                raise ValueError(f"per-class table lacks {missing}")
            keys = [k for k in CLASS_KEYS if k in per_class.index]
            self._keys = tuple(keys)
            self._table = per_class.loc[keys]
        else:
            self._table = None
        self._mean_hf = None if mean_hf is None or math.isnan(mean_hf) else float(mean_hf)
        self._absent = absent
        self._hover = None
        self.updateGeometry()
        self._relayout()
        self._cache = None
        self.update()

    def keys(self) -> tuple[str, ...]:
        return self._keys

    # geometry -----------------------------------------------------------------------------------

    def _natural_height(self) -> int:
        groups = len({top_of(k) for k in self._keys})
        return groups * _GROUP_HEIGHT + len(self._keys) * _ROW_HEIGHT

    def sizeHint(self) -> QSize:
        return QSize(560, self._header_height() + self._natural_height() + self._footer_height())

    def minimumSizeHint(self) -> QSize:
        return QSize(320, self._header_height() + int(self._natural_height() * _MIN_SCALE)
                     + self._footer_height())

    def resizeEvent(self, event) -> None:
        self._relayout()
        self._cache = None
        super().resizeEvent(event)

    def _header_height(self) -> int:
        return QFontMetrics(self.font()).height() + 10

    def _footer_height(self) -> int:
        return 2 * QFontMetrics(self._small_font()).height() + 8

    def _small_font(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        return small

    def _relayout(self) -> None:
        """Row rectangles, scaled to the height available (never below a readable minimum)."""
        self._rows = {}
        natural = self._natural_height()
        available = self.height() - self._header_height() - self._footer_height()
        scale = max(_MIN_SCALE, min(1.25, available / natural)) if natural else 1.0
        row_h, group_h = int(_ROW_HEIGHT * scale), int(_GROUP_HEIGHT * scale)
        y = self._header_height()
        previous = None
        for key in self._keys:
            if top_of(key) != previous:
                previous = top_of(key)
                y += group_h
            self._rows[key] = QRect(0, y, self.width(), row_h)
            y += row_h

    def row_rect(self, key: str) -> QRect:
        """The clickable rectangle of a class's row."""
        return QRect(self._rows[key])

    def key_at(self, pos: QPoint) -> str | None:
        for key, rect in self._rows.items():
            if rect.contains(pos):
                return key
        return None

    def _columns(self) -> tuple[int, int, int, int]:
        """x of the key text, x of the name, x where bars start, bar width."""
        metrics = QFontMetrics(self.font())
        key_x = 8 + 12 + 6
        name_x = key_x + metrics.horizontalAdvance("fx-el") + 8
        name_w = min(240, max(90, int(self.width() * 0.3)))
        bar_x = name_x + name_w + 8
        right = metrics.horizontalAdvance("n 0000") + 10
        return key_x, name_x, bar_x, max(60, self.width() - bar_x - right)

    # painting -----------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        """Blit the cached bars, then mark the hovered row (hovering never repaints every bar)."""
        painter = QPainter(self)
        if self._cache is None or self._cache.size() != self.size() * self.devicePixelRatioF():
            self._cache = self._render()
        painter.drawPixmap(0, 0, self._cache)
        if self._hover is not None and self._hover in self._rows:
            rect = self._rows[self._hover]
            tint = QColor("#ff8c00")
            tint.setAlpha(28)
            painter.fillRect(rect, tint)
            painter.fillRect(QRect(0, rect.top(), 3, rect.height()), QColor("#ff8c00"))
        if self.hasFocus() and self._table is not None and self._keys:
            key = self._keys[min(self._cursor, len(self._keys) - 1)]
            painter.setPen(QPen(QColor(style.current.focus), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self._rows[key].adjusted(1, 1, -2, -2))
        painter.end()

    # keyboard -----------------------------------------------------------------------------------

    def event(self, event: QEvent) -> bool:
        """Up/Down and Enter belong to the bars while they have focus (not to the window's shortcuts)."""
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and event.key() in (
                Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._table is None or not self._keys:
            super().keyPressEvent(event)
            return
        step = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_Home: -99, Qt.Key.Key_End: 99}.get(event.key())
        if step is not None:
            self._cursor = min(max(self._cursor + step, 0), len(self._keys) - 1)
            key = self._keys[self._cursor]
            ensure_visible(self, self._rows[key])
            self.update()
            QToolTip.showText(self.mapToGlobal(self._rows[key].center()), self.tooltip_text(key), self)
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.class_clicked.emit(self._keys[self._cursor])
        else:
            super().keyPressEvent(event)

    def cursor_key(self) -> str | None:
        """The class under the keyboard's cursor."""
        return self._keys[min(self._cursor, len(self._keys) - 1)] if self._keys else None

    def focusInEvent(self, event) -> None:
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:
        self.update()
        super().focusOutEvent(event)

    def _render(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(self.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(self.palette().base().color())
        painter = QPainter(pixmap)
        muted = self.palette().placeholderText().color()
        if self._table is None:
            painter.setPen(muted)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "No per-class results yet.\nRun a cross-validation or open a run folder.")
        else:
            self._paint_header(painter, muted)
            self._paint_groups(painter)
            self._paint_mean(painter)
            for key in self._keys:
                self._paint_row(painter, key, muted)
        painter.end()
        return pixmap

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._relayout()
            self._cache = None
            self.update()
        super().changeEvent(event)

    def _paint_header(self, painter: QPainter, muted: QColor) -> None:
        """Legend above the bars, "n" above the counts; percent ticks and grid below."""
        key_x, _, bar_x, bar_w = self._columns()
        height = self._header_height()
        small = self._small_font()
        painter.setFont(small)
        metrics = QFontMetrics(small)
        baseline = height // 2 + metrics.ascent() // 2 - 1
        painter.setPen(muted)
        painter.drawText(QPoint(key_x - 18, baseline), "Class")
        x = bar_x
        painter.fillRect(QRect(x, height // 2 - 5, 16, 10), QColor("#7f8ea3"))
        painter.setPen(self.palette().text().color())
        painter.drawText(QPoint(x + 20, baseline), "hF")
        x += 20 + metrics.horizontalAdvance("hF") + 12
        for name, which in (("hP", 0), ("hR", 1)):
            painter.fillRect(QRect(x, height // 2 - 2, 16, 3), self._thin_colour(which))
            painter.drawText(QPoint(x + 20, baseline), name)
            x += 20 + metrics.horizontalAdvance(name) + 12
        painter.setPen(muted)
        painter.drawText(QRect(bar_x + bar_w, 0, self.width() - bar_x - bar_w - 4, height),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, "n")
        first = min(r.top() for r in self._rows.values())
        last = max(r.bottom() for r in self._rows.values())
        grid = QColor(muted)
        grid.setAlpha(70)
        for tick in (0, 25, 50, 75, 100):
            tx = bar_x + int(bar_w * tick / 100)
            painter.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
            painter.drawLine(tx, first - 4, tx, last + 2)
        painter.setPen(muted)
        for left, label in tick_labels(bar_x, bar_w, metrics.horizontalAdvance):
            painter.drawText(QPoint(left, last + 4 + metrics.ascent()), label)

    def _paint_groups(self, painter: QPainter) -> None:
        bold = QFont(self.font())
        bold.setBold(True)
        bold.setPointSizeF(max(7.0, bold.pointSizeF() * 0.9))
        painter.setFont(bold)
        seen: set[str] = set()
        for key in self._keys:
            top = top_of(key)
            if top in seen:
                continue
            seen.add(top)
            row = self._rows[key]
            height = max(12, int(_GROUP_HEIGHT * row.height() / _ROW_HEIGHT))
            rect = QRect(4, row.top() - height + 2, self.width() - 8, height - 4)
            fill = top_colour(top)
            band = QRect(rect.left(), rect.top(), QFontMetrics(bold).horizontalAdvance(
                TOP_LEVEL_NAMES.get(top, top)) + 16, rect.height())
            painter.fillRect(band, fill)
            painter.setPen(style.readable_on(fill))
            painter.drawText(band, Qt.AlignmentFlag.AlignCenter, TOP_LEVEL_NAMES.get(top, top))
            line = QColor(fill)
            line.setAlpha(140)
            painter.setPen(QPen(line, 1))
            painter.drawLine(band.right() + 4, rect.center().y(), rect.right(), rect.center().y())

    def _thin_colour(self, which: int) -> QColor:
        if is_dark(self):
            return QColor(("#c7ccd4", "#8b93a1")[which])
        return QColor(("#4b5563", "#9aa3b2")[which])

    def _paint_row(self, painter: QPainter, key: str, muted: QColor) -> None:
        assert self._table is not None
        row = self._table.loc[key]
        rect = self._rows[key]
        key_x, name_x, bar_x, bar_w = self._columns()
        colour = BY_KEY[key].colour if key in BY_KEY else "#888888"
        chip = min(12, rect.height() - 8)
        paint_chip(painter, QRect(8, rect.center().y() - chip // 2, chip, chip), colour)
        font = QFont(self.font())
        painter.setFont(font)
        painter.setPen(self.palette().text().color())
        metrics = QFontMetrics(font)
        painter.drawText(QRect(key_x, rect.top(), name_x - key_x, rect.height()),
                         Qt.AlignmentFlag.AlignVCenter, key)
        name = BY_KEY[key].name if key in BY_KEY else ""
        painter.setPen(muted)
        painter.drawText(QRect(name_x, rect.top(), bar_x - name_x - 8, rect.height()),
                         Qt.AlignmentFlag.AlignVCenter,
                         metrics.elidedText(name, Qt.TextElideMode.ElideRight, bar_x - name_x - 8))
        n_true = int(row["n_true"]) if "n_true" in row.index else None
        if n_true is not None:
            painter.drawText(QRect(bar_x + bar_w, rect.top(), self.width() - bar_x - bar_w - 4, rect.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(n_true))
        hf, hp, hr = (_value(row, name) for name in ("hF", "hP", "hR"))
        centre = rect.center().y()
        thick = max(8, int(rect.height() * 0.42))
        top = centre - thick // 2 - 3
        if hf is None:
            painter.setPen(muted)
            italic = QFont(font)
            italic.setItalic(True)
            painter.setFont(italic)
            text = QFontMetrics(italic).elidedText(_missing_text(row, self._absent),
                                                   Qt.TextElideMode.ElideRight, bar_w - 4)
            painter.drawText(QRect(bar_x + 4, rect.top(), bar_w, rect.height()), Qt.AlignmentFlag.AlignVCenter,
                             text)
            return
        fill = QColor(colour)
        width = max(1, int(bar_w * hf))
        painter.fillRect(QRect(bar_x, top, width, thick), fill)
        outline = QColor(255, 255, 255, 80) if is_dark(self) else QColor(fill.darker(160))
        painter.setPen(QPen(outline, 1))
        painter.drawRect(QRect(bar_x, top, width, thick).adjusted(0, 0, -1, -1))
        for offset, value, which in ((thick + 1, hp, 0), (thick + 5, hr, 1)):
            if value is not None:
                painter.fillRect(QRect(bar_x, top + offset, max(1, int(bar_w * value)), 3), self._thin_colour(which))
        # value text: inside the bar when it fits, after it otherwise
        small = self._small_font()
        small.setBold(True)
        painter.setFont(small)
        label = f"{100 * hf:.1f}"
        label_w = QFontMetrics(small).horizontalAdvance(label) + 8
        if width > label_w + 4:
            painter.setPen(style.readable_on(fill))
            painter.drawText(QRect(bar_x + width - label_w, top, label_w, thick), Qt.AlignmentFlag.AlignCenter, label)
        else:
            painter.setPen(self.palette().text().color())
            painter.drawText(QRect(bar_x + width + 2, top - 2, label_w, thick + 4), Qt.AlignmentFlag.AlignCenter,
                             label)

    def _paint_mean(self, painter: QPainter) -> None:
        """Dashed line at the macro hF, labelled under the percent ticks."""
        if self._mean_hf is None or not self._rows:
            return
        _, _, bar_x, bar_w = self._columns()
        x = bar_x + int(bar_w * self._mean_hf)
        first = min(r.top() for r in self._rows.values())
        last = max(r.bottom() for r in self._rows.values())
        colour = QColor("#ff8c00")
        painter.setPen(QPen(colour, 1, Qt.PenStyle.DashLine))
        small = self._small_font()
        metrics = QFontMetrics(small)
        label_top = last + 4 + metrics.height()
        painter.drawLine(x, first - 2, x, label_top + 2)
        painter.setFont(small)
        label = f"mean hF {100 * self._mean_hf:.1f}"
        width = metrics.horizontalAdvance(label) + 6
        left = min(max(bar_x, x - width // 2), bar_x + bar_w - width)
        painter.setPen(colour)
        painter.drawText(QRect(left, label_top + 2, width, metrics.height()), Qt.AlignmentFlag.AlignCenter, label)

    # interaction --------------------------------------------------------------------------------

    def hit_at(self, pos: QPoint) -> str | None:
        return self.key_at(pos) if self._table is not None else None

    def hit_tooltip(self, hit: str) -> str:
        return self.tooltip_text(hit)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        key = self.key_at(event.position().toPoint()) if self._table is not None else None
        if event.button() == Qt.MouseButton.LeftButton and key is not None:
            self.class_clicked.emit(key)
        super().mouseReleaseEvent(event)

    def tooltip_text(self, key: str) -> str:
        assert self._table is not None
        row = self._table.loc[key]
        cls = BY_KEY.get(key)
        values = " · ".join(f"{name} {_pct(_value(row, name))}" for name in ("hP", "hR", "hF"))
        counts = ""
        if "n_true" in row.index and "n_pred" in row.index:
            counts = f"<br>{int(row['n_true'])} clips of this class · {int(row['n_pred'])} predicted as it"
        head = f"<b>{key}</b> {cls.top_name} › {cls.name}<br><i>{cls.examples}</i>" if cls else f"<b>{key}</b>"
        note = "" if _value(row, "hF") is not None else f"<br>{_missing_text(row, self._absent)}"
        return f"{head}<br>{values}{counts}{note}<br><i>click to list its clips</i>"


def _value(row: pd.Series, name: str) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _missing_text(row: pd.Series, absent: str) -> str:
    n_true = int(row["n_true"]) if "n_true" in row.index else 0
    n_pred = int(row["n_pred"]) if "n_pred" in row.index else 0
    if n_true == 0:
        return "not in the truth (not scored)"
    if n_pred == 0:
        return ("never predicted · left out of the means (reference mode)" if absent == "reference"
                else "never predicted · counts as 0 (strict mode)")
    return "undefined"


__all__ = ["ClassBars"]


def tick_labels(bar_x: int, bar_w: int, text_width: Callable[[str], int]) -> list[tuple[int, str]]:
    """``(left x, text)`` of the percent-tick labels under bars ``bar_w`` wide at ``bar_x``.

    100 %, then 0 %, 50, 25 and 75, each only where it keeps :data:`TICK_LABEL_GAP` from the
    labels already placed (a narrow bar column would print "75100%").
    """
    placed: list[tuple[int, int, str]] = []
    for tick in (100, 0, 50, 25, 75):   # 100 % first: too narrow for both ends drops "0%"
        tx = bar_x + int(bar_w * tick / 100)
        label = f"{tick}%" if tick in (0, 100) else str(tick)
        width = text_width(label)
        left = tx if tick == 0 else tx - width if tick == 100 else tx - width // 2
        if any(left < right + TICK_LABEL_GAP and other < left + width + TICK_LABEL_GAP for other, right, _ in placed):
            continue
        placed.append((left, left + width, label))
    return [(left, label) for left, _, label in sorted(placed)]
