"""The work summary draft (工作总结数据): numbers written as the annual report writes them,
the .docx in 公文 layout and the workbook's sentence sheet, from a real refresh.

The acceptance test on the calibrated district (scale 1) is in tests/test_pipeline.py, on
the refresh that file makes once.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pytest
from docx import Document
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

from tests.runs import DISTRICT
from union_pipeline.assetkit.outputs import latest
from union_pipeline.kpis import CatalogueError, load_catalogue, parse_catalogue
from union_pipeline.kpis.catalogue import Figure
from union_pipeline.reports import load_theme, read_report_data
from union_pipeline.reports.summary import (
    build_summary,
    read_quarantine_counts,
    summary_path,
    write_change,
    write_figure,
    write_percent,
)

WAN = Decimal(10) ** 4
YI = Decimal(10) ** 8
PERSON_TIMES = Figure("count", 0, unit_zh="人次")
WAN_PERSON_TIMES = Figure("万", 4, unit_zh="人次", unit_en="enrolments")
WAN_YU_YUAN = Figure("万", 0, "down_yu", unit_zh="元", unit_en="yuan")
WAN_YUAN = Figure("万", 2, unit_zh="元", unit_en="yuan")
YI_YUAN = Figure("亿", 4, unit_zh="元", unit_en="yuan")
PERCENT = Figure("percent", 2)


def _half_up(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("value", [167169, 157260, 160000, 167165, 99995, 1234567])
def test_person_times_in_wan_at_four_places(value):
    expected = _plain(_half_up(Decimal(value) / WAN, 4)) + "万人次"
    assert write_figure(value, WAN_PERSON_TIMES) == expected
    assert write_figure(167169, WAN_PERSON_TIMES) == "16.7169万人次"
    assert write_figure(160000, WAN_PERSON_TIMES) == "16万人次"  # trailing zeros dropped


@pytest.mark.parametrize(
    "value, expected",
    [
        (10_545_020.0, "1054余万元"),
        (10_545_020.000000002, "1054余万元"),  # a float sum of premiums
        (10_540_000.0, "1054万元"),  # nothing cut off: no 余
        (10_549_999.99, "1054余万元"),
        (10_539_999.99, "1053余万元"),
    ],
)
def test_yuan_truncated_to_wan_with_yu(value, expected):
    exact = Decimal(repr(value)) / WAN
    whole = exact.to_integral_value(rounding=ROUND_DOWN)
    assert expected == f"{whole}{'余' if whole != exact else ''}万元"
    assert write_figure(value, WAN_YU_YUAN) == expected


@pytest.mark.parametrize("value", [7_874_800, 7_874_750, 7_874_849.99, 5_310_000, 7_160_000])
def test_yuan_in_wan_at_two_places_rounded_half_up(value):
    # 7,874,750 is 787.475万: half up gives 787.48 where binary floats give 787.47
    expected = _plain(_half_up(Decimal(repr(float(value))) / WAN, 2)) + "万元"
    assert write_figure(value, WAN_YUAN) == expected
    assert write_figure(7_874_750, WAN_YUAN) == "787.48万元"


@pytest.mark.parametrize("value", [681_320_000, 681_315_000, 681_314_999, 850_000_000])
def test_yuan_in_yi_at_four_places(value):
    expected = _plain(_half_up(Decimal(value) / YI, 4)) + "亿元"
    assert write_figure(value, YI_YUAN) == expected
    assert write_figure(681_315_000, YI_YUAN) == "6.8132亿元"
    assert write_figure(850_000_000, YI_YUAN) == "8.5亿元"


@pytest.mark.parametrize("value", [0.6077013, 0.60765, 0.6, 0.12345])
def test_rates_as_percent_at_two_places(value):
    expected = f"{_half_up(Decimal(repr(value)) * 100, 2)}%"
    assert write_figure(value, PERCENT) == expected
    assert write_figure(0.6077013, PERCENT) == "60.77%"
    assert write_figure(0.60765, PERCENT) == "60.77%"  # half up, not to even
    assert write_figure(0.6, PERCENT) == "60.00%"


def test_counts_as_written_and_cut_down_with_yu():
    assert write_figure(143141, PERSON_TIMES) == "143141人次"  # no thousands separator
    hundreds = Figure("count", 0, "down_yu", 100, unit_zh="人次")
    assert write_figure(4260, hundreds) == "4200余人次"
    assert write_figure(4200, hundreds) == "4200人次"
    assert write_figure(4260, Figure("count", 0, "down_yu", 1000, unit_zh="人次")) == "4000余人次"


def test_english_writes_separators_and_millions_without_yu():
    assert write_figure(167169, WAN_PERSON_TIMES, "en") == "167,169 enrolments"
    assert write_figure(10_545_020, WAN_YU_YUAN, "en", money=True) == "10.55 million yuan"
    assert write_figure(0.6077013, PERCENT, "en") == "60.77%"


@pytest.mark.parametrize(
    "prior, actual", [(157260, 167169), (44, 37), (157260, 157260), (1600, 1700), (3066, 1830)]
)
def test_year_on_year_change_against_decimal(prior, actual):
    zh = load_theme(lang="zh")
    change, pct = actual - prior, (actual - prior) / prior
    text = write_change(change, pct, PERSON_TIMES, zh)
    one_place = _half_up(abs(Decimal(repr(pct))) * 100, 1)
    if change > 0:
        assert text == f"较去年增加{change}人次，同比增长{one_place}%"
    elif change < 0:
        assert text == f"较去年减少{-change}人次，同比下降{one_place}%"
    else:
        assert text == "与去年持平"
    assert write_change(9909, 9909 / 157260, PERSON_TIMES, zh) == "较去年增加9909人次，同比增长6.3%"


def test_change_wording_of_the_same_date_rates_and_half_up():
    zh, en = load_theme(lang="zh"), load_theme(lang="en")
    assert write_percent(0.0625) == "6.3"  # half up (Python's round would give 6.2)
    same_date = write_change(
        -234, -234 / 1274, Figure("count", 0, unit_zh="人"), zh, same_date=True
    )
    assert same_date == "较去年同期减少234人，同比下降18.4%"
    rate = write_change(0.38384, 1.7, PERCENT, zh, ratio=True)
    assert rate == "较去年提高38.38个百分点"
    assert write_change(-0.0123, None, PERCENT, zh, ratio=True) == "较去年下降1.23个百分点"
    assert write_change(None, None, PERCENT, zh) is None
    assert write_change(9909, 0.063, PERSON_TIMES, en) == "up 9,909 on last year, +6.3%"


# ---------------------------------------------------------------------------- the catalogue


def test_catalogue_carries_how_the_report_writes_each_kpi():
    kpis = {k.code: k for k in load_catalogue()}
    enrolments = kpis["mutual_aid_enrollments"].writing
    assert enrolments.figure == Figure("万", 4, unit_zh="人次", unit_en="enrolments")
    assert enrolments.change.number == "count"
    assert enrolments.others() == ["mutual_aid_premium_yuan"]
    assert kpis["mutual_aid_premium_yuan"].writing.figure.rounding == "down_yu"
    assert kpis["loan_amount_cum_yuan"].writing.figure.number == "亿"
    assert kpis["members_total"].writing.figure == Figure("count", 0, unit_zh="人")  # default


@pytest.mark.parametrize(
    "writing, field",
    [
        ({"number": "千"}, "writing.number"),
        ({"decimals": -1}, "writing.decimals"),
        ({"rounding": "up"}, "writing.rounding"),
        ({"zh": "没有数字"}, "writing.zh"),
        ({"zh": "{value}与{no_such_kpi}"}, "writing.zh"),
        ({"colour": "red"}, "writing.colour"),
        ({"change": {"number": "percent", "step": 0}}, "writing.change.step"),
    ],
)
def test_catalogue_rejects_a_malformed_writing(writing, field):
    entry = {
        "code": "members_new",
        "name_zh": "新发展会员",
        "name_en": "New members",
        "unit": "人",
        "kind": "flow",
        "definition": {"en": "x", "zh": "x"},
        "rows": "SELECT * FROM eval_points",
        "value": "count(*)",
        "writing": writing,
    }
    with pytest.raises(CatalogueError, match=re.escape(f"'{field}'")) as err:
        parse_catalogue({"kpis": [entry]})
    assert "members_new" in str(err.value)


# ---------------------------------------------------------------------------- a refresh


@pytest.fixture
def refreshed(refreshed_district):
    """The small demo drop refreshed with the KPI workbook (and so the draft) written (the
    session's shared refresh, made without UNION_LANG): (warehouse file, the workbook
    step's metadata)."""
    with refreshed_district.instance() as instance:
        found = latest(instance, dg.AssetKey(["reports", "kpi_workbook"]), DISTRICT)
        assert found is not None and found.run_id == refreshed_district.run_id
    return refreshed_district.live, {k: getattr(v, "value", v) for k, v in found.metadata.items()}


def _fonts(element) -> dict[str, str]:
    fonts = element.find(qn("w:rPr")).find(qn("w:rFonts"))
    return {k.split("}")[-1]: v for k, v in fonts.attrib.items()}


def test_draft_docx_and_workbook_sheet_from_a_refresh(refreshed):
    warehouse, metadata = refreshed
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = read_report_data(con)
        counts = read_quarantine_counts(con)
        yearly = {
            (code, int(year)): actual
            for code, year, actual in con.execute(
                "SELECT kpi_code, year, actual FROM marts.kpi_yearly"
            ).fetchall()
        }
    theme = load_theme(lang="zh").of("330211")
    summary = build_summary(data, theme, counts)
    workbook = Path(metadata["path"])
    docx = Path(metadata["summary_docx"])
    # beside the KPI workbook, named by the as-of date
    assert docx == summary_path(workbook.parent, data.as_of, theme)
    assert docx.name == f"工作总结数据-{data.as_of.isoformat()}.docx"
    assert metadata["summary_sentences"] == len(summary.sentences) > 10

    document = Document(str(docx))
    section = document.sections[0]
    assert abs(section.page_width - Mm(210)) < Mm(1) and abs(section.page_height - Mm(297)) < Mm(1)
    normal = document.styles["Normal"]
    assert _fonts(normal.element)["eastAsia"] == "仿宋" and normal.font.size == Pt(16)
    for name in ("Heading 1", "Heading 2", "Title"):
        assert _fonts(document.styles[name].element)["eastAsia"] == "黑体", name
    text = "\n".join(p.text for p in document.paragraphs)
    assert "数据研判" in text and "发展会员" in text
    for sentence in summary.sentences:
        assert sentence.text in text
    # the footer numbers the pages with a PAGE field
    footer = section.footer._element.xml
    assert "PAGE" in "".join(t.text or "" for t in section.footer._element.iter(qn("w:instrText")))
    assert 'w:fldCharType="begin"' in footer and 'w:fldCharType="end"' in footer
    # no pseudonym or identifier reaches the draft
    assert not re.search(r"[0-9a-f]{64}", text) and "person_key" not in text

    book = openpyxl.load_workbook(workbook)
    assert book.sheetnames[-1] == "文字稿数据"
    sheet = book["文字稿数据"]
    assert [c.value for c in sheet[1]] == ["部分", "板块", "文字", "指标代码", "数据"]
    rows = [r for r in sheet.iter_rows(min_row=2, values_only=True) if any(r)]
    assert [r[2] for r in rows] == [s.text for s in summary.sentences]
    year = data.as_of_year - 1
    members = next(r for r in rows if str(year) in r[0] and "发展会员" in r[2])
    assert "members_new" in members[3].split(", ")
    actual = yearly[("members_new", year)]
    assert f"members_new.actual = {actual:.0f}" in members[4]
    assert f"{actual:.0f}人" in members[2]
    quality = [r for r in rows if "未能入库" in r[2]]
    assert len(quality) == len(counts["source"].unique()) > 0
    assert all(r[4].startswith("quarantine.") for r in quality)


def test_union_lang_en_writes_english_sentences(refreshed, monkeypatch):
    warehouse, _ = refreshed
    monkeypatch.setenv("UNION_LANG", "en")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = read_report_data(con)
        counts = read_quarantine_counts(con)
    theme = load_theme().of("330211")
    summary = build_summary(data, theme, counts)
    assert summary.title == "Work summary data"
    assert summary.parts[0].heading == f"1. Work in {data.as_of_year - 1}"
    first = summary.parts[0].paragraphs[0].sentences[0].text
    assert first.startswith(f"In {data.as_of_year - 1}, ")
    # streets and programme names stay Chinese; the wording is English
    chinese = ("较去年", "同比", "万元", "亿元", "人次", "年度目标", "未能入库")
    assert not [s.text for s in summary.sentences if any(w in s.text for w in chinese)]
    assert any(" on last year" in s.text for s in summary.sentences)
    assert summary_path(Path("x"), data.as_of, theme).name.startswith("work-summary-data-")


# ---------------------------------------------------------------------------- the briefing


def test_briefing_has_the_draft_after_the_cover(tmp_path):
    from pypdf import PdfReader

    from tests.test_reports import build_test_warehouse
    from union_pipeline.reports import build_charts, static_export_problem, write_briefing

    if static_export_problem():
        pytest.skip(static_export_problem())
    warehouse = build_test_warehouse(tmp_path / "wh" / "union.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = read_report_data(con)
    theme = load_theme(lang="zh")
    summary = build_summary(data, theme)
    charts = build_charts(data, theme, ["kpi_scorecard"])
    made = write_briefing(charts, {}, tmp_path / "briefing.pdf", data, theme, summary)
    reader = PdfReader(made.path)
    pages = [page.extract_text() for page in reader.pages]
    text_pages = len(pages) - 1 - len(charts)
    assert text_pages >= 1 and made.pages == len(pages)
    assert made.titles[:2] == ["工作指标简报", "工作总结数据"]
    assert made.titles[1 + text_pages] == "工作指标完成情况"
    outline = [item["/Title"] for item in reader.outline if not isinstance(item, list)]
    assert outline[:2] == ["工作总结数据", "工作指标完成情况"]
    draft = "".join(pages[1 : 1 + text_pages]).replace("\n", "").replace(" ", "")
    assert "工作总结数据" in draft and "数据研判" in draft
    first = summary.parts[0].paragraphs[0].sentences[0].text
    assert first[:20] in draft  # real text, in the order written
    assert "工作指标完成情况" in pages[1 + text_pages]
