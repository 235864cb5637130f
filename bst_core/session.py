"""What is open in the app, without Qt: the source, its run, its predictions, the workspace.

The role napari's ViewerModel plays: the window observes a :class:`Session` and keeps no state of
its own beyond layout. Every change goes through a method here, which checks that the pieces
belong together and then tells the observers what changed (``"source"``, ``"run"``,
``"predictions"``, ``"workspace"``, ``"reset"``).

A run is bound to the data it came from: its out-of-fold predictions become the table's
predictions only when the run was trained on this very source (:func:`pipeline.run_belongs_to`);
otherwise the session still holds the run (its results are shown as that run's, named) but
:attr:`run_is_for_source` is False. Predictions are accepted only for the open source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.predictions import Predictions
from bst_core.runs import CrossValResult
from bst_core.workspace import Workspace

Observer = Callable[[str], None]
EVENTS: tuple[str, ...] = ("source", "run", "predictions", "workspace", "reset")


class Session:
    """The open source and everything derived from it; one :meth:`reset`."""

    def __init__(self) -> None:
        self.corpus: Corpus | None = None
        self.workspace: Workspace | None = None
        self.run: CrossValResult | None = None
        self.run_is_for_source = False
        self.predictions: Predictions | None = None
        self.notes: list[str] = []
        self._observers: list[Observer] = []

    # --- observers ---------------------------------------------------------------------------
    def subscribe(self, observer: Observer) -> None:
        """Call ``observer(event)`` after every change (events: :data:`EVENTS`)."""
        self._observers.append(observer)

    def _emit(self, event: str) -> None:
        for observer in list(self._observers):
            observer(event)

    # --- what is open ------------------------------------------------------------------------
    @property
    def source_path(self) -> Path | None:
        return self.corpus.root if self.corpus is not None else None

    @property
    def has_embeddings(self) -> bool:
        return self.corpus is not None and (self.corpus.audio is not None or self.corpus.text is not None)

    def open(self, corpus: Corpus, workspace: Workspace | None = None, notes: list[str] | None = None) -> None:
        """Make ``corpus`` the open source: the run, predictions and workspace of the previous go."""
        self._clear()
        self.corpus = corpus
        self.workspace = workspace
        self.notes = list(notes or [])
        self._emit("source")

    def replace_corpus(self, corpus: Corpus) -> None:
        """The same source with new embeddings (after extraction); predictions made on the old
        vectors are dropped, the run stays."""
        if self.corpus is None or corpus.root != self.corpus.root or corpus.ids != self.corpus.ids:
            raise BadInputError("The extracted corpus is not the open source; open it again.")
        self.corpus = corpus
        self.predictions = None
        self._emit("source")

    def set_run(self, run: CrossValResult) -> None:
        """Show ``run``; its out-of-fold predictions become the table's only if it is this source's."""
        from bst_core.pipeline import run_belongs_to

        self.run = run
        self.run_is_for_source = self.corpus is not None and run_belongs_to(run, self.corpus)
        self._emit("run")
        if self.run_is_for_source:
            self.set_predictions(run.predictions())

    def set_predictions(self, predictions: Predictions) -> None:
        """Predictions of the open source (refused if they are of another one)."""
        if self.corpus is None:
            raise BadInputError("Open a source before showing predictions.")
        root = str(self.corpus.root) if self.corpus.root else ""
        if predictions.source and root and Path(predictions.source).resolve() != Path(root).resolve():
            raise BadInputError(f"These predictions are of {predictions.source}, not of the open source {root}.")
        unknown = set(predictions.ids) - set(self.corpus.ids)
        if unknown:
            raise BadInputError(f"{len(unknown)} predicted id(s) are not in the open source "
                                f"(e.g. {sorted(unknown)[0]!r}); predict it again.")
        self.predictions = predictions
        self._emit("predictions")

    def prediction_caption(self) -> str:
        """Where the predictions shown come from, in words."""
        p = self.predictions
        if p is None:
            return "no predictions"
        if p.origin == "zero-shot":
            return "zero-shot labels from CLAP (no run; accuracy unmeasured)"
        run = Path(p.run_dir).name if p.run_dir else "a run"
        if p.origin == "out-of-fold":
            return f"out-of-fold predictions of run {run} (this source's cross-validation)"
        return f"predictions of run {run} on this source ({p.n_models} fold model(s))"

    def set_workspace(self, workspace: Workspace | None) -> None:
        if self.workspace is not None and self.workspace is not workspace:
            self.workspace.close()
        self.workspace = workspace
        self._emit("workspace")

    def reset(self) -> None:
        """Close everything (the workspace too)."""
        self._clear()
        self._emit("reset")

    def _clear(self) -> None:
        if self.workspace is not None:
            self.workspace.close()
        self.corpus = None
        self.workspace = None
        self.run = None
        self.run_is_for_source = False
        self.predictions = None
        self.notes = []
