"""A map of the sounds: every clip a point (PCA at once, UMAP once computed), in BST colours,
linked both ways with the library table.

Drawing: one :class:`pyqtgraph.ScatterPlotItem` in ``pxMode`` (points keep their pixel size, so a
frame draws cached symbol pixmaps) with one brush per class shared by its points; selected clips
are a second, small item on top. Nothing runs per point in Python while panning or zooming
(``benchmarks/bench_map_view.py`` measures the frame time at 35k points).

Selection: a click selects the clip under the cursor; a lasso (Lasso mode, or Shift+drag in Pan
mode) or a box (Box mode) selects every clip inside it (:func:`points_in_polygon`, numpy). The
window shows those clips in the table; the clips selected in the table are ringed on the map.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bst_core import taxonomy
from bst_gui import style

POINT_PX = 5
HIGHLIGHT_PX = 9
CURRENT_PX = 14
UNKNOWN_COLOUR = "#6b6e76"
COLOUR_BY: tuple[str, ...] = ("truth", "prediction")
MAP_SPACES: dict[str, str] = {"audio": "sound", "text": "text", "both": "sound + text"}
MODES: tuple[str, ...] = ("pan", "lasso", "box")
LASSO_STEP_PX = 3.0


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``xy`` (n, 2) inside ``polygon`` (k, 2; closed implicitly),
    by the even-odd rule; vectorised over the points, one pass per edge."""
    xy = np.asarray(xy, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(xy), dtype=bool)
    if len(poly) < 3 or not len(xy):
        return inside
    x, y = xy[:, 0], xy[:, 1]
    low, high = poly.min(axis=0), poly.max(axis=0)
    candidates = np.flatnonzero((x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1]))
    cx, cy = x[candidates], y[candidates]
    hit = np.zeros(len(candidates), dtype=bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        if yi != yj:
            crosses = ((yi > cy) != (yj > cy)) & (cx < (xj - xi) * (cy - yi) / (yj - yi) + xi)
            hit ^= crosses
        xj, yj = xi, yi
    inside[candidates] = hit
    return inside


def class_brushes() -> dict[str, QBrush]:
    """One brush per class key (BST colours) and "" (no class: grey)."""
    brushes = {c.key: pg.mkBrush(c.colour) for c in taxonomy.classes()}
    brushes[""] = pg.mkBrush(UNKNOWN_COLOUR)
    return brushes


class MapViewBox(pg.ViewBox):
    """A ViewBox whose left drag draws a lasso or a box (per :attr:`mode`; Shift+drag lassos in pan mode)."""

    polygon_drawn = Signal(object)        # (k, 2) float array in data coordinates

    def __init__(self) -> None:
        super().__init__()
        self.mode = "pan"
        self._points: list[QPointF] = []
        self._outline = QGraphicsPathItem()
        pen = QPen(QColor(style.PLAYHEAD))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self._outline.setPen(pen)
        self._outline.setBrush(QBrush(QColor(255, 210, 76, 40)))
        self._outline.setZValue(100)
        self._outline.hide()
        self.addItem(self._outline, ignoreBounds=True)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        shape = self.mode if self.mode != "pan" else (
            "lasso" if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else "pan")
        if ev.button() != Qt.MouseButton.LeftButton or shape == "pan":
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        here = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            start = self.mapSceneToView(ev.buttonDownScenePos())
            self._points = [start]
        if shape == "box":
            first = self._points[0]
            self._points = [first, QPointF(here.x(), first.y()), here, QPointF(first.x(), here.y())]
        else:
            px, py = self.viewPixelSize()
            last = self._points[-1]
            if abs(here.x() - last.x()) / max(px, 1e-12) + abs(here.y() - last.y()) / max(py, 1e-12) >= LASSO_STEP_PX:
                self._points.append(here)
        path = QPainterPath(self._points[0])
        for point in self._points[1:]:
            path.lineTo(point)
        path.closeSubpath()
        self._outline.setPath(path)
        self._outline.show()
        if ev.isFinish():
            self._outline.hide()
            polygon = np.array([(p.x(), p.y()) for p in self._points], dtype=np.float64)
            self._points = []
            self.polygon_drawn.emit(polygon)


class MapView(QWidget):
    """The map widget. Signals: ``clicked(id)``, ``lasso_selected(list of ids)``,
    ``colour_by_changed(str)``, ``space_changed(str)``, ``umap_requested()``."""

    clicked = Signal(str)
    lasso_selected = Signal(list)
    colour_by_changed = Signal(str)
    space_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ids: list[str] = []
        self.xy = np.zeros((0, 2), dtype=np.float32)
        self.method = ""
        self.keys: list[str] = []
        self._row_of: dict[str, int] = {}
        self._brushes = class_brushes()
        self._highlighted: list[str] = []

        self.colour_box = QComboBox()
        for key in COLOUR_BY:
            self.colour_box.addItem(f"Colour: {key}", key)
        self.colour_box.currentIndexChanged.connect(lambda _i: self.colour_by_changed.emit(self.colour_by))
        self.space_box = QComboBox()
        for key, words in MAP_SPACES.items():
            self.space_box.addItem(f"Map of: {words}", key)
        self.space_box.currentIndexChanged.connect(lambda _i: self.space_changed.emit(self.space))
        self.mode_group = QButtonGroup(self)
        self.mode_buttons: dict[str, QPushButton] = {}
        mode_row = QHBoxLayout()
        mode_row.setSpacing(2)
        tips = {"pan": "Drag pans, wheel zooms (Shift+drag lassos)", "lasso": "Drag a lasso around clips",
                "box": "Drag a box around clips"}
        for mode in MODES:
            button = QPushButton(mode.capitalize())
            button.setCheckable(True)
            button.setChecked(mode == "pan")
            button.setToolTip(tips[mode])
            button.clicked.connect(lambda _c=False, m=mode: self.set_mode(m))
            self.mode_group.addButton(button)
            self.mode_buttons[mode] = button
            mode_row.addWidget(button)
        self.status = QLabel()
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)

        self.box = MapViewBox()
        self.plot = pg.PlotWidget(viewBox=self.box, background=style.PLOT_BACKGROUND)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        item = self.plot.getPlotItem()
        item.hideAxis("left")
        item.hideAxis("bottom")
        self.box.setAspectLocked(False)
        self.scatter = pg.ScatterPlotItem(pxMode=True, size=POINT_PX, pen=None, symbol="o")
        self.selection = pg.ScatterPlotItem(pxMode=True, size=HIGHLIGHT_PX, pen=pg.mkPen("#ffffff", width=1.2),
                                            brush=None, symbol="o")
        self.current = pg.ScatterPlotItem(pxMode=True, size=CURRENT_PX, pen=pg.mkPen(style.PLAYHEAD, width=2),
                                          brush=None, symbol="o")
        for layer, z in ((self.scatter, 0), (self.selection, 5), (self.current, 6)):
            layer.setZValue(z)
            self.plot.addItem(layer)
        self.scatter.sigClicked.connect(self._scatter_clicked)
        self.box.polygon_drawn.connect(self._polygon)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setText(self._legend_html())

        controls = QHBoxLayout()
        controls.addWidget(self.colour_box)
        controls.addWidget(self.space_box)
        controls.addLayout(mode_row)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        self._reframe = QTimer(self)
        self._reframe.setSingleShot(True)
        self._reframe.setInterval(0)
        self._reframe.timeout.connect(lambda: self.box.autoRange(padding=0.04))
        self.clear("Open a source with embeddings to map its sounds.")

    # --- state ---------------------------------------------------------------------------------

    @property
    def colour_by(self) -> str:
        return str(self.colour_box.currentData())

    @property
    def space(self) -> str:
        return str(self.space_box.currentData())

    def set_space(self, space: str) -> None:
        index = self.space_box.findData(space)
        if index >= 0:
            self.space_box.blockSignals(True)
            self.space_box.setCurrentIndex(index)
            self.space_box.blockSignals(False)

    def set_mode(self, mode: str) -> None:
        self.box.mode = mode
        self.mode_buttons[mode].setChecked(True)

    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def clear(self, note: str = "") -> None:
        self.ids, self.keys, self.method = [], [], ""
        self.xy = np.zeros((0, 2), dtype=np.float32)
        self._row_of = {}
        self.scatter.clear()
        self.selection.clear()
        self.current.clear()
        self._highlighted = []
        self.set_status(note)

    def set_map(self, ids: Sequence[str], xy: np.ndarray, method: str, keys: Sequence[str] | None = None) -> None:
        """Show points ``xy`` (n, 2) of ``ids``, coloured by ``keys`` (class keys, "" for none)."""
        reframe = method != self.method or len(ids) != len(self.ids)
        self.ids = [str(i) for i in ids]
        self.xy = np.ascontiguousarray(xy, dtype=np.float32)
        self.method = method
        self._row_of = {item: row for row, item in enumerate(self.ids)}
        self.keys = list(keys) if keys is not None else [""] * len(self.ids)
        self.scatter.setData(x=self.xy[:, 0], y=self.xy[:, 1], brush=self._brush_list(self.keys),
                             data=np.arange(len(self.ids)))
        self.highlight(self._highlighted, None)
        if reframe:
            self._reframe.start()

    def set_classes(self, keys: Sequence[str]) -> None:
        """New colours for the same points (``keys`` aligned with :attr:`ids`)."""
        if len(keys) != len(self.ids):
            raise ValueError(f"{len(keys)} class keys for {len(self.ids)} points")
        self.keys = list(keys)
        self.scatter.setBrush(self._brush_list(self.keys))

    def _brush_list(self, keys: Sequence[str]) -> list[QBrush]:
        brushes, unknown = self._brushes, self._brushes[""]
        return [brushes.get(k, unknown) for k in keys]

    def highlight(self, ids: Iterable[str], current: str | None = None) -> None:
        """Ring the points of ``ids`` (the table's selection); ``current`` gets the larger ring."""
        self._highlighted = [i for i in ids if i in self._row_of]
        rows = np.array([self._row_of[i] for i in self._highlighted], dtype=np.int64)
        if len(rows):
            self.selection.setData(x=self.xy[rows, 0], y=self.xy[rows, 1])
        else:
            self.selection.clear()
        row = self._row_of.get(current) if current else None
        if row is not None:
            self.current.setData(x=self.xy[[row], 0], y=self.xy[[row], 1])
        else:
            self.current.clear()

    def highlighted_ids(self) -> list[str]:
        return list(self._highlighted)

    # --- picking ---------------------------------------------------------------------------------

    def ids_in(self, polygon: np.ndarray) -> list[str]:
        """The ids of the points inside ``polygon`` (data coordinates), in map order."""
        rows = np.flatnonzero(points_in_polygon(self.xy, polygon))
        return [self.ids[r] for r in rows]

    def _polygon(self, polygon: np.ndarray) -> None:
        chosen = self.ids_in(polygon)
        if chosen:
            self.lasso_selected.emit(chosen)

    def _scatter_clicked(self, _item: Any, points: Any, _event: Any) -> None:
        if len(points):
            self.clicked.emit(self.ids[int(points[0].data())])

    def _legend_html(self) -> str:
        chips = []
        for cls in taxonomy.classes():
            chips.append(f"<span style='color:{cls.colour}'>●</span>&nbsp;{cls.key}")
        return f"<span style='color:{style.MUTED}'>" + " &nbsp; ".join(chips) + "</span>"
