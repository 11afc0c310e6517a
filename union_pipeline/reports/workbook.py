"""The KPI workbook (工作指标-<as-of>.xlsx): the briefing's figures as numbers to work with.

Sheets: the scorecard (the briefing's first table, as numbers), one sheet per theme section
with every KPI by year (all of marts.kpi_yearly), the streets (small cells "<5" exactly as
in the charts), the reconciliation against published figures, and "说明"/"About" (as-of
date, refresh time, sources and their row counts). Plain openpyxl, no Dagster.

Money is written in the unit the briefing shows it in (万元, 亿元; the row's 单位 says
which), rates as fractions with a percent format, counts with thousands separators. Every
text cell goes through `neutralise_formula`, so no cell is ever run as a formula.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from union_pipeline.ingest.safety import neutralise_formula
from union_pipeline.kpis import Kpi
from union_pipeline.reports.data import ReportData
from union_pipeline.reports.data import number as _num
from union_pipeline.reports.figures import COMPARATOR_SIGNS, section_of, status
from union_pipeline.reports.privacy import SUPPRESSED_LABEL, street_values
from union_pipeline.reports.summary import ANALYSIS, Summary
from union_pipeline.reports.theme import MoneyUnit, Theme

COUNT = "#,##0"
MONEY = "#,##0.00"
RATE = "0.00%"  # as the briefing: 60.77%
CHANGE_PCT = "+0.0%;-0.0%;0.0%"
MAX_WIDTH = 60
SHEET_NAME_CHARS = 31  # Excel's limit
SHEET_FORBIDDEN = str.maketrans({c: "_" for c in "[]:*?/\\"})


# ---------------------------------------------------------------------------- xlsx helpers


def safe_text(value: str | None) -> str | None:
    """A text cell: control characters XML cannot hold dropped, formulas neutralised."""
    if value is None:
        return None
    return neutralise_formula(ILLEGAL_CHARACTERS_RE.sub("", str(value)))


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: a CJK (wide) character counts 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def sheet_title(name: str, taken: Iterable[str] = ()) -> str:
    """A valid, unique sheet name (31 characters, none of []:*?/\\)."""
    base = name.translate(SHEET_FORBIDDEN).strip("'") or "Sheet"
    base = base[:SHEET_NAME_CHARS]
    taken = {t.lower() for t in taken}
    title, n = base, 2
    while title.lower() in taken:
        suffix = f"({n})"
        title, n = base[: SHEET_NAME_CHARS - len(suffix)] + suffix, n + 1
    return title


def _shown(value, number_format: str | None) -> str:
    """Roughly what a cell shows, to size its column."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if number_format and "%" in number_format:
        return f"{value * 100:+,.2f}%"
    if number_format and '"' in number_format:  # +1.3"个百分点"
        return f"{value:+,.1f}" + number_format.split('"')[1]
    decimals = 2 if number_format and ".00" in number_format else 0
    return f"{value:,.{decimals}f}"


@dataclass
class Table:
    """A sheet's rows as written: headers, rows of values, a number format per cell."""

    headers: list[str]
    rows: list[list]
    formats: list[list[str | None]]

    def add(self, values: list, formats: Sequence[str | None] | None = None) -> None:
        self.rows.append(values)
        self.formats.append(list(formats) if formats else [None] * len(values))


def new_table(headers: list[str]) -> Table:
    return Table(headers, [], [])


def write_table(ws: Worksheet, table: Table, header_color: str, start_row: int = 1) -> int:
    """The header (bold, coloured, frozen) and the rows; columns sized to fit. Data rows."""
    fill = PatternFill("solid", fgColor=header_color.lstrip("#"))
    widths = [display_width(h) for h in table.headers]
    for col, header in enumerate(table.headers, start=1):
        cell = ws.cell(start_row, col, safe_text(header))
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = fill
        cell.alignment = Alignment(vertical="center", wrap_text=False)
    for r, (values, formats) in enumerate(zip(table.rows, table.formats, strict=True)):
        for col, value in enumerate(values, start=1):
            value = _cell_value(value)
            cell = ws.cell(start_row + 1 + r, col, value)
            fmt = formats[col - 1] if col - 1 < len(formats) else None
            if fmt and isinstance(value, int | float) and not isinstance(value, bool):
                cell.number_format = fmt
            elif isinstance(value, str) and value == SUPPRESSED_LABEL:
                cell.alignment = Alignment(horizontal="right")
            widths[col - 1] = max(widths[col - 1], display_width(_shown(value, fmt)))
    for col, width in enumerate(widths, start=1):
        letter = get_column_letter(col)
        current = ws.column_dimensions[letter].width or 0
        ws.column_dimensions[letter].width = max(current, min(MAX_WIDTH, width + 2))
    ws.freeze_panes = ws.cell(start_row + 1, 1)
    return len(table.rows)


