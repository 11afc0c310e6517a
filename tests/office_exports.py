"""Hypothesis strategies for exports the way offices make them, and their writers.

A generated export is a model first (each cell knows what the contract says it means: a
typed value, empty, unparseable, or Excel's number damage) and bytes second (CSV in the
encodings and separators Excel and WPS save, or a workbook). The oracles in
tests/test_reader_oracles.py judge the reader against the model; nothing here imports the
reader. Header texts and aliases come from the specs (`load_specs()`), the contract's
machine-readable half.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from stdnum.cn import ric

from union_pipeline.ingest.specs import load_specs

AS_OF = dt.date(2020, 9, 30)  # the rules' as-of date
TODAY = dt.date(2020, 12, 31)  # the refresh day: later dates are typos (future_date)
# 镇海区's streets and the other allowed lists, as docs/data-contract.md states them
STREETS = ("招宝山街道", "蛟川街道", "骆驼街道", "庄市街道", "贵驷街道", "澥浦镇", "九龙湖镇",
           "区直机关")  # fmt: skip
ORG_TYPES = ("企业", "机关事业单位", "社会组织", "联合工会")
PLAN_TYPES = ("住院医疗互助", "特殊病种", "女职工安康")
# the union roster loaded before members and enrolments
KNOWN_UNIONS = ("U01", "U02", "U03")
# regions stdnum knows for every birth year used (the contract itself checks no region)
REGIONS = ("110101", "330211", "330203", "440305")
SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = "伟芳娜敏静丽强磊洋艳勇军杰娟涛"
TOTALS_LABELS = ("合计", "合 计", "总计", "小计", "本页合计", "总计：共3家", "Total", "合计（人）")
# headers no source has: offices add them (序号 first, 备注 last)
EXTRA_HEADERS = ("序号", "备注", "所在部门", "填报人", "联系人")
TITLES = {
    "members": "镇海区会员实名制名册（截至2020年9月30日）",
    "unions": "镇海区基层工会名册",
    "mutual_aid_enrollments": "2020年度职工医疗互助参保明细",
}


class _Mark:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BROKEN = _Mark("BROKEN")  # present, in no accepted style: unparseable
EXCEL = _Mark("EXCEL")  # an ID or phone number Excel turned into a number: excel_number
KEEP = _Mark("KEEP")  # a workbook stores the text itself


@dataclass(frozen=True)
class Cell:
    """One cell: its text in a CSV, its meaning by the contract, what a workbook stores."""

    text: str | None
    value: Any  # None (empty), BROKEN, EXCEL, or the typed value the contract reads
    book: Any = KEEP

    def in_book(self) -> Any:
        return self.text if self.book is KEEP else self.book

    def __repr__(self) -> str:
        book = "" if self.book is KEEP else f", book={self.book!r}"
        return f"Cell({self.text!r}, {self.value!r}{book})"


EMPTY = Cell(None, None)


@dataclass(frozen=True)
class Row:
    cells: dict[str, Cell]  # spec column -> cell (a column the file lacks: absent)

    def __repr__(self) -> str:
        return f"Row({self.cells!r})"


@dataclass(frozen=True)
class Blank:
    how: str  # full (every separator), short (fewer), empty (nothing), spaces


@dataclass(frozen=True)
class Totals:
    label: str
    lead_empty: bool  # the label in the second cell, the first left empty


@dataclass
class Export:
    """One file of a source folder."""

    name: str
    fmt: str  # csv | xlsx
    encoding: str | None  # csv: utf-8, utf-8-sig, gb18030, utf-16
    delimiter: str
    newline: str
    headers: list[tuple[str, str | None]]  # (header as written, spec column or None: extra)
    above: list[list[str]]  # title rows above the header
    body: list[Row | Blank | Totals]
    instructions_sheet: bool = False

    def line_of(self, index: int) -> int:
        """The line (CSV) or row (workbook, from its first non-empty row) of body[index]."""
        return len(self.above) + 2 + index


@dataclass
class Features:
    encodings: tuple[str, ...] = ("utf-8", "utf-8-sig")
    delimiters: tuple[str, ...] = (",",)
    xlsx: bool = True
    aliases: bool = False
    excel_damage: bool = False
    # the bug of today: a GBK file whose first header decodes as UTF-8 (证件号码, 一线职工)
    utf8_looking_gbk_header: bool = False


# -------------------------------------------------------------------- cell strategies

_WIDE = {ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-/.,:"}


def wide(text: str) -> str:
    """Full-width forms, as Chinese input methods type them (３３０２１１…)."""
    return text.translate(_WIDE)


@st.composite
def padded(draw, text: str) -> str:
    """Spaces Excel users leave around a value: ASCII, ideographic, no-break, tab."""
    pads = st.sampled_from(["", "", " ", "\u3000", "\u00a0", "  "])
    return draw(pads) + text + draw(pads)


@st.composite
def date_cell(draw, day: dt.date) -> Cell:
    y, m, d = day.year, day.month, day.day
    text = draw(
        st.sampled_from(
            [
                f"{y}-{m:02d}-{d:02d}",
                f"{y}-{m}-{d}",
                f"{y}/{m}/{d}",
                f"{y}/{m:02d}/{d:02d}",
                f"{y}.{m}.{d}",
                f"{y}年{m}月{d}日",
                f"{y}-{m:02d}-{d:02d} 00:00:00",
                f"{y}/{m}/{d} 00:00",
            ]  # fmt: skip
        )
    )
    if draw(st.booleans()) and "年" not in text:
        text = wide(text) if draw(st.booleans()) else text
    book = dt.datetime(y, m, d) if draw(st.integers(0, 3)) == 0 else KEEP  # a real date
    return Cell(draw(padded(text)), day, book)


@st.composite
def broken_date_cell(draw) -> Cell:
    y = draw(st.integers(2000, 2020))
    text = draw(
        st.sampled_from(
            [
                f"{y}-02-30",
                f"{y}-04-31",
                f"{y}-13-01",
                f"{y}年2月30日",
                f"05/03/{y}",
                f"{y % 100}-3-5",
                f"{y}0305",
                "昨天",
                "2019-3",
            ]  # fmt: skip
        )
    )
    return Cell(text, BROKEN)


def dates(lo: dt.date = dt.date(1995, 1, 1), hi: dt.date = AS_OF) -> st.SearchStrategy:
    return st.dates(lo, hi)


@st.composite
def amount_cell(draw, value: Decimal) -> Cell:
    plain = f"{value:.2f}" if draw(st.booleans()) else f"{value.normalize():f}"
    forms = [plain, f"¥{plain}", f"￥{plain}", f"{plain}元", f"¥ {plain}"]
    if abs(value) >= 1000:
        grouped = f"{value:,.2f}"
        forms += [grouped, f"{grouped}元", grouped.replace(",", "，")]
    text = draw(st.sampled_from(forms))
    book = float(value) if draw(st.integers(0, 2)) == 0 else KEEP  # a number cell
    return Cell(draw(padded(text)), value, book)


def broken_amount_cell() -> st.SearchStrategy:
    return st.sampled_from(["1,2,3", "六十元", "60美元", "12,34.5", "约60", "60-70"]).map(
        lambda t: Cell(t, BROKEN)
    )


@st.composite
def int_cell(draw, value: int) -> Cell:
    forms = [str(value), f"{value}.0", wide(str(value))]
    if value >= 1000:
        forms.append(f"{value:,}")
    book = value if draw(st.booleans()) else KEEP
    return Cell(draw(padded(draw(st.sampled_from(forms)))), value, book)


def broken_int_cell() -> st.SearchStrategy:
    return st.sampled_from(["12.5", "十二", "3人", "1,2"]).map(lambda t: Cell(t, BROKEN))


TRUE_WORDS = ("是", "Y", "y", "yes", "YES", "true", "True", "T", "t", "1")
FALSE_WORDS = ("否", "N", "n", "no", "No", "false", "FALSE", "F", "f", "0")


@st.composite
def bool_cell(draw) -> Cell:
    value = draw(st.booleans())
    return Cell(draw(padded(draw(st.sampled_from(TRUE_WORDS if value else FALSE_WORDS)))), value)


def broken_bool_cell() -> st.SearchStrategy:
    return st.sampled_from(["maybe", "对", "√", "是的"]).map(lambda t: Cell(t, BROKEN))


@st.composite
def text_cell(draw, value: str) -> Cell:
    """A text as typed: full-width letters and digits fold, spaces around are trimmed."""
    text = wide(value) if value.isascii() and draw(st.booleans()) else value
    return Cell(draw(padded(text)), value)


# ---------------------------------------------------------------- ID numbers, phones


def with_check_digit(body: str) -> str:
    return body + ric.calc_check_digit(body + "0")


@st.composite
def valid_id(draw, seq: int) -> str:
    """A valid ID number (test data, not a person); `seq` keeps each row's apart."""
    born = draw(st.dates(dt.date(1960, 1, 1), dt.date(2002, 12, 31)))
    return with_check_digit(f"{draw(st.sampled_from(REGIONS))}{born:%Y%m%d}{seq % 1000:03d}")


