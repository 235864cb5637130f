"""The workspace database: a person's label edits, with undo/redo, kept outside their data.

A workspace is one SQLite file (WAL journal, every edit committed at once, so a crash loses
nothing that was shown as saved). It never touches the audio files or the dataset's metadata.

Where it lives: :func:`default_path` puts it in the user data folder,
``paths.data_dir()/workspaces/<folder name>-<hash of the source's absolute path>/workspace.sqlite``,
so nothing in the user's folder is modified; the source path is recorded inside (``meta`` table)
and :meth:`Workspace.source` reads it back. Pass any other path to :class:`Workspace` to keep the
database elsewhere (e.g. beside the data, when the person asks for it).

Tables::

    meta    key TEXT PRIMARY KEY, value TEXT         format, format_version, source, created
    labels  id TEXT PRIMARY KEY, label TEXT           the current edited label of each id
    edits   seq INTEGER PRIMARY KEY, id, old_label, new_label, timestamp, batch_id, state

``edits`` is the full log. ``state`` is ``"done"`` (applied), ``"undone"`` (can be redone) or
``"dropped"`` (undone, then superseded by a new edit: kept for the record, never redone). One call
of :meth:`Workspace.assign` is one batch, and one batch is one undo step. The empty label ``""``
means "no edited label" (the truth or prediction stands).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bst_core import paths
from bst_core.atomic import atomic_open
from bst_core.errors import BadInputError
from bst_core.submission import PredictionsLike
from bst_core.taxonomy import CLASS_KEYS

FORMAT = "bst-workspace"
FORMAT_VERSION = 1
FILE_NAME = "workspace.sqlite"
EXPORT_COLUMNS: tuple[str, ...] = ("id", "truth", "prediction", "score", "audio_status", "edited_label")
"""Columns of the labels CSV. ``score`` is the model's top probability; ``audio_status`` "ok" or
"text only: <reason>" (the prediction was made from the text alone), "" when unknown."""
_REQUIRED_COLUMNS: tuple[str, ...] = ("id", "truth", "prediction", "score", "edited_label")
"""What a labels CSV must hold to be read back (files written before ``audio_status`` existed lack it)."""
BUSY_TIMEOUT_S = 2.0
"""How long a save waits for another program's lock on the database before it gives up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (id TEXT PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    old_label TEXT NOT NULL,
    new_label TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('done', 'undone', 'dropped'))
);
CREATE INDEX IF NOT EXISTS edits_batch ON edits (batch_id, state);
"""


def default_path(source: str | os.PathLike[str]) -> Path:
    """Where the workspace of a source (dataset folder or CSV) lives by default.

    ``data_dir()/workspaces/<name>-<12 hex of sha1(absolute path)>/workspace.sqlite``: outside the
    user's folder, one per source, stable across runs.
    """
    return paths.data_dir() / "workspaces" / paths.folder_key(source) / FILE_NAME


class WorkspaceSaveError(BadInputError):
    """An edit (or undo/redo) could not be saved: the database is locked, the disk is full, ...

    Nothing was changed; the message says what to do.
    """


def storage_error(path: Path, exc: sqlite3.Error) -> BadInputError:
    """The words for a failed database operation on ``path``.

    Locked by another connection (SQLITE_BUSY / SQLITE_LOCKED) → close the other program; disk full
    (SQLITE_FULL) → free space; a file that is not a (healthy) database → move it away; anything
    else → the error as SQLite says it, with where.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        return WorkspaceSaveError(f"{path} is locked by another program (another BST Studio window?); "
                                  "close it and try again.")
    if primary == sqlite3.SQLITE_FULL or "disk is full" in text:
        return WorkspaceSaveError(f"Not saved: disk full while saving {path}; free space and try again.")
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or not isinstance(exc, sqlite3.OperationalError):
        return BadInputError(f"{path} is not a BST Studio workspace database ({exc}); move it away or "
                             "choose another workspace file.")
    return WorkspaceSaveError(f"{path} could not be written ({exc}); check that its disk is writable and "
                              "try again.")


