"""The analysis features of the window (issue 9): Similar, Map, Runs, Relabel next.

:func:`install_analysis` adds their actions, menus and docks to a :class:`MainWindow`; the window
itself only calls it once. (Being built: this module is filled in by the issue 9 work.)
"""

from __future__ import annotations

from typing import Any


def install_analysis(window: Any) -> None:
    """Add the analysis actions and views to ``window``; returns the controller (none yet)."""
    return None