@st.composite
def id_cell(draw, number: str) -> Cell:
    """An ID number as offices type and guard it against Excel."""
    forms = [number, number.lower(), wide(number), "'" + number, f'="{number}"', "\t" + number,
             f"{number[:6]} {number[6:14]} {number[14:]}"]  # fmt: skip
    return Cell(draw(padded(draw(st.sampled_from(forms)))), number.upper())


@st.composite
def broken_id(draw, seq: int) -> str:
    """ID numbers that are somebody's all the same, mistyped."""
    region = draw(st.sampled_from(REGIONS))
    good = draw(valid_id(seq))
    kind = draw(st.sampled_from(["check", "feb30", "future", "short", "letter", "1899"]))
    if kind == "check":
        return good[:-1] + draw(st.sampled_from([c for c in "0123456789X" if c != good[-1]]))
    if kind == "feb30":
        return with_check_digit(f"{region}19900230{seq % 1000:03d}")
    if kind == "future":  # born after the as-of date
        return with_check_digit(f"{region}20201015{seq % 1000:03d}")
    if kind == "1899":
        return with_check_digit(f"{region}18991231{seq % 1000:03d}")
    if kind == "short":
        return good[:17]
    return good[:16] + "A" + good[17]


@st.composite
def excel_id_cell(draw, number: str) -> Cell:
    """What Excel does to an ID number typed into a General cell."""
    digits = number if number[-1] != "X" else number[:-1] + "7"
    as_float = float(int(digits))
    text = draw(st.sampled_from([f"{as_float:.5E}", repr(as_float),
                                 f"{digits}.0", f"{as_float:.14E}"]))  # fmt: skip
    return Cell(text, EXCEL, int(digits))


