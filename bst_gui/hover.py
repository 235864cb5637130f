"""Hover for widgets that paint their own hit areas (the per-class bars, the confusion cells)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QToolTip


class HoverTips:
    """Pointing cursor, a repaint and a tooltip over whatever :meth:`hit_at` finds under the mouse.

    Mixed into a QWidget subclass (listed before the Qt class), which defines :meth:`hit_at` and
    :meth:`hit_tooltip` and paints ``self._hover`` (the hit under the mouse, None off every hit).
    """

    _hover: Any = None

    def hit_at(self, pos: QPoint) -> Any:
        """What is under ``pos`` (None: nothing to hover)."""
        raise NotImplementedError

    def hit_tooltip(self, hit: Any) -> str:
        raise NotImplementedError

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        widget: Any = self
        hit = self.hit_at(event.position().toPoint())
        if hit != self._hover:
            self._hover = hit
            widget.setCursor(Qt.CursorShape.PointingHandCursor if hit is not None else Qt.CursorShape.ArrowCursor)
            widget.update()
        if hit is not None:
            QToolTip.showText(event.globalPosition().toPoint(), self.hit_tooltip(hit), widget)
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)  # type: ignore[misc]

    def leaveEvent(self, event: Any) -> None:
        self._hover = None
        self.update()  # type: ignore[attr-defined]
        super().leaveEvent(event)  # type: ignore[misc]
