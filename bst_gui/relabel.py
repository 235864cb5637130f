"""Keyboard relabelling: a key chord or a type-ahead picker assigns a class to the selected clips.

The key scheme follows the class codes of the taxonomy (``class_idx``, e.g. 401 = fx-o): press the
top-level digit, then the class digit.

    1 Music          2 Instrument samples   3 Speech     4 Sound effects   5 Soundscapes
    1-1 m-sp ...     2-1 is-p ...           3-1 sp-s     4-1 fx-o ...      5-1 ss-n ...

Other keys: ``0`` or Backspace clears the edited label, ``A`` accepts the model's prediction, ``/``
or Ctrl+L opens the class picker (type part of a key, name or example sound, Enter assigns),
Ctrl+Z undoes, Ctrl+Shift+Z or Ctrl+Y redoes. Every assignment is one undo step, saved at once in
the :class:`~bst_core.workspace.Workspace`, and the host then moves to the next clip; undo and redo
move the selection back to the clip(s) they changed.

:class:`RelabelController` holds the actions (their shortcuts are real Qt multi-key shortcuts, so
they also show in menus and never fire while typing in a text field). It works on a main window
(``RelabelController(window)``) or on plain callables, which is how the tests drive it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import pandas as pd
from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeyEvent, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from bst_core.errors import BadInputError
from bst_core.taxonomy import BY_KEY, CLASS_KEYS, TOP_LEVEL_NAMES, TOP_LEVELS, classes_of_top
from bst_core.workspace import Workspace, WorkspaceSaveError
from bst_gui import style
from bst_gui.confusion_view import top_colour

CLEAR_KEYS: tuple[str, ...] = ("0", "Backspace")
ACCEPT_KEY = "A"
PICKER_KEYS: tuple[str, ...] = ("/", "Ctrl+L")
UNDO_KEYS: tuple[str, ...] = ("Ctrl+Z",)
REDO_KEYS: tuple[str, ...] = ("Ctrl+Shift+Z", "Ctrl+Y")


def chord_for(key: str) -> str:
    """The two-key chord of a class, from its code: ``chord_for("fx-o") == "4, 1"`` (code 401)."""
    top, leaf = divmod(BY_KEY[key].class_idx, 100)
    return f"{top}, {leaf}"


def class_for_chord(chord: str) -> str | None:
    """Inverse of :func:`chord_for` (``"4, 1"`` or ``"41"`` → ``"fx-o"``); None when unknown."""
    digits = re.sub(r"[^0-9]", "", chord)
    if len(digits) != 2:
        return None
    code = int(digits[0]) * 100 + int(digits[1])
    return next((k for k in CLASS_KEYS if BY_KEY[k].class_idx == code), None)


def rank_classes(text: str) -> list[str]:
    """Classes matching ``text`` (every word somewhere in key, name, top level or examples), best first.

    Order: exact key, key prefix, a name word starting with the text, name contains it, top-level
    name, example sounds; ties keep taxonomy order. Empty text lists every class.
    """
    words = text.lower().split()
    if not words:
        return list(CLASS_KEYS)
    scored: list[tuple[int, int, str]] = []
    for order, key in enumerate(CLASS_KEYS):
        cls = BY_KEY[key]
        fields = (key.lower(), cls.name.lower(), cls.top_name.lower(), cls.examples.lower())
        if not all(any(w in f for f in fields) for w in words):
            continue
        first = words[0]
        name_words = re.split(r"[\s/,]+", fields[1])
        if first == fields[0] or text.strip().lower() == fields[0]:
            score = 0
        elif fields[0].startswith(first):
            score = 1
        elif any(w.startswith(first) for w in name_words):
            score = 2
        elif first in fields[1]:
            score = 3
        elif first in fields[2]:
            score = 4
        else:
            score = 5
        scored.append((score, order, key))
    return [key for _, _, key in sorted(scored)]


@lru_cache(maxsize=64)
def chip_icon(colour: str, size: int = 12) -> QIcon:
    """A square colour chip as an icon (menus, lists)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(QColor(128, 128, 128, 200))
    painter.setBrush(QColor(colour))
    painter.drawRoundedRect(0.5, 0.5, size - 1, size - 1, 2, 2)
    painter.end()
    return QIcon(pixmap)


