"""Atomic writes: umask modes, disk full as a clear error, files that appear together, stale temps."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bst_core import atomic
from bst_core.errors import BadInputError

ENOSPC = OSError(errno.ENOSPC, "No space left on device")
TORCH_FULL = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 6784 vs 6678")


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_written_files_get_the_umask_mode(tmp_path: Path, umask_022: None) -> None:
    atomic.write_text(tmp_path / "a.csv", "x\n")
    atomic.write_bytes(tmp_path / "b.bin", b"x")
    assert _mode(tmp_path / "a.csv") == 0o644 and _mode(tmp_path / "b.bin") == 0o644
    os.umask(0o077)
    atomic.write_json(tmp_path / "c.json", {})
    assert _mode(tmp_path / "c.json") == 0o600


def test_disk_full_error_recognises_errno_wrappers_and_chains(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    for exc in (ENOSPC, OSError(errno.EDQUOT, "Disk quota exceeded"), TORCH_FULL,
                OSError("27648 requested and 6112 written")):
        error = atomic.disk_full_error(target, exc)
        assert isinstance(error, BadInputError)
        assert str(error) == f"disk full while writing {target}; free some space and run again"
    try:
        try:
            raise ENOSPC
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert atomic.disk_full_error(target, outer) is not None
    assert atomic.disk_full_error(target, ValueError("bad value")) is None
    assert atomic.disk_full_error(target, OSError(errno.EACCES, "Permission denied")) is None


def test_disk_full_inside_a_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"disk full while writing .*table\.csv; free some space"), \
            atomic.atomic_open(target, "w") as handle:
        handle.write("half")
        raise ENOSPC
    assert target.read_text(encoding="utf-8") == "old\n"
    assert _leftovers(tmp_path) == []


def test_save_torch_round_trips_and_a_full_disk_keeps_the_old_model(tmp_path: Path, monkeypatch,
                                                                     umask_022: None) -> None:
    import torch

    target = tmp_path / "fold_1" / "model.pt"
    atomic.save_torch({"w": torch.arange(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(3))
    if os.name != "nt":
        assert _mode(target) == 0o644
    before = target.read_bytes()

    def full_save(obj, handle) -> None:
        handle.write(b"partial")
        raise TORCH_FULL

    monkeypatch.setattr(torch, "save", full_save)
    with pytest.raises(BadInputError, match="disk full while writing"):
        atomic.save_torch({"w": torch.zeros(2)}, target)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------- files that appear together


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_write_files_together_new_folder(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "out" / "task1" / "A_B_task1_1"
    assert atomic.write_files_together(folder, {"a.csv": "id\n", "a.yaml": b"k: 1\n"}) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "a.yaml"]
    assert (folder / "a.yaml").read_bytes() == b"k: 1\n"
    assert _mode(folder) == 0o755 and _mode(folder / "a.csv") == 0o644
    assert _leftovers(tmp_path) == []


def test_write_files_together_replaces_both_and_keeps_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    atomic.write_files_together(folder, {"a.csv": "old", "a.yaml": "old"})
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    atomic.write_files_together(folder, {"a.csv": "new", "a.yaml": "new"})
    assert {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()} == {
        "a.csv": "new", "a.yaml": "new", "notes.txt": "mine"}
    assert _leftovers(tmp_path) == []


def test_disk_full_on_the_second_file_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    real = atomic._write_synced
    calls = []

    def second_fails(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise ENOSPC
        real(path, data)

    monkeypatch.setattr(atomic, "_write_synced", second_fails)
    with pytest.raises(BadInputError, match="disk full while writing"):
        atomic.write_files_together(tmp_path / "out" / "task1" / "pkg", {"a.csv": "x", "a.yaml": "y"})
    assert list(tmp_path.iterdir()) == []          # no half package, no parents created for it


def test_failed_second_rename_restores_the_old_folder(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "pkg"
    atomic.write_files_together(folder, {"a.csv": "old", "a.yaml": "old"})
    real_rename = os.rename

    def rename(src, dst) -> None:
        if Path(dst) == folder and ".old." not in Path(src).name:
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        atomic.write_files_together(folder, {"a.csv": "new", "a.yaml": "new"})
    assert {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()} == {"a.csv": "old", "a.yaml": "old"}
    assert _leftovers(tmp_path) == []


def test_failed_restore_says_where_the_old_folder_is(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "pkg"
    atomic.write_files_together(folder, {"a.csv": "old"})
    real_rename = os.rename

    def rename(src, dst) -> None:
        if Path(dst) == folder:
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(BadInputError, match=r"previous contents are in .*\.old\.tmp") as info:
        atomic.write_files_together(folder, {"a.csv": "new"})
    backup = Path(str(info.value).split("are in ")[1].split(":")[0])
    assert (backup / "a.csv").read_text(encoding="utf-8") == "old"


# ------------------------------------------------------------------------------------ stale temps


def test_clean_stale_tmp_removes_only_old_dot_tmp_entries(tmp_path: Path) -> None:
    old = time.time() - 3600
    stale_file = tmp_path / ".model.pt.abc123.tmp"
    stale_file.write_bytes(b"x" * 100)
    fresh = tmp_path / ".model.pt.def456.tmp"
    fresh.write_bytes(b"x")
    keep = tmp_path / "results.tmp"
    keep.write_text("not ours", encoding="utf-8")
    stale_dir = tmp_path / ".pkg.xyz.tmp"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "f").write_text("x", encoding="utf-8")
    busy_dir = tmp_path / ".busy.xyz.tmp"
    busy_dir.mkdir()
    (busy_dir / "f").write_text("being written", encoding="utf-8")
    nested = tmp_path / "fold_1" / ".model.pt.n.tmp"
    nested.parent.mkdir()
    nested.write_bytes(b"x")
    for path in (stale_file, keep, stale_dir / "sub" / "f", stale_dir / "sub", stale_dir, busy_dir, nested):
        os.utime(path, (old, old))

    removed = atomic.clean_stale_tmp(tmp_path, older_than_s=600)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert fresh.exists() and keep.exists() and busy_dir.exists() and nested.exists()
    assert atomic.clean_stale_tmp(tmp_path, older_than_s=600, recursive=True) == [nested]
    assert atomic.clean_stale_tmp(tmp_path / "missing") == []
