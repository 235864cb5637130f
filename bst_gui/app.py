"""``bst-studio``: start the desktop app (or say how to, on a machine without a screen)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

HEADLESS_HELP = (
    "bst-studio needs a screen, and none was found (neither $DISPLAY nor $WAYLAND_DISPLAY is set).\n"
    "On a server, run it inside a virtual X display:   xvfb-run bst-studio\n"
    "or render without any display:                    QT_QPA_PLATFORM=offscreen bst-studio\n"
    "(the command-line tool `bst` does everything without a window: `bst --help`)."
)


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None) -> str:
    """Why no window can be shown ("" when it can): Linux without $DISPLAY/$WAYLAND_DISPLAY and no
    explicit ``QT_QPA_PLATFORM``."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return ""
    if env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return ""
    return HEADLESS_HELP


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bst-studio", description="BST Studio: browse, audition and "
                                     "classify sounds with the Broad Sound Taxonomy.")
    parser.add_argument("source", nargs="?", help="a dataset folder, evaluation folder, folder of sounds or "
                                                  "Freesound metadata CSV to open")
    parser.add_argument("--run", help="a run folder to load (results and the ensemble for predicting)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Open the main window; exit code 2 with instructions when there is no display."""
    args = _parser().parse_args(argv)
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2

    from pyqtgraph.util.garbage_collector import GarbageCollector
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from bst_gui import style
    from bst_gui.jobs import tune_interpreter_for_ui
    from bst_gui.main_window import MainWindow
    from bst_gui.settings import APPLICATION, ORGANIZATION, Settings

    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    QApplication.setDesktopFileName("bst-studio")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings = Settings()
    style.apply(app, settings.theme())
    tune_interpreter_for_ui()
    # Python's cycle collector runs on the GUI thread only (on a 1 s timer): run from a job's thread,
    # it can free a closed dialog's Qt objects there, and Qt aborts the process.
    collector = GarbageCollector(interval=1.0)
    icon = Path(__file__).with_name("icons") / "bst-studio.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(settings)
    window.show()
    if args.source:
        window.open_source(args.source)
    elif not args.run:
        window.restore_session()        # the source open when the app was last closed, as it was
    if args.run:
        if window.jobs.busy:   # load the run once the source is open
            def load_after_open(_title: str) -> None:
                window.jobs.finished.disconnect(load_after_open)
                window.load_run(args.run)
            window.jobs.finished.connect(load_after_open)
        else:
            window.load_run(args.run)
    code = int(app.exec())
    del collector
    leave(code)


def leave(code: int) -> NoReturn:
    """End the process with ``code`` once the event loop has ended (the window has closed).

    Closing saved everything that lasts (settings, session, layout) and closed the workspace, so
    the process ends here without Python's teardown of torch and Qt (about a second, saving
    nothing) and without waiting for a job abandoned on quitting (its thread may be mid torch step;
    every core writer is atomic). Never returns.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
