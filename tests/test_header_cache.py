"""The folder reader's header cache: used only while every file's stamp is unchanged, never stale."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bst_core.sources import folder, header_cache
from bst_core.sources.folder import read_audio_folder

SR = 22_050


def wav(path: Path, title: str, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", SR, 1, format="WAV") as handle:
        handle.title = title
        handle.write(np.zeros(int(seconds * SR), np.float32))
    return path


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Headers remembered at once (no racy window) and the files whose header was really read."""
    monkeypatch.setattr(header_cache, "RACY_NS", 0)
    reads: list[str] = []
    real = folder._embedded

    def spy(path: Path) -> tuple[dict[str, str], float]:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(folder, "_embedded", spy)
    return reads


def titles(root: Path) -> dict[str, str]:
    return dict(read_audio_folder(root).table[["id", "title"]].itertuples(index=False, name=None))


def test_unchanged_files_are_not_read_again_and_give_the_same_table(tmp_path: Path, counted: list[str]) -> None:
    wav(tmp_path / "a" / "one.wav", "First")
    wav(tmp_path / "two.wav", "Second", 0.5)
    first = read_audio_folder(tmp_path).table
    assert sorted(counted) == ["one.wav", "two.wav"]
    counted.clear()
    again = read_audio_folder(tmp_path).table
    assert counted == []
    pd.testing.assert_frame_equal(first, again)
    assert again.set_index("id").loc["two.wav", "duration_s"] == pytest.approx(0.5)


def test_same_size_and_restored_mtime_is_read_again(tmp_path: Path, counted: list[str]) -> None:
    """Rewritten in place (same inode, same size) with its mtime set back: only ctime tells, and it does."""
    path = wav(tmp_path / "clip.wav", "Alpha")
    assert titles(tmp_path) == {"clip.wav": "Alpha"}
    before = os.stat(path)
    time.sleep(0.05)   # past the kernel's timestamp tick
    wav(path, "Omega")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    counted.clear()
    assert titles(tmp_path) == {"clip.wav": "Omega"}
    assert counted == ["clip.wav"]


def test_a_file_replaced_by_another_with_the_same_stamp_times_is_read_again(tmp_path: Path,
                                                                            counted: list[str]) -> None:
    path = wav(tmp_path / "clip.wav", "Alpha")
    assert titles(tmp_path) == {"clip.wav": "Alpha"}
    before = os.stat(path)
    other = wav(tmp_path / "elsewhere" / "other.wav", "Gamma")
    shutil.move(other, path)   # another inode under the same name
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    counted.clear()
    assert titles(tmp_path)["clip.wav"] == "Gamma"
    assert counted == ["clip.wav"]


def test_a_just_changed_file_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the racy window (a rewrite could keep the same stamp) the header is read every time."""
    wav(tmp_path / "fresh.wav", "New")
    read_audio_folder(tmp_path)
    data = json.loads(header_cache.cache_path(tmp_path.resolve()).read_text(encoding="utf-8"))
    assert data["ids"] == []


def test_removed_files_are_dropped_and_a_damaged_cache_is_rebuilt(tmp_path: Path, counted: list[str]) -> None:
    wav(tmp_path / "keep.wav", "Kept")
    gone = wav(tmp_path / "gone.wav", "Gone")
    read_audio_folder(tmp_path)
    gone.unlink()
    assert titles(tmp_path) == {"keep.wav": "Kept"}
    cache_file = header_cache.cache_path(tmp_path.resolve())
    assert json.loads(cache_file.read_text(encoding="utf-8"))["ids"] == ["keep.wav"]
    cache_file.write_text('{"format": "bst-header-cache", "ids": [', encoding="utf-8")
    counted.clear()
    assert titles(tmp_path) == {"keep.wav": "Kept"}
    assert counted == ["keep.wav"]
    assert json.loads(cache_file.read_text(encoding="utf-8"))["ids"] == ["keep.wav"]


def test_entries_of_another_root_or_reader_are_not_used(tmp_path: Path, counted: list[str]) -> None:
    wav(tmp_path / "clip.wav", "Alpha")
    read_audio_folder(tmp_path)
    cache_file = header_cache.cache_path(tmp_path.resolve())
    data = json.loads(cache_file.read_text(encoding="utf-8"))
    data["tags"] = [{"title": "Forged"}]
    data["reader"] = header_cache.READER + 1
    cache_file.write_text(json.dumps(data), encoding="utf-8")
    assert titles(tmp_path) == {"clip.wav": "Alpha"}
    data["reader"], data["root"] = header_cache.READER, str(tmp_path / "other")
    cache_file.write_text(json.dumps(data), encoding="utf-8")
    assert titles(tmp_path) == {"clip.wav": "Alpha"}


def test_stamps_that_are_not_whole_numbers_are_not_used(tmp_path: Path, counted: list[str]) -> None:
    wav(tmp_path / "clip.wav", "Alpha")
    read_audio_folder(tmp_path)
    cache_file = header_cache.cache_path(tmp_path.resolve())
    data = json.loads(cache_file.read_text(encoding="utf-8"))
    data["tags"] = [{"title": "Forged"}]
    data["mtime_ns"] = [float(v) + 0.5 for v in data["mtime_ns"]]
    cache_file.write_text(json.dumps(data), encoding="utf-8")
    counted.clear()
    assert titles(tmp_path) == {"clip.wav": "Alpha"}
    assert counted == ["clip.wav"]
