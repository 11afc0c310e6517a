"""For the people who read it: the briefing's text, the KPI workbook, the problem-data lists,
the catalogue and column comments. Real files, opened with pypdf and openpyxl.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader

from tests.test_reports import build_test_warehouse
from union_pipeline.reports import (
    export_reports,
    load_theme,
    pdf_text_font,
    read_report_data,
    static_export_problem,
)


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
