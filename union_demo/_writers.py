"""Writing a `Table` the way the district's systems export it: CSV (GBK, UTF-8 with or
without BOM) with mixed date, amount and boolean styles, or xlsx with real Excel dates.

CSV text is built column-wise with pyarrow compute and written in chunks; xlsx goes
through xlsxwriter's constant-memory mode and is kept to small files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from union_demo._common import DAY0, NA, NA64, NDAYS, Table, to_arrow_text

CHUNK_ROWS = 400_000
EXCEL_EPOCH_OFFSET = 25569  # 1899-12-30 .. 1970-01-01 in days
BOOL_WORDS = ["是", "否", "Y", "N", "1", "0", "true", "false"]


@dataclass(frozen=True)
class Style:
    """How one file writes its values."""

    encoding: str = "utf-8-sig"  # 'gb18030' | 'utf-8-sig' | 'utf-8'
    eol: str = "\n"
    date_p: tuple[float, ...] = (0.55, 0.25, 0.1, 0.1)  # 2019-03-05, 2019/3/5, 2019.3.5, 年月日
    bool_p: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)  # 是/否, Y/N, 1/0, true/false
    amount_p: tuple[float, ...] = (0.6, 0.25, 0.15)  # 1234.50, "1,234.50", 1234.5 / 1234
    space_rate: float = 0.003  # a value with a stray surrounding space


@cache
def _date_table() -> pa.Array:
    days = np.arange(NDAYS, dtype=np.int64) + DAY0
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    y = pc.cast(pa.array(months.astype("datetime64[Y]").astype(np.int64) + 1970), pa.string())
    m = pc.cast(pa.array(months.astype(np.int64) % 12 + 1), pa.string())
    dd = pc.cast(pa.array((d - months.astype("datetime64[D]")).astype(np.int64) + 1), pa.string())
    m2 = pc.utf8_lpad(m, width=2, padding="0")
    d2 = pc.utf8_lpad(dd, width=2, padding="0")
    j = pc.binary_join_element_wise
    iso = j(y, m2, d2, "-")
    slash = j(y, m, dd, "/")
    dot = j(y, m, dd, ".")
    cn = j(y, "年", m, "月", dd, "日", "")
    return pa.concat_arrays([iso, slash, dot, cn])


@cache
def _pad(width: int) -> pa.Array:
    return pa.array([str(i).zfill(width) for i in range(10**width)], type=pa.string())


def _render_dates(values: np.ndarray, style: np.ndarray) -> pa.Array:
    null = values == NA
    code = style.astype(np.int64) * NDAYS + (values.astype(np.int64) - DAY0)
    code[null] = 0
    return pc.take(_date_table(), pa.array(code, mask=null))


def _render_amounts(cents: np.ndarray, style: np.ndarray) -> pa.Array:
    null = cents == NA64
    c = np.where(null, 0, cents)
    neg = c < 0
    a = np.abs(c)
    yuan = a // 100
    frac = a % 100
    s = pc.cast(pa.array(yuan), pa.string())
    frac2 = pc.take(_pad(2), pa.array(frac))
    j = pc.binary_join_element_wise
    plain = j(s, frac2, ".")
    out = plain
    if (style == 1).any():
        g0, g1, g2 = yuan % 1000, (yuan // 1000) % 1000, yuan // 1_000_000
        p3 = _pad(3)
        s0 = pc.take(p3, pa.array(g0))
        s1 = pc.take(p3, pa.array(g1))
        t1 = pc.cast(pa.array(g1), pa.string())
        t2 = pc.cast(pa.array(g2), pa.string())
        sep = pc.if_else(
            pa.array(g2 > 0),
            j(t2, s1, s0, ","),
            pc.if_else(pa.array(yuan >= 1000), j(t1, s0, ","), s),
        )
        out = pc.if_else(pa.array(style == 1), j(sep, frac2, "."), out)
    if (style == 2).any():
        tenth = (frac % 10 == 0) & (frac > 0)
        short = pc.if_else(
            pa.array(frac == 0),
            s,
            pc.if_else(
                pa.array(tenth), j(s, pc.cast(pa.array(frac // 10), pa.string()), "."), plain
            ),
        )
        out = pc.if_else(pa.array(style == 2), short, out)
    if neg.any():
        out = pc.if_else(pa.array(neg), j("-", out, ""), out)
    return pc.if_else(pa.array(null), pa.scalar(None, pa.string()), out)


def _render_ints(values: np.ndarray) -> pa.Array:
    null = values == NA64
    return pc.cast(pa.array(np.where(null, 0, values), mask=null), pa.string())


def _render_bools(values: np.ndarray, style: np.ndarray) -> pa.Array:
    null = values < 0
    code = style.astype(np.int64) * 2 + (1 - np.clip(values, 0, 1).astype(np.int64))
    code[null] = 0
    return pc.take(pa.array(BOOL_WORDS), pa.array(code, mask=null))


def _has_comma_or_quote(arr: pa.Array) -> bool:
    data = np.frombuffer(_string_bytes(pc.fill_null(arr, "")), dtype=np.uint8)
    return bool(((data == 44) | (data == 34)).any())


def _quote(arr: pa.Array) -> pa.Array:
    needs = pc.or_(pc.match_substring(arr, ","), pc.match_substring(arr, '"'))
    if not pc.any(needs).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, arr)


def _raw_for(table: Table, name: str, idx: np.ndarray):
    cells = table.raw.get(name)
    if not cells:
        return None, None
    rows = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
    mask = np.isin(idx, rows)
    if not mask.any():
        return None, None
    return mask, [cells[int(r)] for r in idx[mask]]


class _Styles:
    """Per distinct row, so that an identical repeat is written identically."""

    def __init__(self, rng: np.random.Generator, n: int, style: Style, n_text: int):
        self.date = rng.choice(len(style.date_p), n, p=np.array(style.date_p) / sum(style.date_p))
        self.bool = rng.choice(len(style.bool_p), n, p=np.array(style.bool_p) / sum(style.bool_p))
        self.amount = rng.choice(
            len(style.amount_p), n, p=np.array(style.amount_p) / sum(style.amount_p)
        )
        spaced = rng.random(n) < style.space_rate
        self.space_col = np.where(spaced, rng.integers(0, max(n_text, 1), n), -1)
        self.space_lead = rng.random(n) < 0.5


def render_column(
    table: Table, name: str, idx: np.ndarray, styles: _Styles, text_no: int | None
) -> pa.Array:
    kind = table.kinds[name]
    v = table.values[name]
    if kind == "text":
        arr = pc.take(to_arrow_text(v), pa.array(idx))
        if text_no is not None:
            sp = styles.space_col[idx] == text_no
            if sp.any():
                lead = styles.space_lead[idx]
                j = pc.binary_join_element_wise
                spaced = pc.if_else(pa.array(lead), j(" ", arr, ""), j(arr, " ", ""))
                arr = pc.if_else(pa.array(sp), spaced, arr)
    elif kind == "date":
        arr = _render_dates(np.asarray(v)[idx], styles.date[idx])
    elif kind == "amount":
        arr = _render_amounts(np.asarray(v)[idx], styles.amount[idx])
    elif kind == "int":
        arr = _render_ints(np.asarray(v)[idx])
    elif kind == "bool":
        arr = _render_bools(np.asarray(v)[idx], styles.bool[idx])
    else:  # pragma: no cover
        raise AssertionError(kind)
    mask, texts = _raw_for(table, name, idx)
    if mask is not None:
        arr = pc.replace_with_mask(arr, pa.array(mask), pa.array(texts, type=pa.string()))
    return arr


def write_csv(
    path: Path,
    table: Table,
    order: np.ndarray,
    columns: list[tuple[str, str]],
    style: Style,
    rng: np.random.Generator,
    extra: tuple[str, pa.Array] | None = None,
    title: str | None = None,
) -> int:
    """Write rows `order` (indices into table, repeats allowed) with Chinese headers.

    columns: (canonical name, header) in file order; extra: an unknown column
    (header, text per table row) appended at the end; title: a line above the header
    (as some systems export). Returns the data rows written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text_cols = [n for n, _ in columns if table.kinds[n] == "text"]
    styles = _Styles(rng, table.n, style, len(text_cols))
    # which columns can hold a comma or a quote (checked once per file, not per chunk)
    quoted = {n for n in text_cols if _has_comma_or_quote(to_arrow_text(table.values[n]))}
    quoted |= {n for n, _ in columns if table.kinds[n] == "amount" or n in table.raw}
    headers = [h for _, h in columns] + ([extra[0]] if extra else [])
    encoding = style.encoding
    with open(path, "wb") as f:
        head = ",".join(headers) + style.eol
        if title:
            head = title + style.eol + head
        f.write(head.encode(encoding))  # utf-8-sig writes the BOM here, once
        body_encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        for start in range(0, len(order), CHUNK_ROWS):
            idx = np.asarray(order[start : start + CHUNK_ROWS], dtype=np.int64)
            parts = []
            for name, _ in columns:
                text_no = text_cols.index(name) if name in text_cols else None
                arr = render_column(table, name, idx, styles, text_no)
                if name in quoted:
                    arr = _quote(arr)
                parts.append(arr)
            if extra:
                parts.append(pc.take(to_arrow_text(extra[1]), pa.array(idx)))
            line = pc.binary_join_element_wise(
                *parts, ",", null_handling="replace", null_replacement=""
            )
            line = pc.binary_join_element_wise(line, "", style.eol)
            data = _string_bytes(line)
            if body_encoding == "utf-8":
                f.write(data)
            else:
                f.write(bytes(data).decode("utf-8").encode(body_encoding))
    return len(order)