def _cell_value(value):
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item"):  # numpy scalars
        return _cell_value(value.item())
    if isinstance(value, dt.datetime | dt.date):
        return value
    return safe_text(str(value))


def save_workbook(wb: Workbook, path: Path) -> None:
    """Written to a partial file then renamed: a reader never opens half a workbook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    wb.save(partial)
    partial.replace(path)


# ---------------------------------------------------------------------------- values


def _money(values: Iterable, kpi: Kpi, theme: Theme) -> MoneyUnit | None:
    """The money unit the briefing gives the KPI's figures (None when not money)."""
    if kpi.unit != "元":
        return None
    finite = [abs(v) for v in (_num(x) for x in values) if v is not None]
    return theme.money_unit(max(finite) if finite else 0)


def _unit_label(kpi: Kpi, theme: Theme, money: MoneyUnit | None) -> str:
    if kpi.unit == "ratio":
        return "%"
    if money is not None:
        return money.label
    info = theme.unit_info(kpi.unit)
    return info["zh"] if theme.lang == "zh" else info.get("axis_en") or kpi.unit


def _value(value, kpi: Kpi, money: MoneyUnit | None) -> float | None:
    value = _num(value)
    if value is None or money is None:
        return value
    return value / money.divisor


def _format(kpi: Kpi, money: MoneyUnit | None) -> str:
    if kpi.unit == "ratio":
        return RATE
    if money is not None and money.divisor > 1:
        return MONEY
    return COUNT


def _pp_format(theme: Theme) -> str:
    label = theme.t("pp").strip()
    return f'+0.0"{label}";-0.0"{label}";0.0"{label}"'


def _yes_no(value, theme: Theme) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return theme.t("wb_yes") if bool(value) else theme.t("wb_no")


