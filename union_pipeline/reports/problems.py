"""问题数据清单: the quarantined rows as lists the district can send back to whoever sent them.

    <out_dir>/问题数据清单-<as-of>.xlsx          every quarantined row, a sheet per source
    <out_dir>/按工会/<工会编码>-<工会名称>.xlsx   the same, one file per reporting union
    <out_dir>/按镇街/<镇街>.xlsx                  the same, one file per street

(English: problem-rows-<as-of>.xlsx, by-union/, by-street/.) Each row: file, line, the
problem in words (assets/quarantine_rules.yaml), the column, every problem of the row,
what to do, and the row's values from `values_masked` (already masked by the load: written
as they are, never unmasked). A row's union is its own 工会编码 (values_masked `union_id`);
rows without one (claims, loans, training) go to 未知工会. Every text cell goes through
`neutralise_formula`. Plain openpyxl, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from union_pipeline.ingest.specs import load_specs
from union_pipeline.reports.theme import Theme, load_theme
from union_pipeline.reports.workbook import (
    Table,
    new_table,
    save_workbook,
    sheet_title,
    write_table,
)
from union_pipeline.settings import ASSETS_DIR

RULES_FILE = ASSETS_DIR / "quarantine_rules.yaml"
UNION_COLUMN = "union_id"
STREET_COLUMN = "street"
NAME_LIMIT = 60  # characters of a file name stem, before the hash suffix
_UNSAFE = re.compile(r"[^\w.\-]+")  # \w: letters (Chinese too), digits, underscore
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}  # fmt: skip
_RULE_PART = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


MAX_UNION_FILES = 2000


def load_rules(path: Path = RULES_FILE) -> dict[str, dict]:
    """rule code -> {zh, en, fix_zh, fix_en}."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


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


def _source_table(source: str, rows: pd.DataFrame, labels: _Labels) -> Table:
    t = labels.theme.t
    spec = load_specs().get(source)
    order = [c.name for c in spec.columns] if spec else []
    present = {k for values in rows["pl_values"] for k in values}
    keys = [k for k in order if k in present] + sorted(present - set(order))
    keys = [k for k in keys if k != UNION_COLUMN]  # it is the first column already
    headers = [
        t("pl_union_id"),
        t("pl_union_name"),
        t("pl_file_col"),
        t("pl_line"),
        t("pl_rule"),
        t("pl_column"),
        t("pl_all_rules"),
        t("pl_fix"),
    ] + [labels.column(source, k) or t("wb_value") for k in keys]
    table = new_table(headers)
    for row in rows.itertuples(index=False):
        values = row.pl_values
        line = None if pd.isna(row.line) else int(row.line)
        table.add(
            [
                row.pl_union,
                row.pl_union_name,
                _text(row.file),
                line,
                labels.rule(row.rule),
                labels.column(source, row.column),
                labels.all_rules(source, row.rules),
                labels.fix(row.rule),
            ]
            + [_text(values.get(k)) for k in keys],
            [None, None, None, "0"],
        )
    return table


def _write_list(
    path: Path,
    rows: pd.DataFrame,
    labels: _Labels,
    as_of: dt.date,
    heading: list[tuple[str, str | None]],
) -> dict[str, int]:
    """One workbook: 说明 (what, who, counts, the rules), then a sheet per source."""
    theme = labels.theme
    t = theme.t
    wb = Workbook()
    about = wb.active
    about.title = sheet_title(t("pl_about"))
    specs = load_specs()
    counts: dict[str, int] = {}
    sheets = []
    for source, part in rows.groupby("source", sort=True):
        spec = specs.get(str(source))
        title = (spec.title_zh if theme.lang == "zh" else spec.title_en) if spec else str(source)
        ws = wb.create_sheet(sheet_title(title, wb.sheetnames))
        counts[str(source)] = write_table(
            ws, _source_table(str(source), part, labels), theme.colors["header"]
        )
        sheets.append((title, ws.title, counts[str(source)]))
    # 说明: the heading facts, the rows per sheet, then what each problem means
    about.cell(1, 1, t("pl_file")).font = Font(bold=True, size=14)
    about.cell(2, 1, t("pl_intro")).alignment = Alignment(wrap_text=True, vertical="top")
    about.merge_cells(start_row=2, start_column=1, end_row=2, end_column=3)
    about.row_dimensions[2].height = 48
    facts = new_table([t("wb_item"), t("wb_value"), t("pl_rows")])
    facts.add([t("wb_org"), theme.organisation, None])
    facts.add([t("wb_as_of"), theme.date(as_of), None])
    for key, value in heading:
        facts.add([key, value, None])
    for title, _sheet, n in sheets:
        facts.add([t("pl_source"), title, n], [None, None, "#,##0"])
    start = 4
    write_table(about, facts, theme.colors["header"], start_row=start)
    used = sorted({str(r) for r in rows["rule"].dropna()})
    legend = new_table([t("pl_rule"), t("pl_fix")])
    for code in used:
        legend.add([labels.rule(code), labels.fix(code)])
    if used:
        write_table(about, legend, theme.colors["header"], start_row=start + len(facts.rows) + 2)
    about.freeze_panes = None
    about.column_dimensions["A"].width = max(about.column_dimensions["A"].width or 0, 30)
    save_workbook(wb, path)
    return counts