# --- controller ------------------------------------------------------------------------------------

class RelabelController(QObject):
    """Relabelling actions over a workspace.

    ``RelabelController(window)`` uses ``window.workspace``, ``window.selected_ids()`` (falling back
    to ``window.current_id()``), ``window.advance()``, ``window.refresh_labels(ids)``,
    ``window.select_id(id)`` (undo/redo select the clip they changed), the ``prediction`` column of
    ``window.library.frame`` and ``window.source_changed``. Without a window, pass the callables:
    ``workspace`` (a Workspace or a callable returning one), ``selected_ids``, ``advance``,
    ``refresh``, ``select`` (ids → None) and ``predictions`` (ids → predicted keys).

    Signals: ``labels_changed(list[str])`` after any edit, undo or redo that was saved;
    ``message(str)`` one line for the status bar (also shown by :class:`KeyLegend`);
    ``save_failed(str)`` when the workspace could not save an edit, undo or redo (locked by another
    program, disk full, ...): nothing changed, the table keeps its labels and the cursor stays.
    """

    labels_changed = Signal(list)
    message = Signal(str)
    save_failed = Signal(str)

    def __init__(self, window: Any = None, *, workspace: Workspace | Callable[[], Workspace | None] | None = None,
                 selected_ids: Callable[[], Sequence[str]] | None = None,
                 advance: Callable[[], None] | None = None,
                 refresh: Callable[[Sequence[str]], None] | None = None,
                 predictions: Callable[[Sequence[str]], Sequence[str]] | None = None,
                 select: Callable[[Sequence[str]], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent if parent is not None else window if isinstance(window, QObject) else None)
        self._window = window
        if window is not None:
            # defaults by "is None": a caller may pass any falsy value on purpose
            workspace = _default(workspace, lambda: getattr(window, "workspace", None))
            selected_ids = _default(selected_ids, lambda: _window_selection(window))
            advance = _default(advance, lambda: window.advance())
            refresh = _default(refresh, lambda ids: window.refresh_labels(list(ids)))
            predictions = _default(predictions, lambda ids: _window_predictions(window, ids))
            select = _default(select, lambda ids: _window_select(window, ids))
            signal = getattr(window, "source_changed", None)
            if signal is not None:
                signal.connect(self.update_actions)
        self._workspace = workspace if callable(workspace) else (lambda: workspace)
        self._selected_ids = selected_ids or (lambda: [])
        self._advance = advance or (lambda: None)
        self._refresh = refresh or (lambda ids: None)
        self._select = select or (lambda ids: None)
        self._predictions = predictions
        self.picker: ClassPicker | None = None
        self._build_actions()
        self.update_actions()

    # actions ------------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        self.class_actions: dict[str, QAction] = {}
        for key in CLASS_KEYS:
            cls = BY_KEY[key]
            action = QAction(chip_icon(cls.colour), f"{key}  {cls.name}", self)
            action.setShortcut(QKeySequence(chord_for(key)))
            action.setToolTip(f"Label the selected clips {key} ({cls.top_name} › {cls.name})")
            action.setData(key)
            action.triggered.connect(lambda _=False, k=key: self.assign(k))
            self.class_actions[key] = action
        self.clear_action = self._action("Clear edited label", CLEAR_KEYS, lambda: self.assign(""),
                                         "Remove the edited label: the source's label stands again")
        self.accept_action = self._action("Accept prediction", (ACCEPT_KEY,), self.accept_predictions,
                                          "Label the selected clips with the model's prediction")
        self.picker_action = self._action("Find class…", PICKER_KEYS, self.open_picker,
                                          "Type part of a class name, key or example sound; Enter assigns")
        self.undo_action = self._action("Undo relabel", UNDO_KEYS, self.undo, "Undo the last label edit")
        self.redo_action = self._action("Redo relabel", REDO_KEYS, self.redo, "Redo the label edit undone last")

    def _action(self, text: str, keys: Sequence[str], slot: Callable[[], object], tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(tip)
        action.triggered.connect(lambda _=False: slot())
        return action

    def actions(self) -> list[QAction]:
        """All actions, menu order: 23 classes, clear, accept, find, undo, redo."""
        return [*self.class_actions.values(), self.clear_action, self.accept_action, self.picker_action,
                self.undo_action, self.redo_action]

    def attach(self, widget: QWidget) -> None:
        """Add every action to ``widget`` so its shortcuts work in that widget's window."""
        widget.addActions(self.actions())

    def update_actions(self) -> None:
        """Enable what can be done now (a workspace is open; something to undo/redo)."""
        workspace = self.workspace
        for action in (*self.class_actions.values(), self.clear_action, self.picker_action):
            action.setEnabled(workspace is not None)
        self.accept_action.setEnabled(workspace is not None and self._predictions is not None)
        self.undo_action.setEnabled(workspace is not None and workspace.can_undo)
        self.redo_action.setEnabled(workspace is not None and workspace.can_redo)

    @property
    def workspace(self) -> Workspace | None:
        return self._workspace()

    # editing ------------------------------------------------------------------------------------

    def _targets(self) -> tuple[Workspace, list[str]] | None:
        workspace = self.workspace
        if workspace is None:
            self.message.emit("Open a sound source first: its label edits are kept in a workspace.")
            return None
        ids = [str(i) for i in self._selected_ids()]
        if not ids:
            self.message.emit("Select one or more clips first.")
            return None
        return workspace, ids

    def assign(self, key: str) -> list[str]:
        """Give the selected clips the edited label ``key`` ("" clears); then advance. Returns changed ids."""
        targets = self._targets()
        if targets is None:
            return []
        workspace, ids = targets
        try:
            changed = workspace.assign(ids, key)
        except BadInputError as exc:
            self._not_saved(exc)
            return []
        what = f"{key} {BY_KEY[key].name}" if key else "no edited label"
        self._after_edit(changed, f"{_clips(len(ids))} → {what}" if changed
                         else f"{_clips(len(ids))} already had {what}")
        self._advance()
        return changed

    def accept_predictions(self) -> list[str]:
        """Label each selected clip with its predicted class (one undo step); then advance."""
        targets = self._targets()
        if targets is None:
            return []
        workspace, ids = targets
        if self._predictions is None:
            self.message.emit("There are no predictions yet: run a prediction or a cross-validation.")
            return []
        predicted = [str(p) if p is not None else "" for p in self._predictions(ids)]
        labels = {i: p for i, p in zip(ids, predicted, strict=True) if p in BY_KEY}
        if not labels:
            self.message.emit("The selected clips have no prediction to accept.")
            return []
        try:
            changed = workspace.assign_each(labels)
        except BadInputError as exc:
            self._not_saved(exc)
            return []
        self._after_edit(changed, f"accepted the prediction of {_clips(len(labels))}")
        self._advance()
        return changed

    def undo(self) -> list[str]:
        workspace = self.workspace
        if workspace is None:
            return []
        try:
            ids = workspace.undo()
        except BadInputError as exc:
            self._not_saved(exc, "Undo")
            return []
        self._after_edit(ids, f"undone: {_clips(len(ids))} back to the label before" if ids
                         else "nothing to undo")
        if ids:
            self._select(ids)
        return ids

    def redo(self) -> list[str]:
        workspace = self.workspace
        if workspace is None:
            return []
        try:
            ids = workspace.redo()
        except BadInputError as exc:
            self._not_saved(exc, "Redo")
            return []
        self._after_edit(ids, f"redone: {_clips(len(ids))}" if ids else "nothing to redo")
        if ids:
            self._select(ids)
        return ids

    def _not_saved(self, exc: BadInputError, what: str = "Label edit") -> None:
        """Nothing was written: say why (status bar), and tell the host when saving itself failed."""
        text = f"{what} not saved: {exc}"
        self.message.emit(text)
        if isinstance(exc, WorkspaceSaveError):
            self.save_failed.emit(text)

    def _after_edit(self, ids: list[str], text: str) -> None:
        if ids:
            self._refresh(ids)
            self.labels_changed.emit(ids)
        self.update_actions()
        hint = " · Ctrl+Z undoes" if ids and self.undo_action.isEnabled() else ""
        self.message.emit(f"Labels: {text}{hint}")

    # picker -------------------------------------------------------------------------------------

    def open_picker(self) -> ClassPicker | None:
        """Show the type-ahead class picker over the window; a pick assigns the class."""
        if self.workspace is None:
            self.message.emit("Open a sound source first: its label edits are kept in a workspace.")
            return None
        if self.picker is None:
            anchor = self._window if isinstance(self._window, QWidget) else None
            self.picker = ClassPicker(anchor)
            self.picker.picked.connect(self.assign)
        self.picker.popup(self._window if isinstance(self._window, QWidget) else None)
        return self.picker

def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _window_selection(window: Any) -> list[str]:
    ids = list(window.selected_ids())
    if not ids and hasattr(window, "current_id"):
        current = window.current_id()
        ids = [current] if current else []
    return ids


def _window_select(window: Any, ids: Sequence[str]) -> None:
    """Select the clips an undo or redo changed (all of them when the window can, else the first)."""
    if hasattr(window, "select_ids"):
        window.select_ids(list(ids))
    elif hasattr(window, "select_id"):
        window.select_id(ids[0])


def _window_predictions(window: Any, ids: Sequence[str]) -> list[str]:
    frame = getattr(getattr(window, "library", None), "frame", None)
    if frame is None or "prediction" not in frame.columns:
        return ["" for _ in ids]
    lookup = pd.Series(frame["prediction"].to_numpy(), index=frame["id"].astype(str))
    lookup = lookup[~lookup.index.duplicated()]
    return [str(v) if isinstance(v, str) else "" for v in lookup.reindex(list(ids)).to_numpy()]


# --- type-ahead picker -------------------------------------------------------------------------------

class _SearchLine(QLineEdit):
    """Line edit that passes Up/Down/PageUp/PageDown to the result list."""

    def __init__(self, results: QListWidget) -> None:
        super().__init__()
        self._results = results

    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_PageDown: 5, Qt.Key.Key_PageUp: -5}
        if event.key() in step and self._results.count():
            row = max(0, min(self._results.count() - 1, self._results.currentRow() + step[event.key()]))
            self._results.setCurrentRow(row)
            return
        super().keyPressEvent(event)


def _item_text(key: str, text: str) -> str:
    """``fx-v   Vehicles · Sound effects``, plus the example sound that matched when only one did."""
    cls = BY_KEY[key]
    base = f"{key}   {cls.name}  · {cls.top_name}"
    words = text.lower().split()
    if not words or all(w in f"{key} {cls.name} {cls.top_name}".lower() for w in words):
        return base
    examples = [e.strip() for e in cls.examples.split(";")]
    hit = next((e for e in examples if any(w in e.lower() for w in words)), "")
    return f"{base}  — “{hit}”" if hit else base


class ClassPicker(QFrame):
    """Popup: a search line over the 23 classes, filtered as you type; Enter or a click picks.

    Signal ``picked(key)``. Escape closes it without picking.
    """

    picked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.results = QListWidget()
        self.results.setUniformItemSizes(True)
        self.search = _SearchLine(self.results)
        self.search.setPlaceholderText("Type a class: key, name or an example sound…")
        self.search.setClearButtonEnabled(True)
        hint = QLabel("↑↓ choose · Enter assigns · Esc closes")
        hint.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.search)
        layout.addWidget(self.results, 1)
        layout.addWidget(hint)
        for key in CLASS_KEYS:
            cls = BY_KEY[key]
            item = QListWidgetItem(chip_icon(cls.colour), _item_text(key, ""))
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(f"{chord_for(key)} · {cls.description}")
            self.results.addItem(item)
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self.pick_current)
        self.results.itemActivated.connect(lambda item: self._pick(item.data(Qt.ItemDataRole.UserRole)))
        self.results.itemClicked.connect(lambda item: self._pick(item.data(Qt.ItemDataRole.UserRole)))
        self.resize(480, 380)
        self.filter("")

    def filter(self, text: str) -> None:
        """Show the classes matching ``text``, best first, and select the first."""
        order = {key: i for i, key in enumerate(rank_classes(text))}
        items = [self.results.takeItem(0) for _ in range(self.results.count())]
        items.sort(key=lambda it: order.get(it.data(Qt.ItemDataRole.UserRole), len(order)))
        for item in items:
            self.results.addItem(item)
            key = item.data(Qt.ItemDataRole.UserRole)
            item.setHidden(key not in order)
            item.setText(_item_text(key, text))
        self.results.setCurrentRow(0 if order else -1)

    def visible_keys(self) -> list[str]:
        return [self.results.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.results.count())
                if not self.results.item(r).isHidden()]

    def pick_current(self) -> None:
        item = self.results.currentItem()
        if item is not None and not item.isHidden():
            self._pick(item.data(Qt.ItemDataRole.UserRole))

    def _pick(self, key: str) -> None:
        self.hide()
        self.picked.emit(key)

    def popup(self, anchor: QWidget | None = None) -> None:
        """Show centred over ``anchor`` (or where it was), cleared, with the cursor in the search line."""
        self.search.clear()
        if anchor is not None:
            centre = anchor.mapToGlobal(anchor.rect().center())
            self.move(centre - QPoint(self.width() // 2, self.height() // 2))
        self.show()
        self.raise_()
        self.activateWindow()
        self.search.setFocus()


# --- on-screen legend --------------------------------------------------------------------------------

class KeyLegend(QWidget):
    """Compact legend of the relabel keys: five columns (top levels) of chord → class, plus the rest.

    Pass the controller to show its messages (the last edit) under the legend. ``show_names=False``
    leaves the class names out (tooltips keep them) for a narrow dock.
    """

    def __init__(self, controller: RelabelController | None = None, parent: QWidget | None = None, *,
                 show_names: bool = True) -> None:
        super().__init__(parent)
        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(1)
        for column, top in enumerate(TOP_LEVELS):
            fill = top_colour(top)
            digit = chord_for(classes_of_top(top)[0]).split(",")[0]
            header = QLabel(f"{digit}  {TOP_LEVEL_NAMES[top] if show_names else top}")
            header.setToolTip(f"press {digit} then the class digit for {TOP_LEVEL_NAMES[top]}")
            header.setStyleSheet(f"background: {fill.name()}; color: {style.readable_on(fill).name()}; "
                                 "font-weight: 600; padding: 1px 6px; border-radius: 3px;")
            grid.addWidget(header, 0, column)
            for row, key in enumerate(classes_of_top(top), start=1):
                cls = BY_KEY[key]
                leaf = chord_for(key).split(", ")[1]
                name = f"&nbsp;<span style='color:{style.MUTED}'>{cls.name}</span>" if show_names else ""
                label = QLabel(f"<span style='background:{cls.colour}'>&nbsp;&nbsp;&nbsp;</span>"
                               f"&nbsp;<b>{leaf}</b>&nbsp;{key}{name}")
                label.setToolTip(f"press {digit} then {leaf} · {cls.description}")
                grid.addWidget(label, row, column)
        rest = QLabel("Top-level digit, then class digit (the class code: 401 = 4 1 = fx-o) labels the "
                      "selected clips and <b>moves to the next clip</b> · "
                      "<b>0</b>/Backspace clear · <b>A</b> accept prediction · <b>/</b> find class · "
                      "<b>Ctrl+Z</b> undo (back to the undone clip) · <b>Ctrl+Shift+Z</b> redo")
        rest.setObjectName("muted")
        rest.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        grid.setColumnStretch(len(TOP_LEVELS), 1)
        keys = QWidget()
        inner = QVBoxLayout(keys)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.setSpacing(6)
        inner.addLayout(grid)
        inner.addWidget(rest)
        inner.addWidget(self.status)
        inner.addStretch(1)
        scroll = QScrollArea()  # a narrow or short dock scrolls instead of growing the window
        scroll.setWidget(keys)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(scroll)
        if controller is not None:
            controller.message.connect(self.status.setText)


__all__ = ["ACCEPT_KEY", "CLEAR_KEYS", "PICKER_KEYS", "REDO_KEYS", "UNDO_KEYS", "ClassPicker", "KeyLegend",
           "RelabelController", "chip_icon", "chord_for", "class_for_chord", "rank_classes"]