def valid_phone(seq: int) -> st.SearchStrategy:
    return st.sampled_from("3456789").map(lambda d: f"1{d}{(seq * 7919) % 10**9:09d}")


@st.composite
def phone_cell(draw, digits: str) -> Cell:
    forms = [digits, f"{digits[:3]}-{digits[3:7]}-{digits[7:]}",
             f"{digits[:3]} {digits[3:7]} {digits[7:]}", wide(digits)]  # fmt: skip
    text = draw(st.sampled_from(forms))
    return Cell(draw(padded(text)), text)


@st.composite
def broken_phone_cell(draw, digits: str) -> Cell:
    text = draw(st.sampled_from(["2" + digits[1:], digits[:10], digits + "0", digits[:7] + "转8"]))
    return Cell(text, text)


@st.composite
def excel_phone_cell(draw, digits: str) -> Cell:
    text = draw(st.sampled_from([f"{digits}.0", f"{float(digits):.5E}", f"{float(digits):.4E}"]))
    return Cell(text, EXCEL, int(digits))


@st.composite
def name_cell(draw) -> Cell:
    name = draw(st.sampled_from(SURNAMES)) + "".join(
        draw(st.lists(st.sampled_from(GIVEN), min_size=1, max_size=2))
    )
    return Cell(draw(padded(name)), name)


# ------------------------------------------------------------------- rows per source


def _maybe(draw, cell_strategy, p_empty: int = 3) -> Cell:
    """An optional column's cell: empty one time in `p_empty`."""
    return EMPTY if draw(st.integers(0, p_empty - 1)) == 0 else draw(cell_strategy)


