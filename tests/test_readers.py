"""For the people who read it: the briefing's text, the KPI workbook, the problem-data lists,
the catalogue and column comments. Real files, opened with pypdf and openpyxl.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import pytest
from pypdf import PdfReader

from tests.test_reports import TINY_RATE, TINY_STREET, build_test_warehouse
from union_pipeline.kpis import load_catalogue
from union_pipeline.kpis.describe import (
    catalogue_frame,
    column_comments,
    comment_sql,
    table_comments,
)
from union_pipeline.reports import (
    build_charts,
    export_reports,
    load_theme,
    pdf_text_font,
    read_report_data,
    static_export_problem,
)
from union_pipeline.reports.problems import safe_file_stem, write_problem_lists
from union_pipeline.reports.workbook import workbook_path, write_kpi_workbook


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build_test_warehouse(tmp_path_factory.mktemp("wh") / "union.duckdb")


@pytest.fixture(scope="module")
def report_data(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return read_report_data(con)


# ---------------------------------------------------------------------------- briefing text


def _fonts(resources, found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(subtype, base font) of every font a page uses, forms included."""
    fonts = resources.get("/Font")
    for font in fonts.get_object().values() if fonts else []:
        font = font.get_object()
        found.add((str(font.get("/Subtype")), str(font.get("/BaseFont"))))
    objects = resources.get("/XObject")
    for xobject in objects.get_object().values() if objects else []:
        xobject = xobject.get_object()
        if "/Resources" in xobject:
            _fonts(xobject["/Resources"].get_object(), found)
    return found


def test_briefing_text_is_real_text(warehouse, report_data, tmp_path):
    if static_export_problem():
        pytest.skip(static_export_problem())
    if pdf_text_font() is None:
        pytest.skip("no TrueType Chinese font: apt-get install fonts-wqy-zenhei")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        run = export_reports(con, tmp_path / "exports", load_theme(lang="zh"))
    reader = PdfReader(run.briefing.path)
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    # Type3 fonts (CFF Noto) extract 工 as ⼯ (Kangxi radical) and digits as NUL
    assert "\x00" not in text
    assert not any(0x2F00 <= ord(ch) <= 0x2FDF for ch in text), "Kangxi radicals: Type3 font"
    assert "工会" in pages[0] and "工作指标简报" in pages[0]
    members = report_data.latest("members_total")
    figure = f"{members['actual']:,.0f}"  # as the scorecard writes it: 242,187人
    scorecard = pages[1]
    assert "会员总数" in scorecard and f"{figure}人" in scorecard
    assert "进行中·预计未达成" in scorecard
    # every chart page too, and the charts stay vector: fonts, no full-page image
    assert all("数据来源" in page for page in pages[1:])
    for page in reader.pages:
        fonts = _fonts(page["/Resources"].get_object(), set())
        assert fonts and all(subtype == "/Type0" for subtype, _ in fonts), fonts


# ---------------------------------------------------------------------------- KPI workbook

SOURCES = [
    {
        "source": "members",
        "title": "会员实名制名册",
        "rows_loaded": 1234,
        "rows_quarantined": 5,
        "files": ["2020-09-30_会员.xlsx", '=HYPERLINK("x").csv'],
    },
    {
        "source": "unions",
        "title": "基层工会名册",
        "rows_loaded": 60,
        "rows_quarantined": 0,
        "files": 1,
    },
]


def _sheet_rows(ws) -> list[tuple]:
    return [row for row in ws.iter_rows(min_row=2, values_only=True) if any(row)]


