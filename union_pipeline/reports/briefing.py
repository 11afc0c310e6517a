"""The leadership briefing: one A4 PDF — a cover with the as-of date, the scorecard, then
one chart per page — and the short summary the mail carries."""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from pypdf import PdfReader, PdfWriter

from union_pipeline.reports.data import ReportData
from union_pipeline.reports.figures import Chart, target_summary
from union_pipeline.reports.render import Job, pdf_text_font, render, warn_once
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
    for y, text, size, color in texts:
        fig.add_annotation(
            x=0.06,
            y=y,
            xref="paper",
            yref="paper",
            text=f"<b>{text}</b>" if size > 24 else text,
            showarrow=False,
            xanchor="left",
            font=dict(size=size, color=color, family=f["family"]),
        )
    step = 0.042
    y = 0.50

    def line(x, text, size=17, color=c["text"], anchor="left"):
        fig.add_annotation(
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
    fig.add_annotation(
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
    fig.update_layout(
        template=theme.template(),
        width=theme.page["width"],
        height=theme.page["height"],
        margin=dict(l=0, r=0, t=0, b=0),
        showlegend=False,
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
    )
    return fig


def write_briefing(
    charts: list[Chart], chart_pdfs: dict[str, Path], path: Path, data: ReportData, theme: Theme
) -> Briefing:
    """Cover + every chart's A4 PDF (made by the chart exports; missing ones are rendered)."""
    if pdf_text_font() is None:
        # the pages still look right; only search and copy in the PDF suffer
        warn_once(
            "briefing: no TrueType Chinese font, the PDF's text will not extract "
            "(search, copy); install it: `apt-get install fonts-wqy-zenhei`"
        )
    page = theme.page
    cover_pdf = path.with_name(f".{path.stem}.cover.pdf")
    jobs = [Job(cover_figure(charts, data, theme), cover_pdf, page["width"], page["height"])]
    for chart in charts:
        pdf = chart_pdfs.get(chart.slug)
        if pdf is None or not pdf.is_file():
            jobs.append(Job(chart.figure, pdf, page["width"], page["height"]))
    render(jobs)
    writer = PdfWriter()
    titles = [theme.t("briefing_title")]
    try:
        writer.append(PdfReader(cover_pdf), pages=(0, 1))
        parents: dict[str, object] = {}
        names = {s["key"]: theme.section_name(s) for s in theme.sections}
        names["scorecard"] = theme.t("scorecard_title")
        for chart in charts:
            number = len(writer.pages)
            writer.append(PdfReader(chart_pdfs[chart.slug]), pages=(0, 1))
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
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as f:
            writer.write(f)
        partial.replace(path)
    finally:
        cover_pdf.unlink(missing_ok=True)
    return Briefing(path, len(titles), titles)


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
