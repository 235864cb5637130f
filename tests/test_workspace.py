"""Workspace database: assign / undo / redo, persistence, default location, CSV export."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bst_core import paths
from bst_core.errors import BadInputError
from bst_core.workspace import EXPORT_COLUMNS, Workspace, default_path, read_labels_csv

NASTY_IDS = ["00123", "a,b", 'say "hi"', "line\nbreak", "NA", "nan", "ünï cødé ✓", " padded ", "None", "-1"]


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path / "ws.sqlite")
    yield workspace
    workspace.close()


def test_assign_undo_redo_sequence(ws: Workspace) -> None:
    assert not ws.can_undo and not ws.can_redo
    assert ws.assign(["1"], "fx-o") == ["1"]
    assert ws.assign(["1"], "fx-v") == ["1"]
    assert ws.edited_labels() == {"1": "fx-v"}
    assert ws.undo() == ["1"]
    assert ws.edited_labels() == {"1": "fx-o"}
    assert ws.can_redo
    assert ws.undo() == ["1"]
    assert ws.edited_labels() == {}
    assert not ws.can_undo
    assert ws.undo() == []
    assert ws.redo() == ["1"]
    assert ws.label_of("1") == "fx-o"
    assert ws.redo() == ["1"]
    assert ws.label_of("1") == "fx-v"
    assert not ws.can_redo and ws.redo() == []


def test_batch_is_one_undo_step(ws: Workspace) -> None:
    ws.assign(["a"], "m-sp")
    assert ws.assign(["a", "b", "c", "b"], "ss-n") == ["a", "b", "c"]  # duplicates collapse
    assert ws.edited_labels() == {"a": "ss-n", "b": "ss-n", "c": "ss-n"}
    assert ws.undo() == ["a", "b", "c"]
    assert ws.edited_labels() == {"a": "m-sp"}
    assert ws.redo() == ["a", "b", "c"]
    assert set(ws.edited_labels().values()) == {"ss-n"}


def test_new_edit_after_undo_drops_redo_branch(ws: Workspace) -> None:
    ws.assign(["x"], "fx-o")
    ws.assign(["x"], "fx-v")
    ws.undo()
    ws.assign(["y"], "is-p")
    assert not ws.can_redo
    assert ws.edited_labels() == {"x": "fx-o", "y": "is-p"}
    log = ws.edit_log()
    assert list(log["state"]) == ["done", "dropped", "done"]  # the log keeps everything
    ws.undo()
    ws.undo()
    assert ws.edited_labels() == {}


def test_unchanged_assign_records_nothing_and_empty_clears(ws: Workspace) -> None:
    ws.assign(["1", "2"], "fx-o")
    assert ws.assign(["1"], "fx-o") == []
    assert len(ws.edit_log()) == 2
    assert ws.assign(["1"], "") == ["1"]
    assert ws.edited_labels() == {"2": "fx-o"}
    ws.undo()
    assert ws.edited_labels() == {"1": "fx-o", "2": "fx-o"}


def test_bad_labels_and_ids_are_refused(ws: Workspace) -> None:
    with pytest.raises(BadInputError, match="not one of the 23"):
        ws.assign(["1"], "fx-other")
    with pytest.raises(BadInputError, match="empty id"):
        ws.assign([""], "fx-o")
    assert ws.edited_labels() == {} and not ws.can_undo


def test_large_batch_over_parameter_limit(ws: Workspace) -> None:
    ids = [f"s{i}" for i in range(2500)]
    assert len(ws.assign(ids, "sp-s")) == 2500
    assert len(ws) == 2500
    assert len(ws.undo()) == 2500 and len(ws) == 0


def test_edits_persist_across_reopen_with_undo_history(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ws.sqlite"
    with Workspace(path) as first:
        first.assign(["1"], "fx-o")
        first.assign(["2", "3"], "fx-a")
        first.undo()
    with Workspace(path) as second:
        assert second.edited_labels() == {"1": "fx-o"}
        assert second.can_redo
        assert second.redo() == ["2", "3"]
    with Workspace(path) as third:
        assert third.edited_labels() == {"1": "fx-o", "2": "fx-a", "3": "fx-a"}


def test_edit_is_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    """Committed immediately: a second reader (as after a crash) sees the edit without close()."""
    path = tmp_path / "ws.sqlite"
    writer = Workspace(path)
    writer.assign(["k"], "m-m")
    reader = Workspace(path)
    assert reader.edited_labels() == {"k": "m-m"}
    reader.close()
    writer.close()


def test_threads_share_one_workspace(ws: Workspace) -> None:
    def work(n: int) -> None:
        for i in range(20):
            ws.assign([f"t{n}-{i}"], "fx-h")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ws) == 80
    assert ws.edit_log()["batch_id"].nunique() == 80


def test_default_path_is_outside_the_source_and_records_it(tmp_path: Path) -> None:
    source = tmp_path / "My Sounds"
    source.mkdir()
    path = default_path(source)
    assert path == default_path(str(source) + "/")  # stable for the same folder
    assert paths.data_dir() in path.parents and source not in path.parents
    assert path.parent.name.startswith("My_Sounds-")
    with Workspace.for_source(source) as ws:
        ws.assign(["1"], "fx-o")
        assert ws.source == str(source.resolve())
    assert list(source.iterdir()) == []  # nothing written into the user's folder
    assert default_path(tmp_path / "other") != path


def test_foreign_files_are_refused_with_the_path(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(BadInputError, match=r"junk\.sqlite"):
        Workspace(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE songs (x)")
    with pytest.raises(BadInputError, match="not a BST Studio workspace"):
        Workspace(other)


def test_export_round_trips_nasty_ids(ws: Workspace, tmp_path: Path) -> None:
    table = pd.DataFrame({"id": NASTY_IDS, "label": ["fx-o"] * 5 + [""] * 5, "title": "t"})
    ws.assign(NASTY_IDS[:3], "ss-u")
    ws.assign(["edited-only,id"], "m-si")
    predictions = SimpleNamespace(ids=NASTY_IDS[::-1], labels=["fx-v"] * 10,
                                  scores=np.linspace(0.1, 1.0, 10))
    out = ws.export_labels_csv(tmp_path / "out" / "labels.csv", table, predictions)
    back = read_labels_csv(out)
    assert list(back.columns) == list(EXPORT_COLUMNS)
    assert list(back["id"]) == [*NASTY_IDS, "edited-only,id"]
    assert list(back["truth"]) == ["fx-o"] * 5 + [""] * 6
    assert list(back["edited_label"]) == ["ss-u"] * 3 + [""] * 7 + ["m-si"]
    assert list(back["prediction"]) == ["fx-v"] * 10 + [""]
    expected = dict(zip(NASTY_IDS[::-1], np.linspace(0.1, 1.0, 10), strict=True))
    np.testing.assert_allclose(back["score"][:10], [expected[i] for i in NASTY_IDS])
    assert np.isnan(back["score"].iloc[10])
    assert not list(out.parent.glob(".*.tmp"))


def test_export_accepts_an_oof_frame_and_no_predictions(ws: Workspace, tmp_path: Path) -> None:
    table = pd.DataFrame({"id": ["1", "2"], "label": ["fx-o", np.nan]})
    oof = pd.DataFrame({"id": ["2"], "truth": ["x"], "prediction": ["is-k"], "score": [0.5]})
    back = read_labels_csv(ws.export_labels_csv(tmp_path / "a.csv", table, oof))
    assert list(back["prediction"]) == ["", "is-k"] and list(back["truth"]) == ["fx-o", ""]
    back = read_labels_csv(ws.export_labels_csv(tmp_path / "b.csv", table))
    assert list(back["prediction"]) == ["", ""] and back["score"].isna().all()
    with pytest.raises(BadInputError, match="columns id, prediction and score"):
        ws.export_labels_csv(tmp_path / "c.csv", table, pd.DataFrame({"id": ["1"]}))
    assert not (tmp_path / "c.csv").exists()


def test_assign_each_is_one_batch_with_per_id_labels(ws: Workspace) -> None:
    ws.assign(["a"], "fx-o")
    assert ws.assign_each({"a": "fx-o", "b": "is-p", "c": "ss-n"}) == ["b", "c"]
    assert ws.edited_labels() == {"a": "fx-o", "b": "is-p", "c": "ss-n"}
    assert ws.undo() == ["b", "c"]
    assert ws.edited_labels() == {"a": "fx-o"}
    with pytest.raises(BadInputError, match="'x-y'"):
        ws.assign_each({"a": "x-y", "b": "fx-o"})
    assert ws.edited_labels() == {"a": "fx-o"}


# --- locked database, disk full ---------------------------------------------------------------------

@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Workspace, sqlite3.Connection]]:
    """A workspace with one edit, and a second connection holding the database with BEGIN EXCLUSIVE."""
    workspace = Workspace(tmp_path / "ws.sqlite", busy_timeout_s=0.05)
    workspace.assign(["a"], "fx-o")
    workspace.assign(["b"], "fx-v")
    workspace.undo()
    other = sqlite3.connect(tmp_path / "ws.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield workspace, other
    other.close()
    workspace.close()


def test_a_locked_database_says_so_and_changes_nothing(locked: tuple[Workspace, sqlite3.Connection],
                                                       tmp_path: Path) -> None:
    ws, other = locked
    for attempt in (lambda: ws.assign(["a"], "ss-n"), lambda: ws.assign_each({"c": "is-k"}), ws.undo, ws.redo):
        with pytest.raises(BadInputError, match=r"ws\.sqlite is locked by another program \(another BST Studio "
                                                r"window\?\); close it and try again") as caught:
            attempt()
        assert "move it away" not in str(caught.value)
    with pytest.raises(BadInputError, match="is locked by another program"):
        Workspace(tmp_path / "ws.sqlite", busy_timeout_s=0.05)   # opening it too: not "move it away"
    other.execute("ROLLBACK")
    assert ws.edited_labels() == {"a": "fx-o"} and ws.can_redo
    assert ws.edit_log()["state"].tolist() == ["done", "undone"]
    assert ws.assign(["a"], "ss-n") == ["a"]                  # free again: saving works


def test_a_full_disk_says_so_and_changes_nothing(ws: Workspace) -> None:
    from bst_core.workspace import WorkspaceSaveError

    ws.assign(["a"], "fx-o")
    pages = ws._conn.execute("PRAGMA page_count").fetchone()[0]
    ws._conn.execute(f"PRAGMA max_page_count = {pages}")      # SQLITE_FULL on the next growth
    with pytest.raises(WorkspaceSaveError, match=r"disk full while saving .*ws\.sqlite; free space and try again"):
        ws.assign([f"id{i}" for i in range(3000)], "fx-v")
    assert ws.edited_labels() == {"a": "fx-o"}
    assert len(ws.edit_log()) == 1


def test_only_a_foreign_or_damaged_file_is_to_be_moved_away(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)   # a damaged header
    with pytest.raises(BadInputError, match="move it away"):
        Workspace(junk)


def test_export_carries_the_audio_status(ws: Workspace, tmp_path: Path) -> None:
    table = pd.DataFrame({"id": ["1", "2", "3"], "label": ["fx-o", "", ""],
                          "audio_status": ["ok", "text only: empty file (0 bytes)", "ok"]})
    back = read_labels_csv(ws.export_labels_csv(tmp_path / "a.csv", table))
    assert back["audio_status"].tolist() == ["ok", "text only: empty file (0 bytes)", "ok"]
    predictions = SimpleNamespace(ids=["3"], labels=["is-k"], scores=np.array([0.4]),
                                  audio_status=["text only: not an audio file"])
    back = read_labels_csv(ws.export_labels_csv(tmp_path / "b.csv", table, predictions))
    assert back["audio_status"].tolist() == ["ok", "text only: empty file (0 bytes)", "text only: not an audio file"]
    old = tmp_path / "old.csv"                 # written before the column existed: still reads
    back.drop(columns=["audio_status"]).to_csv(old, index=False)
    assert read_labels_csv(old)["audio_status"].tolist() == ["", "", ""]
