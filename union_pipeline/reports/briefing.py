"""The leadership briefing: one A4 PDF — a cover with the as-of date, the work summary
draft (工作总结数据, when given) as text pages, the scorecard, then one chart per page — and
the short summary the mail carries.

The PDF is one print of one HTML page holding the cover and every chart as an SVG image
(vector, real text), not a PDF per chart put together."""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from pypdf import PdfReader, PdfWriter

from union_pipeline.reports.data import ReportData
from union_pipeline.reports.figures import Chart, target_summary
from union_pipeline.reports.render import Job, pdf_text_font, print_pdf, render, warn_once
from union_pipeline.reports.summary import Summary, summary_html
from union_pipeline.reports.theme import Theme


@dataclass(frozen=True)
class Briefing:
    path: Path
    pages: int
    titles: list[str]  # page titles, cover first


def _wrap(text: str, theme: Theme, width_zh: int = 34, width_en: int = 70) -> list[str]:
    width = width_zh if theme.lang == "zh" else width_en
    return textwrap.wrap(text, width=width, break_long_words=theme.lang == "zh") or [""]


def _contents(charts: list[Chart], theme: Theme) -> list[tuple[str, int]]:
    """(section name, first page) in page order; the cover is page 1."""
    names = {s["key"]: theme.section_name(s) for s in theme.sections}
    names["scorecard"] = theme.t("scorecard_title")
    out, seen = [], set()
    for page, chart in enumerate(charts, start=2):
        if chart.section not in seen:
            seen.add(chart.section)
            out.append((names.get(chart.section, chart.section), page))
    return out


def cover_figure(
    charts: list[Chart], data: ReportData, theme: Theme, generated: dt.datetime | None = None
) -> go.Figure:
    c, f = theme.colors, theme.font
    generated = generated or dt.datetime.now().replace(microsecond=0)
    summary = target_summary(data, theme)
    sep = "、" if theme.lang == "zh" else ", "
    lines = list(summary.lines)
    if summary.missed:
        lines.append(theme.t("missed_list", items=sep.join(summary.missed)))
    if summary.off_track:
        lines.append(theme.t("off_track_list", items=sep.join(summary.off_track)))
    fig = go.Figure()
    fig.add_shape(
        type="rect",
        xref="paper",
        yref="paper",
        x0=0,
        x1=1,
        y0=0.86,
        y1=1,
        fillcolor=c["header"],
        line_width=0,
        layer="below",
    )
    texts = [
        (0.93, theme.organisation, 26, "#FFFFFF"),
        (0.72, theme.t("briefing_title"), 46, c["header"]),
        (0.62, theme.t("as_of", date=theme.date(data.as_of)), 24, c["text"]),
    ]
    # the annotations are collected and set once: plotly validates the whole list again at
    # every add_annotation (a quarter of a second for the cover's ~25)
    annotations: list[dict] = []
    for y, text, size, color in texts:
        annotations.append(
            dict(
                x=0.06,
                y=y,
                xref="paper",
                yref="paper",
                text=f"<b>{text}</b>" if size > 24 else text,
                showarrow=False,
                xanchor="left",
                font=dict(size=size, color=color, family=f["family"]),
            )
        )
    step = 0.042
    y = 0.50

    def line(x, text, size=17, color=c["text"], anchor="left"):
        annotations.append(
            dict(
                x=x,
                y=y,
                xref="paper",
                yref="paper",
                xanchor=anchor,
                yanchor="top",
                showarrow=False,
                text=text,
                font=dict(size=size, color=color),
            )
        )

    for i, paragraph in enumerate(lines):
        for part in _wrap(paragraph, theme):
            line(0.06, part)
            y -= step
        if i == len(summary.lines) - 1:
            y -= step / 2  # a gap between the counts and the lists
    contents = _contents(charts, theme)
    if contents:
        y = 0.50
        line(0.70, f"<b>{theme.t('contents')}</b>")
        y -= step
        for name, page_number in contents:
            line(0.70, name, size=15)
            line(0.94, theme.t("page", n=page_number), size=15, color=c["muted"], anchor="right")
            y -= step
    stamp = theme.t("generated", timestamp=generated.isoformat(sep=" "))
    annotations.append(
        dict(
            x=0.06,
            y=0.04,
            xref="paper",
            yref="paper",
            xanchor="left",
            showarrow=False,
            align="left",
            font=dict(size=13, color=c["muted"]),
            text=f"{theme.t('internal')}　　{stamp}",
        )
    )
    fig.update_layout(
        annotations=annotations,
        template=theme.template(),
        width=theme.page["width"],
        height=theme.page["height"],
        margin=dict(l=0, r=0, t=0, b=0),
        showlegend=False,
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
    )
    return fig


PAGE_CSS = """
@page { size: %(w)dpx %(h)dpx; margin: 0; }
html, body { margin: 0; padding: 0; background: #FFFFFF; }
div.page { width: %(w)dpx; height: %(h)dpx; overflow: hidden; break-after: page; }
div.page:last-child { break-after: auto; }
img { display: block; width: %(w)dpx; height: %(h)dpx; }
@page text { margin: 40px 72px; }
div.text { page: text; break-after: page; color: #212529; font-size: 15px; line-height: 1.6; }
div.text h1 { font-size: 24px; margin: 0 0 4px; color: %(header)s; }
div.text h2 { font-size: 17px; margin: 14px 0 4px; color: %(header)s; break-after: avoid; }
div.text p { margin: 0 0 6px; text-indent: 2em; text-align: justify; }
div.text p.sub { text-indent: 0; color: #6C757D; margin-bottom: 10px; }
div.text b { font-weight: bold; margin-right: 0.5em; }
"""


