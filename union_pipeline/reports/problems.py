"""问题数据清单: the quarantined rows as lists the district can send back to whoever sent them.

    <out_dir>/问题数据清单-<as-of>.xlsx          every quarantined row, a sheet per source
    <out_dir>/按工会/<工会编码>-<工会名称>.xlsx   the same, one file per reporting union
    <out_dir>/按镇街/<镇街>.xlsx                  the same, one file per street

(English: problem-rows-<as-of>.xlsx, by-union/, by-street/.) Each row: file, line, the
problem in words (assets/quarantine_rules.yaml), the column, every problem of the row,
what to do, and the row's values from `values_masked` (already masked by the load: written
as they are, never unmasked). A row's union is its own 工会编码 (values_masked `union_id`);
rows without one (claims, loans, training) go to 未知工会. Every text cell goes through
`neutralise_formula`. No Dagster.

Written with xlsxwriter (a workbook of a few rows costs a few milliseconds, openpyxl's
tens; a district has hundreds of unions with problem rows, a province tens of thousands of
rows), every cell's text prepared once for all the files it goes into. A file whose
content (its digest) is that of the previous run's same file, still there untouched, is not
written again (`previous`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xlsxwriter

from union_pipeline.ingest.specs import load_specs
from union_pipeline.reports.theme import Theme, load_theme
from union_pipeline.reports.workbook import (
    MAX_WIDTH,
    display_width,
    safe_text,
    sheet_title,
)
from union_pipeline.settings import ASSETS_DIR
from union_pipeline.yamlfile import load_yaml

RULES_FILE = ASSETS_DIR / "quarantine_rules.yaml"
UNION_COLUMN = "union_id"
STREET_COLUMN = "street"
NAME_LIMIT = 60  # characters of a file name stem, before the hash suffix
_UNSAFE = re.compile(r"[^\w.\-]+")  # \w: letters (Chinese too), digits, underscore
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}  # fmt: skip
_RULE_PART = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


MAX_UNION_FILES = 2000
FORMAT = "problem-list-2"  # in every file's digest: a change of layout rewrites them all
LINE_FORMAT = "0"
COUNT_FORMAT = "#,##0"
CELL_CHARS = 32767  # Excel's limit of a cell's text
CONSTANT_MEMORY_ROWS = 20_000  # past this, rows go to disk as written (a province's lists)


def load_rules(path: Path = RULES_FILE) -> dict[str, dict]:
    """rule code -> {zh, en, fix_zh, fix_en}."""
    return load_yaml(Path(path).read_text(encoding="utf-8"))


def safe_file_stem(text: str, limit: int = NAME_LIMIT) -> str:
    """A file name stem from any text (a union code with a slash, a street, ...).

    Anything but letters, digits, `_`, `.` and `-` becomes `_`; when that changed the text
    (or cut it), a short hash of the original is added, so `A/1` and `A_1` stay apart.
    """
    text = str(text).strip()
    stem = _UNSAFE.sub("_", text).strip("._") or "_"
    stem = stem[:limit]
    if stem.lower().split(".")[0] in _WINDOWS_RESERVED:
        stem = "_" + stem
    if stem != text:
        stem += "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]
    return stem


@dataclass
class _Labels:
    theme: Theme
    rules: dict[str, dict]
    headers: dict[str, dict[str, str]]  # source -> column name -> header shown

    def rule(self, code) -> str | None:
        if code is None or code is pd.NA:
            return None
        entry = self.rules.get(str(code))
        if entry is None:
            return str(code)
        return entry["zh"] if self.theme.lang == "zh" else entry["en"]

    def fix(self, code) -> str | None:
        entry = self.rules.get(str(code)) if code is not None and code is not pd.NA else None
        if entry is None:
            return None
        return entry["fix_zh"] if self.theme.lang == "zh" else entry["fix_en"]

    def column(self, source: str, name) -> str | None:
        if name is None or name is pd.NA or (isinstance(name, float) and pd.isna(name)):
            return None
        return self.headers.get(source, {}).get(str(name), str(name))

    def all_rules(self, source: str, text) -> str | None:
        """`unparseable(join_date); missing_required(name)` in words."""
        if text is None or text is pd.NA or (isinstance(text, float) and pd.isna(text)):
            return None
        parts = []
        for part in str(text).split(";"):
            match = _RULE_PART.match(part)
            if not match:
                parts.append(part.strip())
                continue
            words = self.rule(match.group(1))
            column = self.column(source, match.group(2)) if match.group(2) else None
            parts.append(f"{words}{self.theme.paren(column)}" if column else words)
        return "；".join(parts) if self.theme.lang == "zh" else "; ".join(parts)


def _values(text) -> dict:
    """values_masked as a dict (kept whole under "" when it is not a JSON object)."""
    if text is None or text is pd.NA or (isinstance(text, float) and pd.isna(text)):
        return {}
    try:
        values = json.loads(text)
    except (TypeError, ValueError):
        return {"": str(text)}
    return values if isinstance(values, dict) else {"": str(text)}


def _text(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _prepare(quarantine: pd.DataFrame, unions: pd.DataFrame, labels: _Labels) -> pd.DataFrame:
    """One row per quarantined row with its parsed values, union and street."""
    frame = quarantine.copy()
    frame["pl_values"] = [_values(v) for v in frame["values_masked"]]
    names, streets = {}, {}
    if unions is not None and not unions.empty:
        for union_id, name, street in unions[["union_id", "union_name", "street"]].itertuples(
            index=False
        ):
            names[str(union_id)] = _text(name)
            streets[str(union_id)] = _text(street)
    union_ids, union_names, street_list = [], [], []
    for values in frame["pl_values"]:
        union_id = _text(values.get(UNION_COLUMN))
        union_id = union_id.strip() if union_id and union_id.strip() else None
        union_ids.append(union_id)
        union_names.append(names.get(union_id) if union_id else None)
        # a row of the union roster itself names its street
        street = streets.get(union_id) if union_id else None
        street_list.append(street or _text(values.get(STREET_COLUMN)) or None)
    frame["pl_union"], frame["pl_union_name"], frame["pl_street"] = (
        union_ids,
        union_names,
        street_list,
    )
    return frame.sort_values(["source", "file", "line"], kind="stable")


def _cell(value) -> str | None:
    """A text cell as written: never a formula, no character XML cannot hold."""
    text = safe_text(_text(value))
    return text[:CELL_CHARS] if text is not None and len(text) > CELL_CHARS else text


def _width(text: str | None) -> int:
    if text is None:
        return 0
    return len(text) if text.isascii() else display_width(text)


class _Rows:
    """Every quarantined row's cells, made once for all the files it is written to: the
    eight fixed columns, then its masked values by column name, each with its width."""

    def __init__(self, rows: pd.DataFrame, labels: _Labels):
        self.labels = labels
        memo: dict = {}

        def once(kind, fn, *key):
            found = memo.get((kind, *key))
            if found is None and (kind, *key) not in memo:
                found = memo[(kind, *key)] = fn(*key)
            return found

        self.source = [str(x) for x in rows["source"]]
        self.rule = [None if pd.isna(r) else str(r) for r in rows["rule"]]
        self.fixed: list[list] = []
        self.values: list[dict[str, str | None]] = []
        columns = zip(
            self.source,
            rows["pl_union"],
            rows["pl_union_name"],
            rows["file"],
            rows["line"],
            rows["rule"],
            rows["column"],
            rows["rules"],
            rows["pl_values"],
            strict=True,
        )
        for source, union, name, file, line, rule, column, rules, values in columns:
            rule = None if rule is None or pd.isna(rule) else rule
            self.fixed.append(
                [
                    _cell(union),
                    _cell(name),
                    _cell(file),
                    None if pd.isna(line) else int(line),
                    _cell(once("rule", labels.rule, rule)),
                    _cell(once("column", labels.column, source, column)),
                    _cell(once("all", labels.all_rules, source, rules)),
                    _cell(once("fix", labels.fix, rule)),
                ]
            )
            self.values.append({k: _cell(v) for k, v in values.items() if k != UNION_COLUMN})
        self.widths: dict[str | None, int] = {}  # a text's width, measured once

        self._encoded: list[bytes | None] = [None] * len(self.fixed)

    def digest(self, index: Sequence[int]) -> str:
        """What the rows `index` write (each row encoded once for every file it is in)."""
        h = hashlib.sha256()
        encoded = self._encoded
        for i in index:
            row = encoded[i]
            if row is None:
                row = encoded[i] = json.dumps(
                    [self.fixed[i], self.values[i]], ensure_ascii=False
                ).encode()
            h.update(row)
        return h.hexdigest()


def _keys(source: str, rows: _Rows, index: Sequence[int]) -> list[str]:
    """The value columns of a source's sheet: the spec's order, then any other, sorted."""
    spec = load_specs().get(source)
    order = [c.name for c in spec.columns] if spec else []
    present = {k for i in index for k in rows.values[i]}
    return [k for k in order if k in present] + sorted(present - set(order))


class _Book:
    """One xlsx file: header rows bold on the theme's colour, frozen under the header,
    columns sized to their text (CJK counts 2), numbers with a format."""

    def __init__(self, path: Path, theme: Theme, rows: int):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        options = {"in_memory": rows <= CONSTANT_MEMORY_ROWS}
        if rows > CONSTANT_MEMORY_ROWS:
            options["constant_memory"] = True
        self.wb = xlsxwriter.Workbook(str(self.partial), options)
        color = theme.colors["header"]
        self.header = self.wb.add_format(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": color, "valign": "vcenter"}
        )
        self.formats = {
            LINE_FORMAT: self.wb.add_format({"num_format": LINE_FORMAT}),
            COUNT_FORMAT: self.wb.add_format({"num_format": COUNT_FORMAT}),
        }
        self.title = self.wb.add_format({"bold": True, "font_size": 14})
        self.wrap = self.wb.add_format({"text_wrap": True, "valign": "top"})
        self.names: list[str] = []

    def sheet(self, name: str):
        title = sheet_title(name, self.names)
        self.names.append(title)
        return self.wb.add_worksheet(title)

    def table(
        self,
        ws,
        start: int,
        headers: list[str],
        rows,
        formats=None,
        freeze: bool = True,
        known: dict | None = None,
    ) -> list[int]:
        """Header at row `start` (0-based), then `rows` of cells; the columns' widths
        (`known`: widths measured before, kept for the next file)."""
        known = {} if known is None else known
        widths = []
        for col, header in enumerate(headers):
            ws.write_string(start, col, safe_text(header), self.header)
            widths.append(_width(header))
        for r, values in enumerate(rows, start=start + 1):
            for col, value in enumerate(values):
                if value is None:
                    continue
                if isinstance(value, str):
                    ws.write_string(r, col, value)
                    width = known.get(value)
                    if width is None:
                        width = known[value] = _width(value)
                else:
                    fmt = formats[col] if formats else None
                    ws.write_number(r, col, value, self.formats.get(fmt))
                    width = len(f"{value:,.0f}")
                if width > widths[col]:
                    widths[col] = width
        if freeze:
            ws.freeze_panes(start + 1, 0)
        return widths

    @staticmethod
    def widths(ws, widths: list[int], minimum: dict[int, int] | None = None) -> None:
        for col, width in enumerate(widths):
            ws.set_column(col, col, max((minimum or {}).get(col, 0), min(MAX_WIDTH, width + 2)))

    def close(self) -> None:
        """Written to a partial file then renamed: a reader never opens half a workbook."""
        self.wb.close()
        self.partial.replace(self.path)


def _source_title(source: str, theme: Theme) -> str:
    spec = load_specs().get(source)
    return (spec.title_zh if theme.lang == "zh" else spec.title_en) if spec else source


def _write_list(
    path: Path,
    rows: _Rows,
    index: Sequence[int],
    as_of: dt.date,
    heading: list[tuple[str, str | None]],
) -> dict[str, int]:
    """One workbook: 说明 (what, who, counts, the rules), then a sheet per source."""
    labels = rows.labels
    theme = labels.theme
    t = theme.t
    path.parent.mkdir(parents=True, exist_ok=True)
    book = _Book(path, theme, len(index))
    about = book.sheet(t("pl_about"))
    by_source: dict[str, list[int]] = {}
    for i in index:
        by_source.setdefault(rows.source[i], []).append(i)
    counts: dict[str, int] = {}
    sheets = []
    fixed_headers = [
        t("pl_union_id"),
        t("pl_union_name"),
        t("pl_file_col"),
        t("pl_line"),
        t("pl_rule"),
        t("pl_column"),
        t("pl_all_rules"),
        t("pl_fix"),
    ]
    line_formats = [None, None, None, LINE_FORMAT]
    for source in sorted(by_source):
        part = by_source[source]
        title = _source_title(source, theme)
        ws = book.sheet(title)
        keys = _keys(source, rows, part)
        headers = fixed_headers + [labels.column(source, k) or t("wb_value") for k in keys]
        cells = (rows.fixed[i] + [rows.values[i].get(k) for k in keys] for i in part)
        book.widths(ws, book.table(ws, 0, headers, cells, line_formats, known=rows.widths))
        counts[source] = len(part)
        sheets.append((title, len(part)))
    # 说明: the heading facts, the rows per sheet, then what each problem means (rows in
    # order: a large list streams its rows to disk as they are written)
    about.write_string(0, 0, safe_text(t("pl_file")), book.title)
    about.set_row(1, 48)
    about.merge_range(1, 0, 1, 2, safe_text(t("pl_intro")), book.wrap)
    facts = [
        [_cell(t("wb_org")), _cell(theme.organisation), None],
        [_cell(t("wb_as_of")), _cell(theme.date(as_of)), None],
    ]
    facts += [[_cell(key), _cell(value), None] for key, value in heading]
    facts += [[_cell(t("pl_source")), _cell(title), n] for title, n in sheets]
    start = 3
    widths = book.table(
        about,
        start,
        [t("wb_item"), t("wb_value"), t("pl_rows")],
        facts,
        [None, None, COUNT_FORMAT],
        freeze=False,
    )
    used = sorted({rows.rule[i] for i in index if rows.rule[i] is not None})
    if used:
        legend = [[_cell(labels.rule(code)), _cell(labels.fix(code))] for code in used]
        start += len(facts) + 2
        more = book.table(about, start, [t("pl_rule"), t("pl_fix")], legend, freeze=False)
        widths = [max(a, b) for a, b in zip(widths, more + [0] * len(widths), strict=False)]
    book.widths(about, widths, {0: 30})
    book.close()
    return counts


def _clear_old(folder: Path, keep: set[Path]) -> None:
    """Lists of an earlier run for unions that now have no problem rows must not linger."""
    for old in folder.glob("*.xlsx"):
        if old not in keep:
            old.unlink()


def _stamp(path: Path) -> list[int] | None:
    """What says a file is the one written: its size and modification time."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def problem_list_path(out_dir: Path, as_of: dt.date, theme: Theme) -> Path:
    return Path(out_dir) / f"{theme.t('pl_file')}-{as_of.isoformat()}.xlsx"


