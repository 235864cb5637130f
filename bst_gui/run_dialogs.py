"""Small option dialogs for the long jobs: cross-validation and embedding extraction.

Defaults and choices come from :mod:`bst_core.config`, the same place the CLI takes them from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from bst_core.config import DEFAULT_ENCODER, ENCODER_NAMES, MISSING_AUDIO, MODES, TrainConfig
from bst_core.metrics import ABSENT_MODES


def _path_row(edit: QLineEdit, browse: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(browse)
    return row


MODE_WORDS: dict[str, str] = {
    "both": "audio + text (HATR, as in the report)", "audio": "audio only", "text": "text only",
}
MISSING_AUDIO_WORDS: dict[str, str] = {
    "mask": "text only (no audio attention for undecodable audio)",
    "seed": "zero audio vector, as the seed system (exact reproduction)",
}
ABSENT_WORDS: dict[str, str] = {
    "reference": "reference (the organizers' scoring)", "strict": "strict (never-predicted classes count 0)",
}
ENCODER_WORDS: dict[str, str] = {
    "clap": "LAION-CLAP 630k-audioset-fusion (the challenge's embeddings)",
    "offline": "Offline features (works without any download; not comparable with CLAP)",
}


def _choices(combo: QComboBox, values: tuple[str, ...], words: dict[str, str], default: str) -> QComboBox:
    for value in values:
        combo.addItem(words.get(value, value), value)
    combo.setCurrentIndex(max(0, combo.findData(default)))
    return combo


class ElidedPathLabel(QLabel):
    """A path shown whole when it fits, else elided in the middle; the whole path is the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("muted")
        self.setMinimumWidth(120)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._full = ""
        self.set_path(text)

    def set_path(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    @property
    def path(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(40, self.width())))


TRAIN_FIELDS: tuple[str, ...] = ("mode", "folds", "epochs", "patience", "seed", "missing_audio", "absent", "device")
"""What the Cross-validate dialog remembers between uses (``TrainDialog.values``)."""