@st.composite
def member_row(draw, seq: int, features: Features) -> Row:
    number = draw(valid_id(seq))
    phone = draw(valid_phone(seq))
    joined = draw(dates(dt.date(2000, 1, 1)))
    member_id = number if draw(st.integers(0, 5)) == 0 else f"M{seq:04d}"  # the ID as key
    cells = {
        "member_id": draw(text_cell(member_id)),
        "name": draw(name_cell()),
        "id_number": draw(id_cell(number)),
        "phone": _maybe(draw, phone_cell(phone)),
        "union_id": draw(text_cell(draw(st.sampled_from(KNOWN_UNIONS)))),
        "join_date": draw(date_cell(joined)),
        "leave_date": _maybe(draw, dates(joined).flatmap(date_cell), 2),
        "collected_date": _maybe(draw, dates().flatmap(date_cell)),
        "app_verified_date": _maybe(draw, dates().flatmap(date_cell)),
        "frontline": _maybe(draw, bool_cell()),
    }
    defects = {
        "member_id": st.just(EMPTY),
        "name": st.just(EMPTY),
        "id_number": st.one_of(st.just(EMPTY), broken_id(seq).flatmap(id_cell)),
        "phone": broken_phone_cell(phone),
        "union_id": st.one_of(st.just(EMPTY), text_cell("U99")),
        "join_date": st.one_of(
            st.just(EMPTY),
            broken_date_cell(),
            dates(AS_OF + dt.timedelta(1), TODAY).flatmap(date_cell),
            dates(TODAY + dt.timedelta(1), dt.date(2999, 12, 31)).flatmap(date_cell),
        ),
        "leave_date": st.one_of(
            broken_date_cell(),
            dates(dt.date(1990, 1, 1), joined - dt.timedelta(1)).flatmap(date_cell),
        ),
        "collected_date": st.one_of(
            broken_date_cell(),
            dates(TODAY + dt.timedelta(1), dt.date(2030, 1, 1)).flatmap(date_cell),
        ),
        "frontline": broken_bool_cell(),
    }
    if features.excel_damage:
        defects["id_number"] = excel_id_cell(number)
        defects["phone"] = excel_phone_cell(phone)
    return Row(_with_defect(draw, cells, defects))


def _with_defect(draw, cells: dict[str, Cell], defects: dict) -> dict[str, Cell]:
    """At most one defect a row (most rows are fine, as in a real export)."""
    if draw(st.integers(0, 2)) == 0:
        column = draw(st.sampled_from(sorted(defects)))
        cells = {**cells, column: draw(defects[column])}
    return cells


@st.composite
def union_row(draw, seq: int, features: Features) -> Row:
    founded = draw(dates(dt.date(1990, 1, 1)))
    cells = {
        "union_id": draw(text_cell(f"U{seq:03d}")),
        "union_name": draw(text_cell(draw(st.sampled_from("甲乙丙丁戊")) + f"{seq}号公司工会")),
        "street": draw(text_cell(draw(st.sampled_from(STREETS)))),
        "org_type": _maybe(draw, st.sampled_from(ORG_TYPES).flatmap(text_cell)),
        "employee_count": draw(st.integers(0, 5000).flatmap(int_cell)),
        "founded_date": draw(date_cell(founded)),
        "authorized_date": _maybe(draw, dates(founded).flatmap(date_cell), 2),
        "star_rating": _maybe(draw, st.integers(0, 5).flatmap(int_cell)),
        "dissolved_date": _maybe(draw, dates(founded).flatmap(date_cell), 4),
    }
    earlier = dates(dt.date(1980, 1, 1), founded - dt.timedelta(1)).flatmap(date_cell)
    defects = {
        "union_id": st.just(EMPTY),
        "union_name": st.just(EMPTY),
        "street": st.one_of(st.just(EMPTY), text_cell("火星街道"), text_cell("招宝山")),
        "org_type": text_cell("公司"),
        "employee_count": st.one_of(
            st.just(EMPTY), broken_int_cell(), st.integers(-99, -1).flatmap(int_cell)
        ),
        "founded_date": st.one_of(
            st.just(EMPTY),
            broken_date_cell(),
            dates(TODAY + dt.timedelta(1), dt.date(2999, 1, 1)).flatmap(date_cell),
        ),
        "authorized_date": st.one_of(broken_date_cell(), earlier),
        "star_rating": st.one_of(broken_int_cell(), st.integers(6, 9).flatmap(int_cell)),
        "dissolved_date": earlier,
    }
    return Row(_with_defect(draw, cells, defects))