def write_problem_lists(
    quarantine: pd.DataFrame,
    unions: pd.DataFrame | None,
    out_dir: Path,
    as_of: dt.date,
    lang: str | None = None,
    max_union_files: int | None = None,
    previous: dict | None = None,
) -> dict:
    """Write the problem-data lists; returns the counts.

    Past `max_union_files` unions with problems (default MAX_UNION_FILES: a district has
    about 1,300 unions, a province tens of thousands), the per-union split is not written
    and "unions_skipped" says why: a province sends lists through its districts.

    quarantine: staging.quarantine's columns (source, file, line, rule, column, rules,
    values_masked). unions: union_id, union_name, street (staging.unions) to name each
    union and find its street. lang: zh or en (default UNION_LANG). previous: the
    "digests" of an earlier call: a file whose digest and stamp are unchanged is kept.
    Returns {"path", "files" (workbooks in the lists), "written" (workbooks written now),
    "rows" ({source: rows}), "unions" ({union file name: rows}), "streets" ({street file
    name: rows}), "unions_skipped", "digests" ({path: {digest, stamp}})}.
    """
    theme = load_theme(lang=lang)
    t = theme.t
    specs = load_specs()
    headers = {
        name: {c.name: (c.header if theme.lang == "zh" else c.name) for c in spec.columns}
        for name, spec in specs.items()
    }
    labels = _Labels(theme, load_rules(), headers)
    frame = _prepare(quarantine, unions, labels).reset_index(drop=True)
    rows = _Rows(frame, labels)
    out_dir = Path(out_dir)
    before = (previous or {}).get("files", {})
    digests: dict[str, dict] = {}
    written = 0

    def write(path: Path, index: Sequence[int], heading) -> int:
        """The file's rows; written only when its content or the file changed."""
        nonlocal written
        digest = hashlib.sha256(
            json.dumps(
                [FORMAT, theme.lang, theme.organisation, as_of.isoformat(), heading],
                ensure_ascii=False,
            ).encode()
            + rows.digest(index).encode()
        ).hexdigest()
        old = before.get(str(path))
        if not (old and old.get("digest") == digest and old.get("stamp") == _stamp(path)):
            _write_list(path, rows, index, as_of, heading)
            written += 1
        digests[str(path)] = {"digest": digest, "stamp": _stamp(path)}
        return len(index)

    main = problem_list_path(out_dir, as_of, theme)
    everything = list(range(len(frame)))
    write(main, everything, [])
    counts = {source: rows.source.count(source) for source in sorted(set(rows.source))}
    by_union_dir, by_street_dir = out_dir / t("pl_by_union"), out_dir / t("pl_by_street")
    by_union_dir.mkdir(parents=True, exist_ok=True)
    by_street_dir.mkdir(parents=True, exist_ok=True)
    union_ids = [None if pd.isna(u) else str(u) for u in frame["pl_union"]]
    union_names = [None if pd.isna(n) else str(n) for n in frame["pl_union_name"]]
    street_names = [None if pd.isna(x) else str(x) for x in frame["pl_street"]]
    by_union: dict[str, list[int]] = {}  # "": no union (blank codes were made None)
    by_street: dict[str, list[int]] = {}
    for i, (union_id, street) in enumerate(zip(union_ids, street_names, strict=True)):
        by_union.setdefault(union_id or "", []).append(i)
        by_street.setdefault(street or "", []).append(i)
    written_unions: dict[str, int] = {}
    unknown_union = t("pl_unknown_union")
    limit = MAX_UNION_FILES if max_union_files is None else max_union_files
    skipped = None
    if len(by_union) > limit:
        skipped = (
            f"{len(by_union):,} unions have problem rows, more than {limit:,}: "
            "no per-union files; split by street only"
        )
        by_union = {}

    def first(values: list, index: list[int]):
        return next((values[i] for i in index if values[i] is not None), None)

    for key in sorted(by_union):
        index = by_union[key]
        if key == "":
            stem, heading = unknown_union, [(t("pl_union_id"), unknown_union)]
        else:
            name = first(union_names, index)
            stem = safe_file_stem(key) + (f"-{safe_file_stem(name, 30)}" if name else "")
            heading = [(t("pl_union_id"), key), (t("pl_union_name"), name)]
        heading.append((t("wb_street"), first(street_names, index)))
        path = by_union_dir / f"{stem}.xlsx"
        written_unions[path.name] = write(path, index, heading)
    written_streets: dict[str, int] = {}
    unknown_street = t("pl_unknown_street")
    for key in sorted(by_street):
        street = unknown_street if key == "" else key
        path = by_street_dir / f"{safe_file_stem(street)}.xlsx"
        heading = [(t("wb_street"), street)]
        written_streets[path.name] = write(path, by_street[key], heading)
    _clear_old(by_union_dir, {by_union_dir / n for n in written_unions})
    _clear_old(by_street_dir, {by_street_dir / n for n in written_streets})
    return {
        "path": str(main),
        "files": 1 + len(written_unions) + len(written_streets),
        "written": written,
        "rows": counts,
        "unions": written_unions,
        "streets": written_streets,
        "unions_skipped": skipped,
        "digests": {"files": digests},
    }