def test_kpi_workbook_holds_the_briefings_figures(report_data, tmp_path):
    theme = load_theme(lang="zh")
    path = workbook_path(tmp_path, report_data.as_of, theme)
    assert path.name == "工作指标-2020-09-30.xlsx"
    reconciliation = pd.DataFrame(
        [
            {
                "kpi_code": "members_total",
                "year": 2019,
                "published": 235545.0,
                "lower": 235545.0,
                "upper": 235545.0,
                "quote": "2019年工作总结",
                "note": None,
                "computed": 235545.0,
                "match": True,
                "name_zh": "会员总数",
                "difference": 0.0,
            },
            {
                "kpi_code": "loan_amount_cum_yuan",
                "year": 2019,
                "published": 681320000.0,
                "lower": 681300000.0,
                "upper": 681330000.0,
                "quote": "=1+1",
                "note": "约数",
                "computed": 681000000.0,
                "match": False,
                "name_zh": "蓝领贷累计放款金额",
                "difference": -320000.0,
            },
        ]
    )
    counts = write_kpi_workbook(
        report_data,
        path,
        theme,
        sources=SOURCES,
        refreshed_at=dt.datetime(2020, 10, 1, 8, 30),
        reconciliation=reconciliation,
    )
    wb = openpyxl.load_workbook(path)
    reported = [k for k in report_data.reported]
    sections = ["会员发展", "基层组织", "职工医疗互助", "蓝领贷", "职工培训"]
    assert wb.sheetnames == ["工作指标完成情况", *sections, "按镇街", "与已发布数据核对", "说明"]
    assert counts["工作指标完成情况"] == len(reported)
    years = report_data.as_of_year - report_data.first_year + 1
    assert sum(counts[s] for s in sections) == len(reported) * years
    assert counts["与已发布数据核对"] == 2 and counts["说明"] == 2
    for ws in wb:
        assert counts[ws.title] == (len(_sheet_rows(ws)) if ws.title != "说明" else 2)
        if ws.title != "说明":
            assert ws.freeze_panes == "A2", ws.title
    # the scorecard: the briefing's figures, as numbers in the briefing's units
    chart = build_charts(report_data, theme, ["kpi_scorecard"])[0].figure.data[0]
    shown = dict(zip(chart.cells.values[0], chart.cells.values[1], strict=True))
    statuses = dict(zip(chart.cells.values[0], chart.cells.values[-2], strict=True))
    score = wb["工作指标完成情况"]
    headers = [c.value for c in score[1]]
    assert headers[:4] == ["指标代码", "指标", "单位", "2020年实际（截至9月30日）"]
    rows = {r[1]: dict(zip(headers, r, strict=True)) for r in _sheet_rows(score)}
    members = rows["会员总数"]
    assert members["单位"] == "人" and f"{members[headers[3]]:,.0f}人" == shown["会员总数"]
    assert members["状态"] == statuses["会员总数"] == "进行中·预计未达成"
    assert members["2020年目标"] == 245000 and members["比较"] == "≥"
    benefit = rows["医疗互助补助金额"]
    assert (
        benefit["单位"] == "万元" and f"{benefit[headers[3]]:,.1f}万元" == shown["医疗互助补助金额"]
    )
    loans = rows["蓝领贷累计放款金额"]
    assert (
        loans["单位"] == "亿元" and f"{loans[headers[3]]:,.2f}亿元" == shown["蓝领贷累计放款金额"]
    )
    rate = rows["会员采集比例"]
    assert rate["单位"] == "%" and f"{rate[headers[3]] * 100:.2f}%" == shown["会员采集比例"]
    formats = {c.column_letter: c.number_format for c in score[2]}
    assert formats["D"] == "#,##0"
    money_row = next(r for r in score.iter_rows(min_row=2) if r[1].value == "医疗互助补助金额")
    assert money_row[3].number_format == "#,##0.00"
    rate_row = next(r for r in score.iter_rows(min_row=2) if r[1].value == "会员采集比例")
    assert rate_row[3].number_format.endswith("%") and "个百分点" in rate_row[5].number_format
    # columns wide enough for Chinese: a CJK character counts two
    assert score.column_dimensions["D"].width >= 2 * len("（截至9月30日）")
    # a section sheet: every year of every KPI, all kpi_yearly columns
    members_sheet = wb["会员发展"]
    headers = [c.value for c in members_sheet[1]]
    assert headers == [
        "指标代码",
        "指标",
        "单位",
        "年度",
        "实际",
        "上年同期",
        "同比增减",
        "同比增幅",
        "比较",
        "目标",
        "是否达成",
        "全年数据",
        "年末预测",
        "预计达成",
        "状态",
    ]
    total = [r for r in _sheet_rows(members_sheet) if r[0] == "members_total"]
    assert [r[3] for r in total] == list(range(2017, 2021))
    assert total[2][4] == 235545 and total[2][10] == "是" and total[-1][11] == "否"
    # the streets: the tiny street only as "<5", as in the charts
    streets = wb["按镇街"]
    for row in _sheet_rows(streets):
        if row[1] == TINY_STREET:
            assert all(v == "<5" for v in row[2:6]), row
    values = [c for r in streets.iter_rows(min_row=2, values_only=True) for c in r]
    assert TINY_RATE not in values
    # reconciliation: exact yuan, formulas neutralised
    rec = _sheet_rows(wb["与已发布数据核对"])
    assert rec[1][4] == 681320000.0 and rec[1][9] == "否" and rec[1][10] == "'=1+1"
    # about: as-of date, refresh time, sources with counts
    about = [r for r in wb["说明"].iter_rows(values_only=True) if any(r)]
    flat = [c for r in about for c in r if c is not None]
    assert "2020年9月30日" in flat and "2020-10-01 08:30:00" in flat
    members_source = next(r for r in about if r[0] == "members")
    assert members_source[2:4] == (1234, 5)
    assert members_source[4].startswith("2020-09-30_会员.xlsx；")  # file names, joined
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"a formula in {ws.title}!{cell.coordinate}"


