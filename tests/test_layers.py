"""The layer rule: bst_core never imports Qt, pyqtgraph or sounddevice (nor laion_clap at import)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import bst_core

FORBIDDEN = ("PySide6", "pyqtgraph", "sounddevice", "laion_clap")


def test_importing_every_core_module_loads_no_gui_or_clap() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(bst_core.__path__, "bst_core."))
    assert "bst_core.training" in modules and "bst_core.encoders.clap" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print([m for m in {FORBIDDEN!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