class TrainDialog(QDialog):
    """Cross-validation options and the run folder. Defaults are ``TrainConfig()``, choices the
    tuples of :mod:`bst_core.config` (what the CLI offers too); ``remembered`` (``values()`` of the
    last accepted dialog) replaces the defaults it names. The run folder is shown whole below its
    field (elided in the middle when long, the whole path as tooltip)."""

    def __init__(self, run_dir: Path, parent: QWidget | None = None, *, devices: tuple[str, ...] = ("cpu",),
                 text_available: bool = True, remembered: dict[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cross-validate")
        defaults = self.defaults = TrainConfig()
        modes = tuple(m for m in MODES if m != "text" or text_available)
        self.mode = _choices(QComboBox(), modes, MODE_WORDS, defaults.mode)
        self.folds = self._spin(2, 10, defaults.folds)
        self.epochs = self._spin(1, 1000, defaults.epochs)
        self.patience = self._spin(0, 1000, defaults.patience or 0)
        self.patience.setSpecialValueText("off")
        self.seed = self._spin(0, 2**31 - 1, defaults.seed)
        self.missing_audio = _choices(QComboBox(), MISSING_AUDIO, MISSING_AUDIO_WORDS, defaults.missing_audio)
        self.absent = _choices(QComboBox(), ABSENT_MODES, ABSENT_WORDS, defaults.absent)
        self.device = QComboBox()
        self.device.addItems(list(devices))
        self.device.setCurrentIndex(max(0, self.device.findText(defaults.device)))
        self.run_dir = QLineEdit(str(run_dir))
        self.run_dir.setMinimumWidth(420)
        self.run_path = ElidedPathLabel(str(run_dir))
        self.run_dir.textChanged.connect(lambda text: (self.run_path.set_path(text), self.run_dir.setToolTip(text)))
        self.run_dir.setToolTip(str(run_dir))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        form = QFormLayout()
        form.addRow("Inputs", self.mode)
        form.addRow("Folds", self.folds)
        form.addRow("Epochs (at most)", self.epochs)
        form.addRow("Early-stopping patience", self.patience)
        form.addRow("Seed", self.seed)
        form.addRow("Undecodable audio", self.missing_audio)
        form.addRow("Absent classes", self.absent)
        form.addRow("Device", self.device)
        form.addRow("Run folder", _path_row(self.run_dir, browse))
        form.addRow("", self.run_path)
        patience = f"patience {defaults.patience}" if defaults.patience else "no early stopping"
        note = QLabel(f"Defaults are the seed report's protocol ({defaults.folds} folds, up to {defaults.epochs} "
                      f"epochs, {patience}, seed {defaults.seed}). Finished folds of the same run folder are "
                      "reused, so a stopped run goes on where it stopped.")
        note.setWordWrap(True)
        note.setObjectName("muted")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.set_values(remembered or {})

    def values(self) -> dict[str, Any]:
        """The options shown (:data:`TRAIN_FIELDS`), JSON-ready: what the app remembers."""
        config = self.config()
        return {name: getattr(config, name) for name in TRAIN_FIELDS}

    def set_values(self, values: dict[str, Any]) -> None:
        """Show remembered options; a value that is no longer offered keeps the default."""
        for name, combo in (("mode", self.mode), ("missing_audio", self.missing_audio), ("absent", self.absent)):
            index = combo.findData(values.get(name))
            if index >= 0:
                combo.setCurrentIndex(index)
        if self.device.findText(str(values.get("device"))) >= 0:
            self.device.setCurrentIndex(self.device.findText(str(values["device"])))
        for name, spin in (("folds", self.folds), ("epochs", self.epochs), ("seed", self.seed)):
            if isinstance(values.get(name), int):
                spin.setValue(values[name])
        if "patience" in values and (values["patience"] is None or isinstance(values["patience"], int)):
            self.patience.setValue(values["patience"] or 0)

    @staticmethod
    def _spin(low: int, high: int, value: int) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        return spin

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder", self.run_dir.text())
        if folder:
            self.run_dir.setText(folder)

    def config(self) -> TrainConfig:
        """``TrainConfig()`` with what the dialog shows (every other option keeps its default)."""
        return replace(self.defaults, mode=self.mode.currentData(), folds=self.folds.value(),
                       epochs=self.epochs.value(), patience=self.patience.value() or None, seed=self.seed.value(),
                       missing_audio=self.missing_audio.currentData(), absent=self.absent.currentData(),
                       device=self.device.currentText())

    def chosen_run_dir(self) -> Path:
        return Path(self.run_dir.text()).expanduser()


@dataclass(frozen=True)
class ExtractOptions:
    encoder: str                 # one of config.ENCODER_NAMES
    checkpoint: str | None
    allow_download: bool


class ExtractDialog(QDialog):
    """Which encoder computes the embeddings (CLAP needs its checkpoint; offline needs nothing).

    One choice per ``config.ENCODER_NAMES``; ``config.DEFAULT_ENCODER`` is chosen, as in `bst extract`.
    """

    def __init__(self, parent: QWidget | None = None, *, checkpoint: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Extract embeddings")
        self.encoders: dict[str, QRadioButton] = {
            name: QRadioButton(ENCODER_WORDS.get(name, name)) for name in ENCODER_NAMES}
        self.encoders[DEFAULT_ENCODER].setChecked(True)
        self.checkpoint = QLineEdit(checkpoint)
        self.checkpoint.setPlaceholderText("630k-audioset-fusion-best.pt (empty: look in the usual places)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.download = QCheckBox("Download the checkpoint from Hugging Face if it is missing (a large file, once)")
        for button in self.encoders.values():
            button.toggled.connect(self._update)
        note = QLabel("Embeddings are stored in the app's cache, never in your folder. Stopping keeps every "
                      "finished batch; running again computes only the rest.")
        note.setWordWrap(True)
        note.setObjectName("muted")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Extract")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for name, button in self.encoders.items():
            layout.addWidget(button)
            if name == "clap":
                layout.addWidget(_path_row(self.checkpoint, browse))
                layout.addWidget(self.download)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._update()

    @property
    def encoder(self) -> str:
        return next(name for name, button in self.encoders.items() if button.isChecked())

    def _update(self) -> None:
        for widget in (self.checkpoint, self.download):
            widget.setEnabled(self.encoder == "clap")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CLAP checkpoint", self.checkpoint.text(),
                                              "PyTorch checkpoint (*.pt *.pth);;All files (*)")
        if path:
            self.checkpoint.setText(path)

    def options(self) -> ExtractOptions:
        clap = self.encoder == "clap"
        return ExtractOptions(self.encoder, (self.checkpoint.text().strip() or None) if clap else None,
                              clap and self.download.isChecked())
