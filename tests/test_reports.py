"""Charts, exports and the briefing, with the real browser (Debian chromium + CJK fonts).

The input is a small warehouse built here in a temporary DuckDB file, in the shape of the
marts contract (docs/marts.md) and the staging schema (docs/staging-schema.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from pypdf import PdfReader

from tests.runs import materialize_charts_and_briefing, register_marts
from union_pipeline.kpis import load_catalogue
from union_pipeline.reports import (
    build_charts,
    export_reports,
    find_browser,
    load_theme,
    read_report_data,
    static_export_problem,
    street_values,
)
from union_pipeline.reports.pixels import ink, read_png
from union_pipeline.reports.render import Job, render
from union_pipeline.settings import ASSETS_DIR

AS_OF = dt.date(2020, 9, 30)
FIRST_YEAR = 2017
STREETS = ["招宝山街道", "蛟川街道", "骆驼街道", "庄市街道", "贵驷街道", "澥浦镇", "九龙湖镇"]
TINY_STREET = "区直机关"  # 3 members: every figure of it is "<5"
TINY_RATE = 0.6666666666666666  # its collection rate (2 of 3): must appear nowhere
# 2019 full-year values (the district's annual report) and 2017-2020 growth
BASE_2019 = {
    "members_total": 235545,
    "members_new": 4456,
    "members_collected": 143141,
    "members_app_verified": 16421,
    "unions_new": 37,
    "unions_authorized": 1255,
    "mutual_aid_enrollments": 167169,
    "mutual_aid_premium_yuan": 10545000,
    "mutual_aid_claimants": 12496,
    "mutual_aid_benefit_yuan": 7874800,
    "loan_borrowers": 900,
    "loan_amount_yuan": 165000000,
    "loan_borrowers_cum": 3688,
    "loan_amount_cum_yuan": 681320000,
    "training_sessions": 104,
    "training_participations": 4210,
    "education_enrollees": 66,
    "contest_events": 28,
}
TARGETS = {  # (2019, 2020)
    "members_total": (230000, 245000),
    "members_new": (4000, 5000),
    "members_collected_rate": (0.65, 0.70),
    "membership_rate": (0.55, 0.58),
    "unions_new": (40, 35),
    "mutual_aid_enrollments": (160000, 170000),
    "mutual_aid_benefit_yuan": (7000000, 8000000),
    "loan_amount_cum_yuan": (650000000, 9e8),
    "training_sessions": (100, 100),
    "contest_events": (30, 30),
}
YTD_SHARE = 0.72  # share of a flow reached by 30 September


def _yearly_rows(catalogue) -> pd.DataFrame:
    rows = []
    employees = {2017: 400000, 2018: 410000, 2019: 420000, 2020: 425000}
    full: dict[str, dict[int, float]] = {}
    same_day: dict[str, dict[int, float]] = {}
    for kpi in catalogue:
        if kpi.code in BASE_2019:
            base = BASE_2019[kpi.code]
            full[kpi.code] = {y: base * (1.06 ** (y - 2019)) for y in range(FIRST_YEAR, 2021)}
            share = YTD_SHARE if kpi.kind == "flow" else 0.97
            same_day[kpi.code] = {y: v * share for y, v in full[kpi.code].items()}
    full["members_collected_rate"] = {
        y: full["members_collected"][y] / full["members_total"][y] for y in full["members_total"]
    }
    same_day["members_collected_rate"] = full["members_collected_rate"]
    full["membership_rate"] = {y: full["members_total"][y] / employees[y] for y in employees}
    same_day["membership_rate"] = full["membership_rate"]
    for kpi in catalogue:
        if not kpi.reported or kpi.code not in full:
            continue
        for year in range(FIRST_YEAR, 2021):
            complete = year < 2020
            actual = full[kpi.code][year] if complete else same_day[kpi.code][year]
            prior = None
            if year > FIRST_YEAR:
                prior = full[kpi.code][year - 1] if complete else same_day[kpi.code][year - 1]
            target, comparator = None, None
            if kpi.code in TARGETS and year >= 2019:
                target, comparator = TARGETS[kpi.code][year - 2019], ">="
            projected = None
            if not complete:
                projected = actual / YTD_SHARE if kpi.kind == "flow" else actual
            rows.append(
                {
                    "kpi_code": kpi.code,
                    "year": year,
                    "actual": float(actual),
                    "prior_actual": prior,
                    "yoy_change": None if prior is None else actual - prior,
                    "yoy_pct": None if not prior else (actual - prior) / prior,
                    "target": target,
                    "comparator": comparator,
                    "target_met": (actual >= target) if complete and target is not None else None,
                    "is_complete_year": complete,
                    "projected_year_end": projected,
                    "on_track": (projected >= target)
                    if not complete and target is not None
                    else None,
                }
            )
    return pd.DataFrame(rows)


def _street_rows() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(1)
    for year in range(FIRST_YEAR, 2021):
        for street in STREETS + [TINY_STREET]:
            if street == TINY_STREET:
                total, collected, employees = 3.0, 2.0, 4.0
            else:
                total = float(rng.integers(15000, 45000))
                collected = float(round(total * rng.uniform(0.5, 0.75)))
                employees = float(round(total / rng.uniform(0.45, 0.65)))
            rows += [
                ("members_total", year, street, total, total),
                ("members_collected", year, street, collected, collected),
                ("members_collected_rate", year, street, collected / total, total),
                ("membership_rate", year, street, total / employees, total),
                ("unions_new", year, street, 3.0, None),
            ]
    return pd.DataFrame(rows, columns=["kpi_code", "year", "street", "actual", "persons"])


def person_key(i: int) -> str:
    """A pseudonym shaped like the warehouse's (HMAC-SHA256 hex): it must appear in no export."""
    return hashlib.sha256(f"person-{i}".encode()).hexdigest()


