"""Folder-of-sounds and Freesound CSV readers: ids, text fields, kept columns, nasty input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bst_core.errors import BadInputError
from bst_core.sources.folder import read_audio_folder, words_of_name
from bst_core.sources.freesound import label_of, read_freesound_csv

SR = 22_050


def wav(path: Path, seconds: float = 0.2, **tags: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", SR, 1) as handle:
        for name, value in tags.items():
            setattr(handle, name, value)
        handle.write(np.zeros(int(seconds * SR), np.float32))
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ---------------------------------------------------------------------- folder
@pytest.fixture
def sound_folder(tmp_path: Path) -> Path:
    root = tmp_path / "My Sounds"
    wav(root / "Animals" / "Dog Barks" / "dog_bark-close_01.wav", 0.5)
    wav(root / "Animals" / "bird.flac", 0.25, title="Robin at dawn", comment="<b>May</b> morning", genre="nature",
        artist="Ana")
    wav(root / "top level.wav")
    wav(root / "ünïcode 名前.wav")
    (root / "broken.wav").write_bytes(b"")
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden").mkdir()
    wav(root / ".hidden" / "secret.wav")
    wav(root / "._resource_fork.wav")
    return root


def test_folder_ids_titles_tags(sound_folder: Path) -> None:
    corpus = read_audio_folder(sound_folder)
    table = corpus.table.set_index("id")
    assert corpus.kind == "folder" and corpus.root == sound_folder.resolve()
    assert sorted(table.index) == sorted([
        "Animals/Dog Barks/dog_bark-close_01.wav", "Animals/bird.flac", "top level.wav",
        "ünïcode 名前.wav", "broken.wav"])
    dog = table.loc["Animals/Dog Barks/dog_bark-close_01.wav"]
    assert dog.title == "dog bark close 01"
    assert dog.tags == "Animals Dog Barks"
    assert dog.duration_s == pytest.approx(0.5)
    assert Path(dog.audio_path).is_absolute() and Path(dog.audio_path).is_file()
    assert (table["source"] == "folder").all() and (table["label"] == "").all()


def test_folder_uses_embedded_tags_and_keeps_the_file_name_words(sound_folder: Path) -> None:
    bird = read_audio_folder(sound_folder).table.set_index("id").loc["Animals/bird.flac"]
    assert bird.title == "Robin at dawn"
    assert bird.tags == "Animals nature"
    assert bird.description == "<b>May</b> morning bird"
    assert bird.artist == "Ana"


def test_folder_lists_unreadable_files_and_notes_hidden_ones(sound_folder: Path) -> None:
    corpus = read_audio_folder(sound_folder)
    broken = corpus.table.set_index("id").loc["broken.wav"]
    assert broken.title == "broken" and np.isnan(broken.duration_s)
    assert any("hidden" in note for note in corpus.notes)


def test_folder_is_never_modified(sound_folder: Path) -> None:
    before = snapshot(sound_folder)
    read_audio_folder(sound_folder)
    assert snapshot(sound_folder) == before


def test_folder_without_audio_is_refused(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(BadInputError, match="No audio files found"):
        read_audio_folder(tmp_path)
    with pytest.raises(BadInputError, match="not a folder"):
        read_audio_folder(tmp_path / "missing")


def test_words_of_name() -> None:
    assert words_of_name("rain__on-a_tin  roof") == "rain on a tin roof"


# ---------------------------------------------------------------------- Freesound CSV
NASTY_CSV = '''id,title,tags,description,class,license,uploader,geotag
1,"Rain, heavy","rain water,storm","<p>Recorded with a ""Zoom""<br>on the roof &amp; deck</p>",fx-n,CC0,ana,41.4 2.1
2,Café ambience,"['cafe', 'people']","multi
line description",SS-I,CC-BY,bob,
3,NA,null,,fx-other,CC0,cid,
4,Dog,,,fx,CC0,dan,
5,Cat,,,dog,CC0,eve,
6,Bell,bell,,201,CC0,fay,
7,,,,,CC0,gus,
'''


@pytest.fixture
def csv_with_audio(tmp_path: Path) -> Path:
    (tmp_path / "meta.csv").write_text(NASTY_CSV, encoding="utf-8")
    for sound_id in ("1", "2", "6"):
        wav(tmp_path / "audio" / f"{sound_id}.wav")
    wav(tmp_path / "audio" / "3__cid__some name.wav")
    return tmp_path / "meta.csv"


def test_csv_reads_text_labels_and_keeps_unknown_columns(csv_with_audio: Path) -> None:
    corpus = read_freesound_csv(csv_with_audio)
    table = corpus.table.set_index("id")
    assert corpus.kind == "csv" and list(table.index) == ["1", "2", "3", "4", "5", "6", "7"]
    assert table.loc["1", "title"] == "Rain, heavy"
    assert table.loc["1", "description"].startswith('<p>Recorded with a "Zoom"')
    assert table.loc["2", "description"] == "multi\nline description"
    assert (table.loc["3", "title"], table.loc["3", "tags"]) == ("NA", "null")
    assert table["label"].to_dict() == {"1": "fx-n", "2": "ss-i", "3": "", "4": "", "5": "", "6": "is-p", "7": ""}
    assert {"class", "license", "uploader", "geotag"} <= set(table.columns)
    assert table.loc["3", "class"] == "fx-other"
    notes = " ".join(corpus.notes)
    assert '1 rows have an "-other" class' in notes
    assert "1 rows have a top-level class only" in notes
    assert "1 rows have a value that is not a BST class" in notes


def test_csv_finds_audio_by_id_and_by_freesound_download_name(csv_with_audio: Path) -> None:
    corpus = read_freesound_csv(csv_with_audio)
    paths = corpus.table.set_index("id")["audio_path"]
    assert Path(paths["1"]).name == "1.wav"
    assert Path(paths["3"]).name == "3__cid__some name.wav"
    assert paths["4"] == "" and paths["7"] == ""
    assert any("3 ids have no audio file" in note for note in corpus.notes)


def test_csv_audio_from_a_path_column_and_audio_dir(tmp_path: Path) -> None:
    wav(tmp_path / "sounds" / "a" / "x.wav")
    (tmp_path / "m.csv").write_text("sound_id,File,title\n10,a/x.wav,X\n11,a/missing.wav,Y\n")
    corpus = read_freesound_csv(tmp_path / "m.csv", audio_dir=tmp_path / "sounds")
    table = corpus.table.set_index("id")
    assert table.loc["10", "audio_path"] == str(tmp_path / "sounds" / "a" / "x.wav")
    assert table.loc["11", "audio_path"].endswith("missing.wav")
    assert table.loc["10", "File"] == "a/x.wav"
    assert any("do not exist" in note for note in corpus.notes)


def test_csv_column_names_that_the_corpus_uses_are_kept_renamed(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("ID,Title,label,source\n1,Hi,mine,web\n")
    table = read_freesound_csv(tmp_path / "m.csv").table
    assert (table.loc[0, "id"], table.loc[0, "title"]) == ("1", "Hi")
    assert (table.loc[0, "csv_label"], table.loc[0, "csv_source"]) == ("mine", "web")
    assert (table.loc[0, "label"], table.loc[0, "source"]) == ("", "csv")


def test_csv_without_id_column_names_file_and_columns(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("name,title\nx,y\n")
    with pytest.raises(BadInputError, match=r"m\.csv has no `id` or `sound_id` column \(columns: name, title\)"):
        read_freesound_csv(tmp_path / "m.csv")


def test_csv_duplicate_ids_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,title\n1,a\n1,b\n")
    with pytest.raises(BadInputError, match="more than once"):
        read_freesound_csv(tmp_path / "m.csv")
    with pytest.raises(BadInputError, match="does not exist"):
        read_freesound_csv(tmp_path / "nope.csv")
    with pytest.raises(BadInputError, match="Audio folder"):
        read_freesound_csv(tmp_path / "m.csv", audio_dir=tmp_path / "nowhere")


@pytest.mark.parametrize(("value", "expected"), [
    ("fx-o", ("fx-o", "target")), (" IS-W ", ("is-w", "target")), ("401", ("fx-o", "target")),
    ("499", ("", "other")), ("fx-other", ("", "other")), ("400", ("", "top")), ("ss", ("", "top")),
    ("", ("", "empty")), ("dog", ("", "unknown")), ("999", ("", "unknown")),
])
def test_label_of(value: str, expected: tuple[str, str]) -> None:
    assert label_of(value) == expected


def test_unreadable_folder_entries_are_noted(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can list any folder; chmod 000 does not stop it")
    wav(tmp_path / "ok.wav")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        corpus = read_audio_folder(tmp_path)
    finally:
        locked.chmod(0o755)
    assert any("could not list folder" in note for note in corpus.notes)


def test_csv_paths_outside_the_csv_folder_are_allowed_and_counted(tmp_path: Path) -> None:
    wav(tmp_path / "outside.wav")
    listing = tmp_path / "mine" / "m.csv"
    wav(listing.parent / "in" / "x.wav")
    listing.write_text("id,path\n1,in/x.wav\n2,../outside.wav\n3,/etc/passwd\n4,in/../in/x.wav\n")
    corpus = read_freesound_csv(listing)
    assert corpus.table["audio_path"][1] == str(tmp_path / "mine" / ".." / "outside.wav")
    assert "2 audio path(s) of m.csv point outside its folder, e.g. ../outside.wav, /etc/passwd." in corpus.notes
    listing.write_text("id,path\n1,in/x.wav\n")
    assert not any("point outside" in note for note in read_freesound_csv(listing).notes)


# ---------------------------------------------------------------------- truth from class-named subfolders
def test_class_of_folder_reads_keys_codes_and_names() -> None:
    from bst_core.sources.folder import class_of_folder

    assert class_of_folder("fx-o") == "fx-o" and class_of_folder("FX-O") == "fx-o"
    assert class_of_folder("fx-o objects") == class_of_folder("fx-o_objects") == "fx-o"
    assert class_of_folder("402") == "fx-v" and class_of_folder("Vehicles") == "fx-v"
    assert class_of_folder("Objects - House appliances") == "fx-o"
    assert class_of_folder("fx") == "" and class_of_folder("Animals and birds") == "" and class_of_folder("999") == ""


def test_sorted_folders_give_truth_and_leave_the_text(tmp_path: Path) -> None:
    root = tmp_path / "sounds"
    wav(root / "fx-o" / "door.wav")
    wav(root / "Vehicles" / "Cars" / "car pass.wav")            # the innermost class folder counts
    wav(root / "ss-u" / "fx-a" / "dog in street.wav")
    wav(root / "unsorted" / "mystery.wav")
    corpus = read_audio_folder(root, truth_from_subfolders=True)
    table = corpus.table.set_index("id")
    assert table.loc["fx-o/door.wav", "label"] == "fx-o"
    assert table.loc["Vehicles/Cars/car pass.wav", "label"] == "fx-v"
    assert table.loc["ss-u/fx-a/dog in street.wav", "label"] == "fx-a"
    assert table.loc["unsorted/mystery.wav", "label"] == ""
    assert corpus.labelled
    assert table.loc["Vehicles/Cars/car pass.wav", "tags"] == "Cars"      # the class folder is not text
    assert table.loc["fx-o/door.wav", "tags"] == ""
    notes = " ".join(corpus.notes)
    assert "3 of 4 sounds labelled" in notes and "unsorted/mystery.wav" in notes
    plain = read_audio_folder(root).table.set_index("id")                 # off: unlabelled, folders are tags
    assert (plain["label"] == "").all() and plain.loc["fx-o/door.wav", "tags"] == "fx o"


def test_truth_from_subfolders_goes_through_the_workflow_and_is_refused_elsewhere(tmp_path: Path,
                                                                                 bsd_root: Path) -> None:
    from bst_core import pipeline

    root = tmp_path / "sorted"
    wav(root / "m-sp" / "drum.wav")
    corpus = pipeline.open_source(root, truth_from_subfolders=True)
    assert corpus.labels.tolist() == ["m-sp"]
    with pytest.raises(BadInputError, match="only a folder of sounds"):
        pipeline.open_source(bsd_root, truth_from_subfolders=True)


def test_cli_takes_truth_from_subfolders(tmp_path: Path) -> None:
    from bst_core.cli import build_parser

    for command in (["train", "F", "--out", "R"], ["extract", "F"], ["predict", "R", "F", "--out", "P.csv"]):
        assert build_parser().parse_args([*command, "--truth-from-subfolders"]).truth_from_subfolders
