"""Look of the app: one table of colours per theme (dark, the default, and light), the palette and
the style sheet built from it, and the BST class colours with readable text.

Every colour the style sheet and the palette use is a field of :class:`Theme`; :data:`TEXT_PAIRS`
and :data:`UI_PAIRS` list which foreground sits on which background, so the contrast ratios can be
checked against WCAG 2.1 AA (4.5:1 for text, 3:1 for control borders, focus rings and check marks;
``tests/test_gui_style.py`` does). Disabled controls are exempt from AA; they are drawn dimmer with
dashed borders so they look disabled. Every focusable control shows a 2-pixel focus ring.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from bst_core import taxonomy

ICONS = Path(__file__).with_name("icons")


@dataclass(frozen=True)
class Theme:
    """The colours of one theme (``#rrggbb``). Names say where they are used."""

    name: str
    window: str           # window and dialog background
    base: str             # table, list and text field background
    alt_base: str         # alternate table rows
    panel: str            # docks, toolbars, headers, status bar, menus
    border: str           # separators and frames (decorative)
    control_border: str   # the boundary of buttons, fields, check boxes and radio buttons (≥ 3:1)
    text: str
    muted: str            # secondary text (still ≥ 4.5:1)
    disabled_text: str    # disabled controls (exempt from AA; dimmer than muted on purpose)
    disabled_fill: str
    accent: str           # progress, checked indicators, default button
    focus: str            # the focus ring (≥ 3:1)
    button: str
    button_hover: str
    primary: str          # the dialog's main button
    primary_hover: str
    on_primary: str       # text and check marks on primary/accent fills
    selection: str        # selected rows and menu items
    on_selection: str
    checked: str          # a checked tool button
    hover: str            # a hovered tool button
    error: str
    warning: str
    plot_background: str
    waveform: str
    playhead: str


DARK = Theme(
    name="dark", window="#1f2023", base="#17181a", alt_base="#1c1d20", panel="#26272b", border="#34363b",
    control_border="#7a7e88", text="#e4e4e6", muted="#a4a7ae", disabled_text="#6e7077", disabled_fill="#222326",
    accent="#4c8dff", focus="#5c9aff", button="#2d2f34", button_hover="#35383e", primary="#2f5fb8",
    primary_hover="#2a56a8", on_primary="#ffffff", selection="#2f4a7a", on_selection="#ffffff",
    checked="#2f3d57", hover="#33353a", error="#ff6b6b", warning="#f0b35a", plot_background="#17181a",
    waveform="#8fb8ff", playhead="#ffd24c",
)
LIGHT = Theme(
    name="light", window="#f4f5f7", base="#ffffff", alt_base="#f6f7f9", panel="#e9ebef", border="#d3d7de",
    control_border="#767c88", text="#1d1f23", muted="#555b66", disabled_text="#a2a7b0", disabled_fill="#eceef1",
    accent="#1f5fd1", focus="#1f5fd1", button="#ffffff", button_hover="#eef1f5", primary="#1f5fd1",
    primary_hover="#1a52b8", on_primary="#ffffff", selection="#cfe0ff", on_selection="#1d1f23",
    checked="#d6e2f7", hover="#e2e6ec", error="#c62828", warning="#8a5a00", plot_background="#ffffff",
    waveform="#2d6cdf", playhead="#c77800",
)
THEMES: dict[str, Theme] = {"dark": DARK, "light": LIGHT}
"""The themes by name; ``apply(app, "system")`` picks one from the desktop's colour scheme."""

TEXT_PAIRS: tuple[tuple[str, str], ...] = (
    ("text", "window"), ("text", "base"), ("text", "alt_base"), ("text", "panel"), ("text", "button"),
    ("text", "button_hover"), ("text", "hover"), ("text", "checked"),
    ("muted", "window"), ("muted", "base"), ("muted", "alt_base"), ("muted", "panel"), ("muted", "button"),
    ("muted", "hover"),
    ("on_primary", "primary"), ("on_primary", "primary_hover"), ("on_selection", "selection"),
    ("error", "window"), ("error", "base"), ("error", "panel"),
    ("warning", "window"), ("warning", "base"), ("warning", "panel"),
    ("accent", "window"), ("accent", "base"),           # links
)
"""(text colour, background) pairs the app draws: WCAG AA asks 4.5:1."""

UI_PAIRS: tuple[tuple[str, str], ...] = (
    ("control_border", "window"), ("control_border", "base"), ("control_border", "panel"),
    ("focus", "window"), ("focus", "base"), ("focus", "panel"), ("focus", "button"),
    ("accent", "window"), ("accent", "base"), ("accent", "panel"),      # checked indicators, progress
    ("on_primary", "accent"),                                           # the check mark
    ("text", "window"), ("text", "panel"),                              # focus ring of the primary button
    ("playhead", "plot_background"), ("waveform", "plot_background"),
)
"""(graphical object, background) pairs: WCAG AA (1.4.11, non-text contrast) asks 3:1."""

current: Theme = DARK
"""The theme last applied (:func:`apply`)."""

# The current theme's colours as module constants (read at use time by the views).
WINDOW = DARK.window
BASE = DARK.base
ALT_BASE = DARK.alt_base
PANEL = DARK.panel
BORDER = DARK.border
TEXT = DARK.text
MUTED = DARK.muted
ACCENT = DARK.accent
ERROR = DARK.error
WARNING = DARK.warning
PLOT_BACKGROUND = DARK.plot_background
WAVEFORM = DARK.waveform
PLAYHEAD = DARK.playhead


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance (0 black … 1 white) of ``#rrggbb``."""
    colour = QColor(hex_colour)
    channels = []
    for value in (colour.redF(), colour.greenF(), colour.blueF()):
        channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two colours (1 … 21)."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


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


def stylesheet(theme: Theme | None = None) -> str:
    """Qt style sheet on top of the Fusion style (only what the palette cannot say).

    Focus: a 2-pixel ring in ``focus`` on every focusable control (padding shrinks by a pixel so
    nothing moves). Disabled: ``disabled_text`` on ``disabled_fill`` with a dashed border.
    """
    t = theme or current
    check = (ICONS / "check.svg").as_posix()
    return f"""
QMainWindow, QDialog {{ background: {t.window}; }}
QDockWidget {{ color: {t.text}; }}
QDockWidget::title {{ background: {t.panel}; padding: 4px 8px; border-bottom: 1px solid {t.border}; }}
QToolBar {{ background: {t.panel}; border: none; border-bottom: 1px solid {t.border}; spacing: 2px; padding: 2px; }}
QToolButton {{ padding: 3px 8px; border: 1px solid transparent; border-radius: 4px; color: {t.text}; }}
QToolButton:hover {{ background: {t.hover}; border-color: {t.control_border}; }}
QToolButton:checked {{ background: {t.checked}; border-color: {t.accent}; }}
QToolButton:focus {{ border: 2px solid {t.focus}; padding: 2px 7px; }}
QToolButton:disabled {{ color: {t.disabled_text}; background: transparent; border: 1px dashed {t.border}; }}
QStatusBar {{ background: {t.panel}; color: {t.muted}; border-top: 1px solid {t.border}; }}
QHeaderView::section {{ background: {t.panel}; color: {t.muted}; border: none;
    border-right: 1px solid {t.border}; border-bottom: 1px solid {t.border}; padding: 3px 6px; }}
QTableView, QListView, QTreeView {{ gridline-color: {t.border}; selection-background-color: {t.selection};
    selection-color: {t.on_selection}; border: 2px solid transparent; }}
QTableView:focus, QListView:focus, QTreeView:focus {{ border: 2px solid {t.focus}; }}
QTableView::item:selected {{ border-top: 1px solid {t.accent}; border-bottom: 1px solid {t.accent}; }}
QLineEdit, QComboBox, QDoubleSpinBox, QSpinBox {{ background: {t.base}; border: 1px solid {t.control_border};
    border-radius: 4px; padding: 3px 6px; color: {t.text}; }}
QLineEdit:focus, QComboBox:focus, QDoubleSpinBox:focus, QSpinBox:focus {{ border: 2px solid {t.focus};
    padding: 2px 5px; }}
QLineEdit:disabled, QComboBox:disabled, QDoubleSpinBox:disabled, QSpinBox:disabled {{ color: {t.disabled_text};
    background: {t.disabled_fill}; border: 1px dashed {t.control_border}; }}
QPushButton {{ background: {t.button}; border: 1px solid {t.control_border}; border-radius: 4px;
    padding: 5px 12px; color: {t.text}; }}
QPushButton:hover {{ background: {t.button_hover}; }}
QPushButton:default {{ border-color: {t.accent}; }}
QPushButton:focus {{ border: 2px solid {t.focus}; padding: 4px 11px; }}
QPushButton:disabled {{ color: {t.disabled_text}; background: {t.disabled_fill};
    border: 1px dashed {t.control_border}; }}
QPushButton#primary {{ background: {t.primary}; border-color: {t.primary}; color: {t.on_primary}; }}
QPushButton#primary:hover {{ background: {t.primary_hover}; }}
QPushButton#primary:focus {{ border: 2px solid {t.text}; padding: 4px 11px; }}
QPushButton#primary:disabled {{ color: {t.disabled_text}; background: {t.disabled_fill};
    border: 1px dashed {t.control_border}; }}
QPushButton#welcomeAction {{ text-align: left; padding: 10px 14px; font-size: 11pt; }}
QPushButton#welcomeAction:focus {{ padding: 9px 13px; }}
QCheckBox, QRadioButton {{ color: {t.text}; spacing: 7px; padding: 2px 4px; border: 2px solid transparent;
    border-radius: 4px; }}
QCheckBox:focus, QRadioButton:focus {{ border-color: {t.focus}; }}
QCheckBox:disabled, QRadioButton:disabled {{ color: {t.disabled_text}; }}
QCheckBox::indicator, QRadioButton::indicator {{ width: 14px; height: 14px; border: 1px solid {t.control_border};
    background: {t.base}; }}
QCheckBox::indicator {{ border-radius: 3px; }}
QRadioButton::indicator {{ border-radius: 8px; }}
QCheckBox::indicator:hover, QRadioButton::indicator:hover {{ border-color: {t.focus}; }}
QCheckBox::indicator:checked {{ background: {t.accent}; border-color: {t.accent}; image: url({check}); }}
QRadioButton::indicator:checked {{ border-color: {t.accent}; background: qradialgradient(cx: 0.5, cy: 0.5,
    radius: 0.5, fx: 0.5, fy: 0.5, stop: 0 {t.on_primary}, stop: 0.42 {t.on_primary}, stop: 0.5 {t.accent},
    stop: 1 {t.accent}); }}
QCheckBox::indicator:disabled, QRadioButton::indicator:disabled {{ background: {t.disabled_fill};
    border: 1px dashed {t.control_border}; }}
QCheckBox::indicator:checked:disabled {{ background: {t.disabled_text}; border-color: {t.disabled_text}; }}
QRadioButton::indicator:checked:disabled {{ background: qradialgradient(cx: 0.5, cy: 0.5, radius: 0.5, fx: 0.5,
    fy: 0.5, stop: 0 {t.disabled_text}, stop: 0.42 {t.disabled_text}, stop: 0.5 {t.disabled_fill},
    stop: 1 {t.disabled_fill}); }}
QSlider:focus {{ border: 2px solid {t.focus}; border-radius: 4px; }}
QProgressBar {{ background: {t.base}; border: 1px solid {t.control_border}; border-radius: 3px; text-align: center;
    color: {t.text}; max-height: 14px; }}
QProgressBar::chunk {{ background: {t.accent}; border-radius: 2px; }}
QTabBar::tab {{ background: {t.panel}; color: {t.muted}; padding: 5px 12px; border: 1px solid {t.border};
    border-bottom: none; }}
QTabBar::tab:selected {{ color: {t.text}; background: {t.window}; border-top: 2px solid {t.accent}; }}
QTabBar::tab:selected:focus {{ border: 2px solid {t.focus}; padding: 4px 11px; }}
QLabel#heading {{ font-size: 11pt; font-weight: 600; color: {t.text}; }}
QLabel#muted {{ color: {t.muted}; }}
QLabel#notice {{ color: {t.warning}; }}
QLabel#error {{ color: {t.error}; }}
QLabel:disabled {{ color: {t.disabled_text}; }}
QFrame#card {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 8px; }}
QMenu {{ background: {t.panel}; border: 1px solid {t.control_border}; color: {t.text}; }}
QMenu::item:selected {{ background: {t.selection}; color: {t.on_selection}; }}
QMenu::item:disabled {{ color: {t.disabled_text}; }}
QMenuBar::item:disabled {{ color: {t.disabled_text}; }}
QToolTip {{ background: {t.panel}; color: {t.text}; border: 1px solid {t.control_border}; }}
"""


def palette(theme: Theme | None = None) -> QPalette:
    """The palette every widget inherits (disabled text dimmed in every role that shows text)."""
    t = theme or current
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: t.window, QPalette.ColorRole.WindowText: t.text,
        QPalette.ColorRole.Base: t.base, QPalette.ColorRole.AlternateBase: t.alt_base,
        QPalette.ColorRole.Text: t.text, QPalette.ColorRole.Button: t.button,
        QPalette.ColorRole.ButtonText: t.text, QPalette.ColorRole.ToolTipBase: t.panel,
        QPalette.ColorRole.ToolTipText: t.text, QPalette.ColorRole.Highlight: t.selection,
        QPalette.ColorRole.HighlightedText: t.on_selection, QPalette.ColorRole.Link: t.accent,
        QPalette.ColorRole.PlaceholderText: t.muted, QPalette.ColorRole.Mid: t.border,
        QPalette.ColorRole.Dark: t.control_border, QPalette.ColorRole.Light: t.button_hover,
        QPalette.ColorRole.BrightText: t.on_primary,
    }
    for role, value in roles.items():
        pal.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText,
                 QPalette.ColorRole.HighlightedText, QPalette.ColorRole.PlaceholderText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(t.disabled_text))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Button, QColor(t.disabled_fill))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Base, QColor(t.disabled_fill))
    return pal


