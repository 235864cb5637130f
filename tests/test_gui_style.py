"""The colour table against WCAG AA, and what the style sheet makes of it: focus rings on every
control, disabled controls that look disabled, readable check boxes and radio buttons."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTabBar,
    QTableWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bst_gui import style

pytestmark = pytest.mark.gui

THEMES = list(style.THEMES.values())


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_text_and_controls_meet_wcag_aa(theme: style.Theme) -> None:
    low_text = {(fg, bg): round(style.contrast(getattr(theme, fg), getattr(theme, bg)), 2)
                for fg, bg in style.TEXT_PAIRS if style.contrast(getattr(theme, fg), getattr(theme, bg)) < 4.5}
    low_ui = {(fg, bg): round(style.contrast(getattr(theme, fg), getattr(theme, bg)), 2)
              for fg, bg in style.UI_PAIRS if style.contrast(getattr(theme, fg), getattr(theme, bg)) < 3.0}
    assert low_text == {} and low_ui == {}
    # disabled text is exempt from AA but must look disabled: dimmer than secondary text
    for background in ("window", "panel", "base"):
        assert style.contrast(theme.disabled_text, getattr(theme, background)) < \
            style.contrast(theme.muted, getattr(theme, background))


def test_contrast_ratio_matches_wcag_examples() -> None:
    assert style.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert style.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert style.contrast("#123456", "#123456") == pytest.approx(1.0)


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_the_style_sheet_and_palette_use_only_the_theme_table(theme: style.Theme) -> None:
    table = {getattr(theme, name).lower() for name in style.colour_fields()}
    used = {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}\b", style.stylesheet(theme))}
    assert used <= table, used - table
    palette = style.palette(theme)
    assert palette.color(QPalette.ColorRole.Window).name() == theme.window
    assert palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText).name() == theme.disabled_text
    sheet = style.stylesheet(theme)
    for control in ("QPushButton", "QToolButton", "QLineEdit", "QComboBox", "QSpinBox", "QCheckBox", "QRadioButton",
                    "QTableView", "QListView"):
        assert re.search(rf"{control}:focus[^{{]*\{{[^}}]*{theme.focus}", sheet), f"no focus ring on {control}"
    for control in ("QPushButton", "QToolButton", "QLineEdit", "QCheckBox", "QRadioButton", "QMenu::item"):
        assert f"{control}:disabled" in sheet


def _count(image: QImage, colour: str, tolerance: int = 0) -> int:
    target = QColor(colour)
    n = 0
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            if (abs(c.red() - target.red()) <= tolerance and abs(c.green() - target.green()) <= tolerance
                    and abs(c.blue() - target.blue()) <= tolerance):
                n += 1
    return n


def _styled(qtbot: Any, theme: style.Theme, *widgets: QWidget) -> QWidget:
    box = QWidget()
    box.setStyleSheet(style.stylesheet(theme))
    box.setPalette(style.palette(theme))
    layout = QVBoxLayout(box)
    for widget in widgets:
        layout.addWidget(widget)
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow, timeout=2000)
    return box


def _controls() -> list[QWidget]:
    tool = QToolButton()
    tool.setText("Tool")
    combo = QComboBox()
    combo.addItems(["one", "two"])
    table = QTableWidget(2, 2)
    listing = QListWidget()
    listing.addItems(["a", "b"])
    tabs = QTabBar()
    tabs.addTab("Metrics")
    tabs.addTab("Per class")
    return [QPushButton("Push"), tool, QLineEdit("text"), combo, QSpinBox(), QCheckBox("Check"),
            QRadioButton("Radio"), listing, table, tabs]


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_every_control_shows_a_focus_ring(qtbot: Any, theme: style.Theme) -> None:
    controls = _controls()
    anchor = QPushButton("elsewhere")
    box = _styled(qtbot, theme, anchor, *controls)
    for widget in controls:
        anchor.setFocus()
        qtbot.waitUntil(anchor.hasFocus, timeout=1000)
        before = _count(widget.grab().toImage(), theme.focus)
        widget.setFocus()
        qtbot.waitUntil(widget.hasFocus, timeout=1000)
        after = _count(widget.grab().toImage(), theme.focus)
        assert after >= before + widget.width(), f"{type(widget).__name__}: {before} → {after} focus pixels"
    assert box.isVisible()


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_disabled_buttons_look_disabled_and_indicators_are_readable(qtbot: Any, theme: style.Theme) -> None:
    enabled, disabled = QPushButton("Write package"), QPushButton("Write package")
    disabled.setEnabled(False)
    checked, unchecked = QCheckBox("Download"), QCheckBox("Download")
    checked.setChecked(True)
    radio = QRadioButton("Offline features")
    radio.setChecked(True)
    box = _styled(qtbot, theme, enabled, disabled, checked, unchecked, radio)
    on, off = enabled.grab().toImage(), disabled.grab().toImage()
    assert _count(off, theme.disabled_fill) > _count(off, theme.button)       # a dimmer fill
    assert _count(on, theme.text, 40) > 0 and _count(off, theme.text, 40) == 0  # no full-contrast text
    assert _count(off, theme.disabled_text, 40) > 0
    # the indicator's box has a border of 3:1 or more; a checked one is filled with the accent
    indicator = unchecked.grab().toImage()
    assert _count(indicator, theme.control_border, 8) >= 20 and box.isVisible()
    assert _count(checked.grab().toImage(), theme.accent, 8) >= 40
    assert _count(radio.grab().toImage(), theme.accent, 8) >= 20


def test_apply_switches_the_module_colours_and_refuses_an_unknown_theme(qapp: Any) -> None:
    try:
        assert style.theme_named("light") is style.LIGHT
        style.use(style.LIGHT)
        assert style.LIGHT.muted == style.MUTED and style.current is style.LIGHT
    finally:
        style.use(style.DARK)
    assert style.DARK.muted == style.MUTED
    assert style.theme_named("system") in (style.DARK, style.LIGHT)
    with pytest.raises(ValueError, match="dark, light, system"):
        style.theme_named("sepia")