@st.composite
def enrollment_row(draw, seq: int, features: Features, members: tuple[str, ...]) -> Row:
    number = draw(st.sampled_from(members))
    amount = draw(st.decimals(0, 20000, places=2))
    cells = {
        "enrollment_id": draw(text_cell(f"E{seq:04d}")),
        "id_number": draw(id_cell(number)),
        "union_id": draw(text_cell(draw(st.sampled_from(KNOWN_UNIONS)))),
        "plan_year": draw(st.integers(2000, AS_OF.year + 1).flatmap(int_cell)),
        "enrolled_date": draw(dates(dt.date(2000, 1, 1)).flatmap(date_cell)),
        "premium_yuan": draw(amount_cell(amount)),
        "plan_type": _maybe(draw, st.sampled_from(PLAN_TYPES).flatmap(text_cell)),
    }
    defects = {
        "enrollment_id": st.just(EMPTY),
        "id_number": st.one_of(
            st.just(EMPTY), broken_id(seq).flatmap(id_cell), valid_id(seq + 500).flatmap(id_cell)
        ),  # no member
        "union_id": st.one_of(st.just(EMPTY), text_cell("U99")),
        "plan_year": st.one_of(
            broken_int_cell(), st.sampled_from([1999, AS_OF.year + 2]).flatmap(int_cell)
        ),
        "enrolled_date": st.one_of(
            st.just(EMPTY),
            broken_date_cell(),
            dates(TODAY + dt.timedelta(1), dt.date(2030, 1, 1)).flatmap(date_cell),
        ),
        "premium_yuan": st.one_of(
            st.just(EMPTY),
            broken_amount_cell(),
            st.decimals(-500, Decimal("-0.01"), places=2).flatmap(amount_cell),
        ),
        "plan_type": text_cell("大病救助"),
    }
    if features.excel_damage:
        defects["id_number"] = excel_id_cell(number)
    return Row(_with_defect(draw, cells, defects))


# ------------------------------------------------------------------ files and drops


def spec_headers(source: str, column: str, aliases: bool) -> list[str]:
    col = load_specs()[source].column(column)
    names = [col.header, col.name]
    return names + list(getattr(col, "aliases", ())) if aliases else names


def known_headers(source: str) -> set[str]:
    out = set()
    for col in load_specs()[source].columns:
        out |= {col.header, col.name, *getattr(col, "aliases", ())}
    return out


@st.composite
def header_text(draw, source: str, column: str, aliases: bool) -> str:
    names = spec_headers(source, column, aliases)
    text = draw(st.sampled_from(names)) if draw(st.integers(0, 2)) == 0 else names[0]
    if draw(st.integers(0, 3)) == 0:  # a required-mark, spaces, a canonical name in capitals
        text = draw(st.sampled_from([f"{text}*", f" {text} ", f"{text} *", text.upper()]))
    return text


ROWS = {"members": member_row, "unions": union_row, "mutual_aid_enrollments": enrollment_row}