def theme_named(name: str) -> Theme:
    """The theme called ``name`` ("dark", "light", or "system": the desktop's colour scheme, dark
    when it does not say); an unknown name is refused with the choices."""
    if name == "system":
        hints = QGuiApplication.styleHints()
        return LIGHT if hints is not None and hints.colorScheme() == Qt.ColorScheme.Light else DARK
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}; use one of {', '.join([*THEMES, 'system'])}")
    return THEMES[name]


def use(theme: Theme) -> None:
    """Make ``theme`` current: :data:`current` and the module constants (for views built after)."""
    global current, WINDOW, BASE, ALT_BASE, PANEL, BORDER, TEXT, MUTED, ACCENT, ERROR, WARNING
    global PLOT_BACKGROUND, WAVEFORM, PLAYHEAD
    current = theme
    WINDOW, BASE, ALT_BASE, PANEL, BORDER = theme.window, theme.base, theme.alt_base, theme.panel, theme.border
    TEXT, MUTED, ACCENT, ERROR, WARNING = theme.text, theme.muted, theme.accent, theme.error, theme.warning
    PLOT_BACKGROUND, WAVEFORM, PLAYHEAD = theme.plot_background, theme.waveform, theme.playhead


def apply(app: QApplication, theme: str = "dark") -> Theme:
    """Fusion style, the theme's palette and style sheet, a slightly smaller default font.

    Call before building the window: views read the theme's colours when they are made."""
    chosen = theme_named(theme)
    use(chosen)
    app.setStyle("Fusion")
    app.setPalette(palette(chosen))
    app.setStyleSheet(stylesheet(chosen))
    font = QFont(app.font())
    if font.pointSizeF() > 0:
        font.setPointSizeF(max(9.0, font.pointSizeF() - 0.5))
    app.setFont(font)
    return chosen


def colour_fields() -> tuple[str, ...]:
    """The colour fields of :class:`Theme` (every one but ``name``)."""
    return tuple(f.name for f in fields(Theme) if f.name != "name")


__all__ = ["DARK", "LIGHT", "TEXT_PAIRS", "THEMES", "UI_PAIRS", "Theme", "apply", "class_colours", "class_label",
           "colour_fields", "contrast", "luminance", "palette", "readable_on", "readable_text", "stylesheet",
           "theme_named", "use"]