def test_kpi_workbook_in_english(report_data, tmp_path):
    theme = load_theme(lang="en")
    path = workbook_path(tmp_path, report_data.as_of, theme)
    assert path.name == "kpis-2020-09-30.xlsx"
    counts = write_kpi_workbook(report_data, path, theme)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "Scorecard" and wb.sheetnames[-3:] == [
        "By street",
        "Reconciliation",
        "About",
    ]
    assert "Membership" in counts and counts["Reconciliation"] == 0
    score = wb["Scorecard"]
    assert [c.value for c in score[1]][:3] == ["Code", "Indicator", "Unit"]
    names = [r[1] for r in _sheet_rows(score)]
    assert "Total members" in names


# ---------------------------------------------------------------------------- problem lists

ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _member(member_id, union_id, join_date="2019-03-05", **extra):
    values = {
        "member_id": member_id,
        "name": "张*",
        "id_number": "330211********123X",
        "phone": "138****5678",
        "union_id": union_id,
        "join_date": join_date,
        "leave_date": None,
        "collected_date": None,
        "app_verified_date": None,
        "frontline": "是",
    } | extra
    return json.dumps(values, ensure_ascii=False)


QUARANTINE = pd.DataFrame(
    [
        (
            "members",
            "members/2020-09-30_会员.xlsx",
            12,
            "unparseable",
            "join_date",
            "unparseable(join_date)",
            _member("M001", "ZH/001", "2019-13-01"),
        ),
        (
            "members",
            "members/2020-09-30_会员.xlsx",
            15,
            "invalid_id_number",
            "id_number",
            "invalid_id_number(id_number); invalid_phone(phone)",
            _member("=cmd|' /C calc'!A0", "ZH/001"),
        ),
        (
            "members",
            "members/2020-09-30_会员.xlsx",
            20,
            "unknown_union",
            "union_id",
            "unknown_union(union_id)",
            _member("M003", "ZH-999"),
        ),
        (
            "unions",
            "unions/工会名册.csv",
            4,
            "not_allowed",
            "street",
            "not_allowed(street)",
            json.dumps(
                {
                    "union_id": "ZH-002",
                    "union_name": "+骆驼某公司工会",
                    "street": "骆驼镇",
                    "org_type": "企业",
                    "employee_count": "120",
                    "founded_date": "2018-01-01",
                    "authorized_date": None,
                    "star_rating": None,
                    "dissolved_date": None,
                },
                ensure_ascii=False,
            ),
        ),
        (
            "mutual_aid_claims",
            "mutual_aid_claims/理赔.xlsx",
            7,
            "unknown_enrollment",
            "enrollment_id",
            "unknown_enrollment(enrollment_id)",
            json.dumps(
                {
                    "claim_id": "C1",
                    "enrollment_id": "E404",
                    "claim_date": "2020-02-01",
                    "benefit_yuan": "1,200",
                    "status": "已发放",
                },
                ensure_ascii=False,
            ),
        ),
    ],
    columns=["source", "file", "line", "rule", "column", "rules", "values_masked"],
)
UNIONS = pd.DataFrame(
    [("ZH/001", "招宝山某公司工会", "招宝山街道"), ("ZH-002", "骆驼某公司工会", "骆驼街道")],
    columns=["union_id", "union_name", "street"],
)


def _cells(path: Path) -> list:
    wb = openpyxl.load_workbook(path)
    return [c for ws in wb for row in ws.iter_rows() for c in row]


