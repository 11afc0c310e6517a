"""Finding a source's files, their encoding and their header rows (`reading.py` reads
their rows).

Messages here are for the analyst who sent the file, and they end up in logs and mails:
they name the file, the line or column and what was expected, and never quote a cell.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from union_pipeline.ingest.specs import SourceSpec

BATCH_BYTES = 64 << 20
# .txt and .tsv: Excel's "Unicode 文本" and "文本文件(制表符分隔)" saves
TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
EXCEL_SUFFIXES = {".xlsx", ".xls"}
SUFFIXES = TEXT_SUFFIXES | EXCEL_SUFFIXES
DELIMITERS = (",", "\t", ";", "|")
# Excel holds at most 32,767 characters in a cell: a longer one is no export's value
CELL_LIMIT = 32_767
# Exports put a title, a date line or a blank row above the header; ten rows is plenty.
HEADER_SEARCH_ROWS = 10
FIRST_CELL = "_first_cell"
LINE = "_line"
# The shapes of an ID number or a mobile number (see parse.PII_PATTERN), for the few
# texts Python itself prints: header names.
_PII_RUN = re.compile(r"\d{17}[\dXx]|\d{15}|1[3-9]\d[- ]?\d{4}[- ]?\d{4}")


# A title or data row in the first lines may hold a cell longer than the csv module's
# 128 KiB default; finding the header must not fail on it (the row rules hold it back).
csv.field_size_limit(sys.maxsize)


class FileError(ValueError):
    """A whole file (or folder) cannot be used; the message is for the analyst."""


@dataclass
class RawFile:
    path: Path
    relative: str
    encoding: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    unknown_columns: list[str] = field(default_factory=list)
    blank_lines: int = 0  # lines the CSV reader itself dropped (e.g. ",,," short of fields)

    def metadata(self) -> dict:
        return {
            "file": self.relative,
            "format": self.encoding,
            "sheet": self.sheet,
            "header_row": self.header_row,
            "unknown_columns": self.unknown_columns,
        }


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _candidates(spec: SourceSpec, raw_dir: Path) -> tuple[list[Path], list[str]]:
    """(files to read, other files in the folder) — lock files and hidden files aside."""
    folder = raw_dir / spec.folder
    if not folder.is_dir():
        return [], []
    read, other = [], []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.name.startswith(("~$", ".")):
            continue
        if p.suffix.lower() in SUFFIXES and (p.suffix.lower() != ".txt" or _is_export(spec, p)):
            read.append(p)
        elif p.is_file() or p.is_symlink():
            other.append(f"{spec.folder}/{p.name}")
    return read, other


def _is_export(spec: SourceSpec, path: Path) -> bool:
    """A .txt file is read when it is an export (Excel's "Unicode 文本" save): its first rows
    hold the source's header row. A note beside the exports (说明.txt) is not. Only the
    head is looked at, leniently: the reader decides the encoding strictly later."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 << 10)
    except OSError:
        return False
    encodings = ("utf-16",) if head.startswith(UTF16_BOMS) else ("utf-8-sig", "gb18030")
    for encoding in encodings:
        lines = head.decode(encoding, "replace").splitlines(keepends=True)
        if sniff(spec, lines[:HEADER_SEARCH_ROWS])[2] is not None:
            return True
    return False


def unread_files(spec: SourceSpec, raw_dir: Path) -> list[str]:
    """Files in the source folder that are not read (not .csv/.txt/.tsv/.xlsx/.xls)."""
    return _candidates(spec, raw_dir)[1]


def discover(spec: SourceSpec, raw_dir: Path) -> list[RawFile]:
    """The source's files in lexical order of their names (later files win)."""
    folder = raw_dir / spec.folder
    paths, _ = _candidates(spec, raw_dir)
    files = []
    for p in paths:
        relative = f"{spec.folder}/{p.name}"
        # a link may point anywhere on the server: only files inside the drop are data
        if not _inside(p, raw_dir):
            raise FileError(
                f"{relative}: is a link to a file outside the raw folder {raw_dir}; "
                "copy the file itself into the folder"
            )
        if p.is_file():
            files.append(RawFile(p, relative))
        elif p.is_symlink():
            raise FileError(f"{relative}: is a link to a file that does not exist")
    if not files and spec.required:
        problem = "is missing" if not folder.is_dir() else "holds no .csv, .txt, .xlsx or .xls file"
        raise FileError(
            f"{spec.folder}/ ({spec.title_zh}) {problem} in {raw_dir}: "
            f"this source is required for a refresh"
        )
    return files


# ------------------------------------------------------------------------ encodings

# Excel's "Unicode 文本" save is UTF-16 with a byte-order mark, tab-separated.
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_IDEOGRAPH = re.compile(r"[\u3400-\u9fff]")


@dataclass
class _Decoded:
    """How far a file decodes: `offset`/`line` of the first bad byte (None when the whole
    file decodes) and whether a whole line of Chinese decoded before it."""

    offset: int | None = None
    line: int = 1
    chinese_line_before: bool = False


def _first_error(path: Path, encoding: str, start: int) -> _Decoded:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset, lines, chinese = start, 1, False
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            chunk = f.read(16 << 20)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                # the decoder held back `pending` bytes of the chunk before: an error may
                # start among them, before this chunk (or at the end of the file)
                at = err.start - pending
                before = chunk[: max(at, 0)]
                # only whole lines count: the bad line's start may be a GBK character
                # whose bytes happen to be valid UTF-8 (D6 B8, 指, is U+05B8)
                whole = before[: before.rfind(b"\n") + 1]
                if not chinese and whole:
                    chinese = bool(_IDEOGRAPH.search(whole.decode(encoding, "replace")))
                return _Decoded(offset + at, lines + before.count(b"\n"), chinese)
            if not chunk:
                return _Decoded(None, lines, chinese)
            if not chinese and not chunk.isascii():
                chinese = bool(_IDEOGRAPH.search(text))
            lines += chunk.count(b"\n")
            offset += len(chunk)


def detect_encoding(path: Path, relative: str) -> str:
    """What the file is: UTF-16 when it starts with a UTF-16 byte-order mark; UTF-8 (with
    or without BOM) when the whole file decodes as UTF-8; otherwise GB18030 (a superset of
    GBK), which the reader decodes strictly (`undecodable` says why when it cannot).

    Refused here: a file with a UTF-8 mark, or with whole lines of Chinese in UTF-8, that
    stops being UTF-8 further on (rows pasted from a GBK file): read as GBK its Chinese
    would turn into nonsense without an error.
    """
    with open(path, "rb") as f:
        start = f.read(4)
    if start.startswith(UTF32_BOMS):
        raise FileError(
            f"{relative}: is saved as UTF-32, which the pipeline does not read; save it "
            "again as CSV UTF-8 (逗号分隔) from Excel"
        )
    if start.startswith(UTF16_BOMS):
        return "utf-16"
    bom = start.startswith(codecs.BOM_UTF8)
    failure = _first_error(path, "utf-8", 3 if bom else 0)
    if failure.offset is None:
        return "utf-8-sig" if bom else "utf-8"
    if bom or failure.chinese_line_before:
        why = (
            "starts with a UTF-8 byte-order mark"
            if bom
            else "has lines of Chinese in UTF-8 before it"
        )
        raise FileError(
            f"{relative}: line {failure.line} (byte offset {failure.offset}) is not UTF-8 "
            f"although the file {why}: it mixes encodings (e.g. rows pasted from a GBK "
            "file); open it in Excel or an editor and save the whole file once as UTF-8 CSV"
        )
    # GBK/GB18030 from here: the reader decodes it strictly as it reads (a second decode
    # of the whole file first would double the dearest part of reading it)
    return "gb18030"


def undecodable(path: Path, relative: str) -> FileError:
    """The error for a file the GB18030 reader could not decode: neither UTF-8 nor GBK."""
    failure = _first_error(path, "gb18030", 0)
    line, offset = failure.line, failure.offset or 0
    return FileError(
        f"{relative}: cannot be decoded as UTF-8 or GBK/GB18030 (first bad byte at line "
        f"{line}, byte offset {offset}); save the export as UTF-8 or GBK CSV"
    )


# -------------------------------------------------------------------------- headers


def normalise_header(text: str | None) -> str:
    """Full-width letters, spaces anywhere and a trailing required-mark do not matter."""
    text = unicodedata.normalize("NFKC", text or "").replace("\ufeff", "")
    return re.sub(r"\s+", "", text).strip("*").lower()


def _header_lookup(spec: SourceSpec) -> dict[str, str]:
    return {normalise_header(h): name for h, name in spec.header_map.items()}


def _score(lookup: dict[str, str], row: list) -> int:
    return len({lookup[k] for cell in row if (k := normalise_header(cell)) in lookup})


def _safe_header(text: str) -> str:
    """A header as printed: an ID- or phone-shaped run is not printed."""
    return _PII_RUN.sub("<number>", text.strip())


def expected_headers(spec: SourceSpec) -> str:
    return ", ".join(c.header for c in spec.columns)


def find_header(spec: SourceSpec, rows: list[list]) -> int | None:
    """Index of the header row among the first rows: the earliest with the most known
    headers, at least two (so a data row cannot pass for one)."""
    lookup = _header_lookup(spec)
    scores = [_score(lookup, r) for r in rows[:HEADER_SEARCH_ROWS]]
    best = max(scores, default=0)
    if best < min(2, len(spec.columns)):
        return None
    return scores.index(best)


def canonical_names(spec: SourceSpec, raw_file: RawFile, headers: list) -> list[str]:
    lookup = _header_lookup(spec)
    names, seen = [], {}
    for i, header in enumerate(headers):
        text = (header or "").strip().lstrip("\ufeff")
        name = lookup.get(normalise_header(text))
        if name is None:
            raw_file.unknown_columns.append(_safe_header(text) or f"<empty header #{i + 1}>")
            name = f"__ignored_{i}"
        elif name in seen:
            first = seen[name]
            raise FileError(
                f"{raw_file.relative}{_where(raw_file)}: columns {first + 1} "
                f"({_safe_header(headers[first])}) and {i + 1} ({_safe_header(text)}) are "
                f"both {name} ({spec.column(name).header}); delete or rename one of them"
            )
        else:
            seen[name] = i
        names.append(name)
    missing = [c for c in spec.columns if c.required and c.name not in seen]
    if missing:
        wanted = ", ".join(f"{c.header} ({c.name})" for c in missing)
        found = ", ".join(_safe_header(h or "") for h in headers if (h or "").strip())
        what = "column" if len(missing) == 1 else "columns"
        verb = "is" if len(missing) == 1 else "are"
        raise FileError(
            f"{raw_file.relative}{_where(raw_file)}: required {what} {wanted} {verb} missing; "
            f"the header row has the columns: {found}"
        )
    return names


def _where(raw_file: RawFile) -> str:
    sheet = f", sheet {raw_file.sheet}" if raw_file.sheet else ""
    row = raw_file.header_row
    return f"{sheet}, header row {row}" if row and row > 1 else sheet


def no_header(spec: SourceSpec, raw_file: RawFile, what: str) -> FileError:
    return FileError(
        f"{raw_file.relative}: no header row found in the first {HEADER_SEARCH_ROWS} rows of "
        f"{what}; expected a row with the headers {expected_headers(spec)} (or the canonical "
        f"names in assets/sources/{spec.name}.yaml). Is the header row missing?"
    )


# ----------------------------------------------------------------------- header rows


def head_lines(raw_file: RawFile, encoding: str) -> list[str]:
    try:
        with open(raw_file.path, encoding=encoding, newline="") as f:
            return list(islice(f, HEADER_SEARCH_ROWS))
    except UnicodeDecodeError:
        raise undecodable(raw_file.path, raw_file.relative) from None


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    # one line, one row: the same rule as the reader below (newlines_in_values=False)
    return [next(csv.reader([line], delimiter=delimiter), []) for line in lines]


def sniff(spec: SourceSpec, lines: list[str]) -> tuple[str, list[list[str]], int | None]:
    """(delimiter, head rows, header index): the delimiter under which a header row holds
    the most known headers. Offices save tab-separated text as .csv, and Europe-minded
    tools use semicolons; the comma wins ties."""
    best = (",", _split(lines, ","), None, 0)
    lookup = _header_lookup(spec)
    for delimiter in DELIMITERS:
        if delimiter != "," and delimiter not in "".join(lines):
            continue
        rows = _split(lines, delimiter)
        index = find_header(spec, rows)
        score = _score(lookup, rows[index]) if index is not None else 0
        if score > best[3]:
            best = (delimiter, rows, index, score)
    return best[:3]


def district_files(spec: SourceSpec, folder: Path) -> dict[str, Path]:
    """The files the loader would read in one district's (or the city's) folder, by name
    relative to it."""
    try:
        return {f.relative: f.path for f in discover(spec, folder)}
    except FileError:
        return {}  # the load itself says what is missing