def _clear_old(folder: Path, keep: set[Path]) -> None:
    """Lists of an earlier run for unions that now have no problem rows must not linger."""
    for old in folder.glob("*.xlsx"):
        if old not in keep:
            old.unlink()


def problem_list_path(out_dir: Path, as_of: dt.date, theme: Theme) -> Path:
    return Path(out_dir) / f"{theme.t('pl_file')}-{as_of.isoformat()}.xlsx"


def write_problem_lists(
    quarantine: pd.DataFrame,
    unions: pd.DataFrame | None,
    out_dir: Path,
    as_of: dt.date,
    lang: str | None = None,
    max_union_files: int | None = None,
) -> dict:
    """Write the problem-data lists; returns the counts.

    Past `max_union_files` unions with problems (default MAX_UNION_FILES: a district has
    about 1,300 unions, a province tens of thousands), the per-union split is not written
    (each file costs tens of milliseconds) and "unions_skipped" says why: a province sends
    lists through its districts.

    quarantine: staging.quarantine's columns (source, file, line, rule, column, rules,
    values_masked). unions: union_id, union_name, street (staging.unions) to name each
    union and find its street. lang: zh or en (default UNION_LANG).
    Returns {"path", "files" (workbooks written), "rows" ({source: rows}),
    "unions" ({union file name: rows}), "streets" ({street file name: rows})}.
    """
    theme = load_theme(lang=lang)
    t = theme.t
    specs = load_specs()
    headers = {
        name: {c.name: (c.header if theme.lang == "zh" else c.name) for c in spec.columns}
        for name, spec in specs.items()
    }
    labels = _Labels(theme, load_rules(), headers)
    rows = _prepare(quarantine, unions, labels)
    out_dir = Path(out_dir)
    main = problem_list_path(out_dir, as_of, theme)
    counts = _write_list(main, rows, labels, as_of, [])
    by_union_dir, by_street_dir = out_dir / t("pl_by_union"), out_dir / t("pl_by_street")
    by_union_dir.mkdir(parents=True, exist_ok=True)
    by_street_dir.mkdir(parents=True, exist_ok=True)
    written_unions: dict[str, int] = {}
    unknown_union = t("pl_unknown_union")
    keys = rows["pl_union"].fillna("")  # "": no union (blank codes were made None)
    limit = MAX_UNION_FILES if max_union_files is None else max_union_files
    skipped = None
    if keys.nunique() > limit:
        skipped = (
            f"{keys.nunique():,} unions have problem rows, more than {limit:,}: "
            "no per-union files; split by street only"
        )
        keys = keys.iloc[0:0]
    for key, part in rows.loc[keys.index].groupby(keys, sort=True):
        if key == "":
            stem, heading = unknown_union, [(t("pl_union_id"), unknown_union)]
        else:
            name = part["pl_union_name"].dropna()
            name = str(name.iloc[0]) if not name.empty else None
            stem = safe_file_stem(key) + (f"-{safe_file_stem(name, 30)}" if name else "")
            heading = [(t("pl_union_id"), key), (t("pl_union_name"), name)]
        street = part["pl_street"].dropna()
        heading.append((t("wb_street"), str(street.iloc[0]) if not street.empty else None))
        path = by_union_dir / f"{stem}.xlsx"
        written_unions[path.name] = sum(_write_list(path, part, labels, as_of, heading).values())
    written_streets: dict[str, int] = {}
    unknown_street = t("pl_unknown_street")
    for key, part in rows.groupby(rows["pl_street"].fillna(""), sort=True):
        street = unknown_street if key == "" else str(key)
        path = by_street_dir / f"{safe_file_stem(street)}.xlsx"
        heading = [(t("wb_street"), street)]
        written_streets[path.name] = sum(_write_list(path, part, labels, as_of, heading).values())
    _clear_old(by_union_dir, {by_union_dir / n for n in written_unions})
    _clear_old(by_street_dir, {by_street_dir / n for n in written_streets})
    return {
        "path": str(main),
        "files": 1 + len(written_unions) + len(written_streets),
        "rows": counts,
        "unions": written_unions,
        "streets": written_streets,
        "unions_skipped": skipped,
    }