def test_problem_lists_per_source_union_and_street(tmp_path):
    out = tmp_path / "2020-09-30"
    (out / "按工会").mkdir(parents=True)
    (out / "按工会" / "OLD-已更正.xlsx").write_bytes(b"stale")  # an earlier run's list
    result = write_problem_lists(QUARANTINE, UNIONS, out, dt.date(2020, 9, 30), "zh")
    main = out / "问题数据清单-2020-09-30.xlsx"
    assert result["path"] == str(main)
    assert result["rows"] == {"members": 3, "mutual_aid_claims": 1, "unions": 1}
    wb = openpyxl.load_workbook(main)
    assert wb.sheetnames == ["说明", "会员实名制名册", "职工医疗互助补助申领", "基层工会名册"]
    members = wb[wb.sheetnames[1]]
    headers = [c.value for c in members[1]]
    assert headers[:8] == [
        "工会编码",
        "工会名称（名册）",
        "文件",
        "行号",
        "问题",
        "列",
        "全部问题",
        "处理办法",
    ]
    assert {"会员编号", "姓名", "身份证号", "手机号", "入会日期"} <= set(headers)
    rows = [
        dict(zip(headers, r, strict=True)) for r in members.iter_rows(min_row=2, values_only=True)
    ]
    assert [r["行号"] for r in rows] == [12, 15, 20]
    first = rows[0]
    assert first["工会编码"] == "ZH/001" and first["工会名称（名册）"] == "招宝山某公司工会"
    assert headers.count("工会编码") == 1
    assert first["问题"] == "无法解析（日期、数字或是否格式不对）" and first["列"] == "入会日期"
    assert first["处理办法"].startswith("按模板格式填写")
    assert first["入会日期"] == "2019-13-01"
    assert first["身份证号"] == "330211********123X" and first["手机号"] == "138****5678"
    assert (
        rows[1]["全部问题"] == "身份证号校验位错误或格式不对（身份证号）；手机号格式不对（手机号）"
    )
    assert rows[1]["会员编号"] == "'=cmd|' /C calc'!A0"  # text, never a formula
    # by union: the slash is no path; rows without a union go to 未知工会
    unions = sorted(p.name for p in (out / "按工会").glob("*.xlsx"))
    assert len(unions) == 4 and "未知工会.xlsx" in unions
    assert "OLD-已更正.xlsx" not in unions
    slash = next(p for p in (out / "按工会").glob("ZH_001-*.xlsx"))
    assert slash.parent == out / "按工会" and "招宝山某公司工会" in slash.name
    own = openpyxl.load_workbook(slash)
    own_rows = [r for r in own[own.sheetnames[1]].iter_rows(min_row=2, values_only=True)]
    assert len(own_rows) == 2 and len(own.sheetnames) == 2
    assert "ZH/001" in [c.value for c in _cells(slash)]
    unknown = openpyxl.load_workbook(out / "按工会" / "未知工会.xlsx")
    assert unknown.sheetnames == ["说明", "职工医疗互助补助申领"]
    assert result["unions"]["未知工会.xlsx"] == 1
    # by street: the roster row names its own street, the unknown union has none
    streets = {p.name: p for p in (out / "按镇街").glob("*.xlsx")}
    assert set(streets) == {"招宝山街道.xlsx", "骆驼街道.xlsx", "未知镇街.xlsx"}
    assert result["streets"] == {"招宝山街道.xlsx": 2, "骆驼街道.xlsx": 1, "未知镇街.xlsx": 2}
    assert result["files"] == 1 + 4 + 3
    # nothing in clear, nothing run as a formula, in any file written
    for path in [main, *(out / "按工会").glob("*.xlsx"), *(out / "按镇街").glob("*.xlsx")]:
        for cell in _cells(path):
            assert cell.data_type != "f", f"{path.name}!{cell.coordinate} is a formula"
            if isinstance(cell.value, str):
                assert not ID_NUMBER.search(cell.value), f"{path.name}: an ID number"
                assert not MOBILE.search(cell.value), f"{path.name}: a mobile number"
                assert not cell.value.startswith(("=", "+", "-", "@")), cell.value


def test_past_the_limit_unions_get_no_files_of_their_own(tmp_path):
    out = tmp_path / "out"
    result = write_problem_lists(
        QUARANTINE, UNIONS, out, dt.date(2020, 9, 30), "zh", max_union_files=1
    )
    assert result["unions"] == {} and "split by street only" in result["unions_skipped"]
    assert not list((out / "按工会").glob("*.xlsx"))
    assert result["streets"] and sum(result["rows"].values()) == len(QUARANTINE)