def _string_bytes(arr: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a string array without nulls (zero-copy)."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    width = 8 if arr.type == pa.large_string() else 4
    dtype = np.int64 if width == 8 else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=dtype)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    return memoryview(data_buf)[start:end]


XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
        'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        "</Relationships>"
    ),
    "docProps/core.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<dc:creator>镇海区总工会</dc:creator>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2020-09-30T10:00:00Z</dcterms:created>'
        "</cp:coreProperties>"
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/styles" Target="styles.xml"/>'
        "</Relationships>"
    ),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/></numFmts>'
        '<fonts count="2"><font><sz val="11"/><name val="宋体"/><family val="2"/></font>'
        '<font><b/><sz val="11"/><name val="宋体"/><family val="2"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        '</cellStyleXfs><cellXfs count="4">'
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="4" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
        '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
        "</cellStyles></styleSheet>"
    ),
}
SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    "<sheetData>"
)
SHEET_TAIL = "</sheetData></worksheet>"
STYLE_OF = {"date": "1", "amount": "2"}


def _workbook_xml(sheet: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{_esc_py(sheet)}" sheetId="1" r:id="rId1"/></sheets>'
        "</workbook>"
    )


def _esc_py(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _esc(arr: pa.Array) -> pa.Array:
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if pc.any(pc.match_substring(arr, a)).as_py():
            arr = pc.replace_substring(arr, a, b)
    return arr


def _col_letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _xlsx_cells(
    letter: str, rownum: pa.Array, text: pa.Array | None, number: pa.Array | None, style: str | None
) -> pa.Array:
    """One column's cells: inline strings where `text` is set, else numbers; '' if empty."""
    j = pc.binary_join_element_wise
    ref = j(letter, rownum, "")
    out = None
    if number is not None:
        s_attr = f' s="{style}"' if style else ""
        num = j('<c r="', ref, f'"{s_attr}><v>', number, "</v></c>", "")
        out = num
    if text is not None:
        txt = j(
            '<c r="',
            ref,
            '" t="inlineStr"><is><t xml:space="preserve">',
            _esc(text),
            "</t></is></c>",
            "",
        )
        out = txt if out is None else pc.if_else(pc.is_valid(text), txt, out)
    return pc.fill_null(out, "")


def write_xlsx(
    path: Path,
    table: Table,
    order: np.ndarray,
    columns: list[tuple[str, str]],
    rng: np.random.Generator,
    sheet: str = "Sheet1",
    extra: tuple[str, pa.Array] | None = None,
    bool_p: tuple[float, ...] = (0.7, 0.3, 0.0, 0.0),
    creator: str = "镇海区总工会",
) -> int:
    """xlsx, one sheet: real Excel dates (date-formatted serial numbers), ID numbers and
    phones as text, numbers as numbers; a bad row's literal text as a text cell.

    Written directly as SpreadsheetML, column-wise with pyarrow (xlsxwriter manages about
    50k cells a second, too slow for the larger scales); fixed zip timestamps."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.asarray(order, dtype=np.int64)
    styles = _Styles(rng, table.n, Style(bool_p=bool_p, space_rate=0.0), 0)
    headers = [h for _, h in columns] + ([extra[0]] if extra else [])
    stamp = (2020, 9, 30, 18, 0, 0)

    def info(name: str) -> zipfile.ZipInfo:
        zi = zipfile.ZipInfo(name, date_time=stamp)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zi.external_attr = 0o644 << 16
        return zi

    with zipfile.ZipFile(path, "w", compresslevel=6) as z:
        for name in ("[Content_Types].xml", "_rels/.rels", "docProps/core.xml"):
            part = XLSX_PARTS[name].replace("<dc:creator>镇海区总工会<", f"<dc:creator>{creator}<")
            z.writestr(info(name), part)
        z.writestr(info("xl/workbook.xml"), _workbook_xml(sheet))
        for name in ("xl/_rels/workbook.xml.rels", "xl/styles.xml"):
            z.writestr(info(name), XLSX_PARTS[name])
        with z.open(info("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as f:
            f.write(SHEET_HEAD.encode("utf-8"))
            head = "".join(
                f'<c r="{_col_letter(c)}1" t="inlineStr" s="3"><is><t>{_esc_py(h)}</t></is></c>'
                for c, h in enumerate(headers)
            )
            f.write(f'<row r="1">{head}</row>'.encode())
            for start in range(0, len(order), CHUNK_ROWS):
                idx = order[start : start + CHUNK_ROWS]
                rownum = pc.cast(pa.array(np.arange(start + 2, start + 2 + len(idx))), pa.string())
                cells = []
                for c, (name, _) in enumerate(columns):
                    kind = table.kinds[name]
                    v = table.values[name]
                    text = number = None
                    if kind == "text":
                        text = pc.take(to_arrow_text(v), pa.array(idx))
                    elif kind == "bool":
                        text = _render_bools(np.asarray(v)[idx], styles.bool[idx])
                    elif kind == "date":
                        a = np.asarray(v)[idx]
                        null = a == NA
                        serial = np.where(null, 0, a.astype(np.int64) + EXCEL_EPOCH_OFFSET)
                        number = pc.cast(pa.array(serial, mask=null), pa.string())
                    elif kind == "amount":
                        number = _render_amounts(np.asarray(v)[idx], np.zeros(len(idx), np.int8))
                    elif kind == "number":  # numeric text, written as a number
                        number = pc.take(to_arrow_text(v), pa.array(idx))
                    else:
                        number = _render_ints(np.asarray(v)[idx])
                    mask, texts = _raw_for(table, name, idx)
                    if mask is not None:
                        base = text if text is not None else pa.nulls(len(idx), pa.string())
                        text = pc.replace_with_mask(
                            base, pa.array(mask), pa.array(texts, type=pa.string())
                        )
                    cells.append(
                        _xlsx_cells(_col_letter(c), rownum, text, number, STYLE_OF.get(kind))
                    )
                if extra:
                    text = pc.take(to_arrow_text(extra[1]), pa.array(idx))
                    cells.append(_xlsx_cells(_col_letter(len(columns)), rownum, text, None, None))
                line = pc.binary_join_element_wise('<row r="', rownum, '">', *cells, "</row>", "")
                f.write(_string_bytes(line))
            f.write(SHEET_TAIL.encode("utf-8"))
    return len(order)
