"""Small option dialogs for the long jobs: cross-validation and embedding extraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

from bst_core.training import TrainConfig


def _path_row(edit: QLineEdit, browse: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(browse)
    return row


class TrainDialog(QDialog):
    """Cross-validation options (mode, folds, epochs, patience, seed, device) and the run folder."""

    def __init__(self, run_dir: Path, parent: QWidget | None = None, *, devices: tuple[str, ...] = ("cpu",),
                 text_available: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cross-validate")
        defaults = TrainConfig()
        self.mode = QComboBox()
        for mode, text in (("both", "audio + text (HATR, as in the report)"), ("audio", "audio only"),
                           ("text", "text only")):
            if mode != "text" or text_available:
                self.mode.addItem(text, mode)
        self.folds = self._spin(2, 10, defaults.folds)
        self.epochs = self._spin(1, 1000, defaults.epochs)
        self.patience = self._spin(0, 1000, defaults.patience or 0)
        self.patience.setSpecialValueText("off")
        self.seed = self._spin(0, 2**31 - 1, defaults.seed)
        self.device = QComboBox()
        self.device.addItems(list(devices))
        self.run_dir = QLineEdit(str(run_dir))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        form = QFormLayout()
        form.addRow("Inputs", self.mode)
        form.addRow("Folds", self.folds)
        form.addRow("Epochs (at most)", self.epochs)
        form.addRow("Early-stopping patience", self.patience)
        form.addRow("Seed", self.seed)
        form.addRow("Device", self.device)
        form.addRow("Run folder", _path_row(self.run_dir, browse))
        note = QLabel("Defaults are the seed report's protocol (5 folds, up to 100 epochs, patience 10, "
                      "seed 1821). Finished folds of the same run are reused.")
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
        return TrainConfig(mode=self.mode.currentData(), folds=self.folds.value(), epochs=self.epochs.value(),
                           patience=self.patience.value() or None, seed=self.seed.value(),
                           device=self.device.currentText())

    def chosen_run_dir(self) -> Path:
        return Path(self.run_dir.text()).expanduser()


@dataclass(frozen=True)
class ExtractOptions:
    encoder: str                 # "offline" | "clap"
    checkpoint: str | None
    allow_download: bool


class ExtractDialog(QDialog):
    """Which encoder computes the embeddings (CLAP needs its checkpoint; offline needs nothing)."""

    def __init__(self, parent: QWidget | None = None, *, checkpoint: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Extract embeddings")
        self.clap = QRadioButton("LAION-CLAP 630k-audioset-fusion (the challenge's embeddings)")
        self.offline = QRadioButton("Offline features (works without any download; not comparable with CLAP)")
        self.clap.setChecked(True)
        self.checkpoint = QLineEdit(checkpoint)
        self.checkpoint.setPlaceholderText("630k-audioset-fusion-best.pt (empty: look in the usual places)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.download = QCheckBox("Download the checkpoint from Hugging Face if it is missing (a large file, once)")
        self.clap.toggled.connect(self._update)
        note = QLabel("Embeddings are stored in the app's cache, never in your folder. Stopping keeps every "
                      "finished batch; running again computes only the rest.")
        note.setWordWrap(True)
        note.setObjectName("muted")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Extract")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.clap)
        layout.addWidget(_path_row(self.checkpoint, browse))
        layout.addWidget(self.download)
        layout.addWidget(self.offline)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._update()

    def _update(self) -> None:
        for widget in (self.checkpoint, self.download):
            widget.setEnabled(self.clap.isChecked())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CLAP checkpoint", self.checkpoint.text(),
                                              "PyTorch checkpoint (*.pt *.pth);;All files (*)")
        if path:
            self.checkpoint.setText(path)

    def options(self) -> ExtractOptions:
        clap = self.clap.isChecked()
        return ExtractOptions("clap" if clap else "offline",
                              (self.checkpoint.text().strip() or None) if clap else None,
                              clap and self.download.isChecked())