@st.composite
def source_files(draw, source: str, features: Features, **refs) -> list[Export]:
    """One or two files of a source folder, the second (sorting last) updating the first."""
    spec = load_specs()[source]
    required = [c.name for c in spec.columns if c.required]
    optional = [c.name for c in spec.columns if not c.required]
    columns = required + [c for c in optional if draw(st.booleans())]
    extras_pool = [h for h in EXTRA_HEADERS if h not in known_headers(source)]
    n_files = draw(st.integers(1, 2))
    files, seq, earlier_rows = [], 1, []
    for f in range(n_files):
        order = draw(st.permutations(columns))
        if features.utf8_looking_gbk_header and draw(st.booleans()):
            starters = [
                c for c in order if c in ("frontline", "id_number", "name", "employee_count")
            ]
            if starters:  # 一线职工, 证件号码, 职工姓名, 职工人数: GBK bytes that start as UTF-8
                order = [starters[0], *[c for c in order if c != starters[0]]]
        extras = draw(st.lists(st.sampled_from(extras_pool), unique=True, max_size=2))
        headers = [(draw(header_text(source, c, features.aliases)), c) for c in order]
        if features.utf8_looking_gbk_header and headers[0][1] in ("id_number", "name"):
            gbk_like = {"id_number": "证件号码", "name": "职工姓名"}[headers[0][1]]
            if gbk_like in known_headers(source):
                headers[0] = (gbk_like, headers[0][1])
        aliased = [i for i, (_, c) in enumerate(headers) if spec_headers(source, c, True)[2:]]
        if features.aliases and aliased:  # every file has a header by another name
            i = draw(st.sampled_from(aliased))
            headers[i] = (draw(st.sampled_from(spec_headers(source, headers[i][1], True)[2:])),
                          headers[i][1])  # fmt: skip
        for extra in extras:
            at = draw(st.integers(0, len(headers)))
            headers.insert(at, (extra, None))
        body: list[Row | Blank | Totals] = []
        n_rows = draw(st.integers(1, 6))
        for _ in range(n_rows):
            row = draw(ROWS[source](seq, features, **refs))
            seq += 1
            body.append(Row({c: row.cells[c] for c in columns}))
        # repeats within the file: an identical copy collapses, a changed one conflicts
        for _ in range(draw(st.integers(0, 1))):
            original = draw(st.sampled_from([r for r in body if isinstance(r, Row)]))
            if draw(st.booleans()):
                body.append(original)
            else:
                other = draw(ROWS[source](seq, features, **refs))
                seq += 1
                key = spec.key[0]
                body.append(Row({**{c: other.cells[c] for c in columns}, key: original.cells[key]}))
        # an update of an earlier file's rows: the later file wins
        if earlier_rows and draw(st.booleans()):
            for original in draw(st.lists(st.sampled_from(earlier_rows), max_size=2, unique_by=id)):
                other = draw(ROWS[source](seq, features, **refs))
                seq += 1
                key = spec.key[0]
                body.append(Row({**{c: other.cells[c] for c in columns}, key: original.cells[key]}))
        rows = [i for i, r in enumerate(body) if isinstance(r, Row)]
        damageable = [c for c in ("id_number", "phone") if c in columns]
        if features.excel_damage and damageable:  # every file has a cell Excel damaged
            i, column = draw(st.sampled_from(rows)), draw(st.sampled_from(damageable))
            cell = draw(
                valid_id(seq).flatmap(excel_id_cell)
                if column == "id_number"
                else valid_phone(seq).flatmap(excel_phone_cell)
            )
            body[i] = Row({**body[i].cells, column: cell})
        body = draw(st.permutations(body))
        # the harmless rows: blanks and totals, anywhere below the header
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(body)))
            extra = draw(
                st.one_of(
                    st.builds(Blank, st.sampled_from(["full", "short", "empty", "spaces"])),
                    st.builds(Totals, st.sampled_from(TOTALS_LABELS), st.booleans()),
                )
            )
            body.insert(at, extra)
        earlier_rows += [r for r in body if isinstance(r, Row)]
        fmt = "xlsx" if features.xlsx and draw(st.integers(0, 3)) == 0 else "csv"
        encoding = draw(st.sampled_from(features.encodings)) if fmt == "csv" else None
        delimiter = "\t" if encoding == "utf-16" else draw(st.sampled_from(features.delimiters))
        above = draw(
            st.sampled_from(
                [
                    [],
                    [[TITLES[source]]],
                    [[TITLES[source]], []],
                    [[TITLES[source]], ["制表日期：2020年9月30日"], []],
                ]
            )  # fmt: skip
        )
        suffix = fmt
        if encoding == "utf-16" or delimiter == "\t":  # Excel's "Unicode 文本", tab text
            suffix = draw(st.sampled_from(["csv", "txt", "tsv"]))
        files.append(
            Export(
                name=f"{f + 1}_{source}.{suffix}",
                fmt=fmt,
                encoding=encoding,
                delimiter=delimiter,
                newline=draw(st.sampled_from(["\r\n", "\n"])),
                headers=headers,
                above=above,
                body=body,
                instructions_sheet=fmt == "xlsx" and draw(st.booleans()),
            )
        )
    return files


