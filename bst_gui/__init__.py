"""BST Studio desktop app (PySide6): browse, audition, classify and relabel sounds with BST classes.

Start it with ``bst-studio`` (:func:`bst_gui.app.main`). Widgets call only ``bst_core``'s public API;
how the pieces fit is described in ``docs/GUI.md``.
"""

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the app (see :func:`bst_gui.app.main`)."""
    from bst_gui.app import main as run

    return run(argv)
