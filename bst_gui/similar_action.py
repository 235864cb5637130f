"""More like this (S): the table shows the sounds nearest to the current one, most similar first.

The search is :class:`bst_core.similar.SimilarityIndex` (exact cosine search of the stored
embeddings): the index of the open source is built once per source and space in a background job,
each query then takes milliseconds. The neighbours become an ordered-id filter of the library
table (``Filters.ordered_ids``) with a caption "similar to X", cleared like every other filter;
the first neighbour is selected, ready to audition with Up/Down.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup

from bst_core.jobs import Job
from bst_core.library_query import Filters
from bst_core.similar import SPACES, SimilarityIndex
from bst_gui.analysis_jobs import AnalysisJobs

SIMILAR_KEY = "S"
SIMILAR_K = 20
SPACE_NAMES: dict[str, str] = {"both": "sound and text", "audio": "sound", "text": "text"}


class SimilarSounds(QObject):
    """The Similar action of a window (``window.session``, ``window.current_id()``, its table)."""

    def __init__(self, window: Any, jobs: AnalysisJobs, *, k: int = SIMILAR_K) -> None:
        super().__init__(window)
        self.window = window
        self.jobs = jobs
        self.k = k
        self.space = "both"
        self._index: SimilarityIndex | None = None
        self._built: dict[tuple[int, str], SimilarityIndex] = {}   # built by jobs, kept if a job was cancelled
        self.last: pd.DataFrame | None = None           # the neighbours shown last (id, similarity, ...)
        self.action = QAction("More like this", window)
        self.action.setShortcut(SIMILAR_KEY)
        self.action.setStatusTip("Show the sounds most similar to the current one (nearest embeddings)")
        self.action.setToolTip(f"Show the sounds most similar to the current one ({SIMILAR_KEY})")
        self.action.triggered.connect(lambda _checked=False: self.find())
        window.addAction(self.action)
        self.space_group = QActionGroup(self)
        self.space_actions: dict[str, QAction] = {}
        for space in ("both", "audio", "text"):
            action = QAction(f"Similar by {SPACE_NAMES[space]}", self.space_group)
            action.setCheckable(True)
            action.setChecked(space == self.space)
            action.triggered.connect(lambda _checked=False, s=space: self.set_space(s))
            self.space_actions[space] = action
        window.source_changed.connect(self._source_changed)
        self.update_actions()

    def set_space(self, space: str) -> None:
        if space not in SPACES:
            raise ValueError(space)
        self.space = space
        self.space_actions[space].setChecked(True)

    def _source_changed(self) -> None:
        self._index = None           # built again for the new source (or its new embeddings)
        self._built = {}
        self.update_actions()

    def update_actions(self) -> None:
        corpus = self.window.session.corpus
        self.action.setEnabled(corpus is not None and self.window.session.has_embeddings)
        for space, action in self.space_actions.items():
            needs = ("audio", "text") if space == "both" else (space,)
            action.setEnabled(corpus is not None and all(getattr(corpus, n) is not None for n in needs))

    def _space_for(self, corpus: Any) -> str:
        """The chosen space, or the one the source has when it lacks a modality."""
        if self.space == "both" and (corpus.audio is None or corpus.text is None):
            return "audio" if corpus.audio is not None else "text"
        return self.space

    def find(self, sound_id: str | None = None) -> bool:
        """List the neighbours of ``sound_id`` (default: the current clip) in the table; False when
        there is nothing to search (no clip, no embeddings)."""
        session = self.window.session
        corpus = session.corpus
        sound_id = sound_id or self.window.current_id()
        if corpus is None or not session.has_embeddings or not sound_id:
            self.window.statusBar().showMessage("More like this: select a sound of a source with embeddings.", 6000)
            return False
        space, k = self._space_for(corpus), self.k
        index = self._index if self._index is not None and self._index.corpus is corpus \
            and self._index.space == space else self._built.get((id(corpus), space))
        if index is not None and index.corpus is not corpus:
            index = None
        built_by_jobs = self._built

        def work(job: Job) -> tuple[SimilarityIndex, pd.DataFrame]:
            built = index
            if built is None:
                built = built_by_jobs[(id(corpus), space)] = SimilarityIndex(corpus, space)
            job.check()
            return built, built.neighbours(sound_id, k)

        self.jobs.run("similar", f"Similar to {sound_id}", work,
                      lambda result: self._found(corpus, sound_id, *result), self._failed)
        return True

    def _found(self, corpus: Any, sound_id: str, index: SimilarityIndex, neighbours: pd.DataFrame) -> None:
        if self.window.session.corpus is not corpus:
            return                   # the source changed meanwhile: this answer is of another one
        self._index = index
        self.last = neighbours
        record = self.window.library.record(sound_id)
        title = str(record["title"]) if record is not None and str(record["title"]) else sound_id
        best = f", similarity {neighbours['similarity'].iloc[0]:.2f} to {neighbours['similarity'].iloc[-1]:.2f}" \
            if len(neighbours) else ""
        caption = f"similar to {title} (by {SPACE_NAMES.get(index.space, index.space)}): {len(neighbours)} clips{best}"
        self.window._show_filtered(Filters(ordered_ids=tuple(neighbours["id"].astype(str))), caption)

    def _failed(self, message: str) -> None:
        self.window.statusBar().showMessage(f"More like this: {message}", 10000)
