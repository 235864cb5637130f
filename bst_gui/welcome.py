"""The page shown with nothing open: what to open, recent sources, how to get the data and model."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from bst_core import paths, taxonomy
from bst_gui import style

OPEN_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("bsd", "Open a BSD dataset folder…", "BSD10k or BSD35k-CS: labelled, with CLAP embeddings. "
                                          "Cross-validate and inspect."),
    ("evaluation", "Open an evaluation folder…", "The challenge's unlabelled set: predict and export "
                                                 "the submission."),
    ("folder", "Open a folder of sounds…", "Your own library: label it with BST classes, filter and "
                                           "audition."),
    ("csv", "Open a Freesound metadata CSV…", "Sounds described by Freesound metadata (id, title, tags, "
                                              "description)."),
    ("demo", "Try the offline demo corpus", "A small generated corpus: works without any download."),
)



def get_data_lines() -> tuple[str, str]:
    """Two lines: where BSD10k and the CLAP checkpoint come from and where they go."""
    checkpoints = paths.data_dir() / "checkpoints"
    return (
        "<b>BSD10k</b>: download BSD10k-v1.2 from its Zenodo record (linked from the DCASE 2026 Task 1 "
        "page), unzip it, then open its root folder here (CLAP embeddings are included).",
        "<b>CLAP checkpoint</b> (only for your own sounds or the evaluation set): put "
        f"630k-audioset-fusion-best.pt from Hugging Face lukewys/laion_clap in {checkpoints}, or pick "
        "it in Analysis › Extract embeddings.",
    )


class WelcomePage(QWidget):
    """Emits ``open_requested(kind)`` for an open action and ``recent_requested(path)``."""

    open_requested = Signal(str)
    recent_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        card = QFrame()
        card.setObjectName("card")
        card.setMaximumWidth(920)

        title = QLabel("BST Studio")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 2.0)
        font.setBold(True)
        title.setFont(font)
        subtitle = QLabel("Sort sounds into the 23 classes of the Broad Sound Taxonomy "
                          "(DCASE 2026 Task 1).")
        subtitle.setObjectName("muted")
        stripe = QHBoxLayout()
        stripe.setSpacing(0)
        for cls in taxonomy.classes():
            swatch = QFrame()
            swatch.setFixedHeight(6)
            swatch.setStyleSheet(f"background: {cls.colour}; border: none;")
            swatch.setToolTip(f"{cls.key}  {cls.name}")
            stripe.addWidget(swatch)

        actions = QGridLayout()
        actions.setHorizontalSpacing(12)
        actions.setVerticalSpacing(8)
        self.buttons: dict[str, QPushButton] = {}
        for row, (kind, text, hint) in enumerate(OPEN_ACTIONS):
            button = QPushButton(text)
            button.setObjectName("primary" if kind == "bsd" else "welcomeAction")
            if kind == "bsd":
                button.setStyleSheet("text-align: left; padding: 10px 14px; font-size: 11pt;")
            button.setMinimumWidth(300)
            button.clicked.connect(lambda _=False, k=kind: self.open_requested.emit(k))
            note = QLabel(hint)
            note.setObjectName("muted")
            note.setWordWrap(True)
            actions.addWidget(button, row, 0)
            actions.addWidget(note, row, 1)
            self.buttons[kind] = button
        actions.setColumnStretch(1, 1)

        recent_title = QLabel("Recent")
        recent_title.setObjectName("heading")
        self.recent = QListWidget()
        self.recent.setMaximumHeight(150)
        self.recent.setFrameShape(QFrame.Shape.NoFrame)
        self.recent.setStyleSheet(f"background: {style.BASE}; border-radius: 4px;")
        self.recent.itemActivated.connect(lambda item: self.recent_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.recent.itemClicked.connect(lambda item: self.recent_requested.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.no_recent = QLabel("Nothing opened yet.")
        self.no_recent.setObjectName("muted")

        help_title = QLabel("Getting the data and the model")
        help_title.setObjectName("heading")
        help_lines = QLabel("<br>".join(get_data_lines()))
        help_lines.setWordWrap(True)
        help_lines.setObjectName("muted")
        help_lines.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(10)
        inner.addWidget(title)
        inner.addWidget(subtitle)
        inner.addLayout(stripe)
        inner.addSpacing(10)
        inner.addLayout(actions)
        inner.addSpacing(10)
        inner.addWidget(recent_title)
        inner.addWidget(self.recent)
        inner.addWidget(self.no_recent)
        inner.addSpacing(6)
        inner.addWidget(help_title)
        inner.addWidget(help_lines)

        page = QWidget()            # in a scroll area: the page never sets the window's minimum height
        centred = QVBoxLayout(page)
        centred.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 10)
        row.addStretch(1)
        centred.addLayout(row)
        centred.addStretch(2)
        scroll = QScrollArea()
        scroll.setWidget(page)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def set_recent(self, paths: list[str]) -> None:
        """Show recent sources, most recent first (name in bold, full path below)."""
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(f"{Path(path).name}\n{path}")
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(path)
            item.setSizeHint(QSize(0, 38))
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.no_recent.setVisible(not paths)