def _comparator(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return COMPARATOR_SIGNS.get(str(value), str(value))


# ---------------------------------------------------------------------------- sheets


def _row(data: ReportData, code: str, year: int) -> pd.Series | None:
    rows = data.series(code)
    rows = rows[rows["year"] == year]
    return None if rows.empty else rows.iloc[0]


def scorecard_table(data: ReportData, theme: Theme) -> Table:
    """The briefing's scorecard, row for row, as numbers."""
    year = data.as_of_year
    incomplete = not data.is_complete
    if incomplete:
        actual = theme.t("col_actual_ytd", y=year, md=theme.month_day(data.as_of))
    else:
        actual = theme.t("col_actual", y=year)
    headers = [
        theme.t("wb_code"),
        theme.t("col_kpi"),
        theme.t("wb_unit"),
        actual.replace("<br>", ""),
        theme.t("wb_prior"),
        theme.t("col_yoy"),
        theme.t("wb_comparator"),
        theme.t("col_target", y=year),
        theme.t("col_projection"),
        theme.t("col_status"),
        theme.t("wb_prior_status", y=year - 1),
    ]
    table = new_table(headers)
    pp = _pp_format(theme)
    for kpi in data.reported:
        row, prev = _row(data, kpi.code, year), _row(data, kpi.code, year - 1)
        figures = [] if row is None else [row["actual"], row["target"], row["projected_year_end"]]
        money = _money(figures, kpi, theme)  # as the scorecard picks it: this year's figures
        fmt = _format(kpi, money)
        if row is None:
            values = [None] * 6
        else:
            change = _num(row["yoy_change"]) if kpi.is_ratio else _num(row["yoy_pct"])
            if kpi.is_ratio and change is not None:
                change *= 100  # percentage points, as the section sheets and briefing say it
            values = [
                _value(row["actual"], kpi, money),
                _value(row["prior_actual"], kpi, money),
                change,
                _comparator(row["comparator"]) if _num(row["target"]) is not None else None,
                _value(row["target"], kpi, money),
                _value(row["projected_year_end"], kpi, money),
            ]
        table.add(
            [
                kpi.code,
                theme.kpi_name(kpi),
                _unit_label(kpi, theme, money),
                *values,
                status(row, theme)[0],
                status(prev, theme)[0],
            ],
            [None, None, None, fmt, fmt, pp if kpi.is_ratio else CHANGE_PCT, None, fmt, fmt],
        )
    return table


def yearly_headers(theme: Theme) -> list[str]:
    return [
        theme.t("wb_code"),
        theme.t("col_kpi"),
        theme.t("wb_unit"),
        theme.t("wb_year"),
        theme.t("wb_actual"),
        theme.t("wb_prior"),
        theme.t("wb_change"),
        theme.t("wb_change_pct"),
        theme.t("wb_comparator"),
        theme.t("wb_target"),
        theme.t("wb_met"),
        theme.t("wb_complete"),
        theme.t("col_projection"),
        theme.t("wb_on_track"),
        theme.t("col_status"),
    ]


def section_tables(data: ReportData, theme: Theme) -> dict[str, Table]:
    """Section name -> every KPI of the section by year (all of kpi_yearly's columns)."""
    tables: dict[str, Table] = {}
    names = {s["key"]: theme.section_name(s) for s in theme.sections}
    pp = _pp_format(theme)
    for kpi in data.reported:
        rows = data.series(kpi.code)
        # one unit per KPI across the years, so a column of a KPI reads as one series
        money = _money(
            list(rows["actual"]) + list(rows["target"]) + list(rows["projected_year_end"]),
            kpi,
            theme,
        )
        fmt = _format(kpi, money)
        change_fmt = pp if kpi.is_ratio else fmt
        name = names[section_of(kpi.code, theme)]
        table = tables.setdefault(name, new_table(yearly_headers(theme)))
        for _, row in rows.iterrows():
            change = _num(row["yoy_change"])
            if kpi.is_ratio and change is not None:
                change *= 100  # percentage points, as the briefing says it
            else:
                change = _value(change, kpi, money)
            table.add(
                [
                    kpi.code,
                    theme.kpi_name(kpi),
                    _unit_label(kpi, theme, money),
                    int(row["year"]),
                    _value(row["actual"], kpi, money),
                    _value(row["prior_actual"], kpi, money),
                    change,
                    _num(row["yoy_pct"]),
                    _comparator(row["comparator"]),
                    _value(row["target"], kpi, money),
                    _yes_no(row["target_met"], theme),
                    _yes_no(row["is_complete_year"], theme),
                    _value(row["projected_year_end"], kpi, money),
                    _yes_no(row["on_track"], theme),
                    status(row, theme)[0],
                ],
                [None, None, None, "0", fmt, fmt, change_fmt, CHANGE_PCT, None, fmt, None, None]
                + [fmt, None, None],
            )
    return tables


def street_table(data: ReportData, theme: Theme) -> Table:
    """Street by year, a column per KPI; fewer than 5 persons behind a figure: "<5"."""
    by_street = data.by_street
    codes = [k for k in data.reported if k.code in set(by_street["kpi_code"])]
    years = sorted(int(y) for y in by_street["year"].unique())
    streets = list(dict.fromkeys(by_street["street"]))
    columns: list[tuple[Kpi, MoneyUnit | None, dict]] = []
    for kpi in codes:
        cells = {}
        for year in years:
            # the charts' own rule, so the workbook shows no figure the charts hide
            values = street_values(
                by_street, data.catalogue, kpi.code, year, theme.min_persons, theme.is_persons_unit
            )
            for street, value, suppressed in values[["street", "value", "suppressed"]].itertuples(
                index=False
            ):
                cells[(year, street)] = SUPPRESSED_LABEL if suppressed else _num(value)
        shown = [v for v in cells.values() if isinstance(v, float)]
        columns.append((kpi, _money(shown, kpi, theme), cells))
    headers = [theme.t("wb_year"), theme.t("wb_street")]
    for kpi, money, _ in columns:
        headers.append(f"{theme.kpi_name(kpi)}{theme.paren(_unit_label(kpi, theme, money))}")
    table = new_table(headers)
    for year in years:
        for street in streets:
            row, formats = [year, street], ["0", None]
            present = False
            for kpi, money, cells in columns:
                value = cells.get((year, street))
                present |= (year, street) in cells
                row.append(_value(value, kpi, money) if isinstance(value, float) else value)
                formats.append(_format(kpi, money))
            if present:
                table.add(row, formats)
    return table


def read_reconciliation(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """marts.report_reconciliation, or None when the warehouse has none."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'marts' AND table_name = 'report_reconciliation'"
    ).fetchall()[0][0]
    if not found:
        return None
    return con.execute("SELECT * FROM marts.report_reconciliation").df()


def reconciliation_table(
    reconciliation: pd.DataFrame | None, data: ReportData, theme: Theme
) -> Table:
    """Published figures against the warehouse's, in the KPI's own unit (yuan, fractions)."""
    headers = [
        theme.t("wb_code"),
        theme.t("col_kpi"),
        theme.t("wb_unit"),
        theme.t("wb_year"),
        theme.t("wb_published"),
        theme.t("wb_lower"),
        theme.t("wb_upper"),
        theme.t("wb_computed"),
        theme.t("wb_difference"),
        theme.t("wb_match"),
        theme.t("wb_quote"),
        theme.t("wb_note"),
    ]
    table = new_table(headers)
    if reconciliation is None:
        return table
    for _, row in reconciliation.iterrows():
        kpi = data.kpi(str(row["kpi_code"]))
        if kpi is not None:
            # exact bounds matter here: yuan as yuan, not rounded into 万元
            fmt = RATE if kpi.is_ratio else ("#,##0.00" if kpi.unit == "元" else "#,##0.##")
            name, unit = theme.kpi_name(kpi), _unit_label(kpi, theme, None)
            if kpi.unit == "元":
                unit = "元" if theme.lang == "zh" else "yuan"
        else:
            fmt, name, unit = "General", row.get("name_zh"), None
        table.add(
            [
                row["kpi_code"],
                name,
                unit,
                None if _num(row["year"]) is None else int(row["year"]),
                _num(row["published"]),
                _num(row["lower"]),
                _num(row["upper"]),
                _num(row["computed"]),
                _num(row.get("difference")),
                _yes_no(row["match"], theme),
                row.get("quote"),
                row.get("note"),
            ],
            [None, None, None, "0", fmt, fmt, fmt, fmt, fmt],
        )
    return table


def _exact(value: float) -> str:
    """A value as stored (167169, 0.6077013), not rounded into the sentence's unit."""
    return f"{value:.0f}" if float(value).is_integer() else repr(float(value))


def summary_table(summary: Summary, theme: Theme) -> Table:
    """Each sentence of the work summary draft with the KPI codes and values behind it."""
    table = new_table(
        [
            theme.t("sd_col_part"),
            theme.t("sd_col_section"),
            theme.t("sd_col_text"),
            theme.t("sd_col_codes"),
            theme.t("sd_col_values"),
        ]
    )
    names = {s["key"]: theme.section_name(s) for s in theme.sections}
    names[ANALYSIS] = theme.t("sd_analysis")
    sep = "；" if theme.lang == "zh" else "; "
    for sentence in summary.sentences:
        table.add(
            [
                sentence.part,
                names.get(sentence.section, sentence.section),
                sentence.text,
                ", ".join(sentence.codes),
                sep.join(f"{name} = {_exact(value)}" for name, value in sentence.values),
            ]
        )
    return table


def _about(
    ws: Worksheet,
    data: ReportData,
    theme: Theme,
    sources: list[dict] | None,
    refreshed_at: dt.datetime | None,
    reconciled: bool,
) -> int:
    """Key facts, then the sources table. Returns the sources' rows."""
    facts = new_table([theme.t("wb_item"), theme.t("wb_value")])
    refreshed = (refreshed_at or dt.datetime.now()).replace(microsecond=0)
    facts.add([theme.t("wb_org"), theme.organisation])
    facts.add([theme.t("wb_as_of"), theme.date(data.as_of)])
    facts.add([theme.t("wb_refreshed"), refreshed.isoformat(sep=" ")])
    facts.add([theme.t("wb_units"), theme.t("wb_units_note")])
    facts.add([SUPPRESSED_LABEL, theme.t("suppressed_note")])
    if not reconciled:
        facts.add([theme.t("wb_reconciliation"), theme.t("wb_no_reconciliation")])
    write_table(ws, facts, theme.colors["header"])
    listing = new_table(
        [
            theme.t("wb_source"),
            theme.t("wb_title"),
            theme.t("wb_rows_loaded"),
            theme.t("wb_rows_quarantined"),
            theme.t("wb_files"),
        ]
    )
    for source in sources or []:
        files = source.get("files")
        if isinstance(files, list | tuple):
            files = (
                "；".join(str(f) for f in files)
                if theme.lang == "zh"
                else "; ".join(str(f) for f in files)
            )
        listing.add(
            [
                source.get("source"),
                source.get("title"),
                source.get("rows_loaded"),
                source.get("rows_quarantined"),
                files,
            ],
            [None, None, COUNT, COUNT, COUNT],
        )
    start = len(facts.rows) + 3
    ws.cell(start - 1, 1, theme.t("wb_sources")).font = Font(bold=True)
    rows = write_table(ws, listing, theme.colors["header"], start_row=start)
    ws.freeze_panes = None  # two tables on one sheet: nothing to freeze
    return rows


def workbook_path(export_root: Path, as_of: dt.date, theme: Theme) -> Path:
    """`export_root`/工作指标-<as-of>.xlsx (kpis-<as-of>.xlsx in English); export_root is the
    as-of date's folder (ExportPaths.root)."""
    return Path(export_root) / f"{theme.t('wb_file')}-{as_of.isoformat()}.xlsx"


def write_kpi_workbook(
    data: ReportData,
    path: Path,
    theme: Theme,
    sources: list[dict] | None = None,
    refreshed_at: dt.datetime | None = None,
    reconciliation: pd.DataFrame | None = None,
    summary: Summary | None = None,
) -> dict[str, int]:
    """Write the KPI workbook to `path`; returns {sheet name: data rows}.

    sources: [{source, title, rows_loaded, rows_quarantined, files}] for the About sheet
    (files: a count or a list of names). reconciliation: marts.report_reconciliation (see
    `read_reconciliation`); without it the sheet has its headers only. summary: the work
    summary draft (`reports.summary.build_summary`): a last sheet (文字稿数据) lists its
    sentences with their KPI codes and values.
    """
    wb = Workbook()
    wb.remove(wb.active)
    counts: dict[str, int] = {}
    header = theme.colors["header"]

    def sheet(name: str) -> Worksheet:
        return wb.create_sheet(sheet_title(name, wb.sheetnames))

    ws = sheet(theme.t("wb_scorecard"))
    counts[ws.title] = write_table(ws, scorecard_table(data, theme), header)
    for name, table in section_tables(data, theme).items():
        ws = sheet(name)
        counts[ws.title] = write_table(ws, table, header)
    ws = sheet(theme.t("wb_by_street"))
    counts[ws.title] = write_table(ws, street_table(data, theme), header)
    ws = sheet(theme.t("wb_reconciliation"))
    counts[ws.title] = write_table(ws, reconciliation_table(reconciliation, data, theme), header)
    ws = sheet(theme.t("wb_about"))
    counts[ws.title] = _about(ws, data, theme, sources, refreshed_at, reconciliation is not None)
    if summary is not None:
        ws = sheet(theme.t("sd_sheet"))
        counts[ws.title] = write_table(ws, summary_table(summary, theme), header)
        ws.column_dimensions["C"].width = MAX_WIDTH
        for row in ws.iter_rows(min_row=2, min_col=3, max_col=5):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.properties.title = f"{theme.organisation} {theme.t('wb_file')} {data.as_of.isoformat()}"
    wb.properties.creator = theme.organisation
    save_workbook(wb, Path(path))
    return counts