def _pages_html(svgs: list[Path], theme: Theme, text: str = "") -> str:
    """One HTML page holding every page of the briefing: each an SVG image the page's size,
    and after the first (the cover) the `text` block, paginated by the print.

    An SVG drawn as an image prints as vector graphics with real text, as kaleido's own
    PDF export does, but all pages go in one print.
    """
    page = theme.page
    css = PAGE_CSS % {"w": page["width"], "h": page["height"], "header": theme.colors["header"]}
    images = [
        f'<div class="page"><img alt="" src="data:image/svg+xml;base64,'
        f'{base64.b64encode(svg.read_bytes()).decode("ascii")}"></div>'
        for svg in svgs
    ]
    body = "".join(images[:1]) + text + "".join(images[1:])
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{css}</style></head>'
        f"<body>{body}</body></html>"
    )


def write_briefing(
    charts: list[Chart],
    chart_svgs: dict[str, Path],
    path: Path,
    data: ReportData,
    theme: Theme,
    summary: Summary | None = None,
) -> Briefing:
    """Cover + a page per chart, printed in one go from the charts' SVGs (rendered by the
    chart step; missing ones are rendered here, with the cover, in one batch). With
    `summary`, the work summary draft follows the cover as text, on as many pages as it
    takes."""
    if pdf_text_font() is None:
        # the pages still look right; only search and copy in the PDF suffer
        warn_once(
            "briefing: no TrueType Chinese font, the PDF's text will not extract "
            "(search, copy); install it: `apt-get install fonts-wqy-zenhei`"
        )
    page = theme.page
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="union-briefing-") as scratch:
        scratch = Path(scratch)
        cover = scratch / "cover.svg"
        jobs = [Job(cover_figure(charts, data, theme), cover, page["width"], page["height"])]
        svgs = []
        for i, chart in enumerate(charts):
            svg = chart_svgs.get(chart.slug)
            if svg is None or not svg.is_file():
                svg = scratch / f"{i}.svg"
                jobs.append(Job(chart.figure, svg, page["width"], page["height"]))
            svgs.append(svg)
        render(jobs)
        html = scratch / "briefing.html"
        text = "" if summary is None else summary_html(summary, _text_font(theme))
        html.write_text(_pages_html([cover, *svgs], theme, text), encoding="utf-8")
        printed = print_pdf(html, scratch / "printed.pdf")
        reader = PdfReader(printed)
        text_pages = len(reader.pages) - 1 - len(charts)
        if text_pages < 0 or (summary is None) != (text_pages == 0):
            raise RuntimeError(
                f"briefing: {len(reader.pages)} pages printed for {1 + len(charts)} pages"
                + ("" if summary is None else " and the work summary")
            )
        writer = PdfWriter(clone_from=reader)
        titles = [theme.t("briefing_title")]
        if summary is not None:
            writer.add_outline_item(title=summary.title, page_number=1)
            titles += [summary.title] * text_pages
        parents: dict[str, object] = {}
        names = {s["key"]: theme.section_name(s) for s in theme.sections}
        names["scorecard"] = theme.t("scorecard_title")
        for number, chart in enumerate(charts, start=1 + text_pages):
            if chart.section not in parents:
                parents[chart.section] = writer.add_outline_item(
                    title=names.get(chart.section, chart.section), page_number=number
                )
            if chart.section != "scorecard":
                writer.add_outline_item(
                    title=chart.title, page_number=number, parent=parents[chart.section]
                )
            titles.append(chart.title)
        writer.add_metadata(
            {
                "/Title": f"{theme.organisation} {theme.t('briefing_title')} {data.as_of}",
                "/Author": theme.organisation,
                "/Subject": theme.t("as_of", date=theme.date(data.as_of)),
            }
        )
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as f:
            writer.write(f)
        partial.replace(path)
    return Briefing(path, len(titles), titles)


def _text_font(theme: Theme) -> str:
    """The text pages' fonts: the TrueType Chinese font first, so the text copies."""
    found = pdf_text_font()
    family = theme.font["family"]
    return f"{found}, {family}" if found else family


def mail_text(
    briefing: Briefing, data: ReportData, theme: Theme, dashboard: Path | None = None
) -> tuple[str, str]:
    """(subject, body): the as-of date in the subject, targets met and missed in the body."""
    date = theme.date(data.as_of)
    title = theme.t("briefing_title")
    subject = theme.t("mail_subject", org=theme.organisation, title=title, date=date)
    summary = target_summary(data, theme)
    sep = "、" if theme.lang == "zh" else ", "
    lines = [theme.t("mail_intro", org=theme.organisation, title=title, date=date), ""]
    lines += summary.lines
    if summary.missed:
        lines.append(theme.t("missed_list", items=sep.join(summary.missed)))
    if summary.off_track:
        lines.append(theme.t("off_track_list", items=sep.join(summary.off_track)))
    lines += ["", theme.t("mail_attachment", file=briefing.path.name, pages=briefing.pages)]
    if dashboard is not None:
        lines.append(theme.t("mail_dashboard", path=str(dashboard)))
    return subject, "\n".join(lines) + "\n"
