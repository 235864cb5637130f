"""Reading text and CSV files whose encoding is not known, with a predictable detection order.

Order: a byte-order mark (UTF-8, UTF-16, UTF-32) decides first; then strict UTF-8; then the
stated fallback cp1252 (Windows-1252), which a :attr:`DecodedText.note` reports. Bytes that fit
none of these raise :class:`~bst_core.errors.BadInputError` naming the file and the byte offset.

CSV files are parsed with the standard library's reader, so every value comes back exactly as
written (NUL characters, spaces and line breaks included); the caller decides what to refuse.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bst_core.errors import BadInputError
from bst_core.text import MAX_FIELD_CHARS

FALLBACK_ENCODING = "cp1252"
_BOMS: tuple[tuple[bytes, str, str], ...] = (   # longest first: the UTF-32 LE BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
_FIELD_LIMIT = 2**31 - 1   # the csv module's default (128 KiB per field) is too small for free text


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of ``str(value)`` for a message, cut to at most ``limit`` characters ("…" marks a cut)."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class DecodedText:
    """The text of a file, the codec that decoded it, and a note when the fallback was used ("" if not)."""

    text: str
    encoding: str
    note: str = ""


def _name(source: str | os.PathLike[str]) -> str:
    return Path(source).name or str(source)


def decode_text(data: bytes, source: str | os.PathLike[str]) -> DecodedText:
    """Decode ``data`` read from ``source`` (named in notes and errors): BOM, then UTF-8, then cp1252."""
    for bom, codec, family in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data[len(bom):].decode(codec), codec)
            except UnicodeDecodeError as exc:
                raise BadInputError(
                    f"{source} starts with a {family} byte-order mark, but the bytes at byte offset "
                    f"{len(bom) + exc.start} are not valid {family} ({exc.reason}). Save the file again "
                    "as UTF-8 and open it again.") from exc
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode(FALLBACK_ENCODING)
        except UnicodeDecodeError as exc:
            raise BadInputError(
                f"{source} is neither UTF-8 nor Windows-1252 text: byte 0x{data[utf8_error.start]:02X} at byte "
                f"offset {utf8_error.start} is not valid UTF-8, and byte 0x{data[exc.start]:02X} at byte offset "
                f"{exc.start} is undefined in Windows-1252. Save the file as UTF-8 and open it again.") from exc
    return DecodedText(text, FALLBACK_ENCODING,
                       f"{_name(source)} is not UTF-8; read as cp1252 (Windows-1252). "
                       "Save it as UTF-8 to silence this note.")


def read_text(path: str | os.PathLike[str]) -> DecodedText:
    """The decoded text of a file (see :func:`decode_text`); an unreadable file raises BadInputError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path} cannot be read ({exc.strerror or exc}). Check that it exists and that "
                            "you may read it.") from exc
    return decode_text(data, path)


MAX_CELL_CHARS = 100_000
"""Longest value kept from a CSV cell; longer ones are cut (and counted in the note)."""


@dataclass(frozen=True)
class CsvTable:
    """A parsed CSV: every column ``str``, values exactly as written; the encoding and its note."""

    frame: pd.DataFrame
    encoding: str
    note: str = ""


def _column_names(header: list[str]) -> list[str]:
    """Header cells stripped; empty ones "Unnamed: <k>", repeats "<name>.1", "<name>.2" (as pandas does)."""
    names: list[str] = []
    seen: set[str] = set()
    for k, cell in enumerate(header):
        base = cell.strip() or f"Unnamed: {k}"
        name, copy = base, 0
        while name in seen:
            copy += 1
            name = f"{base}.{copy}"
        seen.add(name)
        names.append(name)
    return names


def _lines(text: str) -> Iterator[str]:
    """The ``\n``-terminated lines of ``text``, one at a time (``io.StringIO`` would hold a 4-byte-per-
    character copy of the whole file; a 50 MB field then cost 600 MB)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end + 1
        yield text[start:stop]
        start = stop


def read_csv_table(path: str | os.PathLike[str], *, header_only: bool = False) -> CsvTable:
    """A comma-separated file with a header row, decoded as :func:`decode_text` does.

    Blank lines are skipped; short rows are padded with ""; extra trailing fields are allowed only
    when empty. ``header_only`` parses just the header (the whole file is still decoded). "Data row
    N" in errors counts the rows after the header, blank lines not included.
    """
    decoded = read_text(path)
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    reader = csv.reader(_lines(decoded.text))
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise BadInputError(f"{path} is empty: it has no header row. Use a CSV file whose first line "
                                "names the columns.")
        if any("\x00" in cell for cell in header):
            offset = Path(path).read_bytes().find(b"\x00")
            raise BadInputError(
                f"{path} has NUL bytes in its header (the first at byte offset {offset}): it is probably UTF-16 "
                "without a byte-order mark. Save it as UTF-8 and open it again.")
        names = _column_names(header)
        rows: list[list[str]] = []
        for row in ([] if header_only else reader):
            if not row:
                continue
            if len(row) > len(names):
                if any(row[len(names):]):
                    raise BadInputError(
                        f"{path}: data row {len(rows) + 1} (line {reader.line_num}) has {len(row)} fields, but "
                        f"the header has {len(names)}. Put quotes around values that contain commas.")
                row = row[: len(names)]
            rows.append(row + [""] * (len(names) - len(row)))
    except csv.Error as exc:
        raise BadInputError(f"{path} cannot be read as CSV (line {reader.line_num}: {exc}). Check that it is "
                            "a complete, comma-separated file with a header row.") from exc
    note = decoded.note
    long_cells = 0
    for row in rows:           # a pathological cell is cut here, so no later copy of it costs memory
        for k, cell in enumerate(row):
            if len(cell) > MAX_CELL_CHARS:
                row[k] = cell[:MAX_CELL_CHARS]
                long_cells += 1
    if long_cells:
        note = " ".join(filter(None, [note, (
            f"{long_cells} value(s) of {path} were longer than {MAX_CELL_CHARS:,} characters and were cut to "
            f"that length (only the first {MAX_FIELD_CHARS:,} characters of a title, tags or description are "
            "embedded anyway).")]))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    frame = pd.DataFrame({name: pd.Series(list(values), dtype=str) for name, values in zip(names, columns,
                                                                                          strict=True)})
    return CsvTable(frame, decoded.encoding, note)
