"""Metadata CSVs in other encodings, unreadable metadata, and ids that must be kept exactly or refused."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bst_core.errors import BadInputError
from bst_core.sources import detect_kind, open_source, read_bsd_dataset, read_evaluation_folder
from bst_core.synthetic import write_bsd_dataset, write_evaluation_folder

SMALL = {"n_per_class": 2, "dim": 8}
FALLBACK_NOTE = "is not UTF-8; read as cp1252 (Windows-1252). Save it as UTF-8 to silence this note."


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def _bsd(tmp_path: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    root = write_bsd_dataset(tmp_path / "bsd", **SMALL)
    meta = root / "metadata" / "BSD10k_metadata.csv"
    rows = _rows(meta)
    for row in rows:  # plain ASCII, so that only the values a test sets are encoding-specific
        for column in row:
            row[column] = row[column].encode("ascii", "replace").decode("ascii")
    return root, meta, rows


def _eval(tmp_path: Path, n: int = 3) -> tuple[Path, Path, list[dict[str, str]]]:
    root = write_evaluation_folder(tmp_path / "ev", n=n, dim=8, with_features=False)
    meta = root / "metadata" / "BSD2k_metadata.csv"
    return root, meta, _rows(meta)


# ---------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_bsd_metadata_in_a_windows_encoding_is_read_and_noted(tmp_path: Path, encoding: str) -> None:
    root, meta, rows = _bsd(tmp_path)
    rows[0]["title"] = "Café ambience"
    if encoding == "cp1252":
        rows[1]["title"] = "“quoted” – 5 €"
    _write(meta, rows, encoding)
    assert detect_kind(root) == "bsd"
    corpus = open_source(root)
    assert corpus.kind == "bsd" and corpus.ids == [r["sound_id"] for r in rows]
    assert corpus.table["title"].tolist() == [r["title"] for r in rows]
    assert f"BSD10k_metadata.csv {FALLBACK_NOTE}" in corpus.notes


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig", "utf-16-be"])
def test_metadata_with_a_byte_order_mark_is_read_without_a_note(tmp_path: Path, encoding: str) -> None:
    root, meta, rows = _eval(tmp_path)
    rows[0]["title"] = "Café 名前 🔔"
    _write(meta, rows, encoding)
    if encoding == "utf-16-be":
        meta.write_bytes(b"\xfe\xff" + meta.read_bytes())
    assert detect_kind(root) == "evaluation"
    corpus = read_evaluation_folder(root)
    assert corpus.ids == [r["anonymous_id"] for r in rows]
    assert corpus.table["title"][0] == "Café 名前 🔔"
    assert not any("UTF-8" in note for note in corpus.notes)


def test_undecodable_metadata_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    root, meta, rows = _eval(tmp_path)
    _write(meta, rows)
    data = meta.read_bytes()
    offset = data.index(b"\n") + 5
    meta.write_bytes(data[:offset] + b"\x81" + data[offset + 1:])   # invalid in UTF-8 and in cp1252
    for call in (detect_kind, read_evaluation_folder, open_source):
        with pytest.raises(BadInputError, match=rf"BSD2k_metadata\.csv.*byte offset {offset}\b"):
            call(root)


def test_unreadable_metadata_never_turns_a_dataset_into_a_folder(tmp_path: Path) -> None:
    root, meta, _ = _bsd(tmp_path)
    meta.write_bytes(b"")
    with pytest.raises(BadInputError, match=r"BSD10k_metadata\.csv"):
        detect_kind(root)
    meta.write_bytes(b"sound_id,class_idx\n1,401\n")
    (root / "metadata" / "extra_metadata.csv").write_bytes(b"x\xe9\x9d\n")
    with pytest.raises(BadInputError, match=r"extra_metadata\.csv.*byte offset 1\b"):
        detect_kind(root)


def test_utf16_without_byte_order_mark_is_refused(tmp_path: Path) -> None:
    root, meta, rows = _eval(tmp_path)
    _write(meta, rows, "utf-16-le")
    with pytest.raises(BadInputError, match=r"BSD2k_metadata\.csv.*NUL"):
        detect_kind(root)


def test_hidden_metadata_files_are_ignored(tmp_path: Path) -> None:
    root, _, _ = _bsd(tmp_path)
    (root / "metadata" / "._BSD10k_metadata.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00\x81\x9d")
    assert detect_kind(root) == "bsd"
    assert len(read_bsd_dataset(root)) == 46


def test_freesound_csv_in_cp1252_is_noted(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_bytes("id,title\n1,Café\n2,“quote”\n".encode("cp1252"))
    corpus = open_source(tmp_path / "list.csv")
    assert corpus.table["title"].tolist() == ["Café", "“quote”"]
    assert f"list.csv {FALLBACK_NOTE}" in corpus.notes


def test_decode_text_order_and_offsets() -> None:
    from bst_core.textfile import decode_text

    assert decode_text("é".encode(), "a.csv").encoding == "utf-8"
    assert decode_text("é".encode("utf-8-sig"), "a.csv").text == "é"
    assert decode_text("é".encode("utf-32"), "a.csv").encoding.startswith("utf-32")
    fallback = decode_text(b"caf\xe9", "a.csv")
    assert (fallback.text, fallback.encoding) == ("café", "cp1252")
    assert fallback.note == f"a.csv {FALLBACK_NOTE}"
    for bad in (0x81, 0x8D, 0x8F, 0x90, 0x9D):
        with pytest.raises(BadInputError, match=r"a\.csv.*byte offset 2\b"):
            decode_text(b"ab" + bytes([bad]), "a.csv")
    with pytest.raises(BadInputError, match=r"a\.csv.*UTF-16.*byte offset 4\b"):
        decode_text(b"\xff\xfea\x00\x00\xdc", "a.csv")   # lone low surrogate after the BOM


def test_shorten() -> None:
    from bst_core.textfile import shorten

    assert shorten("abc") == "'abc'"
    assert shorten("a\x00b") == "'a\\x00b'"
    long = shorten("x" * 500)
    assert len(long) <= 60 and long.startswith("'xxx") and long.endswith("…")


# ---------------------------------------------------------------------- ids are kept exactly or refused
@pytest.mark.parametrize(("bad", "shown"), [
    (" 12345", r"' 12345'"), ("12345 ", r"'12345 '"), ("12\x0045", r"'12\\x0045'"), ("12\n45", r"'12\\n45'"),
    ("12\t45", r"'12\\t45'"),
])
def test_bsd_ids_that_cannot_be_kept_are_refused(tmp_path: Path, bad: str, shown: str) -> None:
    root, meta, rows = _bsd(tmp_path)
    rows[3]["sound_id"] = bad
    _write(meta, rows)
    with pytest.raises(BadInputError, match=rf"BSD10k_metadata\.csv: data row 4 has sound_id {shown}"):
        read_bsd_dataset(root)


def test_evaluation_id_with_nul_is_refused_not_cut(tmp_path: Path) -> None:
    root, meta, rows = _eval(tmp_path)
    rows[1]["anonymous_id"] = rows[1]["anonymous_id"][:8] + "\x00" + rows[1]["anonymous_id"][8:]
    _write(meta, rows)
    with pytest.raises(BadInputError, match=r"BSD2k_metadata\.csv: data row 2 has anonymous_id '.{8}\\x00"):
        read_evaluation_folder(root)


def test_long_bad_ids_are_shortened_in_the_message(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(f"id,title\n1,a\n{'y' * 300} ,b\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"m\.csv: data row 2 has id 'yyy") as caught:
        open_source(tmp_path / "m.csv")
    assert len(str(caught.value)) < 400 and "y" * 100 not in str(caught.value)


def test_freesound_ids_are_kept_exactly(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,title\n1,a,\n02,b,\nx y,c\n", encoding="utf-8")
    corpus = open_source(tmp_path / "m.csv")
    assert corpus.ids == ["1", "02", "x y"]
    assert corpus.table["title"].tolist() == ["a", "b", "c"]
    (tmp_path / "m.csv").write_text('id,title\n1,a\n" 2",b\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"m\.csv: data row 2 has id ' 2'"):
        open_source(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("id,title\n1,a\n2,b,extra\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"m\.csv: data row 2 \(line 3\) has 3 fields, but the header has 2"):
        open_source(tmp_path / "m.csv")


def test_folder_files_whose_names_cannot_be_ids_are_left_out_and_noted(tmp_path: Path) -> None:
    root = tmp_path / "sounds"
    root.mkdir()
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(100, np.float32), 8000, format="WAV")
    names = ["good.wav", "line\nbreak.wav", "tab\there.wav", os.fsdecode(b"caf\xe9.wav")]
    written = 0
    for name in names:
        try:
            (root / name).write_bytes(buffer.getvalue())
            written += 1
        except (OSError, UnicodeError):   # a file system that refuses such names
            pass
    corpus = open_source(root)
    assert corpus.ids == ["good.wav"]
    assert any(note.startswith(f"{written - 1} audio files were left out") for note in corpus.notes)