def test_safe_file_stem_keeps_codes_apart():
    assert safe_file_stem("ZH001") == "ZH001"
    assert safe_file_stem("招宝山街道") == "招宝山街道"
    slash, underscore = safe_file_stem("A/1"), safe_file_stem("A_1")
    assert "/" not in slash and slash != underscore and slash.startswith("A_1-")
    assert safe_file_stem("../../etc/passwd").startswith("etc_passwd-")
    assert safe_file_stem("CON").startswith("_CON")
    assert len(safe_file_stem("工" * 500)) <= 60 + 7


def test_problem_lists_in_english_and_empty(tmp_path):
    empty = QUARANTINE.iloc[0:0]
    result = write_problem_lists(empty, UNIONS, tmp_path, dt.date(2020, 9, 30), "en")
    assert result["rows"] == {} and result["files"] == 1
    wb = openpyxl.load_workbook(tmp_path / "problem-rows-2020-09-30.xlsx")
    assert wb.sheetnames == ["About"]
    result = write_problem_lists(QUARANTINE, UNIONS, tmp_path, dt.date(2020, 9, 30), "en")
    wb = openpyxl.load_workbook(tmp_path / "problem-rows-2020-09-30.xlsx")
    sheet = wb["Member real-name roster"]
    assert [c.value for c in sheet[1]][:5] == [
        "Union code",
        "Union name (roster)",
        "File",
        "Line",
        "Problem",
    ]
    assert (tmp_path / "by-union" / "unknown-union.xlsx").is_file()


# ---------------------------------------------------------------------------- descriptions


def test_catalogue_frame_for_a_kpi_catalogue_table(tmp_path):
    frame = catalogue_frame()
    catalogue = load_catalogue()
    assert list(frame["code"]) == [k.code for k in catalogue]
    row = frame.set_index("code").loc["members_total"]
    assert row["name_zh"] == "会员总数" and row["unit"] == "人" and row["kind"] == "stock"
    assert (
        row["definition"].startswith("年末在册会员数") and " — Active members" in row["definition"]
    )
    assert row["comparator"] == ">=" and bool(row["reported"])
    rate = frame.set_index("code").loc["membership_rate"]
    assert rate["numerator"] == "members_total" and rate["kind"] == "ratio"
    assert not frame["reported"].all()  # helper parts are listed, marked not reported
    # it loads into DuckDB as a table, with comments on its columns
    with duckdb.connect(str(tmp_path / "c.duckdb")) as con:
        con.execute("CREATE SCHEMA marts")
        con.register("frame", frame)
        con.execute("CREATE TABLE marts.kpi_catalogue AS SELECT * FROM frame")
        assert con.execute("SELECT count(*) FROM marts.kpi_catalogue").fetchone()[0] == len(
            catalogue
        )


def test_column_comments_name_staging_columns_in_chinese_and_english(tmp_path):
    comments = column_comments()
    assert comments[("staging.members", "join_date")] == "入会日期 — join date (date)"
    assert comments[("staging.unions", "union_id")].startswith("工会编码 — ")
    assert comments[("staging.members", "person_key")].startswith("人员键 — ")
    assert ("staging.members", "id_number") not in comments  # dropped at load: no comment
    assert ("staging.members", "name") not in comments
    assert ("staging.quarantine", "values_masked") in comments
    assert table_comments()["staging.members"] == "会员实名制名册 — Member real-name roster"
    # the statements run on a table of the staging shape
    with duckdb.connect(str(tmp_path / "s.duckdb")) as con:
        con.execute("CREATE SCHEMA staging")
        con.execute(
            "CREATE TABLE staging.members (member_id VARCHAR, join_date DATE, person_key VARCHAR)"
        )
        wanted = {
            k: v
            for k, v in comments.items()
            if k[0] == "staging.members" and k[1] in ("member_id", "join_date", "person_key")
        }
        for statement in comment_sql(
            wanted | {("staging.members", "member_id"): "会员编号 — it's"}
        ):
            con.execute(statement)
        found = dict(
            con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'members'"
            ).fetchall()
        )
    assert found["join_date"] == "入会日期 — join date (date)"
    assert found["member_id"] == "会员编号 — it's"
