"""The main window: library table in the centre, clip panel on the right, results and curves below.

It offers the three users' loops: open a source → extract embeddings if missing → cross-validate
or load a run → predict with the run's ensemble → inspect and audition → relabel → export. Every
long step is a job (:mod:`bst_gui.jobs`) whose body is one call of :mod:`bst_core.pipeline` (or
``demo.prepare_demo``). What is open lives in a Qt-free :class:`bst_core.session.Session`; the
window changes it only when a job succeeds (so a cancelled or failed job leaves earlier results as
they were) and observes it: every view refreshes on the session's events. The window keeps no
state of its own beyond layout. Integration points for the other GUI widgets: ``docs/GUI.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QElapsedTimer, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QTabBar,
    QToolButton,
    QWidget,
)

from bst_core import paths, pipeline, taxonomy
from bst_core.abstain import abstain_frame
from bst_core.audio import probe_durations
from bst_core.config import TrainConfig
from bst_core.corpus import Corpus, empty_table
from bst_core.demo import prepare_demo
from bst_core.errors import BadInputError
from bst_core.jobs import Job, Progress
from bst_core.library_query import LIBRARY_COLUMNS, Filters, filters_from_dict, filters_to_dict, library_frame
from bst_core.predictions import Predictions
from bst_core.runs import CrossValResult, RunFolder
from bst_core.session import Session
from bst_core.workspace import Workspace
from bst_gui.analysis import install_analysis
from bst_gui.audition import AuditionController
from bst_gui.clip_panel import ClipPanel
from bst_gui.export_dialog import ExportDialog
from bst_gui.jobs import JobRunner, JobStatusWidget, gui_wording, warm_up_imports
from bst_gui.library_model import LibraryModel
from bst_gui.library_view import COLUMN_WIDTHS, LibraryView
from bst_gui.playback import AudioOutput, Audition
from bst_gui.relabel import KeyLegend, RelabelController
from bst_gui.results_view import ResultsView
from bst_gui.run_dialogs import ExtractDialog, ExtractOptions, TrainDialog
from bst_gui.settings import THEME_CHOICES, Settings, SourceMemory
from bst_gui.training_curves import TrainingCurves
from bst_gui.welcome import OPEN_ACTIONS, WelcomePage

WARM_UP_DELAY_MS = 300
DEFAULT_ABSTAIN_THRESHOLD = 0.5
CLOSE_WAIT_MS = 1000
"""On quitting during a job: how long the cancelled job may take to reach its next safe point
before it is abandoned (a torch step is not waited for; every core writer is atomic)."""
ZERO_SHOT_TIP = "BST labels from CLAP's text tower, no run needed (accuracy unmeasured)"
STATUS_GAP = 16
"""Pixels between a status-bar message and the permanent entries on its right."""
APP_TITLE = "BST Studio"

Opened = tuple[Corpus, Workspace | None, list[str]]
"""What an "open" job hands to the session: the corpus, its workspace (None if it cannot be
opened) and notes for the source report."""


def open_workspace(source: Path | None) -> tuple[Workspace | None, list[str]]:
    """The label-edit workspace of ``source`` (off the UI thread: creating it syncs to disk); when
    it cannot be opened, None and a note saying why (the source still opens, read-only)."""
    if source is None:
        return None, ["This corpus has no source folder: label edits cannot be saved."]
    try:
        return Workspace.for_source(source), []
    except BadInputError as exc:
        return None, [f"Label edits cannot be saved: {exc}"]


def open_job(path: Path, job: Job, truth_from_subfolders: bool = False) -> Opened:
    """Job body: the source with its embeddings (``pipeline.open_source``) and its workspace."""
    corpus = pipeline.open_source(path, truth_from_subfolders=truth_from_subfolders, job=job)
    return (corpus, *open_workspace(corpus.root or path))


def demo_job(job: Job) -> Opened:
    """Job body: the offline demo corpus (``demo.prepare_demo``) and its workspace."""
    _demo, corpus = prepare_demo(paths.data_dir() / "demo", job=job)
    return (corpus, *open_workspace(corpus.root))


class MainWindow(QMainWindow):
    """The app window (public surface listed in docs/GUI.md): a thin observer of :attr:`session`."""

    source_changed = Signal()
    predictions_changed = Signal()
    closing = Signal()          # the user has agreed to close: stop quiet work, put the layout back

    def __init__(self, settings: Settings | None = None, audio_output: AudioOutput | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        self.setObjectName("MainWindow")
        self.settings = settings or Settings()
        self.session = Session()
        self._opening: Path | None = None            # a double click must not open the source twice
        self._save_failure_told = False              # the "edits are not saved" dialog, once per streak
        self._truth_from_subfolders = False          # how the open source was read
        self._restore_plan: SourceMemory | None = None   # what a reopened source still has to bring back
        self._restore_done: set[str] = set()

        # library (centre) and welcome page
        self.library = LibraryModel(self)
        self.library_view = LibraryView(self.library)
        self.welcome = WelcomePage()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.library_view)
        self.stack.setCurrentWidget(self.library_view)   # so the first switch to the welcome page is a change
        self.setCentralWidget(self.stack)
        self._other_docks: dict[QDockWidget, bool] = {}  # docks of add-ons, hidden on the results page

        # clip panel, results, curves
        self.clip_panel = ClipPanel()
        self.clip_dock = self._dock("Clip", "clipDock", self.clip_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.results_view = ResultsView()
        self._results_placeholder = QLabel("The results are shown full size: View › Results page (Ctrl+R) "
                                           "to bring them back here.")
        self._results_placeholder.setObjectName("muted")
        self._results_placeholder.setWordWrap(True)
        self.results_dock = self._dock("Results", "resultsDock", self.results_view,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.training_curves = TrainingCurves()
        self.training_dock = self._dock("Training", "trainingDock", self.training_curves,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.results_dock, self.training_dock)
        self.results_dock.raise_()
        self.resizeDocks([self.clip_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.results_dock], [300], Qt.Orientation.Vertical)

        # jobs, playback
        self.jobs = JobRunner(self)
        self.background = JobRunner(self)           # quiet work: durations of the files
        self.job_status = JobStatusWidget(self.jobs)
        self.audition = Audition(audio_output if audio_output is not None else AudioOutput(), self)
        self._probe_frame: pd.DataFrame | None = None
        self._pending_probe: pd.DataFrame | None = None

        # status bar
        self.source_label = QLabel()
        self.source_label.setObjectName("muted")
        self.silent_label = QLabel("no sound output")
        self.silent_label.setObjectName("notice")
        for widget in (self.job_status, self.source_label):   # a gap after a long message on the left
            widget.setContentsMargins(STATUS_GAP, 0, 0, 0)
        self.statusBar().addPermanentWidget(self.job_status)
        self.statusBar().addPermanentWidget(self.source_label)
        self.statusBar().addPermanentWidget(self.silent_label)
        self.silent_label.setVisible(not self.audition.output.available)
        self.silent_label.setToolTip(self.audition.output.reason)
        # The status bar is as tall as the job strip from the start: a job appearing or ending must
        # not resize the docks (re-laying out the plots stalls the UI for tens of ms).
        self.statusBar().setFixedHeight(self.job_status.sizeHint().height() + 6)

        self._create_actions()
        self.audition_controller = AuditionController(self.library, self.library_view, self.clip_panel,
                                                      self.audition, self.autoplay_action.isChecked, self,
                                                      caption=self.session.prediction_caption)
        self.loader = self.audition_controller.loader
        self.relabel = RelabelController(self)
        self.keys_dock = self._dock("Label keys", "keysDock", KeyLegend(self.relabel),
                                    Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.keys_dock)
        self.results_dock.raise_()
        self._create_menus()
        self._connect()
        self.analysis = install_analysis(self)      # Similar, Map, Runs, Relabel next (issue 9)
        self._default_state = self.saveState()      # View › Reset layout
        self._restore_layout()
        self._dock_visibility: dict[QDockWidget, bool] = {}
        self._front_dock: QDockWidget | None = None     # the tab in front when the docks were put away
        self._page = "library"
        self._show_page(library=False, force=True)
        self.session.subscribe(self._session_changed)
        self._update_actions()
        self._show_decisions()
        self._show_source_info()
        self.welcome.set_recent(self.settings.recent_sources())
        QTimer.singleShot(WARM_UP_DELAY_MS, warm_up_imports)

    # --- what is open (read-only views of the session) ----------------------------------------------

    @property
    def corpus(self) -> Corpus | None:
        return self.session.corpus

    @property
    def source_path(self) -> Path | None:
        return self.session.source_path

    @property
    def workspace(self) -> Workspace | None:
        return self.session.workspace

    @property
    def result(self) -> CrossValResult | None:
        """The run shown (trained here or loaded; possibly trained on other data: see the session)."""
        return self.session.run

    @property
    def run_dir(self) -> Path | None:
        return Path(self.session.run.run_dir) if self.session.run is not None else None

    @property
    def predictions(self) -> Predictions | None:
        return self.session.predictions

    # --- construction --------------------------------------------------------------------------

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot: Callable[[], Any] | None = None, shortcut: str | QKeySequence | None = None,
                tip: str = "", *, checkable: bool = False, checked: bool = False,
                context: Qt.ShortcutContext = Qt.ShortcutContext.WindowShortcut) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(context)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        if checkable:
            action.setCheckable(True)
            action.setChecked(checked)
        if slot is not None:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _create_actions(self) -> None:
        shortcuts = {"bsd": QKeySequence.StandardKey.Open, "evaluation": "Ctrl+Shift+O"}
        self.open_actions: dict[str, QAction] = {}
        for kind, text, hint in OPEN_ACTIONS:
            action = self._action(text, lambda k=kind: self.ask_and_open(k), None, hint)
            if kind in shortcuts:
                action.setShortcut(QKeySequence(shortcuts[kind]))
            self.open_actions[kind] = action
        self.load_run_action = self._action("Load run folder…", self._ask_load_run, "Ctrl+Shift+L",
                                            "Show the results of a finished training run")
        self.export_action = self._action("Export challenge package…", self._ask_export, "Ctrl+Shift+E",
                                          "Write <label>.output.csv and <label>.meta.yaml, validated")
        self.export_labels_action = self._action("Export labels CSV…", self._ask_export_labels, None,
                                                 "id, truth, prediction, score, audio status, edited label")
        self.report_action = self._action("Source report…", self.show_source_report, None,
                                          "What was left out or is missing in the open source")
        self.close_source_action = self._action("Close source", self.close_source, QKeySequence.StandardKey.Close)
        self.quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)

        self.extract_action = self._action("Extract embeddings…", self._ask_extract, "Ctrl+E",
                                           "Compute embeddings for sounds that have none")
        self.train_action = self._action("Cross-validate…", self._ask_train, "Ctrl+T",
                                         "Train HATR with stratified k-fold cross-validation")
        self.predict_action = self._action("Predict with run", self.start_prediction, "Ctrl+P",
                                           "Classify the open source with the run's fold ensemble")
        self.zero_shot_action = self._action("Zero-shot labels (CLAP)", self.start_zero_shot, "Ctrl+Alt+P",
                                             ZERO_SHOT_TIP)
        self.cancel_action = self._action("Cancel job", self.jobs.cancel, "Ctrl+.",
                                          "Stop the running job; finished work is kept")

        self.find_action = self._action("Find", self._focus_search, QKeySequence.StandardKey.Find,
                                        "Search the library")
        self.clear_filters_action = self._action("Show all sounds", self.clear_filters, "Ctrl+Shift+A",
                                                 "Clear the search and every filter")

        self.play_action = self._action("Play / stop", self.toggle_play, "Space", "Play or stop the selected clip")
        self.stop_action = self._action("Stop", lambda: self.audition.stop(), "Left", "Stop playback")
        self.replay_action = self._action("Replay", lambda: self.audition_controller.replay(), "Right",
                                          "Play the clip again from the start")
        table = self.library_view.table
        self.next_action = self._action("Next sound", lambda: self.advance(1), "Down",
                                        context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.previous_action = self._action("Previous sound", lambda: self.advance(-1), "Up",
                                            context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for action in (self.next_action, self.previous_action):
            self.removeAction(action)
            table.addAction(action)
        self.autoplay_action = self._action("Auto-play on move", None, "Ctrl+Shift+P",
                                            "Play each sound after moving to it", checkable=True,
                                            checked=self.settings.flag("autoplay", True))
        self.loop_action = self._action("Loop", None, "L", "Repeat the clip", checkable=True,
                                        checked=self.settings.flag("loop", False))
        self.audition.set_loop(self.loop_action.isChecked())
        self.abstain_action = self._action(
            "Hierarchical abstain", None, None, "A Decision column: the top level alone (\"fx, leaf unsure\") where "
            "the class is unsure but its top level is clear", checkable=True,
            checked=self.settings.flag("abstain", False))
        self.abstain_action.toggled.connect(self._abstain_toggled)
        self.abstain_threshold_action = self._action("Abstain threshold…", self._ask_abstain_threshold, None,
                                                     "The probability a class (or its top level) needs")
        self.results_page_action = self._action("Results page", None, "Ctrl+R",
                                                "The results full size in the window (again: back)",
                                                checkable=True)
        self.results_page_action.toggled.connect(self.show_results_page)
        self.reset_layout_action = self._action("Reset layout", self.reset_layout, None,
                                                "Put the docks back where they were on first start")
        self.shortcuts_action = self._action("Keyboard shortcuts", self.show_shortcuts, "F1")
        self.about_action = self._action("About BST Studio", self.show_about)

    def _create_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for kind in ("bsd", "evaluation", "folder", "csv"):
            file_menu.addAction(self.open_actions[kind])
        self.recent_menu = file_menu.addMenu("Open recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.open_actions["demo"])
        file_menu.addSeparator()
        file_menu.addAction(self.load_run_action)
        self.runs_menu = file_menu.addMenu("Runs of this source")
        self.runs_menu.aboutToShow.connect(self._fill_runs_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.export_labels_action)
        file_menu.addSeparator()
        file_menu.addAction(self.report_action)
        file_menu.addAction(self.close_source_action)
        file_menu.addAction(self.quit_action)

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.find_action)
        edit_menu.addAction(self.clear_filters_action)

        label_menu = bar.addMenu("&Label")
        actions = self.relabel.actions()
        by_class = [a for a in actions if a.data() in taxonomy.BY_KEY]
        for top in taxonomy.TOP_LEVELS:
            submenu = label_menu.addMenu(f"{top}  {taxonomy.TOP_LEVEL_NAMES[top]}")
            submenu.addActions([a for a in by_class if taxonomy.top_of(a.data()) == top])
        label_menu.addSeparator()
        label_menu.addActions([a for a in actions if a not in by_class])
        self.relabel.attach(self)

        analysis = bar.addMenu("&Analysis")
        for action in (self.extract_action, self.train_action, self.predict_action, self.zero_shot_action):
            analysis.addAction(action)
        analysis.addSeparator()
        analysis.addAction(self.cancel_action)

        playback = bar.addMenu("&Playback")
        for action in (self.play_action, self.stop_action, self.replay_action, self.next_action,
                       self.previous_action):
            playback.addAction(action)
        playback.addSeparator()
        playback.addAction(self.autoplay_action)
        playback.addAction(self.loop_action)

        view = bar.addMenu("&View")
        view.addAction(self.results_page_action)
        view.addSeparator()
        view.addAction(self.abstain_action)
        view.addAction(self.abstain_threshold_action)
        view.addSeparator()
        for dock in (self.clip_dock, self.results_dock, self.training_dock, self.keys_dock):
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        theme_menu = view.addMenu("Theme")
        self.theme_actions: dict[str, QAction] = {}
        themes = QActionGroup(self)
        for name in THEME_CHOICES:
            action = theme_menu.addAction(name.capitalize() if name != "system" else "As the desktop")
            action.setCheckable(True)
            action.setChecked(name == self.settings.theme())
            action.triggered.connect(lambda _checked=False, n=name: self.choose_theme(n))
            themes.addAction(action)
            self.theme_actions[name] = action
        view.addAction(self.reset_layout_action)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        open_button = QToolButton()
        open_button.setText("Open")
        open_button.setToolTip("Open a dataset, evaluation folder, folder of sounds or CSV")
        open_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        open_menu = QMenu(open_button)
        for action in self.open_actions.values():
            open_menu.addAction(action)
        open_menu.addSeparator()
        open_menu.addAction(self.load_run_action)
        open_button.setMenu(open_menu)
        toolbar.addWidget(open_button)
        toolbar.addSeparator()
        entries = ((self.extract_action, "Extract"), (self.train_action, "Cross-validate"),
                   (self.predict_action, "Predict"), (self.export_action, "Export"), None,
                   (self.play_action, "▶ Play"), (self.loop_action, "Loop"), (self.autoplay_action, "Auto-play"))
        for entry in entries:
            if entry is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(self._proxy(*entry))
        self._toolbar = toolbar

    def _proxy(self, action: QAction, text: str) -> QAction:
        """A toolbar twin of ``action`` with a shorter text, kept in step with it."""
        twin = QAction(text, self)
        twin.setToolTip(action.toolTip())
        twin.setCheckable(action.isCheckable())
        twin.setChecked(action.isChecked())
        twin.setEnabled(action.isEnabled())
        if action.isCheckable():
            twin.toggled.connect(action.setChecked)
            action.toggled.connect(twin.setChecked)
        else:
            twin.triggered.connect(action.trigger)
        action.changed.connect(lambda: twin.setEnabled(action.isEnabled()))
        return twin

    def _connect(self) -> None:
        self.welcome.open_requested.connect(self.ask_and_open)
        self.welcome.recent_requested.connect(self.open_source)
        self.library_view.activated.connect(lambda _id: self.audition_controller.replay())
        self.audition_controller.show_state_on(self.play_action, self._toolbar)
        self.audition.silent.connect(self._say_silent)
        self.loop_action.toggled.connect(self._loop_toggled)
        self.autoplay_action.toggled.connect(lambda on: self.settings.set_flag("autoplay", on))
        self.jobs.started.connect(lambda _t: self._update_actions())
        self.jobs.ended.connect(lambda _t: self._update_actions())
        self.jobs.failed.connect(self._job_failed)
        self.jobs.finished.connect(self._continue_restore)
        self.jobs.cancelled.connect(
            lambda title: self.statusBar().showMessage(f"{title}: cancelled. Earlier results are kept.", 8000))
        self.jobs.progress.connect(self._job_progress)
        self.background.progress.connect(self._background_progress)
        self.background.finished.connect(self._start_pending_probe)
        self.relabel.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.relabel.save_failed.connect(self._edit_not_saved)
        self.relabel.labels_changed.connect(self._edit_saved)
        self.results_view.cell_clicked.connect(self.show_confusion_cell)
        self.results_view.cells_selected.connect(self.show_confusion_cells)
        self.results_view.class_clicked.connect(self.show_class)

    @property
    def _content_docks(self) -> tuple[QDockWidget, ...]:
        return (self.clip_dock, self.results_dock, self.training_dock, self.keys_dock)

    def _show_page(self, *, library: bool, force: bool = False) -> None:
        """The library page (docks as the person left them) or the welcome page (no docks)."""
        self._set_page("library" if library else "welcome", force=force)

    @property
    def page(self) -> str:
        """The central page shown: "welcome", "library" or "results" (the results full size)."""
        return self._page

    def _set_page(self, page: str, *, force: bool = False) -> None:
        """Show a central page. The docks show only with the library page (as the person left
        them); the results page holds the Results dock's view full size until it is left."""
        if page == self._page and not force:
            return
        if self._page == "results" and page != "results":
            self.stack.removeWidget(self.results_view)
            self.results_dock.setWidget(self.results_view)
            self.results_view.show()
            self._results_placeholder.hide()
            for dock, visible in self._other_docks.items():
                dock.setVisible(visible)
            self._other_docks = {}
        if page == "library":
            self.stack.setCurrentWidget(self.library_view)
            for dock, visible in self._dock_visibility.items():
                dock.setVisible(visible)
            self._dock_visibility = {}
            # docks shown again come to the front of their tab group: bring back the one that was
            front, self._front_dock = self._front_dock or self.results_dock, None
            if front.isVisibleTo(self):
                front.raise_()
        else:
            if not self._dock_visibility:
                self._dock_visibility = {d: d.isVisibleTo(self) for d in self._content_docks}
                self._front_dock = self._tab_in_front(self.results_dock)
            for dock in self._content_docks:
                dock.hide()
            if page == "results":
                if self._page != "results":
                    self._other_docks = {d: d.isVisibleTo(self) for d in self.findChildren(QDockWidget)
                                         if d not in self._content_docks}
                    for dock in self._other_docks:
                        dock.hide()
                self.results_dock.setWidget(self._results_placeholder)
                self._results_placeholder.show()
                self.stack.addWidget(self.results_view)
                self.stack.setCurrentWidget(self.results_view)
            else:
                self.stack.setCurrentWidget(self.welcome)
        self._page = page
        self.results_page_action.blockSignals(True)
        self.results_page_action.setChecked(page == "results")
        self.results_page_action.blockSignals(False)

    def _tab_in_front(self, dock: QDockWidget) -> QDockWidget | None:
        """The dock in front of ``dock``'s tab group (``dock`` itself when it is alone, None when hidden)."""
        group = [dock, *self.tabifiedDockWidgets(dock)]
        for bar in self.findChildren(QTabBar):     # the window's dock tab bars are its own children
            if bar.parentWidget() is self and bar.count() and dock.windowTitle() in (
                    bar.tabText(i) for i in range(bar.count())):
                current = bar.tabText(bar.currentIndex())
                return next((d for d in group if d.windowTitle() == current), None)
        return dock if dock.isVisible() else None

    def show_results_page(self, on: bool = True) -> None:
        """The results full size in the window (metric table, per-class bars, confusion matrix), or
        back to the page shown before; a confusion cell clicked there shows its clips in the library."""
        if on:
            self._set_page("results")
        elif self._page == "results":
            self._set_page("library" if self.corpus is not None else "welcome")

    def choose_theme(self, name: str) -> None:
        """View › Theme: remembered; the views take their colours when they are built, so it shows
        from the next start."""
        if name == self.settings.theme():
            return
        self.settings.set_theme(name)
        self.statusBar().showMessage(f"Theme “{self.theme_actions[name].text()}” is used from the next start "
                                     "of BST Studio.", 8000)

    def reset_layout(self) -> None:
        """View › Reset layout: the docks where they are on first start (clip right, results, training
        and label keys tabbed below), the results back in their dock."""
        if self._page == "results":
            self.show_results_page(False)
        self.restoreState(self._default_state)
        self.resizeDocks([self.clip_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.results_dock], [300], Qt.Orientation.Vertical)
        self.results_dock.raise_()
        if self._page != "library":           # the welcome page shows no docks: keep them for later
            self._dock_visibility = {d: d.isVisibleTo(self) for d in self._content_docks}
            for dock in self._content_docks:
                dock.hide()
        self.statusBar().showMessage("Layout reset.", 4000)

    def _restore_layout(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

    # --- hooks (tests replace these; see docs/GUI.md) -----------------------------------------------

    def ask_open_path(self, kind: str) -> str | None:
        """Ask for the folder or CSV of a source kind; None when cancelled."""
        start = self.settings.last_folder("open")
        if kind == "csv":
            path, _ = QFileDialog.getOpenFileName(self, "Open a Freesound metadata CSV", start,
                                                  "CSV files (*.csv);;All files (*)")
        elif kind == "folder":
            path = self._ask_sounds_folder(start)
        else:
            titles = {"bsd": "Open a BSD dataset folder", "evaluation": "Open an evaluation folder",
                      "folder": "Open a folder of sounds"}
            path = QFileDialog.getExistingDirectory(self, titles.get(kind, "Open"), start)
        if path:
            self.settings.set_last_folder("open", str(Path(path).parent))
        return path or None

    def _ask_sounds_folder(self, start: str) -> str:
        """The folder dialog for a folder of sounds, with the "truth from subfolders" toggle (remembered)."""
        from PySide6.QtWidgets import QCheckBox, QGridLayout

        dialog = QFileDialog(self, "Open a folder of sounds", start)
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)   # a native one takes no extra toggle
        toggle = QCheckBox("Class-named subfolders are the truth (fx-o/, 401/, Vehicles/ …)")
        toggle.setToolTip("A librarian's sorted folders: each sound's class is the BST class its folder is named "
                          "after, so cross-validation, the confusion matrix and Truth ≠ prediction work")
        toggle.setChecked(self.settings.flag("truth_from_subfolders", False))
        layout = dialog.layout()
        if isinstance(layout, QGridLayout):
            layout.addWidget(toggle, layout.rowCount(), 0, 1, layout.columnCount())
        if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
            return ""
        self.settings.set_flag("truth_from_subfolders", toggle.isChecked())
        return dialog.selectedFiles()[0]

    def runs_folder(self) -> Path:
        """Where the Load-run dialog starts: the folder of this source's latest run, else the runs
        folder new runs go to (``pipeline.default_run_dir``)."""
        root = self.source_path
        runs = self.settings.source_memory(root).runs if root is not None else []
        for run in runs:
            if Path(run).parent.is_dir():
                return Path(run).parent
        return pipeline.default_run_dir(root).parent

    def ask_run_folder(self) -> str | None:
        path = QFileDialog.getExistingDirectory(self, "Load a run folder", str(self.runs_folder()))
        return path or None

    def ask_train_config(self) -> tuple[TrainConfig, Path] | None:
        text_ok = self.corpus is not None and self.corpus.text is not None
        dialog = TrainDialog(pipeline.default_run_dir(self.source_path), self, devices=self._devices(),
                             text_available=text_ok, remembered=self.settings.dialog_values("train"))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        self.settings.set_dialog_values("train", dialog.values())
        return dialog.config(), dialog.chosen_run_dir()

    def ask_extract_options(self) -> ExtractOptions | None:
        dialog = ExtractDialog(self, checkpoint=self.settings.last_folder("checkpoint"))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        options = dialog.options()
        if options.checkpoint:
            self.settings.set_last_folder("checkpoint", options.checkpoint)
        return options

    def ask_export(self) -> Path | None:
        """The export dialog: it checks the label as it is typed and writes through
        :meth:`export_package`, showing refusals inline; the package folder, or None."""
        from bst_core.submission import submission_frame, validate_submission

        predictions, corpus = self._exportable(), self.corpus
        if predictions is None or corpus is None:
            self.show_error("Export", "Predict the evaluation folder with a run first (Analysis › Predict "
                                      "with run), then export.")
            return None
        frame, eval_ids = submission_frame(predictions), corpus.ids
        dialog = ExportDialog(
            self, settings=self.settings.store,
            check=lambda label: validate_submission(frame, eval_ids, label),
            export=lambda out_dir, label, authors: self.export_package(out_dir, label, authors=authors))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.written_path

    def confirm_close_during_job(self) -> bool:
        answer = QMessageBox.question(
            self, "A job is running",
            f"“{self.jobs.title}” is still running. Cancel it and quit? Finished work is kept.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def show_error(self, title: str, message: str, details: str = "") -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.exec()

    def show_info(self, title: str, message: str) -> None:
        QMessageBox.information(self, title, message)

    @staticmethod
    def _devices() -> tuple[str, ...]:
        import torch

        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)

    # --- selection and filters --------------------------------------------------------------------

    def current_id(self) -> str | None:
        return self.library_view.current_id()

    def current_ids(self) -> list[str]:
        return self.library.visible_ids()

    def selected_ids(self) -> list[str]:
        return self.library_view.selected_ids()

    def select_id(self, sound_id: str) -> bool:
        row = self.library.row_of(sound_id)
        if row is None and self.library.position_of(sound_id) is not None:
            self.clear_filters()
            row = self.library.row_of(sound_id)
        if row is None:
            return False
        self.library_view.select_row(row)
        return True

    def advance(self, step: int = 1) -> None:
        """Move the current row by ``step`` (auto-plays after a short pause when on)."""
        rows = self.library.rowCount()
        if not rows:
            return
        index = self.library_view.table.currentIndex()
        row = 0 if not index.isValid() else min(max(index.row() + step, 0), rows - 1)
        if index.isValid() and row == index.row():
            return
        self.audition_controller.arm()
        self.library_view.select_row(row)

    def show_confusion_cell(self, truth: str, pred: str) -> int:
        """Show exactly the clips behind a confusion cell (truth, prediction), first one selected.

        Those are the ids of the run's out-of-fold table with that truth and prediction, whatever
        the table's prediction column shows now (e.g. after predicting with the ensemble). A run
        trained on other data has no clips in this source: the status bar says so (0 shown).
        """
        return self.show_confusion_cells([(truth, pred)])

    def show_confusion_cells(self, cells: list[tuple[str, str]]) -> int:
        """Show the union of the clips behind several confusion cells (Ctrl+click), first one selected.

        The same choice as :meth:`show_confusion_cell` (the run's out-of-fold table); no cells
        shows every clip again.
        """
        cells = list(dict.fromkeys((str(t), str(p)) for t, p in cells))
        if not cells:
            self.clear_filters()
            return self.library.rowCount()
        run = self.session.run
        if run is not None and not self.session.run_is_for_source:
            return self._not_this_source(run)
        if run is None and len(cells) == 1:
            return self._show_filtered(Filters(truth=cells[0][0], prediction=cells[0][1]))
        table = run.oof if run is not None else self.library.frame
        inside = pd.MultiIndex.from_frame(table[["truth", "prediction"]]).isin(cells)
        chosen = table.loc[inside, "id"].astype(str)
        if len(cells) == 1:
            caption = f"truth {cells[0][0]} → predicted {cells[0][1]}"
        else:
            caption = ", ".join(f"{t} → {p}" for t, p in cells) if len(cells) <= 3 else f"{len(cells)} confusion cells"
        caption += f"{' out-of-fold' if run is not None else ''}: {len(chosen)} clips"
        predictions = self.session.predictions
        if run is not None and predictions is not None and predictions.origin != "out-of-fold":
            caption += " (the table shows the ensemble's predictions)"
        return self._show_filtered(Filters(ids=frozenset(chosen)), caption)

    def show_class(self, key: str) -> int:
        """Show the clips of a class: by truth when the source is labelled, else by prediction."""
        run = self.session.run
        if run is not None and not self.session.run_is_for_source:
            return self._not_this_source(run)
        if run is not None:
            chosen = run.oof.loc[run.oof["truth"] == key, "id"].astype(str)
            return self._show_filtered(Filters(ids=frozenset(chosen)), f"class {key}: {len(chosen)} clips")
        labelled = self.corpus is not None and self.corpus.labelled
        return self._show_filtered(Filters(truth=key) if labelled else Filters(prediction=key))

    def _not_this_source(self, run: CrossValResult) -> int:
        self.statusBar().showMessage(f"Run {run.run_dir.name} was trained on {run.dataset_label}: the clips behind "
                                     "its results are not in the open source.", 10000)
        return 0

    def _show_filtered(self, filters: Filters, caption: str = "") -> int:
        self.library_view.search.blockSignals(True)
        self.library_view.search.clear()
        self.library_view.search.blockSignals(False)
        self.library.set_query("")
        self.library_view.set_filters(filters, caption)
        self._show_page(library=True)
        count = self.library.rowCount()
        if count:
            self.library_view.select_row(0)
        self.library_view.table.setFocus()
        self.statusBar().showMessage(f"{count} clip{'s' if count != 1 else ''} shown. Space plays, Up/Down move.",
                                     6000)
        return count

    def clear_filters(self) -> None:
        self.library_view.clear_filters()

    def refresh_labels(self, ids: Sequence[str] | None = None) -> None:
        """Re-read the workspace's edited labels into the table (after assign/undo/redo)."""
        workspace = self.workspace
        try:
            edited = workspace.edited_labels() if workspace is not None else {}
        except BadInputError as exc:      # the table keeps what it showed: nothing is claimed as saved
            self.statusBar().showMessage(f"Label edits could not be read: {exc}", 15000)
            return
        self.library.set_edited(edited)
        current = self.current_id()
        if current is not None and (ids is None or current in set(ids)):
            self.audition_controller.show_record(current)

    def _edit_not_saved(self, text: str) -> None:
        """An edit, undo or redo could not be saved: the status bar says why, a dialog once per streak."""
        self.statusBar().showMessage(text, 15000)
        if not self._save_failure_told:
            self._save_failure_told = True
            self.show_error("Label edits are not being saved", text)

    def _edit_saved(self, _ids: list[str]) -> None:
        self._save_failure_told = False

    def _focus_search(self) -> None:
        self.library_view.search.setFocus()
        self.library_view.search.selectAll()

    # --- audition -------------------------------------------------------------------------------------

    def toggle_play(self) -> None:
        """Space: play or stop the current clip."""
        self.audition_controller.toggle()

    def _loop_toggled(self, on: bool) -> None:
        self.audition.set_loop(on)
        self.settings.set_flag("loop", on)

    def _say_silent(self, reason: str) -> None:
        self.silent_label.setVisible(True)
        self.silent_label.setToolTip(reason)
        detail = reason.removeprefix("no sound: ")
        self.statusBar().showMessage(f"Playback is silent ({detail}); the playhead still moves.", 15000)

    # --- opening sources ---------------------------------------------------------------------------

    def ask_and_open(self, kind: str) -> None:
        if kind == "demo":
            self.open_demo()
            return
        path = self.ask_open_path(kind)
        if path:
            truth = kind == "folder" and self.settings.flag("truth_from_subfolders", False)
            self.open_source(path, truth_from_subfolders=truth)

    def open_source(self, path: str | Path, *, truth_from_subfolders: bool | None = None,
                    restore: bool = True) -> None:
        """Open a dataset/evaluation folder, folder of sounds or CSV with its embeddings (a job).

        ``truth_from_subfolders``: a folder of sounds labelled by its class-named subfolders (None:
        as this source was read last time). With ``restore`` the source comes back as it was left:
        its run, its predictions, the table's sort, search, filters and selection."""
        path = Path(path).expanduser().absolute()
        if self.jobs.busy and self.jobs.kind == "open" and self._opening == path:
            return          # the same request twice (a double click): it is already opening
        memory = self.settings.source_memory(path)
        truth = memory.truth_from_subfolders if truth_from_subfolders is None else bool(truth_from_subfolders)
        self._opening = path
        self._start(f"Open {path.name}", lambda job: open_job(path, job, truth), kind="open",
                    on_success=lambda opened: self._opened(opened, truth=truth, restore=restore))

    def restore_session(self) -> bool:
        """Reopen the source that was open when the app was last closed, as it was (False: none)."""
        last = self.settings.last_source()
        if not last:
            return False
        self.open_source(last)
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_sources()
        for path in recent:
            action = self.recent_menu.addAction(f"{Path(path).name}   ({path})")
            action.triggered.connect(lambda _checked=False, p=path: self.open_source(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the list", self.settings.clear_recent_sources)
        else:
            self.recent_menu.addAction("Nothing opened yet").setEnabled(False)

    def open_demo(self) -> None:
        self._start("Prepare the demo corpus", demo_job, kind="open", on_success=self._opened)

    def _opened(self, opened: Opened, *, truth: bool = False, restore: bool = True) -> None:
        corpus, workspace, notes = opened
        self.remember_source()                  # what the source left now showed
        self._restore_plan, self._restore_done = None, set()
        self.session.open(corpus, workspace, notes)
        self._truth_from_subfolders = truth
        memory = self.settings.source_memory(corpus.root) if corpus.root is not None else SourceMemory()
        if memory.truth_from_subfolders != truth and corpus.root is not None:
            memory.truth_from_subfolders = truth
            self.settings.set_source_memory(memory)
        self._apply_table_state(memory if restore else SourceMemory())
        if restore and (memory.run or memory.current or memory.predictions):
            self._restore_plan = memory         # the run, its predictions, the selection: _continue_restore
        name = corpus.root.name if corpus.root else corpus.name
        if corpus.root is not None:
            self.settings.add_recent_source(corpus.root)
            self.welcome.set_recent(self.settings.recent_sources())
        message = f"Opened {name}: {len(corpus):,} sounds."
        if not self.session.has_embeddings:
            message += " No embeddings yet: Analysis › Extract embeddings (Ctrl+E)."
        elif len(corpus.notes) + len(notes) > 1:
            message += f" {len(corpus.notes) + len(notes)} notes in File › Source report."
        self.statusBar().showMessage(message, 12000)

    def close_source(self) -> None:
        if self.jobs.busy:
            self.show_error("A job is running", "Cancel the running job before closing the source.")
            return
        self.audition.stop()
        self.remember_source()
        self._restore_plan = None
        self.session.reset()

    def show_source_report(self) -> None:
        corpus = self.corpus
        if corpus is None:
            return
        notes = list(corpus.notes) + list(self.session.notes)
        text = "\n".join(f"• {n}" for n in notes) or "Nothing to report: every sound was read."
        self.show_info("Source report", f"{self.source_path or corpus.name}\n\n{text}")

    # --- a session that comes back ----------------------------------------------------------------------

    def remember_source(self) -> None:
        """Write what the open source shows (run, predictions, sort, search, filters, selection) into
        its memory in the settings; nothing while it is still being restored."""
        corpus = self.corpus
        if corpus is None or corpus.root is None or self._restore_plan is not None:
            return
        memory = self.settings.source_memory(corpus.root)
        memory.truth_from_subfolders = self._truth_from_subfolders
        run = self.session.run
        if run is not None:
            memory.remember_run(run.run_dir)
        else:
            memory.run = ""
        p = self.session.predictions
        memory.predictions = p.origin if p is not None else ""
        memory.sort = self.library_view.table.sort_state()
        memory.search = self.library_view.search.text()
        memory.filters = filters_to_dict(self.library.filters)
        memory.current = self.current_id() or ""
        memory.selected = self.selected_ids()
        self.settings.set_source_memory(memory)

    def _apply_table_state(self, memory: SourceMemory) -> None:
        """The table's sort, search and filters of ``memory`` (the defaults for a blank one)."""
        view = self.library_view
        view.table.set_sort_state(*(memory.sort or ("id", False)))
        view.search.setText(memory.search)
        view.set_filters(filters_from_dict(memory.filters))

    def _continue_restore(self, _title: str = "") -> None:
        """After each job while a source is being restored: load its run, predict again with it
        when ensemble predictions were shown (out-of-fold ones come with the run), or compute zero-shot
        labels again when they were shown, then select."""
        plan = self._restore_plan
        if plan is None or self.jobs.busy:
            return
        corpus = self.corpus
        if corpus is None or corpus.root is None or self.settings.source_memory(corpus.root).path != plan.path:
            self._restore_plan = None
            return
        if plan.run and "run" not in self._restore_done:
            self._restore_done.add("run")
            if Path(plan.run).is_dir():
                self.load_run(plan.run)
                return
            self.statusBar().showMessage(f"The run last shown with this source is gone: {plan.run}", 15000)
        if plan.predictions == "ensemble" and "predict" not in self._restore_done and self.session.run is not None:
            self._restore_done.add("predict")
            p = self.session.predictions
            if (p is None or p.origin != "ensemble") and not self.prediction_blocker() and self.start_prediction():
                return
        if plan.predictions == "zero-shot" and "predict" not in self._restore_done:
            self._restore_done.add("predict")
            p = self.session.predictions
            if (p is None or p.origin != "zero-shot") and not self.zero_shot_blocker() and self.start_zero_shot():
                return
        self._restore_plan = None
        self._select_remembered(plan)
        self._show_source_info()

    def _select_remembered(self, memory: SourceMemory) -> None:
        rows = [r for r in (self.library.row_of(i) for i in [memory.current, *memory.selected] if i) if r is not None]
        if not rows:
            return
        self.library_view.select_row(rows[0])
        selection = self.library_view.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for row in rows[1:]:
            selection.select(self.library.index(row, 0), flags)

    def _fill_runs_menu(self) -> None:
        self.runs_menu.clear()
        root = self.source_path
        runs = [r for r in self.settings.source_memory(root).runs if Path(r).is_dir()] if root is not None else []
        for run in runs:
            action = self.runs_menu.addAction(f"{Path(run).name}   ({run})")
            action.triggered.connect(lambda _checked=False, r=run: self.load_run(r))
        if not runs:
            self.runs_menu.addAction("No run shown with this source yet" if root is not None
                                     else "Open a source first").setEnabled(False)

    # --- hierarchical abstain ---------------------------------------------------------------------------

    @property
    def abstain_threshold(self) -> float | None:
        """The abstain threshold T in use (None: off)."""
        if not self.abstain_action.isChecked():
            return None
        return self.settings.number("abstain_threshold", DEFAULT_ABSTAIN_THRESHOLD)

    def set_abstain_threshold(self, threshold: float | None) -> None:
        """Turn the hierarchical abstain on with ``threshold`` (in (0, 1]) or off (None); remembered."""
        if threshold is not None:
            from bst_core.abstain import check_threshold

            self.settings.set_number("abstain_threshold", check_threshold(threshold))
        self.abstain_action.setChecked(threshold is not None)
        self._show_decisions()

    def _abstain_toggled(self, on: bool) -> None:
        self.settings.set_flag("abstain", on)
        self._show_decisions()

    def _ask_abstain_threshold(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        value, ok = QInputDialog.getDouble(
            self, "Abstain threshold", "The probability the class needs (else its top level's summed probability "
            "does, and the decision is the top level alone):",
            self.settings.number("abstain_threshold", DEFAULT_ABSTAIN_THRESHOLD), 0.05, 1.0, 2)
        if ok:
            self.set_abstain_threshold(value)

    def _show_decisions(self) -> None:
        """The Decision column from ``bst_core.abstain`` for the predictions shown (hidden when off)."""
        threshold, p = self.abstain_threshold, self.session.predictions
        if threshold is None or p is None:
            self.library.set_decisions([], [])
        else:
            self.library.set_decisions(p.ids, abstain_frame(p, threshold)["decision"].tolist())
        self.library_view.table.setColumnHidden(LIBRARY_COLUMNS.index("decision"), threshold is None or p is None)
        self.abstain_action.setText("Hierarchical abstain" if threshold is None
                                    else f"Hierarchical abstain (T = {threshold:.2f})")

    # --- the session, observed ------------------------------------------------------------------------

    def _session_changed(self, event: str) -> None:
        """Bring every view in line with the session after ``event`` (see ``Session``)."""
        if event in ("source", "reset"):
            self._show_source()
        elif event == "run":
            self._show_run()
        elif event == "predictions":
            self._show_predictions()
        elif event == "workspace":
            self.refresh_labels()
            self.relabel.update_actions()
        if event in ("run", "predictions"):
            self.remember_source()
        self._show_source_info()
        self._update_actions()

    def _show_source(self) -> None:
        """The open corpus in the table (or the welcome page); results of the session's run."""
        corpus = self.session.corpus
        if corpus is None:
            self.background.cancel()
            self._pending_probe = None
            self.library.set_frame(library_frame(empty_table()))
            self.library_view.set_caption("")
            self.results_view.clear()
            self.training_curves.clear()
            self._show_page(library=False)
            self.welcome.set_recent(self.settings.recent_sources())
            self.setWindowTitle(APP_TITLE)
            self.source_changed.emit()
            return
        status = corpus.audio_status() if self.session.has_embeddings else None
        frame = library_frame(corpus.table, status)
        old = self.library.frame
        same_items = len(old) == len(frame) and old["id"].tolist() == frame["id"].tolist()
        if same_items:       # the same source with new embeddings: keep durations and filters
            known = old["duration_s"].to_numpy(dtype=np.float64)
            frame["duration_s"] = np.where(np.isnan(frame["duration_s"].to_numpy(dtype=np.float64)), known,
                                           frame["duration_s"].to_numpy(dtype=np.float64))
        else:
            self.library_view.clear_filters()
        self.library.set_frame(frame)
        if not same_items:          # a folder's ids are paths ("fx-o/door 01.wav"): a wider column
            self.library_view.table.setColumnWidth(
                LIBRARY_COLUMNS.index("id"), 220 if corpus.kind == "folder" else COLUMN_WIDTHS["id"])
        self.refresh_labels()
        if self.session.predictions is not None:
            self._show_predictions(emit=False)
        else:
            self.library_view.set_caption("")
        if self.session.run is None:
            self.results_view.clear()
            self.training_curves.clear()
        self._show_page(library=True)
        self.setWindowTitle(f"{corpus.root.name if corpus.root else corpus.name} — {APP_TITLE}")
        if len(self.library.frame) and self.current_id() is None:
            self.library_view.select_row(0)
        self._start_duration_probe(self.library.frame)
        self.source_changed.emit()

    def _show_run(self) -> None:
        """The session's run in the results and training docks, titled with the data it came from."""
        run = self.session.run
        if run is None:
            self.results_view.clear()
            return
        self.results_view.set_result(run, for_source=self.session.run_is_for_source)
        if self._page == "library":    # the welcome and results pages show no docks
            self.results_dock.show()
            self.results_dock.raise_()
        try:
            self.training_curves.load_run(RunFolder(run.run_dir))
        except BadInputError:
            self.training_curves.clear()
        self._refresh_clip()

    def _show_predictions(self, *, emit: bool = True) -> None:
        """The session's predictions in the table and the clip panel (with their caption)."""
        p = self.session.predictions
        if p is None:
            self.library.clear_predictions()
        else:
            self.library.set_predictions(p.ids, p.labels, p.scores, p.probs, p.attention, p.audio_status)
        self._show_decisions()
        caption = self.session.prediction_caption()
        self.library_view.set_caption(caption[:1].upper() + caption[1:] if p is not None else "")
        self._refresh_clip()
        if emit:
            self.predictions_changed.emit()

    def _refresh_clip(self) -> None:
        current = self.current_id()
        if current:
            self.audition_controller.show_record(current)

    # --- durations ------------------------------------------------------------------------------------

    def _start_duration_probe(self, frame: pd.DataFrame) -> None:
        """Fill the duration column from the file headers, quietly in the background."""
        if self.background.busy and self._probe_frame is not None and len(self._probe_frame) == len(frame) \
                and self._probe_frame["id"].tolist() == frame["id"].tolist():
            self._probe_frame = frame          # same rows: the running probe fills the new frame
            return
        if not frame["duration_s"].isna().any() or not (frame["audio_path"] != "").any():
            return
        if self.background.busy:             # another source's probe: stop it, then start this one
            self._pending_probe = frame
            self.background.cancel()
            return
        audio_paths = frame["audio_path"].to_numpy(dtype=object)
        self._probe_frame = frame
        self.background.start("durations", lambda job: probe_durations(audio_paths, job), kind="durations")

    def _start_pending_probe(self, _title: str) -> None:
        frame, self._pending_probe = self._pending_probe, None
        if frame is not None and frame is self.library.frame:
            self._start_duration_probe(frame)

    def _background_progress(self, progress: Progress) -> None:
        data = progress.data
        if "positions" in data and self._probe_frame is self.library.frame:
            start, stop = data["positions"]
            self.library.set_durations(np.arange(start, stop), data["seconds"])

    # --- extraction, training, prediction ---------------------------------------------------------------

    def _ask_extract(self) -> None:
        if self.corpus is None:
            return
        options = self.ask_extract_options()
        if options is not None:
            self.start_extraction(options)

    def start_extraction(self, options: ExtractOptions) -> bool:
        corpus = self.corpus
        if corpus is None:
            return False
        return self._start(
            "Extract embeddings",
            lambda job: pipeline.extract(corpus, encoder=options.encoder, checkpoint=options.checkpoint,
                                         allow_download=options.allow_download, job=job),
            kind="extract", on_success=self._extracted)

    def _extracted(self, extracted: pipeline.Extracted) -> None:
        self.session.replace_corpus(extracted.corpus)
        summary = extracted.summary
        self.statusBar().showMessage(f"Embeddings: {summary.line}.", 12000)
        if summary.failed:
            self.show_info("Extraction finished with failures", summary.format(max_names=15))

    def _ask_train(self) -> None:
        if self.corpus is None:
            return
        chosen = self.ask_train_config()
        if chosen is not None:
            self.start_cross_validation(*chosen)

    def start_cross_validation(self, config: TrainConfig, run_dir: Path | None = None) -> bool:
        corpus = self.corpus
        if corpus is None:
            return False
        run_dir = Path(run_dir) if run_dir else pipeline.default_run_dir(self.source_path)
        unlabelled = int((corpus.labels.fillna("").astype(str) == "").sum())   # a sorted folder's unsorted sounds
        started = self._start(f"Cross-validate ({config.folds} folds)",
                              lambda job: pipeline.cross_validate(corpus, run_dir, config, job=job,
                                                                  labelled_only=unlabelled > 0),
                              kind="cross-validate", on_success=self._cross_validated)
        if started and unlabelled:
            self.statusBar().showMessage(f"Cross-validating the {len(corpus) - unlabelled:,} labelled sounds; "
                                         f"{unlabelled:,} without a label are left out.", 15000)
        if started:
            self.training_curves.reset()
            self.training_dock.show()
            self.training_dock.raise_()
        return started

    def _cross_validated(self, result: CrossValResult) -> None:
        self.session.set_run(result)
        hf = result.summary.get("hF")
        if hf:
            self.statusBar().showMessage(f"Cross-validation finished: hF {hf[0]:.2%} ± {hf[1]:.2%} "
                                         f"({result.report.absent} mode). Click a confusion cell to listen.", 15000)

    def _ask_load_run(self) -> None:
        path = self.ask_run_folder()
        if path:
            self.load_run(path)

    def load_run(self, run_dir: str | Path) -> None:
        """Show a run folder's results; its out-of-fold predictions only if it was trained on this source."""
        self._start(f"Load run {Path(run_dir).name}", lambda job: pipeline.load_run(run_dir, job),
                    kind="load-run", on_success=self._run_loaded)

    def _run_loaded(self, result: CrossValResult) -> None:
        if self.corpus is None:
            self.show_info("Run loaded", f"Run {result.run_dir.name} (trained on {result.dataset_label}) is "
                                         "ready. Open a source to predict it with this run.")
        self.session.set_run(result)
        if self.corpus is not None and not self.session.run_is_for_source:
            self.statusBar().showMessage(
                f"Run {result.run_dir.name} was trained on {result.dataset_label}: its results are shown as that "
                "run's; predict with it (Ctrl+P) to classify this source.", 15000)

    def prediction_blocker(self) -> str:
        """Why Predict cannot run now, in words ("" when it can)."""
        if self.corpus is None:
            return ("Nothing to predict: open a source first (File › Open…), then train or load a run "
                    "(Analysis › Cross-validate… or File › Load run folder…).")
        if self.session.run is None:
            return ("No run to predict with: cross-validate this source (Analysis › Cross-validate…) or "
                    "load a run (File › Load run folder…).")
        if not self.session.has_embeddings:
            return "This source has no embeddings yet: Analysis › Extract embeddings… first."
        return ""

    def start_prediction(self) -> bool:
        corpus, run = self.corpus, self.session.run
        why = self.prediction_blocker()
        if why or corpus is None or run is None:
            self.statusBar().showMessage(why, 12000)
            self.show_error("Nothing to predict yet", why)
            return False
        run_dir = Path(run.run_dir)
        return self._start(f"Predict with {run_dir.name}", lambda job: pipeline.predict(run_dir, corpus, job=job),
                           kind="predict", on_success=self._predicted)

    def zero_shot_blocker(self) -> str:
        """Why zero-shot labels cannot be computed now, in words ("" when they can)."""
        from bst_core.text_search import require_joint_encoder

        corpus = self.corpus
        if corpus is None:
            return "Nothing to label: open a source with CLAP embeddings first (File › Open…)."
        try:
            require_joint_encoder(corpus, "Zero-shot labels")
        except BadInputError:
            has = (f"this source's embeddings are {corpus.encoder.label}" if corpus.encoder is not None
                   else "this source has no embeddings yet")
            return (f"Zero-shot labels need CLAP embeddings, which put words and sounds in one space; {has}. "
                    "Extract them with the CLAP encoder (Analysis › Extract embeddings…).")
        return ""

    def start_zero_shot(self) -> bool:
        """Analysis › Zero-shot labels: each sound's BST class from the similarity of its CLAP audio
        embedding to the 23 class descriptions (``bst predict SOURCE --zero-shot``); no run needed."""
        corpus, why = self.corpus, self.zero_shot_blocker()
        if why or corpus is None:
            self.statusBar().showMessage(why, 12000)
            self.show_error("Nothing to label yet" if corpus is None else "Zero-shot labels need CLAP", why)
            return False
        checkpoint = self.settings.last_folder("checkpoint") or None

        return self._start("Zero-shot labels (CLAP)",
                           lambda job: pipeline.zero_shot(corpus, checkpoint=checkpoint, job=job),
                           kind="predict", on_success=self._zero_shot_labelled)

    def _zero_shot_labelled(self, predictions: Predictions) -> None:
        self.session.set_predictions(predictions)
        text_only = (f" {predictions.text_only_count:,} from their text only (audio not decoded)."
                     if predictions.text_only_count else "")
        self.statusBar().showMessage(f"Zero-shot labels for {len(predictions):,} sounds from CLAP.{text_only} Their "
                                     "accuracy is unmeasured: check a sample before relying on them.", 15000)

    def _predicted(self, predictions: Predictions) -> None:
        self.session.set_predictions(predictions)
        message = f"Predicted {len(predictions):,} sounds with {predictions.n_models} fold models."
        if predictions.text_only_count:
            message += f" {predictions.text_only_count:,} from their text only (audio not decoded)."
        corpus, run = self.corpus, self.session.run
        # a labelled source the run did not train on: score it (on its own training data the
        # ensemble's score says nothing; its honest scores are the out-of-fold results)
        if corpus is not None and corpus.labelled and not self.session.run_is_for_source:
            try:
                report = pipeline.score(predictions, pipeline.truth_of(corpus), lam=run.config.lam if run else 0.75,
                                        absent=run.config.absent if run else "reference", source=corpus.name)
            except BadInputError:
                pass
            else:
                message += f" hF against this source's labels: {report.hF:.2%} ({report.n:,} labelled)."
        self.statusBar().showMessage(message, 15000)

    # --- export ---------------------------------------------------------------------------------------------

    def _exportable(self) -> Predictions | None:
        """The ensemble predictions of the open source, if any (what a challenge package holds)."""
        p = self.session.predictions
        return p if p is not None and p.origin == "ensemble" and p.run_dir is not None else None

    def _ask_export(self) -> None:
        package = self.ask_export()
        if package is not None:
            self.show_info("Package written", f"The submission package was written and validated:\n{package}")

    def export_package(self, out_dir: str | Path, label: str, *, authors: list[dict] | None = None) -> Path:
        """Write and validate the challenge package of the current ensemble prediction (``pipeline.export``)."""
        predictions, corpus = self._exportable(), self.corpus
        if predictions is None or corpus is None or predictions.run_dir is None:
            raise BadInputError("Nothing to export yet: open the evaluation folder and predict it with a run.")
        try:
            package = pipeline.export(predictions.run_dir, corpus, label, out_dir, authors=authors,
                                      predictions=predictions)
        except pipeline.PartialRunError as exc:    # the same refusal, in the app's words (no CLI flags)
            raise BadInputError(gui_wording(exc)) from exc
        self.statusBar().showMessage(f"Package written: {package}", 12000)
        return package

    def _ask_export_labels(self) -> None:
        if self.corpus is None or self.workspace is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", str(Path.home() / "bst_labels.csv"),
                                              "CSV files (*.csv)")
        if path:
            try:
                self.export_labels(path)
            except (BadInputError, OSError) as exc:
                self.show_error("Labels not exported", str(exc))

    def export_labels(self, path: str | Path) -> Path:
        """id, truth, prediction, score, audio status, edited label of every sound, as CSV."""
        corpus, workspace = self.corpus, self.workspace
        if corpus is None or workspace is None:
            raise BadInputError("Open a source first.")
        table = corpus.table
        if "audio_status" not in table.columns and self.session.has_embeddings:
            table = table.assign(audio_status=corpus.audio_status())
        written = workspace.export_labels_csv(path, table, self.session.predictions)
        self.statusBar().showMessage(f"Labels written to {written}", 8000)
        return written

    # --- jobs plumbing ----------------------------------------------------------------------------------

    def _start(self, title: str, work: Callable[[Any], Any], *, kind: str,
               on_success: Callable[[Any], None]) -> bool:
        if self.jobs.busy:
            self.show_error("A job is running", f"“{self.jobs.title}” is still running. Wait for it to finish "
                                                "or cancel it (Analysis › Cancel job).")
            return False
        return self.jobs.start(title, work, kind=kind, on_success=on_success)

    def _job_failed(self, title: str, message: str, details: str) -> None:
        self.statusBar().showMessage(f"{title}: failed.", 8000)
        self.show_error(title, message, details)

    def _job_progress(self, progress: Progress) -> None:
        if self.jobs.kind == "cross-validate":
            self.training_curves.add_progress(progress)

    def _update_actions(self) -> None:
        busy = self.jobs.busy
        corpus = self.corpus
        has_source = corpus is not None
        has_embeddings = self.session.has_embeddings
        for action in self.open_actions.values():
            action.setEnabled(not busy)
        self.load_run_action.setEnabled(not busy)
        self.extract_action.setEnabled(has_source and not busy)
        self.train_action.setEnabled(bool(has_embeddings and corpus is not None and corpus.labelled) and not busy)
        self.predict_action.setEnabled(not busy)         # with nothing to predict it says why
        why = self.prediction_blocker()
        self.predict_action.setStatusTip(why or "Classify the open source with the run's fold ensemble")
        self.zero_shot_action.setEnabled(not busy)       # without CLAP embeddings it says why
        self.zero_shot_action.setStatusTip(self.zero_shot_blocker() or ZERO_SHOT_TIP)
        self.export_action.setEnabled(self._exportable() is not None and not busy)
        self.export_labels_action.setEnabled(has_source and self.workspace is not None)
        self.report_action.setEnabled(has_source)
        self.results_page_action.setEnabled(self.session.run is not None)
        self.close_source_action.setEnabled(has_source and not busy)
        self.cancel_action.setEnabled(busy)

    def _show_source_info(self) -> None:
        corpus, run = self.corpus, self.session.run
        if corpus is None:
            self.source_label.setText(f"run {run.run_dir.name} loaded" if run is not None else "")
            return
        embeddings = corpus.encoder.name if corpus.encoder is not None else "no embeddings"
        parts = [f"{len(corpus):,} sounds", embeddings]
        if run is not None:
            parts.append(f"run {run.run_dir.name}" + ("" if self.session.run_is_for_source
                                                      else f" (trained on {run.dataset_label})"))
        if self.session.predictions is not None:
            parts.append(self.session.prediction_caption())
        if self.workspace is None:
            parts.append("label edits not saved (no workspace)")
        self.source_label.setText("  ·  ".join(parts))

    # --- help -------------------------------------------------------------------------------------------

    def show_shortcuts(self) -> None:
        lines = []
        for action in self.findChildren(QAction):
            if action.shortcut().isEmpty() or not action.text():
                continue
            lines.append(f"{action.shortcut().toString():>14}   {action.text().replace('&', '')}")
        self.show_info("Keyboard shortcuts", "\n".join(sorted(set(lines), key=str.strip)))

    def show_about(self) -> None:
        self.show_info("About BST Studio",
                       "BST Studio sorts sounds into the 23 second-level classes of the Broad Sound Taxonomy "
                       f"({', '.join(taxonomy.TOP_LEVEL_NAMES.values())}) with frozen CLAP embeddings and "
                       "the HATR classifier (DCASE 2026 Task 1).")

    # --- closing ------------------------------------------------------------------------------------------

    def _stop_jobs(self) -> None:
        """Cancel every job of the window (its own, the durations, the analysis views'); give them
        :data:`CLOSE_WAIT_MS` together to reach a safe point, then abandon the rest (their threads
        end on their own; every core writer is atomic)."""
        runners = [self.jobs, self.background,
                   *(r for r in self.findChildren(JobRunner) if r not in (self.jobs, self.background))]
        for runner in runners:
            runner.cancel()
        clock = QElapsedTimer()
        clock.start()
        for runner in runners:
            if runner.busy and not runner.wait(max(0, CLOSE_WAIT_MS - int(clock.elapsed()))):
                runner.abandon()
        for runner in runners:
            runner.shutdown(max(0, CLOSE_WAIT_MS - int(clock.elapsed())))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.jobs.busy:
            if not self.confirm_close_during_job():
                event.ignore()
                return
            self.statusBar().showMessage("Cancelling the running job…")
        self._pending_probe = None
        self.closing.emit()
        restoring, self._restore_plan = self._restore_plan is not None, None   # start nothing more
        self._stop_jobs()
        if self._page == "results":
            self.show_results_page(False)
        for dock, visible in self._dock_visibility.items():   # save the library page's layout
            dock.setVisible(visible)
        self.settings.save_window(self.saveGeometry(), self.saveState())
        if not restoring:                   # half restored: what it showed before stays remembered
            self.remember_source()
        self.settings.set_last_source(self.source_path)
        self.settings.sync()
        self.audition_controller.close()
        if self.workspace is not None:
            self.session.set_workspace(None)    # closes the database
        event.accept()
