"""Look of the app: a dense dark-neutral palette and the BST class colours with readable text."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from bst_core import taxonomy

# Neutral greys (dark), one accent. Names say where they are used.
WINDOW = "#1f2023"
BASE = "#17181a"          # table and text field background
ALT_BASE = "#1c1d20"      # alternate table rows
PANEL = "#26272b"         # docks, toolbars, headers
BORDER = "#34363b"
TEXT = "#e4e4e6"
MUTED = "#9a9ca3"         # secondary text
ACCENT = "#4c8dff"        # selection, focus, progress
ERROR = "#ff6b6b"
WARNING = "#f0b35a"

PLOT_BACKGROUND = BASE
WAVEFORM = "#8fb8ff"
PLAYHEAD = "#ffd24c"


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance (0 black … 1 white) of ``#rrggbb``."""
    colour = QColor(hex_colour)
    channels = []
    for value in (colour.redF(), colour.greenF(), colour.blueF()):
        channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def readable_text(hex_colour: str) -> str:
    """Black or white, whichever contrasts more with the background ``hex_colour``."""
    lum = luminance(hex_colour)
    return "#111111" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def readable_on(background: QColor | str) -> QColor:
    """:func:`readable_text` on a QColor (or ``#rrggbb``) background, as a QColor."""
    return QColor(readable_text(QColor(background).name()))


@lru_cache(maxsize=64)
def class_colours(key: str) -> tuple[QColor, QColor]:
    """(background, text) QColors for a class or top-level key in BST colours."""
    background = taxonomy.colour(key)
    return QColor(background), QColor(readable_text(background))


def class_label(key: str) -> str:
    """``"fx-o  Objects / House appliances"`` for a key, the key itself if unknown."""
    cls = taxonomy.BY_KEY.get(key)
    return f"{key}  {cls.name}" if cls else key


def stylesheet() -> str:
    """Qt style sheet on top of the Fusion style (only what the palette cannot say)."""
    return f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QDockWidget {{ color: {TEXT}; }}
QDockWidget::title {{ background: {PANEL}; padding: 4px 8px; border-bottom: 1px solid {BORDER}; }}
QToolBar {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER}; spacing: 2px; padding: 2px; }}
QToolButton {{ padding: 3px 8px; border-radius: 4px; color: {TEXT}; }}
QToolButton:hover {{ background: #33353a; }}
QToolButton:checked {{ background: #2f3d57; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; border-top: 1px solid {BORDER}; }}
QHeaderView::section {{ background: {PANEL}; color: {MUTED}; border: none;
    border-right: 1px solid {BORDER}; border-bottom: 1px solid {BORDER}; padding: 3px 6px; }}
QTableView {{ gridline-color: {BORDER}; selection-background-color: #2f4a7a; border: none; }}
QTableView::item:selected {{ border-top: 1px solid {ACCENT}; border-bottom: 1px solid {ACCENT}; }}
QLineEdit, QComboBox, QDoubleSpinBox, QSpinBox {{ background: {BASE}; border: 1px solid {BORDER};
    border-radius: 4px; padding: 3px 6px; color: {TEXT}; }}
QLineEdit:focus, QComboBox:focus, QDoubleSpinBox:focus, QSpinBox:focus {{ border-color: {ACCENT}; }}
QPushButton {{ background: #2d2f34; border: 1px solid {BORDER}; border-radius: 4px; padding: 5px 12px;
    color: {TEXT}; }}
QPushButton:hover {{ background: #35383e; }}
QPushButton:default {{ border-color: {ACCENT}; }}
QPushButton#primary {{ background: #2f5fb8; border-color: #3f72d0; }}
QPushButton#primary:hover {{ background: #3a6cc8; }}
QPushButton#welcomeAction {{ text-align: left; padding: 10px 14px; font-size: 11pt; }}
QProgressBar {{ background: {BASE}; border: 1px solid {BORDER}; border-radius: 3px; text-align: center;
    color: {TEXT}; max-height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 2px; }}
QTabBar::tab {{ background: {PANEL}; color: {MUTED}; padding: 5px 12px; border: 1px solid {BORDER};
    border-bottom: none; }}
QTabBar::tab:selected {{ color: {TEXT}; background: {WINDOW}; }}
QLabel#heading {{ font-size: 11pt; font-weight: 600; color: {TEXT}; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#notice {{ color: {WARNING}; }}
QLabel#error {{ color: {ERROR}; }}
QFrame#card {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px; }}
QMenu {{ background: {PANEL}; border: 1px solid {BORDER}; }}
QMenu::item:selected {{ background: #2f4a7a; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid {BORDER}; }}
"""


def palette() -> QPalette:
    """The dark palette every widget inherits."""
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE, QPalette.ColorRole.AlternateBase: ALT_BASE,
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: PANEL,
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT, QPalette.ColorRole.Highlight: "#2f4a7a",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: MUTED, QPalette.ColorRole.Mid: BORDER,
        QPalette.ColorRole.Dark: "#111214", QPalette.ColorRole.Light: "#3a3c42",
    }
    for role, value in roles.items():
        pal.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6d73"))
    return pal


def apply(app: QApplication) -> None:
    """Fusion style, dark palette, style sheet and a slightly smaller default font."""
    app.setStyle("Fusion")
    app.setPalette(palette())
    app.setStyleSheet(stylesheet())
    font = QFont(app.font())
    if font.pointSizeF() > 0:
        font.setPointSizeF(max(9.0, font.pointSizeF() - 0.5))
    app.setFont(font)