class Workspace:
    """Label edits of one source in one SQLite file; safe to share between threads.

    ``Workspace(path)`` opens or creates the database; :meth:`for_source` uses :func:`default_path`.
    A file that is not a workspace raises :class:`BadInputError` naming it ("move it away"); a
    database locked by another program or a full disk raise :class:`WorkspaceSaveError` saying so,
    at opening and on every edit, undo or redo (waiting ``busy_timeout_s``, default
    :data:`BUSY_TIMEOUT_S`, for a lock to go). A failed save changes nothing.
    """

    def __init__(self, db_path: str | os.PathLike[str], *,
                 source: str | os.PathLike[str] | None = None, busy_timeout_s: float | None = None) -> None:
        self.path = Path(db_path)
        self._lock = threading.RLock()
        wait = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self._busy_timeout_ms = max(0, round(wait * 1000))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise BadInputError(f"The workspace database {self.path} cannot be opened ({exc}); "
                                "check that its folder exists and is writable.") from exc
        try:
            self._initialise(source)
        except sqlite3.Error as exc:
            self._conn.close()
            raise storage_error(self.path, exc) from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def for_source(cls, source: str | os.PathLike[str]) -> Workspace:
        """The workspace of a dataset folder or CSV at its default place (see :func:`default_path`)."""
        return cls(default_path(source), source=Path(source).expanduser().resolve())

    # --- lifecycle -----------------------------------------------------------------------------

    def _initialise(self, source: str | os.PathLike[str] | None) -> None:
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # an edit shown as saved survives power loss
            listed = self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {row[0] for row in listed}
            if tables and "meta" not in tables:
                raise sqlite3.DatabaseError("it holds tables of another program")  # → "move it away"
            self._conn.executescript(_SCHEMA)
            meta = self._meta()
            if meta and meta.get("format") != FORMAT:
                raise sqlite3.DatabaseError("it holds tables of another program")
            if int(meta.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
                raise BadInputError(f"The workspace {self.path} was written by a newer BST Studio "
                                    f"(format {meta['format_version']}); update BST Studio to open it.")
            with self._transaction() as cur:
                defaults = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                            "created": _now()}
                for key, value in defaults.items():
                    cur.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
                if source is not None:
                    cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('source', ?)",
                                (str(source),))

    def close(self) -> None:
        """Close the database (checkpointing the WAL); further calls fail."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One atomic, immediately committed transaction, rolled back if the body or the commit fails.

        A database error (locked by another program, disk full, ...) becomes the
        :class:`WorkspaceSaveError` of :func:`storage_error`: nothing was saved.
        """
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
            try:
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise storage_error(self.path, exc) from exc
            except BaseException:
                self._rollback()
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read; a database error becomes the words of :func:`storage_error`."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.ProgrammingError:
                raise                     # a closed workspace: a bug of the caller, not of the file
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    @property
    def source(self) -> str:
        """The absolute path of the source this workspace belongs to ("" when not recorded)."""
        return self._meta().get("source", "")

    # --- edits ---------------------------------------------------------------------------------

    def assign(self, ids: Iterable[str], label: str) -> list[str]:
        """Set the edited label of ``ids`` to ``label`` ("" clears it), as one undo step.

        Ids whose edited label already is ``label`` are left alone. Returns the ids that changed
        (empty: nothing was recorded). Raises BadInputError for a label that is not one of the 23
        keys or "", or for an empty id. Any redo history is dropped once something changes.
        """
        label = "" if label is None else str(label)
        return self.assign_each({str(i): label for i in ids})

    def assign_each(self, labels: Mapping[str, str]) -> list[str]:
        """Set a (possibly different) edited label per id, as one undo step (see :meth:`assign`).

        Used to accept the predictions of a multi-selection in one go.
        """
        wanted = {str(i): ("" if label is None else str(label)) for i, label in labels.items()}
        bad = sorted({label for label in wanted.values() if label and label not in CLASS_KEYS})
        if bad:
            raise BadInputError(f"{', '.join(map(repr, bad))} is not one of the 23 BST second-level "
                                "classes (e.g. 'fx-o'); use \"\" to clear an edit.")
        if any(not i for i in wanted):
            raise BadInputError("An empty id cannot be labelled: every sound needs an id.")
        stamp = _now()
        with self._transaction() as cur:
            current = self._labels_of(cur, list(wanted))
            changed = [i for i, label in wanted.items() if current.get(i, "") != label]
            if not changed:
                return []
            cur.execute("UPDATE edits SET state = 'dropped' WHERE state = 'undone'")
            batch = cur.execute("SELECT COALESCE(MAX(batch_id), 0) + 1 FROM edits").fetchone()[0]
            cur.executemany(
                "INSERT INTO edits (id, old_label, new_label, timestamp, batch_id) VALUES (?, ?, ?, ?, ?)",
                [(i, current.get(i, ""), wanted[i], stamp, batch) for i in changed])
            _write_labels(cur, [(i, wanted[i]) for i in changed])
        return changed

    def undo(self) -> list[str]:
        """Revert the latest applied batch; returns the ids it touched (empty: nothing to undo)."""
        with self._transaction() as cur:
            row = cur.execute("SELECT MAX(batch_id) FROM edits WHERE state = 'done'").fetchone()
            if row[0] is None:
                return []
            edits = cur.execute("SELECT seq, id, old_label FROM edits WHERE batch_id = ? AND state = 'done' "
                                "ORDER BY seq DESC", (row[0],)).fetchall()
            _write_labels(cur, [(i, old) for _, i, old in edits])
            cur.execute("UPDATE edits SET state = 'undone' WHERE batch_id = ? AND state = 'done'", (row[0],))
        return list(dict.fromkeys(i for _, i, _ in reversed(edits)))

    def redo(self) -> list[str]:
        """Re-apply the earliest undone batch; returns the ids it touched (empty: nothing to redo)."""
        with self._transaction() as cur:
            row = cur.execute("SELECT MIN(batch_id) FROM edits WHERE state = 'undone'").fetchone()
            if row[0] is None:
                return []
            edits = cur.execute("SELECT seq, id, new_label FROM edits WHERE batch_id = ? "
                                "AND state = 'undone' ORDER BY seq", (row[0],)).fetchall()
            _write_labels(cur, [(i, new) for _, i, new in edits])
            cur.execute("UPDATE edits SET state = 'done' WHERE batch_id = ? AND state = 'undone'", (row[0],))
        return list(dict.fromkeys(i for _, i, _ in edits))

    @property
    def can_undo(self) -> bool:
        return self._exists("SELECT 1 FROM edits WHERE state = 'done' LIMIT 1")

    @property
    def can_redo(self) -> bool:
        return self._exists("SELECT 1 FROM edits WHERE state = 'undone' LIMIT 1")

    def _exists(self, sql: str) -> bool:
        return bool(self._query(sql))

    # --- reading -------------------------------------------------------------------------------

    def edited_labels(self) -> dict[str, str]:
        """Current edited label of every edited id (cleared edits are absent)."""
        return dict(self._query("SELECT id, label FROM labels"))

    def label_of(self, sound_id: str) -> str:
        """The edited label of one id, "" when it has none."""
        rows = self._query("SELECT label FROM labels WHERE id = ?", (str(sound_id),))
        return rows[0][0] if rows else ""

    def __bool__(self) -> bool:
        """An open workspace is truthy even without edits (``if workspace:`` means "is open")."""
        return True

    def __len__(self) -> int:
        """Number of ids with an edited label."""
        return int(self._query("SELECT COUNT(*) FROM labels")[0][0])

    def edit_log(self) -> pd.DataFrame:
        """The whole edit log (seq, id, old_label, new_label, timestamp, batch_id, state), oldest first."""
        rows = self._query("SELECT seq, id, old_label, new_label, timestamp, batch_id, state "
                           "FROM edits ORDER BY seq")
        return pd.DataFrame(rows, columns=["seq", "id", "old_label", "new_label", "timestamp",
                                           "batch_id", "state"])

    @staticmethod
    def _labels_of(cur: sqlite3.Cursor, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(cur.execute(f"SELECT id, label FROM labels WHERE id IN ({marks})", chunk).fetchall())
        return out

    # --- export --------------------------------------------------------------------------------

    def export_labels_csv(self, path: str | os.PathLike[str], table: pd.DataFrame,
                          predictions: PredictionsLike | pd.DataFrame | None = None) -> Path:
        """Write ``id,truth,prediction,score,audio_status,edited_label`` for every sound, atomically.

        Rows follow ``table`` (needs ``id``; its ``label`` column is the truth). ``predictions`` is
        a ``Predictions`` (ids, labels, scores, audio_status) or a frame with ``id``, ``prediction``
        and ``score`` or ``confidence`` (an out-of-fold table fits); without it both columns stay
        empty. ``audio_status`` comes from the predictions, else from the table's ``audio_status``
        column (a corpus with embeddings has one), else stays empty. Edited ids that are not in
        ``table`` are appended so no edit is lost. Returns the path.
        """
        frame = labels_frame(table, predictions, self.edited_labels())
        target = Path(path)
        with atomic_open(target, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        return target


def labels_frame(table: pd.DataFrame, predictions: PredictionsLike | pd.DataFrame | None,
                 edited: Mapping[str, str]) -> pd.DataFrame:
    """The export table (:data:`EXPORT_COLUMNS`) of :meth:`Workspace.export_labels_csv`."""
    if "id" not in table.columns:
        raise BadInputError("The sound table has no 'id' column: export needs one id per sound.")
    ids = [str(i) for i in table["id"]]
    truth = ([_text(x) for x in table["label"]] if "label" in table.columns else [""] * len(ids))
    status = (dict(zip(ids, (_text(x) for x in table["audio_status"]), strict=True))
              if "audio_status" in table.columns else {})
    known = set(ids)
    extra = [i for i in edited if i not in known]
    ids += extra
    truth += [""] * len(extra)
    predicted, scores, predicted_status = _prediction_columns(predictions)
    status.update(predicted_status)
    return pd.DataFrame({
        "id": pd.Series(ids, dtype=object),
        "truth": pd.Series(truth, dtype=object),
        "prediction": pd.Series([predicted.get(i, "") for i in ids], dtype=object),
        "score": pd.Series([scores.get(i, np.nan) for i in ids], dtype=float),
        "audio_status": pd.Series([status.get(i, "") for i in ids], dtype=object),
        "edited_label": pd.Series([edited.get(i, "") for i in ids], dtype=object),
    })


def read_labels_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an exported labels CSV back (ids, labels and statuses as str, score as float).

    A file written before the ``audio_status`` column existed reads with that column empty.
    """
    try:
        frame = pd.read_csv(path, dtype={c: object for c in EXPORT_COLUMNS if c != "score"},
                            keep_default_na=False, na_values={"score": [""]})
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} cannot be read as a labels CSV ({exc}).") from exc
    missing = [c for c in _REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInputError(f"{path} lacks the columns {', '.join(missing)}; export the labels again.")
    if "audio_status" not in frame.columns:
        frame.insert(list(EXPORT_COLUMNS).index("audio_status"), "audio_status", "")
    return frame[list(EXPORT_COLUMNS)]


def _prediction_columns(predictions: PredictionsLike | pd.DataFrame | None
                        ) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(id → label, id → score, id → audio status where the predictions say it)."""
    if predictions is None:
        return {}, {}, {}
    if isinstance(predictions, pd.DataFrame):
        score_column = "score" if "score" in predictions.columns else None
        if "id" not in predictions.columns or "prediction" not in predictions.columns or score_column is None:
            raise BadInputError("The predictions table needs the columns id, prediction and score.")
        ids = [str(i) for i in predictions["id"]]
        labels = [_text(x) for x in predictions["prediction"]]
        scores = pd.to_numeric(predictions[score_column], errors="coerce").to_numpy(dtype=float)
        status = ([_text(x) for x in predictions["audio_status"]] if "audio_status" in predictions.columns
                  else None)
    else:
        ids = [str(i) for i in predictions.ids]
        labels = [_text(x) for x in predictions.labels]
        scores = np.asarray(predictions.scores, dtype=float).reshape(-1)
        given = getattr(predictions, "audio_status", None)
        status = [_text(x) for x in given] if given is not None and len(given) else None
    if not (len(ids) == len(labels) == len(scores)) or (status is not None and len(status) != len(ids)):
        raise BadInputError(f"The predictions are inconsistent: {len(ids)} ids, {len(labels)} labels, "
                            f"{len(scores)} scores. Predict again.")
    return (dict(zip(ids, labels, strict=True)), dict(zip(ids, scores.tolist(), strict=True)),
            {} if status is None else dict(zip(ids, status, strict=True)))


def _write_labels(cur: sqlite3.Cursor, pairs: Sequence[tuple[str, str]]) -> None:
    """Apply (id, label) pairs of distinct ids: "" deletes the id's edited label."""
    cur.executemany("INSERT OR REPLACE INTO labels (id, label) VALUES (?, ?)", [p for p in pairs if p[1]])
    cur.executemany("DELETE FROM labels WHERE id = ?", [(i,) for i, label in pairs if not label])


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


