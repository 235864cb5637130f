"""The analysis features of the window (issue 9): Similar, Why this label, Relabel next, Runs, Map,
search by words.

:func:`install_analysis` adds their actions, menus and docks to a :class:`MainWindow` (the window
only calls it once) and returns the :class:`Analysis` that holds them. Everything here observes
the window's Qt-free session and calls the core (``bst_core.similar``, ``explain``,
``label_issues``, ``run_compare``, ``embedding_map``, ``text_search``); the work runs in quiet
background jobs (:class:`~bst_gui.analysis_jobs.AnalysisJobs`), never on the GUI thread, and each
view computes only while it is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu

from bst_core.jobs import Job
from bst_core.library_query import Filters
from bst_gui.analysis_jobs import AnalysisJobs
from bst_gui.map_view import MapView
from bst_gui.relabel_queue import RelabelQueue, RelabelQueueView
from bst_gui.runs_view import RunsPanel, RunsView
from bst_gui.similar_action import SimilarSounds

EXPLAIN_K = 5
EXPLAIN_SETTLE_MS = 200
"""Pause after a move before "why this label" is computed (holding Down computes only the last)."""
WORDS_K = 50
NO_RUN_NOTE = "Train or load a run to see the training clips that pulled this sound to its label."


def _menu(window: Any, title: str) -> QMenu | None:
    for action in window.menuBar().actions():
        if action.menu() is not None and action.text().replace("&", "") == title:
            return action.menu()
    return None


class Explainer(QObject):
    """"Why this label" in the clip panel: the run's nearest training clips for the current clip.

    The run's :class:`bst_core.explain.LatentIndex` (its fold models and the training items'
    latent features) is built once per run in the background and reused; each clip then costs one
    small prediction. Clicking a training clip plays it; a double click goes to it when it is in
    the open source.
    """

    def __init__(self, window: Any, jobs: AnalysisJobs, *, k: int = EXPLAIN_K) -> None:
        super().__init__(window)
        self.window, self.jobs, self.k = window, jobs, k
        self.panel = window.clip_panel
        self._index: Any = None
        self._index_key: tuple[str, int] | None = None
        self._built: dict[tuple[str, int], Any] = {}   # indexes built by jobs, kept even if the job was cancelled
        self.last: Any = None                       # the last Explanation shown
        self._wanted = ""                           # a training clip to play once loaded
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(EXPLAIN_SETTLE_MS)
        self._timer.timeout.connect(self.explain_current)
        window.library_view.current_changed.connect(self._current_changed)
        self.panel.explain_play.connect(self.play)
        self.panel.explain_open.connect(self.open)
        window.audition_controller.loader.loaded.connect(self._loaded)

    def invalidate(self) -> None:
        """The run or source changed: the index is of the old one."""
        self._index, self._index_key, self.last = None, None, None
        self._built = {}                 # a new dict: a job still building for the old run writes into the old one
        self._current_changed(self.window.current_id() or "")

    def _current_changed(self, sound_id: str) -> None:
        session = self.window.session
        if not sound_id:
            return
        if session.run is None:
            self.panel.show_explanation(None, NO_RUN_NOTE)
            return
        if not session.has_embeddings:
            self.panel.show_explanation(None, "This source has no embeddings yet (Analysis › Extract embeddings).")
            return
        self.panel.show_explanation(None, "Finding the nearest training clips…")
        self._timer.start()

    def explain_current(self) -> bool:
        """Start explaining the current clip (background); False when there is nothing to explain."""
        session, sound_id = self.window.session, self.window.current_id()
        run, corpus = session.run, session.corpus
        if not sound_id or run is None or corpus is None or not session.has_embeddings:
            return False
        same = session.run_is_for_source
        key = (str(run.run_dir), id(corpus) if same else 0)
        index = self._index if self._index_key == key else self._built.get(key)
        k, built_by_jobs = self.k, self._built

        def work(job: Job) -> tuple[Any, Any]:
            from bst_core import pipeline
            from bst_core.explain import LatentIndex, training_corpus

            built = index
            if built is None:
                job.progress("why this label", 0, 2, "reading the run's models and training clips")
                training = corpus if same else training_corpus(run.run_dir)
                job.check()
                built = LatentIndex(pipeline.load_ensemble(run.run_dir), training)
                built_by_jobs[key] = built      # holding Down while it builds must not build it again
            job.check()
            return built, built.explain(corpus, sound_id, k)

        self.jobs.run("explain", f"Why {sound_id}", work,
                      lambda result: self._explained(run, corpus, key, sound_id, *result), self._failed)
        return True

    def _explained(self, run: Any, corpus: Any, key: tuple[str, int], sound_id: str, index: Any,
                   explanation: Any) -> None:
        session = self.window.session
        if session.run is not run or session.corpus is not corpus:
            return
        self._index, self._index_key = index, key
        if self.window.current_id() != sound_id:
            return
        self.last = explanation
        n = explanation.prediction.n_models
        note = (f"The {len(explanation.neighbours)} training clips of {Path(str(run.run_dir)).name} nearest to this "
                f"one in the model's own space (mean cosine over {n} fold model{'s' if n != 1 else ''}); the "
                f"ensemble predicts {explanation.label} ({explanation.score:.2f}). Click plays, double-click "
                "goes to the clip.")
        self.panel.show_explanation(explanation.neighbours, note)

    def _failed(self, message: str) -> None:
        self.panel.show_explanation(None, f"No explanation: {message}")

    # --- playing a training clip -------------------------------------------------------------------

    def _path_of(self, item_id: str) -> str:
        record = self.window.library.record(item_id) if self.window.session.run_is_for_source else None
        if record is not None:
            return str(record["audio_path"])
        if self._index is not None:
            table = self._index.training.table
            rows = table.index[table["id"].astype(str) == item_id]
            if len(rows) and "audio_path" in table.columns:
                return str(table.loc[rows[0], "audio_path"] or "")
        return ""

    def play(self, item_id: str) -> bool:
        """Play a training clip without leaving the current one; False when it has no audio file."""
        path = self._path_of(item_id)
        if not path:
            self.window.statusBar().showMessage(f"Training clip {item_id} has no audio file here to play.", 6000)
            return False
        audition = self.window.audition
        clip_id = f"training:{item_id}"
        self._wanted = path
        audition.request_play(clip_id)
        data = self.window.audition_controller.loader.request(path)
        if data is not None:
            self._loaded(path, data)
        return True

    def _loaded(self, path: str, data: Any) -> None:
        if path != self._wanted:
            return
        self._wanted = ""
        audition = self.window.audition
        if audition.clip_id.startswith("training:"):
            audition.set_clip(audition.clip_id, data.samples if data.ok else None)
            if not data.ok:
                self.window.statusBar().showMessage(f"Cannot play this training clip: {data.reason}.", 6000)

    def open(self, item_id: str) -> None:
        """Go to a training clip in the table when the open source has it, else play it."""
        if self.window.library.position_of(item_id) is not None and self.window.select_id(item_id):
            self.window.audition_controller.replay()
        else:
            self.play(item_id)


class MapPanel(QObject):
    """The Map dock's content: PCA at once, UMAP when it has been computed (both in the background,
    cached by the core per store), linked both ways with the library table."""

    def __init__(self, window: Any, jobs: AnalysisJobs, view: MapView, dock: QDockWidget) -> None:
        super().__init__(window)
        self.window, self.jobs, self.view, self.dock = window, jobs, view, dock
        self.dirty = True
        self._corpus: Any = None
        self._sync = QTimer(self)
        self._sync.setSingleShot(True)
        self._sync.setInterval(30)
        self._sync.timeout.connect(self._show_selection)
        view.clicked.connect(self._clicked)
        view.lasso_selected.connect(self._lassoed)
        view.colour_by_changed.connect(lambda _key: self.recolour())
        view.space_changed.connect(lambda _space: self.invalidate())
        window.library_view.table.selectionModel().selectionChanged.connect(lambda *_a: self._sync.start())
        window.library_view.current_changed.connect(lambda _id: self._sync.start())
        window.predictions_changed.connect(self.recolour)
        dock.visibilityChanged.connect(lambda visible: visible and self.refresh())

    def invalidate(self) -> None:
        self.dirty = True
        self.jobs.cancel("map")
        self.jobs.cancel("umap")
        if self.dock.isVisible():
            self.refresh()

    def refresh(self) -> bool:
        """Compute the map of the open source if it is stale; False when there is nothing to map."""
        session = self.window.session
        corpus = session.corpus
        if corpus is None or not session.has_embeddings:
            self.view.clear("Open a source with embeddings to map its sounds.")
            self._corpus = None
            return False
        if not self.dirty and self._corpus is corpus:
            return True
        self.dirty = False
        self._corpus = corpus
        space = self._space(corpus)

        def work(job: Job) -> Any:
            from bst_core.embedding_map import cached_map, compute_map

            found = cached_map(corpus, space, "umap")
            return found if found is not None else compute_map(corpus, space, "pca", progress=job)

        self.view.set_status(f"Mapping {len(corpus):,} sounds (PCA)…")
        self.jobs.run("map", "Map", work, lambda result: self._mapped(corpus, result), self._failed)
        return True

    def _space(self, corpus: Any) -> str:
        space = self.view.space
        if space in ("audio", "both") and corpus.audio is None:
            space = "text"
        if space in ("text", "both") and corpus.text is None:
            space = "audio"
        self.view.set_space(space)
        return space

    def _mapped(self, corpus: Any, result: Any) -> None:
        if self.window.session.corpus is not corpus:
            return
        self.view.set_map(result.ids, result.xy, result.method, self._keys(result.ids))
        self._show_selection()
        if result.method == "umap":
            self.view.set_status(f"UMAP of {len(result):,} sounds ({result.space}). Click a point, or lasso "
                                 "(Shift+drag) to list clips in the table.")
            return
        from bst_core.embedding_map import UMAP_MIN_ITEMS

        if len(result) < UMAP_MIN_ITEMS:
            self.view.set_status(f"PCA of {len(result):,} sounds (too few for UMAP).")
            return
        self.view.set_status(f"PCA of {len(result):,} sounds; computing UMAP in the background…")
        space = result.space

        def umap_work(job: Job) -> Any:
            from bst_core.embedding_map import compute_map

            return compute_map(corpus, space, "umap", progress=job)

        self.jobs.run("umap", "UMAP map", umap_work, lambda found: self._mapped(corpus, found), self._failed)

    def _failed(self, message: str) -> None:
        self.view.set_status(f"No map: {message}")

    def _keys(self, ids: Any) -> list[str]:
        frame = self.window.library.frame
        column = self.view.colour_by
        if not len(frame) or column not in frame.columns:
            return [""] * len(ids)
        lookup = pd.Series(frame[column].to_numpy(dtype=object), index=frame["id"].astype(str))
        lookup = lookup[~lookup.index.duplicated()]
        return [str(v) if isinstance(v, str) else "" for v in lookup.reindex(list(ids)).to_numpy()]

    def recolour(self) -> None:
        if self.view.ids:
            self.view.set_classes(self._keys(self.view.ids))

    def _show_selection(self) -> None:
        if self.view.ids:
            self.view.highlight(self.window.selected_ids(), self.window.current_id())

    def _clicked(self, item_id: str) -> None:
        self.window.select_id(item_id)

    def _lassoed(self, ids: list[str]) -> None:
        self.window._show_filtered(Filters(ids=frozenset(ids)), f"{len(ids):,} clips chosen on the map")
        self.window.library_view.table.selectAll()


class Analysis(QObject):
    """What :func:`install_analysis` adds to a window; attributes name each part (for tests)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.jobs = AnalysisJobs(self)
        self.similar = SimilarSounds(window, self.jobs)
        self.explainer = Explainer(window, self.jobs)

        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        self.queue_view = RelabelQueueView()
        self.queue_dock = window._dock("Relabel next", "relabelQueueDock", self.queue_view, bottom)
        window.tabifyDockWidget(window.keys_dock, self.queue_dock)
        self.queue = RelabelQueue(window, self.jobs, self.queue_view)
        self.runs_view = RunsView()
        self.runs_dock = window._dock("Runs", "runsDock", self.runs_view, bottom)
        window.tabifyDockWidget(self.queue_dock, self.runs_dock)
        self.runs = RunsPanel(window, self.jobs, self.runs_view)
        self.map_view = MapView()
        self.map_dock = window._dock("Map", "mapDock", self.map_view, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.map_dock.hide()
        self.map = MapPanel(window, self.jobs, self.map_view, self.map_dock)
        window.results_dock.raise_()
        self.docks = (self.queue_dock, self.runs_dock, self.map_dock)
        self._stale = {"queue": True, "runs": True}
        self.queue_dock.visibilityChanged.connect(lambda visible: visible and self._refresh("queue"))
        self.runs_dock.visibilityChanged.connect(lambda visible: visible and self._refresh("runs"))

        self.queue_action = self._action("Relabel next", "Ctrl+Shift+N", self.show_queue,
                                         "Suspected label errors first, then the least confident clips")
        self.runs_action = self._action("Compare runs", "Ctrl+Shift+R", lambda: self._raise(self.runs_dock),
                                        "This source's runs side by side")
        self.map_action = self._action("Map of the sounds", "Ctrl+M", lambda: self._raise(self.map_dock),
                                       "Every clip a point, linked with the table")
        self._add_menus()

        window.library_view.words_search.connect(self.search_words)
        window.session.subscribe(self._session_changed)
        window.stack.currentChanged.connect(lambda _i: self._follow_page())
        window.installEventFilter(self)
        app = QCoreApplication.instance()
        if app is not None:            # quitting: a job that cannot stop yet (UMAP, a model loading) is given up
            app.aboutToQuit.connect(self.jobs.abandon)
        self._hidden_on_welcome: dict[QDockWidget, bool] = {}
        self._encoder: Any = None
        QTimer.singleShot(0, self._follow_page)      # after the window has restored its layout

    def _action(self, text: str, shortcut: str, slot: Any, tip: str) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(shortcut)
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({shortcut})")
        action.triggered.connect(lambda _checked=False: slot())
        self.window.addAction(action)
        return action

    def _add_menus(self) -> None:
        analysis = _menu(self.window, "Analysis")
        if analysis is not None:
            analysis.addSeparator()
            analysis.addAction(self.similar.action)
            similar_by = analysis.addMenu("Similar by")
            similar_by.addActions(list(self.similar.space_actions.values()))
            for action in (self.queue_action, self.runs_action, self.map_action):
                analysis.addAction(action)
        view = _menu(self.window, "View")
        if view is not None:
            view.addSeparator()
            for dock in self.docks:
                view.addAction(dock.toggleViewAction())

    # --- session and pages ---------------------------------------------------------------------

    def _session_changed(self, event: str) -> None:
        if event in ("source", "reset", "run"):
            self.explainer.invalidate()
            self._stale["runs"] = True
        if event in ("source", "reset"):
            self.map.invalidate()
        if event in ("source", "reset", "run", "predictions"):
            self._stale["queue"] = True
            if event in ("source", "reset"):
                self.queue.clear()
        self.similar.update_actions()
        for name, dock in (("queue", self.queue_dock), ("runs", self.runs_dock)):
            if dock.isVisible():
                self._refresh(name)

    def _refresh(self, name: str) -> None:
        if not self._stale.get(name, False):
            return
        self._stale[name] = False
        if name == "queue":
            self.queue.refresh()
        else:
            self.runs.refresh()

    def _raise(self, dock: QDockWidget) -> None:
        dock.show()
        dock.raise_()

    def show_queue(self) -> None:
        """Relabel next: show the dock (the queue is computed if needed) and start when it is ready."""
        self._raise(self.queue_dock)
        self._refresh("queue")
        if self.queue.queue is not None:
            self.queue.start()

    def _follow_page(self) -> None:
        """The welcome page shows no docks (as the window's own); they come back with the library."""
        on_welcome = self.window.stack.currentWidget() is self.window.welcome
        if on_welcome and not self._hidden_on_welcome:
            self._hidden_on_welcome = {d: d.isVisibleTo(self.window) for d in self.docks}
            for dock in self.docks:
                dock.hide()
        elif not on_welcome and self._hidden_on_welcome:
            for dock, visible in self._hidden_on_welcome.items():
                dock.setVisible(visible)
            self._hidden_on_welcome = {}

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.jobs.cancel()         # quiet work only: nothing to keep; the window asks about its own job
            for dock, visible in self._hidden_on_welcome.items():   # the layout is saved as on the library page
                dock.setVisible(visible)
            self._hidden_on_welcome = {}
        return False

    def close(self) -> None:
        self.jobs.shutdown()

    # --- search by words -----------------------------------------------------------------------

    def search_words(self, words: str) -> bool:
        """``~words`` in the search box: the clips whose sound is nearest to the words (CLAP)."""
        from bst_core.errors import BadInputError
        from bst_core.text_search import require_joint_encoder, search_by_words

        corpus = self.window.session.corpus
        if corpus is None:
            return False
        if not words:
            self._say_search("Type some words after ~, e.g. ~dog barking in the rain, then Enter.")
            return False
        try:
            require_joint_encoder(corpus)
        except BadInputError as exc:
            made = corpus.encoder.name if corpus.encoder is not None else "no encoder"
            self._say_search(f"~words needs CLAP: this source's embeddings ({made}) do not put words and sounds in "
                             "one space. Extract them with the CLAP encoder (Analysis › Extract embeddings).",
                             details=str(exc))
            return False
        cached = self._encoder
        checkpoint = self.window.settings.last_folder("checkpoint") or None

        def work(job: Job) -> tuple[Any, pd.DataFrame]:
            from bst_core.text_search import joint_encoder_for

            encoder = cached if cached is not None else joint_encoder_for(corpus, checkpoint=checkpoint, job=job)
            job.check()
            return encoder, search_by_words(corpus, words, encoder=encoder, k=WORDS_K)

        self._say_search(f"Searching by words: {words}…", error=False)
        self.jobs.run("words", f"Search “{words}”", work, lambda result: self._words_found(corpus, words, *result),
                      lambda message: self._say_search(f"Search by words: {message}"))
        return True

    def _words_found(self, corpus: Any, words: str, encoder: Any, found: pd.DataFrame) -> None:
        self._encoder = encoder
        if self.window.session.corpus is not corpus:
            return
        search = self.window.library_view.search
        text = search.text()
        caption = f"by words “{words}”: {len(found)} clips, nearest first"
        self.window._show_filtered(Filters(ordered_ids=tuple(found["id"].astype(str))), caption)
        search.blockSignals(True)                     # keep the words in the box (they filter nothing else)
        search.setText(text)
        search.blockSignals(False)
        self._say_search("", error=False)

    def _say_search(self, text: str, error: bool = True, details: str = "") -> None:
        """One line under the search box (the library view's problem line); ``details`` as its tooltip."""
        label = self.window.library_view.problem_label
        label.setWordWrap(True)
        label.setText(text)
        label.setToolTip(details or text)
        label.setVisible(bool(text))
        if text and error:
            self.window.statusBar().showMessage(text, 10000)


def install_analysis(window: Any) -> Analysis:
    """Add the analysis actions and views to ``window``; returns the :class:`Analysis`."""
    return Analysis(window)


__all__ = ["Analysis", "Explainer", "MapPanel", "install_analysis"]
