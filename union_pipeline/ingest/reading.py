"""Reading a source's files as batches of text columns (pyarrow for CSV, fastexcel for
Excel), with their line numbers.

Every value is read as text: typing is one SQL pass later (see `parse.py`), so that an
unparseable value becomes a quarantined row rather than a failed file. Finding the files
and their header rows is `files.py`'s, which needs neither numpy nor pyarrow: the launch
decision (`assetkit/unchanged.py`) finds files without paying for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from union_pipeline.ingest.files import (
    BATCH_BYTES,
    EXCEL_SUFFIXES,
    FIRST_CELL,
    HEADER_SEARCH_ROWS,
    LINE,
    FileError,
    RawFile,
    canonical_names,
    detect_encoding,
    find_header,
    head_lines,
    no_header,
    sniff,
    undecodable,
)
from union_pipeline.ingest.specs import SourceSpec


def _first_cell(table: pa.RecordBatch | pa.Table) -> pa.Array:
    """The row's first non-empty cell in file order: tells blank and totals rows apart.
    (A cell of spaces counts here; SQL cleans the cell and decides.)"""
    cells = [column.cast(pa.string()) for column in table.columns]
    first = pc.coalesce(*cells) if cells else pa.nulls(table.num_rows, pa.string())
    return first.combine_chunks() if isinstance(first, pa.ChunkedArray) else first


def _keep(spec: SourceSpec, table, names: list[str], lines: np.ndarray) -> pa.RecordBatch:
    known = {c.name for c in spec.columns}
    keep = [i for i, n in enumerate(names) if n in known]
    arrays = [table.column(i) for i in keep]
    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    return pa.RecordBatch.from_arrays(
        [*arrays, _first_cell(table), pa.array(lines, pa.int32())],
        names=[*(names[i] for i in keep), FIRST_CELL, LINE],
    )


_BLANK_LINE = re.compile(r"[\s,;|]*")
_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", "|": "bar"}


def _read_csv(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    encoding = detect_encoding(raw_file.path, raw_file.relative)
    raw_file.encoding = encoding
    head_text = head_lines(raw_file, encoding)
    if not any(line.strip(" \t\r\n,;|") for line in head_text):
        raise FileError(f"{raw_file.relative}: the file is empty (no header row)")
    delimiter, head, index = sniff(spec, head_text)
    if index is None:
        raise no_header(spec, raw_file, "the file")
    raw_file.header_row = index + 1
    if delimiter != ",":
        raw_file.encoding = f"{encoding}, {_DELIMITER_NAMES[delimiter]}-separated"
    names = canonical_names(spec, raw_file, head[index])
    blank_lines: list[int] = []
    bad_rows = []

    def on_invalid_row(row) -> str:
        # a line of nothing but separators, short of fields, is a blank row, not a broken one
        if _BLANK_LINE.fullmatch(row.text or ""):
            blank_lines.append(row.number)
            return "skip"
        # remember where, never what: the row's text may hold names and ID numbers
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "error"

    emitted = 0
    try:
        reader = pacsv.open_csv(
            raw_file.path,
            read_options=pacsv.ReadOptions(
                # pyarrow transcodes anything but UTF-8 through Python's strict codec
                encoding="utf8" if encoding.startswith("utf-8") else encoding,
                column_names=names,
                skip_rows=index + 1,
                block_size=BATCH_BYTES,
                use_threads=False,  # gives invalid rows their line numbers (and is faster)
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=False,
                ignore_empty_lines=False,  # keeps line numbers true; empty = a blank row
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            n = batch.num_rows
            lines = np.arange(emitted, emitted + n, dtype=np.int64) + index + 2
            for skipped in sorted(blank_lines):  # few: Excel's trailing ",,," lines
                lines[lines >= skipped] += 1
            emitted += n
            yield _keep(spec, batch, names, lines)
    except UnicodeDecodeError:
        raise undecodable(raw_file.path, raw_file.relative) from None
    except pa.ArrowInvalid as err:
        if bad_rows:
            number, expected, actual = bad_rows[0]
            where = f"line {number}" if number is not None else "a row"
            raise FileError(
                f"{raw_file.relative}: {where} has {actual} fields where the header has "
                f"{expected}; fix or re-export the file"
            ) from None
        problem = str(err).split(":", 1)[0]  # pyarrow quotes the row after the colon
        raise FileError(f"{raw_file.relative}: not a readable CSV file ({problem})") from None
    raw_file.blank_lines = len(blank_lines)


def _read_excel(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    import fastexcel

    kind = raw_file.path.suffix.lower().lstrip(".")
    raw_file.encoding = kind
    try:
        book = fastexcel.read_excel(str(raw_file.path))
        sheets = []
        for i, name in enumerate(book.sheet_names):
            table = pa.Table.from_batches(
                [book.load_sheet(i, header_row=None, dtypes="string").to_arrow()]
            )
            head = table.slice(0, HEADER_SEARCH_ROWS).to_pylist()
            index = find_header(spec, [list(r.values()) for r in head])
            if index is not None:
                sheets.append((name, index, table))
    except Exception as err:  # fastexcel raises its own error types per problem
        problem = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise FileError(f"{raw_file.relative}: not a readable {kind} workbook: {problem}") from err
    if not sheets:
        which = "any sheet" if len(book.sheet_names) > 1 else "the sheet"
        raise no_header(spec, raw_file, which)
    if len(sheets) > 1:
        both = ", ".join(s[0] for s in sheets)
        raise FileError(
            f"{raw_file.relative}: sheets {both} all hold this source's headers; only one "
            "sheet per workbook is read, so save each sheet as a file of its own"
        )
    raw_file.sheet, index, table = sheets[0]
    raw_file.header_row = index + 1  # counted from the sheet's first non-empty row
    headers = [None if v is None else str(v) for v in table.slice(index, 1).to_pylist()[0].values()]
    names = canonical_names(spec, raw_file, headers)
    table = _mark_stored_numbers(spec, book, book.sheet_names.index(raw_file.sheet), table, names)
    body = table.slice(index + 1)
    for start in range(0, body.num_rows, 1_000_000):
        part = body.slice(start, 1_000_000)
        lines = np.arange(start, start + part.num_rows, dtype=np.int64) + index + 2
        yield _keep(spec, part, names, lines)


def _mark_stored_numbers(spec: SourceSpec, book, sheet: int, table: pa.Table, names) -> pa.Table:
    """ID and phone cells the workbook stores as numbers, rewritten as Excel shows them
    (3.30211E+17): a float holds 15-17 digits, so an 18-digit ID number read from it has
    digits it never had, and may even pass the check digit. The row rules quarantine such
    a cell as `excel_number` instead of keying it as somebody else."""
    wanted = [i for i, n in enumerate(names) if n in spec.column_names_of("id_number", "phone")]
    if not wanted:
        return table
    # a boolean load gives a value exactly where the cell holds a number (text gives null)
    stored = book.load_sheet(
        sheet, header_row=None, use_columns=wanted, dtypes=dict.fromkeys(wanted, "boolean")
    ).to_arrow()
    for position, i in enumerate(wanted):
        numeric = pc.is_valid(stored.column(position))
        if pc.any(numeric).as_py():
            cells = table.column(i)
            table = table.set_column(
                i, table.field(i), pc.if_else(numeric, _as_excel_shows(cells), cells)
            )
    return table


def _as_excel_shows(cells):
    """Whole numbers in Excel's scientific style (330211199003071232 -> 3.30211E+17), in
    one Arrow pass; other numbers (13.5) keep their text, a float all the same."""
    whole = pc.match_substring_regex(cells, r"^\d+$")
    length = pc.cast(pc.subtract(pc.utf8_length(cells), 1), pa.string())
    mantissa = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(cells, 0, 1), pc.utf8_slice_codeunits(cells, 1, 6), "."
    )
    shown = pc.binary_join_element_wise(mantissa, "E+", length, "")
    return pc.if_else(whole, shown, cells)


def read_batches(spec: SourceSpec, raw_file: RawFile) -> Iterator[pa.RecordBatch]:
    """Text batches with canonical column names (unknown columns dropped and recorded),
    plus `_first_cell` (the row's first non-blank cell) and `_line` (its line or row)."""
    if raw_file.path.suffix.lower() in EXCEL_SUFFIXES:
        return _read_excel(spec, raw_file)
    return _read_csv(spec, raw_file)