# --------------------------------------------------------------------------- writers


def _extra_value(header: str, index: int) -> str | None:
    return {"序号": str(index + 1), "备注": "已核对"}.get(header, "")


def _cells(export: Export, item: Row | Blank | Totals, index: int, book: bool) -> list:
    n = len(export.headers)
    if isinstance(item, Blank):
        if book:
            return [" ", None, "\u3000"][:n]
        return {"full": [""] * n, "short": [""] * max(1, n // 2), "empty": [],
                "spaces": [" ", "\u3000"] * (n // 2) + [" "] * (n % 2)}[item.how]  # fmt: skip
    if isinstance(item, Totals):
        cells: list = [None if book else ""] * n
        cells[1 if item.lead_empty and n > 1 else 0] = item.label
        return cells
    out = []
    for header, column in export.headers:
        if column is None:
            value = _extra_value(header, index)
        else:
            cell = item.cells[column]
            value = cell.in_book() if book else cell.text
            if book and isinstance(value, str) and value.strip().startswith('="'):
                # a text formula's result, as Excel caches it (openpyxl would write a
                # formula with no cached value)
                value = value.strip()[2:-1]
        out.append(value if book else (value or ""))
    return out


def write_export(folder: Path, export: Export) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / export.name
    header = [h for h, _ in export.headers]
    if export.fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        if export.instructions_sheet:
            sheet.title = "填表说明"
            sheet.append(["请按模板填写，身份证号请设为文本格式"])  # one header word: not the sheet
            sheet = book.create_sheet("名册")
        for row in export.above:
            sheet.append(row)
        sheet.append(header)
        for i, item in enumerate(export.body):
            sheet.append(_cells(export, item, i, book=True))
        book.save(path)
        return path
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=export.delimiter, lineterminator=export.newline)
    for row in export.above:
        buffer.write(export.delimiter.join(row) + export.newline)
    writer.writerow(header)
    for i, item in enumerate(export.body):
        cells = _cells(export, item, i, book=False)
        if isinstance(item, Blank):  # written by hand: the csv module quotes a lone ""
            buffer.write(export.delimiter.join(cells) + export.newline)
        else:
            writer.writerow(cells)
    path.write_bytes(buffer.getvalue().encode(export.encoding))
    return path


def write_drop(raw: Path, source: str, exports: list[Export]) -> None:
    for export in exports:
        write_export(raw / load_specs()[source].folder, export)


class Drop:
    """One example: the files of the source under test, and the members loaded before it
    (their ID numbers; the union roster is always KNOWN_UNIONS)."""

    def __init__(self, source: str, files: list[Export], members: tuple[str, ...] = ()):
        self.source, self.files, self.members = source, files, members

    def __repr__(self) -> str:
        """The drop as a person reads it, for a failing example: each file and its lines."""
        lines = [f"Drop {self.source}, members {list(self.members)}"]
        for e in self.files:
            lines.append(
                f"  {e.name}: {e.encoding or e.fmt} sep={e.delimiter!r} nl={e.newline!r} "
                f"instructions_sheet={e.instructions_sheet} above={e.above}"
            )
            lines.append(f"    header: {[h for h, _ in e.headers]}")
            for i, item in enumerate(e.body):
                lines.append(f"    line {e.line_of(i)}: {item!r}")
        return "\n".join(lines)


@st.composite
def drops(draw, source: str, features: Features) -> Drop:
    members: tuple[str, ...] = ()
    refs = {}
    if source == "mutual_aid_enrollments":
        members = tuple(draw(st.lists(st.integers(900, 999), min_size=1, max_size=3, unique=True)
                             .flatmap(lambda seqs: st.tuples(*map(valid_id, seqs)))))  # fmt: skip
        refs["members"] = members
    return Drop(source, draw(source_files(source, features, **refs)), members)
