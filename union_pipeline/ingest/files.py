"""Finding a source's files and reading them as batches of text columns.

Every value is read as text: typing is one SQL pass later (see `parse.py`), so that an
unparseable value becomes a quarantined row rather than a failed file.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from union_pipeline.ingest.specs import SourceSpec

BATCH_BYTES = 64 << 20
SUFFIXES = {".csv", ".xlsx"}


class FileError(ValueError):
    """A whole file (or folder) cannot be used; the message is for the analyst."""


@dataclass
class RawFile:
    path: Path
    relative: str
    encoding: str | None = None
    unknown_columns: list[str] = field(default_factory=list)


def discover(spec: SourceSpec, raw_dir: Path) -> list[RawFile]:
    """The source's files in lexical order of their names (later files win)."""
    folder = raw_dir / spec.folder
    files = (
        sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()
             and not p.name.startswith(("~$", "."))),
            key=lambda p: p.name,
        )
        if folder.is_dir()
        else []
    )
    if not files and spec.required:
        problem = "is missing" if not folder.is_dir() else "holds no .csv or .xlsx file"
        raise FileError(
            f"{spec.folder}/ ({spec.title_zh}) {problem} in {raw_dir}: "
            f"this source is required for a refresh"
        )
    return [RawFile(p, f"{spec.folder}/{p.name}") for p in files]


def detect_encoding(path: Path, relative: str) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK); strict, whole file."""
    with open(path, "rb") as f:
        head = f.read(3)
    if head == codecs.BOM_UTF8:
        return "utf-8-sig"
    failure = None
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        offset = 0
        try:
            with open(path, "rb") as f:
                while chunk := f.read(16 << 20):
                    decoder.decode(chunk)
                    offset += len(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError as err:
            failure = failure or (offset + err.start)
    raise FileError(
        f"{relative}: cannot be decoded as UTF-8 or GBK/GB18030 (first bad byte at offset "
        f"{failure}); save the export as UTF-8 or GBK CSV"
    )


def _canonical_names(spec: SourceSpec, raw_file: RawFile, headers: list[str]) -> list[str]:
    mapping = spec.header_map
    names, seen = [], set()
    for i, header in enumerate(headers):
        header = (header or "").strip().lstrip("\ufeff")
        name = mapping.get(header)
        if name is None or name in seen:
            raw_file.unknown_columns.append(header or f"<empty header #{i + 1}>")
            name = f"__ignored_{i}"
        seen.add(name)
        names.append(name)
    missing = [c for c in spec.columns if c.required and c.name not in seen]
    if missing:
        wanted = ", ".join(f"{c.header} ({c.name})" for c in missing)
        found = ", ".join(h.strip() for h in headers)
        what = "column" if len(missing) == 1 else "columns"
        verb = "is" if len(missing) == 1 else "are"
        raise FileError(
            f"{raw_file.relative}: required {what} {wanted} {verb} missing; "
            f"the file has the columns: {found}"
        )
    return names


def _keep(spec: SourceSpec, table: pa.RecordBatch | pa.Table, names: list[str]):
    known = {c.name for c in spec.columns}
    keep = [i for i, n in enumerate(names) if n in known]
    return table.select(keep).rename_columns([names[i] for i in keep])


def _read_csv(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    encoding = detect_encoding(raw_file.path, raw_file.relative)
    raw_file.encoding = encoding
    with open(raw_file.path, encoding=encoding, newline="") as f:
        header_line = f.readline()
    if not header_line.strip():
        raise FileError(f"{raw_file.relative}: the file is empty (no header row)")
    headers = next(csv.reader([header_line]))
    names = _canonical_names(spec, raw_file, headers)
    bad_rows = []

    def on_invalid_row(row) -> str:
        # remember where, never what: the row's text may hold names and ID numbers
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "error"

    try:
        reader = pacsv.open_csv(
            raw_file.path,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding.startswith("utf-8") else encoding,
                column_names=names,
                skip_rows=1,
                block_size=BATCH_BYTES,
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=False, invalid_row_handler=on_invalid_row
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            yield _keep(spec, batch, names)
    except pa.ArrowInvalid as err:
        if bad_rows:
            number, expected, actual = bad_rows[0]
            where = f"line {number + 1}" if number is not None else "a row"
            raise FileError(
                f"{raw_file.relative}: {where} has {actual} fields where the header has "
                f"{expected}; fix or re-export the file"
            ) from None
        problem = str(err).split(":", 1)[0]  # pyarrow quotes the row after the colon
        raise FileError(f"{raw_file.relative}: not a readable CSV file ({problem})") from None


def _read_xlsx(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    import fastexcel

    raw_file.encoding = "xlsx"
    try:
        sheet = fastexcel.read_excel(str(raw_file.path)).load_sheet(0, dtypes="string")
        table = pa.Table.from_batches([sheet.to_arrow()])
    except Exception as err:  # fastexcel raises its own error types per problem
        raise FileError(f"{raw_file.relative}: not a readable xlsx workbook: {err}") from err
    names = _canonical_names(spec, raw_file, list(table.column_names))
    table = _keep(spec, table.cast(pa.schema([(n, pa.string()) for n in table.column_names])),
                  names)
    yield from table.to_batches(max_chunksize=1_000_000)


def read_batches(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    """Text batches with canonical column names (unknown columns dropped and recorded)."""
    if raw_file.path.suffix.lower() == ".xlsx":
        return _read_xlsx(spec, raw_file)
    return _read_csv(spec, raw_file)