def _staging(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(7)
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    enrol, claims, loans, training = [], [], [], []
    for plan_year in (2019, 2020):
        for i in range(3000):
            # most enrol in December before the plan year or in its first quarter
            day = dt.date(plan_year - 1, 12, 1) + dt.timedelta(days=int(rng.integers(0, 150)))
            if day > AS_OF:
                continue
            eid = f"E{plan_year}{i:05d}"
            enrol.append((eid, person_key(i), plan_year, day, 63.0))
            if rng.random() < 0.3:
                claim_day = dt.date(plan_year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
                if claim_day <= AS_OF:
                    claims.append(
                        (
                            f"C{eid}",
                            eid,
                            claim_day,
                            float(rng.integers(200, 3000)),
                            "已发放" if rng.random() < 0.9 else "审核中",
                        )
                    )
    for i in range(1500):
        day = dt.date(2015, 6, 1) + dt.timedelta(days=int(rng.integers(0, 1950)))
        loans.append((f"L{i}", person_key(i % 1200), day, float(rng.integers(5, 30)) * 10000))
    programmes = [("吾意乐学", 110, 40), ("学历提升", 3, 25), ("雄镇杯技能竞赛", 28, 12)]
    for year in range(FIRST_YEAR, 2021):
        for name, sessions, size in programmes:
            for s in range(sessions):
                day = dt.date(year, 1, 5) + dt.timedelta(days=int(rng.integers(0, 355)))
                if day > AS_OF:
                    continue
                for k in range(int(rng.integers(size // 2, size + 1))):
                    training.append(
                        (f"T{year}{name}{s}-{k}", person_key(k), name, f"S{year}{s}", day)
                    )
    frames = {
        "mutual_aid_enrollments": pd.DataFrame(
            enrol,
            columns=["enrollment_id", "person_key", "plan_year", "enrolled_date", "premium_yuan"],
        ),
        "mutual_aid_claims": pd.DataFrame(
            claims, columns=["claim_id", "enrollment_id", "claim_date", "benefit_yuan", "status"]
        ),
        "loans": pd.DataFrame(
            loans, columns=["loan_id", "person_key", "disbursed_date", "amount_yuan"]
        ),
        "training": pd.DataFrame(
            training, columns=["record_id", "person_key", "program", "session_id", "session_date"]
        ),
    }
    for name, frame in frames.items():
        con.register("frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE staging.{name} AS SELECT * FROM frame")
        con.unregister("frame")


def build_test_warehouse(path: Path, staging: bool = True) -> Path:
    """A warehouse with the marts contract's tables (and the staging detail the charts use)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE TABLE marts.refresh_context (as_of DATE, first_year INTEGER)")
        con.execute("INSERT INTO marts.refresh_context VALUES (?, ?)", [AS_OF, FIRST_YEAR])
        for name, frame in (
            ("kpi_yearly", _yearly_rows(catalogue)),
            ("kpi_by_street", _street_rows()),
        ):
            con.register("frame", frame)
            con.execute(f"CREATE TABLE marts.{name} AS SELECT * FROM frame")
            con.unregister("frame")
        if staging:
            _staging(con)
            # the series marts, by their own SQL, from the hand-made staging rows
            for sql in sorted((ASSETS_DIR / "marts").glob("*.sql")):
                con.execute(f"CREATE TABLE marts.{sql.stem} AS {sql.read_text('utf-8')}")
    return path


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build_test_warehouse(tmp_path_factory.mktemp("wh") / "union.duckdb")


@pytest.fixture(scope="module")
def report_data(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return read_report_data(con)


needs_browser = pytest.mark.skipif(
    static_export_problem() is not None,
    reason="static export needs chromium and CJK fonts (apt-get install chromium fonts-noto-cjk)",
)


@pytest.fixture(scope="module")
def exported(warehouse, tmp_path_factory):
    """One full export (charts, PNG/PDF, dashboard, briefing) shared by the browser tests."""
    if static_export_problem():
        pytest.skip(static_export_problem())
    out = tmp_path_factory.mktemp("exports")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return export_reports(con, out, load_theme(lang="zh"))


# ---------------------------------------------------------------------------- plain logic


def test_numbers_read_the_way_the_report_writes_them():
    zh, en = load_theme(lang="zh"), load_theme(lang="en")
    assert zh.fmt(10_545_000, "元") == "1,054.5万元"
    assert zh.fmt(681_320_000, "元") == "6.81亿元"
    assert zh.fmt(786, "元") == "786元"
    assert zh.fmt(0.6077, "ratio") == "60.77%"
    assert zh.fmt(235_545, "人") == "235,545人"
    assert zh.fmt_change(0.013, None, "ratio") == "+1.3个百分点"
    assert zh.fmt_change(9909, 0.063, "人次") == "+6.3%"
    assert en.fmt(681_320_000, "元") == "681.32 M yuan"
    assert en.fmt(0.6077, "ratio") == "60.77%"
    assert zh.period(2020, AS_OF, "flow") == "2020年1–9月"
    assert zh.period(2019, AS_OF, "stock") == "2019年9月末"
    assert zh.period(2020, dt.date(2020, 9, 15), "flow") == "2020年1月1日–9月15日"
    assert en.period(2020, AS_OF, "flow") == "Jan–Sep 2020"
    assert zh.date(AS_OF) == "2020年9月30日"


def test_union_lang_switches_every_label(monkeypatch, report_data):
    catalogue = {k.code: k for k in load_catalogue()}
    monkeypatch.setenv("UNION_LANG", "en")
    charts = {c.slug: c for c in build_charts(report_data, load_theme())}
    assert charts["trend_members_total"].title == catalogue["members_total"].name_en
    assert "by street" in charts["street_membership_rate"].title
    monkeypatch.delenv("UNION_LANG")
    charts = {c.slug: c for c in build_charts(report_data, load_theme())}
    assert charts["trend_members_total"].title == catalogue["members_total"].name_zh == "会员总数"
    monkeypatch.setenv("UNION_LANG", "fr")
    with pytest.raises(ValueError, match="UNION_LANG"):
        load_theme()


def test_every_leadership_chart_is_built(report_data):
    charts = build_charts(report_data, load_theme(lang="zh"))
    slugs = [c.slug for c in charts]
    reported = [k.code for k in load_catalogue() if k.reported]
    assert slugs[0] == "kpi_scorecard"
    assert {f"trend_{code}" for code in reported} <= set(slugs)
    assert {
        "street_membership_rate",
        "street_members_collected_rate",
        "mutual_aid_monthly",
        "loans_cumulative",
        "training_by_programme",
    } <= set(slugs)
    assert len(slugs) == len(set(slugs))
    # the scorecard: one row per KPI with its status
    table = charts[0].figure.data[0]
    names, statuses = table.cells.values[0], table.cells.values[-2]
    assert len(names) == len(reported)
    row = names.index("新发展会员")  # 2020 YTD 3208, projected 4456 < target 5000
    assert statuses[row] == "进行中·预计未达成"
    assert table.cells.values[-1][row] == "达成"  # 2019: 4456 >= 4000
    # the trend: complete years, then last year to the same date beside this year to date
    trend = next(c for c in charts if c.slug == "trend_members_new").figure
    categories = list(trend.layout.xaxis.categoryarray)
    assert categories == ["2017年", "2018年", "2019年", "2019年1–9月", "2020年1–9月"]
    names = {t.name for t in trend.data}
    assert {"全年", "上年同期", "本年截至统计日", "目标", "年末预测"} <= names


def test_a_figure_of_fewer_than_five_persons_is_shown_as_less_than_five(report_data):
    theme = load_theme(lang="zh")
    values = street_values(
        report_data.by_street,
        report_data.catalogue,
        "members_collected_rate",
        2020,
        theme.min_persons,
        theme.is_persons_unit,
    ).set_index("street")
    assert values.loc[TINY_STREET, "suppressed"]
    assert np.isnan(values.loc[TINY_STREET, "value"])
    assert not values.drop(TINY_STREET)["suppressed"].any()
    charts = {c.slug: c for c in build_charts(report_data, theme, ["street_comparison"])}
    for slug in ("street_membership_rate", "street_members_collected_rate"):
        chart = charts[slug]
        assert chart.suppressed == 1 and "5" in chart.note
        shown = [t for t in chart.figure.data if TINY_STREET in list(t.y or [])]
        assert shown and all(t.mode == "text" for t in shown)
        assert [list(t.text) for t in shown] == [[" <5"]]
        dumped = chart.figure.to_json()
        for secret in (repr(TINY_RATE)[:8], "66.7%", "66.67%", "0.75", "75.0%"):
            assert secret not in dumped, f"{slug} exports the tiny street's {secret}"


def test_suppression_also_hides_a_complement_of_a_few_persons():
    catalogue = load_catalogue()
    theme = load_theme(lang="zh")
    by_street = pd.DataFrame(
        [
            # 200 members, 197 collected: the 3 not collected would be exposed by 98.5%
            ("members_total", 2020, "甲街道", 200.0, 200.0),
            ("members_collected", 2020, "甲街道", 197.0, 197.0),
            ("members_collected_rate", 2020, "甲街道", 0.985, 200.0),
            ("members_total", 2020, "乙街道", 200.0, 200.0),
            ("members_collected", 2020, "乙街道", 150.0, 150.0),
            ("members_collected_rate", 2020, "乙街道", 0.75, 200.0),
        ],
        columns=["kpi_code", "year", "street", "actual", "persons"],
    )
    values = street_values(
        by_street,
        catalogue,
        "members_collected_rate",
        2020,
        theme.min_persons,
        theme.is_persons_unit,
    ).set_index("street")
    assert values.loc["甲街道", "suppressed"] and not values.loc["乙街道", "suppressed"]
    # without a persons column (the marts contract allows it) counts of persons still count
    no_persons = by_street.assign(persons=np.nan)
    no_persons.loc[0:2, "actual"] = [4.0, 2.0, 0.5]
    values = street_values(
        no_persons,
        catalogue,
        "members_collected_rate",
        2020,
        theme.min_persons,
        theme.is_persons_unit,
    ).set_index("street")
    assert values.loc["甲街道", "suppressed"]


def test_marts_without_staging_detail_still_chart(tmp_path):
    path = build_test_warehouse(tmp_path / "bare.duckdb", staging=False)
    with duckdb.connect(str(path), read_only=True) as con:
        data = read_report_data(con)
    slugs = {c.slug for c in build_charts(data, load_theme(lang="zh"))}
    assert "loans_cumulative" in slugs  # from kpi_yearly's cumulative KPIs
    assert "mutual_aid_monthly" not in slugs and "training_by_programme" not in slugs


def test_problem_lists_rewrite_only_the_files_whose_rows_changed(tmp_path):
    """A union whose rows did not change keeps its file; a changed, new or touched one is
    written; the content is the same either way."""
    from openpyxl import load_workbook

    from tests.test_readers import QUARANTINE, UNIONS
    from union_pipeline.reports.problems import write_problem_lists

    out, day = tmp_path / "2020-09-30", dt.date(2020, 9, 30)
    first = write_problem_lists(QUARANTINE, UNIONS, out, day, "zh")
    assert first["written"] == first["files"] == 1 + 4 + 3
    files = sorted(out.rglob("*.xlsx"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = write_problem_lists(QUARANTINE, UNIONS, out, day, "zh", previous=first["digests"])
    assert again["written"] == 0 and again["files"] == first["files"]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    # one row of the union ZH-002 (骆驼街道) changes: its file, its street's, the main list
    changed = QUARANTINE.copy()
    row = changed.index[changed["values_masked"].str.contains("ZH-002")][0]
    changed.loc[row, "line"] = 5
    third = write_problem_lists(changed, UNIONS, out, day, "zh", previous=again["digests"])
    rewritten = {p.relative_to(out).as_posix() for p in files if p.stat().st_mtime_ns != stamps[p]}
    assert third["written"] == 3
    assert rewritten == {
        "问题数据清单-2020-09-30.xlsx",
        "按镇街/骆驼街道.xlsx",
        next(f"按工会/{n}" for n in third["unions"] if n.startswith("ZH-002")),
    }
    sheet = load_workbook(out / "按镇街" / "骆驼街道.xlsx")["基层工会名册"]
    assert [c.value for c in sheet["D"]][1:] == [5]  # 行号
    # a file removed or changed by hand is written again
    (out / "按镇街" / "未知镇街.xlsx").unlink()
    (out / "按镇街" / "招宝山街道.xlsx").write_bytes(b"edited")
    fourth = write_problem_lists(changed, UNIONS, out, day, "zh", previous=third["digests"])
    assert fourth["written"] == 2
    assert load_workbook(out / "按镇街" / "招宝山街道.xlsx").sheetnames[0] == "说明"


# ---------------------------------------------------------------------------- the browser


def _render(figure: go.Figure, path: Path, width=600, height=160) -> np.ndarray:
    render([Job(figure, path, width, height, 1.0)])
    return read_png(path.read_bytes())


def _text_figure(text: str, family: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=text,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font=dict(size=48, family=family, color="#000000"),
    )
    fig.update_layout(
        xaxis_visible=False,
        yaxis_visible=False,
        margin=dict(l=0, r=0, t=0, b=0),
        paper_bgcolor="#FFFFFF",
        plot_bgcolor="#FFFFFF",
    )
    return fig


@needs_browser
def test_chinese_text_renders_as_glyphs_not_boxes(tmp_path):
    """Two different Chinese strings must give different pixels; a string of characters no
    font has (Private Use Area: always the empty box) must look different from Chinese."""
    family = load_theme(lang="zh").font["family"]
    a = _render(_text_figure("会员总数增长", family), tmp_path / "a.png")
    b = _render(_text_figure("职工入会比例", family), tmp_path / "b.png")
    boxes = _render(
        _text_figure("\ue000\ue001\ue002\ue003\ue004\ue005", family), tmp_path / "boxes.png"
    )
    other_boxes = _render(
        _text_figure("\ue010\ue011\ue012\ue013\ue014\ue015", family), tmp_path / "boxes2.png"
    )
    assert ink(a) > 0.02 and ink(b) > 0.02

    def differ(x, y):
        return float((np.abs(x[..., :3].astype(int) - y[..., :3].astype(int)) > 60).mean())

    assert differ(boxes, other_boxes) < 0.001, "missing glyphs should all be the same box"
    assert differ(a, b) > 0.02, "different Chinese strings rendered identically: boxes?"
    assert differ(a, boxes) > 0.02 and differ(b, boxes) > 0.02


@needs_browser
def test_every_chart_exported_as_png_and_its_pdf_page_only_in_the_briefing(exported):
    theme = load_theme(lang="zh")
    assert exported.static.skipped is None
    for chart in exported.charts:
        png = exported.paths.png(chart.slug)
        image = read_png(png.read_bytes())
        assert image.shape[:2] == (theme.page["height"] * 2, theme.page["width"] * 2)
        assert ink(image) > 0.005, f"{png.name} is (nearly) blank"
        rgb = image[..., :3].astype(np.int32)
        colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
        assert len(colours) > 50, f"{png.name} is flat"
    # a PDF only where one is used: the briefing, not a PDF per chart
    assert sorted(p.name for p in exported.paths.charts.iterdir()) == sorted(
        f"{c.slug}.png" for c in exported.charts
    )
    assert exported.static.files == [exported.paths.png(c.slug) for c in exported.charts]


@needs_browser
def test_briefing_is_a4_cover_scorecard_then_one_chart_per_page(exported):
    briefing = exported.briefing
    reader = PdfReader(briefing.path)
    assert len(reader.pages) == 1 + len(exported.charts) == briefing.pages
    for page in reader.pages:
        box = page.mediabox
        assert abs(float(box.width) - 842) < 3 and abs(float(box.height) - 595) < 3
    assert briefing.titles[:2] == ["工作指标简报", "工作指标完成情况"]
    assert briefing.titles[2:] == [c.title for c in exported.charts[1:]]
    outline = [item["/Title"] for item in reader.outline if not isinstance(item, list)]
    assert outline[:2] == ["工作指标完成情况", "会员发展"]
    assert "2020-09-30" in reader.metadata.title
    assert briefing.path.name == "briefing-2020-09-30.pdf"
    assert briefing.path.parent.name == "2020-09-30"


def _open_in_chromium(html: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages, network cut off."""
    browser = find_browser()
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any request would fail
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


@needs_browser
def test_dashboard_works_offline_and_draws_every_chart(exported, tmp_path):
    html = exported.dashboard
    text = html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", text), "a script is loaded from elsewhere"
    assert not re.search(r"<link[^>]+href=\\s*\"https?:", text)
    dom, console = _open_in_chromium(html, tmp_path)
    assert console == [], f"console messages: {console[:5]}"
    sections = re.split(r'<section class="chart"', dom)[1:]
    slugs = [re.search(r'data-chart="([^"]+)"', s).group(1) for s in sections]
    assert slugs == [c.slug for c in exported.charts]
    for slug, section in zip(slugs, sections, strict=True):
        figure = next(c.figure for c in exported.charts if c.slug == slug)
        if slug == "kpi_scorecard":  # an HTML table: it wraps and scrolls on a phone
            assert section.count("<tr>") == 1 + len(figure.data[0].cells.values[0])
            assert "进行中·预计未达成" in section
            continue
        assert 'class="main-svg"' in section, f"{slug} not drawn"
        drawn = re.findall(r'class="(?:trace [a-z]+|table)[" ]', section)
        assert len(drawn) >= len(figure.data), f"{slug}: {len(drawn)} of {len(figure.data)}"
        if slug.startswith("street_"):  # the tiny street is drawn, as "<5" only
            assert TINY_STREET in section and "&lt;5" in section
            assert "66.7%" not in section


@needs_browser
def test_no_pseudonym_or_identifier_in_any_export(exported, warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        keys = {
            k
            for (k,) in con.execute(
                "SELECT person_key FROM staging.loans "
                "UNION SELECT person_key FROM staging.training "
                "UNION SELECT person_key FROM staging.mutual_aid_enrollments"
            ).fetchall()
        }
    assert len(keys) > 1000
    for path in [exported.dashboard, *exported.paths.charts.glob("*")]:
        text = path.read_bytes().decode("latin-1")
        found = set(re.findall(r"[0-9a-f]{64}", text)) & keys
        assert not found, f"a person_key in {path.name}"
        assert "person_key" not in text


def test_without_chromium_the_html_is_written_and_the_fix_said_once(
    warehouse, tmp_path, monkeypatch, caplog
):
    from union_pipeline.reports import render

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    monkeypatch.setattr(render, "_warned", set())  # as in a new process
    caplog.set_level(logging.WARNING)
    runs = []
    for i in range(2):
        with duckdb.connect(str(warehouse), read_only=True) as con:
            runs.append(export_reports(con, tmp_path / f"out{i}", load_theme(lang="zh")))
    for run in runs:
        assert run.dashboard.is_file() and run.briefing is None
        assert "apt-get install chromium fonts-noto-cjk" in run.static.skipped
        assert not list(run.paths.charts.glob("*.png"))
    said = [r for r in caplog.records if "apt-get install chromium fonts-noto-cjk" in r.message]
    assert len(said) == 1  # said once, not per run or per chart


# ---------------------------------------------------------------------------- Dagster

CHARTS = [
    "kpi_scorecard",
    "kpi_trends",
    "street_comparison",
    "mutual_aid_monthly",
    "loans_cumulative",
    "training_by_programme",
]
REPORT_ASSETS = [*CHARTS, "dashboard", "briefing"]


def test_report_assets_are_declared_for_readers():
    from union_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    warehouse_key = dg.AssetKey(["warehouse", "district_duckdb"])
    keys = {
        k
        for k in graph.get_all_asset_keys()
        if k.path[0] == "reports" and graph.get(k).group_name != "city"
    }
    extra = ["briefing_mail", "kpi_workbook", "problem_lists"]
    assert keys == {dg.AssetKey(["reports", name]) for name in [*REPORT_ASSETS, *extra]}
    chart_keys = {dg.AssetKey(["reports", name]) for name in CHARTS}
    for key in keys:
        node = graph.get(key)
        assert node.group_name == "reports"
        assert node.owners == ["team:data-platform"]
        first_line = node.description.splitlines()[0]
        assert re.search(r"[\u4e00-\u9fff]", first_line) and re.search(r"[A-Za-z]{4}", first_line)
        # charts read marts only (after the publish); the rest is made from the charts
        upstream = {k.path[0] for k in node.parent_keys}
        if key in chart_keys:
            assert upstream == {"marts", "warehouse"}, key
            assert warehouse_key in node.parent_keys, f"{key} follows the published warehouse"
        elif key.path[-1] in ("dashboard", "briefing"):
            assert node.parent_keys == chart_keys, key


def materialize_reports(instance, warehouse: Path, tmp_path: Path) -> dg.ExecuteInProcessResult:
    """The report assets alone, on the marts of `warehouse` recorded as materialized."""
    register_marts(instance, warehouse, tmp_path / "mart_outputs")
    result = materialize_charts_and_briefing(instance, tmp_path / "wh" / "union.duckdb")
    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    return result


@needs_browser
def test_report_assets_materialize_with_previews_and_paths(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.delenv("UNION_SMTP_HOST", raising=False)
    with dg.instance_for_test() as instance:
        result = materialize_reports(instance, warehouse, tmp_path)
        assert result.success
        again = materialize_reports(instance, warehouse, tmp_path)
    assert again.success
    for event in again.get_asset_materialization_events():
        if event.asset_key.path[-1] in REPORT_ASSETS:
            meta = event.materialization.metadata
            assert meta["union/reused"].value is True, f"{event.asset_key} rendered again"
    metadata = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert set(metadata) == {*REPORT_ASSETS, "briefing_mail"}
    day = tmp_path / "exports" / "2020-09-30"
    for name in REPORT_ASSETS[:6]:
        meta = metadata[name]
        preview = meta["preview"].value
        assert preview.startswith("![") and "(data:image/png;base64," in preview
        assert len(preview) < 120_000, f"{name}: preview too big for metadata"
        files = [Path(p) for p in meta["union/files"].value]
        assert files and all(p.is_file() and p.parent == day / "charts" for p in files)
        assert Path(meta["png"].value).suffix == ".png"
    assert metadata["street_comparison"]["suppressed_cells"].value == 2
    assert Path(metadata["dashboard"]["path"].value) == day / "dashboard-2020-09-30.html"
    briefing = metadata["briefing"]
    assert briefing["summary_pages"].value >= 1  # the work summary's draft after the cover
    pages = 1 + briefing["summary_pages"].value + metadata["dashboard"]["charts"].value
    assert briefing["pages"].value == pages
    assert metadata["briefing_mail"]["delivery"].value.startswith("not configured")


def test_without_chromium_the_refresh_goes_on_and_says_once(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/for-the-dagster-test/chromium")
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    with dg.instance_for_test() as instance:
        result = materialize_reports(instance, warehouse, tmp_path)
        logs = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
        assert result.success
        made = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        # no PDF here, so no briefing, and its mail step does not run
        assert made == set(REPORT_ASSETS) - {"briefing"}
        assert (tmp_path / "exports" / "2020-09-30" / "dashboard-2020-09-30.html").is_file()
        assert not list((tmp_path / "exports").rglob("*.png"))
        said = [m for m in logs if "apt-get install chromium fonts-noto-cjk" in m]
        assert len(said) == 1, said

        # the browser installed since: the charts' figures did not change, but their PNGs
        # and the briefing are owed, and the next refresh makes them
        monkeypatch.delenv("BROWSER_PATH")
        if static_export_problem():
            return  # no browser on this machine to install
        again = materialize_reports(instance, warehouse, tmp_path)
    charts = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in again.get_asset_materialization_events()
    }
    assert "briefing" in charts
    assert all(charts[name]["union/reused"].value is False for name in CHARTS)
    assert len(list((tmp_path / "exports").rglob("*.png"))) >= len(CHARTS)
