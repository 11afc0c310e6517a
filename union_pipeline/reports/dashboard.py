"""The interactive dashboard: one self-contained HTML file that works offline.

plotly.js is embedded once (no CDN, no MathJax), every chart follows; titles and notes are
HTML so they wrap on a phone, and wide tables scroll sideways instead of shrinking.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from union_pipeline.reports.data import ReportData
from union_pipeline.reports.figures import FOOTER, UNIT, Chart, target_summary
from union_pipeline.reports.theme import Theme

CSS = """
:root { --text: %(text)s; --muted: %(muted)s; --header: %(header)s; --grid: %(grid)s; }
* { box-sizing: border-box; }
body { margin: 0; font-family: %(font)s; color: var(--text); background: #F4F6F9; }
header { background: var(--header); color: #fff; padding: 18px 20px 14px; }
header h1 { margin: 0 0 4px; font-size: 1.5rem; }
header p { margin: 2px 0; opacity: .9; }
nav { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--grid);
      padding: 8px 12px; white-space: nowrap; overflow-x: auto; }
nav a { color: var(--header); text-decoration: none; margin-right: 14px; font-size: .95rem; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 10px 24px; }
h2 { font-size: 1.25rem; margin: 26px 4px 8px; color: var(--header); }
section.chart { background: #fff; border-radius: 8px; margin: 12px 0; padding: 12px 12px 4px;
                box-shadow: 0 1px 3px rgba(0,0,0,.08); }
section.chart h3 { margin: 0 0 4px; font-size: 1.1rem; }
section.chart p.subtitle { margin: 0 0 6px; color: var(--muted); font-size: .92rem; }
section.chart p.note { margin: 2px 0 8px; color: var(--muted); font-size: .85rem; }
section.chart h3 small { font-weight: normal; color: var(--muted); font-size: .8rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table.scorecard { border-collapse: collapse; width: 100%%; min-width: 640px; font-size: .9rem; }
table.scorecard th { background: var(--header); color: #fff; font-weight: normal;
                     padding: 6px 8px; text-align: right; }
table.scorecard td { padding: 5px 8px; border-bottom: 1px solid var(--grid); text-align: right;
                     white-space: nowrap; }
table.scorecard tr:nth-child(even) td { background: #F4F6F9; }
table.scorecard th:first-child, table.scorecard td:first-child {
  text-align: left; position: sticky; left: 0; background: #fff; white-space: normal;
  min-width: 7.5em; }
table.scorecard th:first-child { background: var(--header); }
table.scorecard td.status { text-align: center; }
footer { color: var(--muted); font-size: .85rem; text-align: center; padding: 12px; }
"""

PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    # on a phone the tool bar covers the legend; the PNGs are there for downloading
    "displayModeBar": False,
}


def _text(value: str) -> str:
    """Escape for HTML but keep the line breaks our labels carry."""
    return html.escape(value or "").replace("&lt;br&gt;", "<br>")


def _unit(chart: Chart) -> str:
    for annotation in chart.figure.layout.annotations:
        if annotation.name == UNIT:
            return annotation.text
    return ""


def _screen_figure(chart: Chart, theme: Theme) -> dict:
    """The page-sized figure made to fill the screen's width; title, unit and notes go to
    the HTML around it, where they wrap on a narrow screen.

    Works on the figure's dict (the figure was validated when built): copying and updating
    a plotly Figure validates every property again, ten times the cost."""
    fig = json.loads(pio.to_json(chart.figure, validate=False))
    layout = fig.setdefault("layout", {})
    annotations = [a for a in layout.pop("annotations", []) if a.get("name") not in (FOOTER, UNIT)]
    if annotations:
        layout["annotations"] = annotations
    margin = layout.get("margin", {})
    layout["margin"] = {
        **margin,
        "t": min(margin.get("t") or 60, 70),
        "b": min(margin.get("b") or 60, 60),
    }
    layout["title"] = {}  # no title: it is the section's heading
    layout.pop("width", None)
    layout["height"] = theme.dashboard["chart_height"]
    layout["autosize"] = True
    # a legend from the left wraps under itself on a phone; labels too small are hidden
    layout["uniformtext"] = {**layout.get("uniformtext", {}), "minsize": 9, "mode": "hide"}
    legend = layout.get("legend", {})
    if legend.get("y") is not None and legend["y"] > 1:
        layout["legend"] = {**legend, "x": 0, "xanchor": "left"}
    return fig


def _table_html(chart: Chart, theme: Theme) -> str:
    """The scorecard as an HTML table: it wraps and scrolls on a phone, a plotly table
    cannot."""
    table = chart.figure.data[0]
    headers = list(table.header.values)
    columns = [list(c) for c in table.cells.values]
    colors = table.cells.font.color
    fills = table.cells.fill.color
    status = headers.index(theme.t("col_status")) if theme.t("col_status") in headers else None
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    rows = []
    for r in range(len(columns[0])):
        cells = []
        for c, column in enumerate(columns):
            style = ""
            if isinstance(colors, (list, tuple)) and isinstance(colors[c], (list, tuple)):
                style = f"color:{colors[c][r]};"
            if c == status:
                style += f"background:{fills[c][r]};"
            css = ' class="status"' if c == status else ""
            style_attr = f' style="{style}"' if style else ""
            cells.append(f"<td{css}{style_attr}>{_text(str(column[r]))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="scorecard" id="chart-{chart.slug}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def dashboard_html(
    charts: list[Chart],
    data: ReportData,
    theme: Theme,
    briefing_name: str | None = None,
    generated: dt.datetime | None = None,
) -> str:
    generated = generated or dt.datetime.now().replace(microsecond=0)
    title = f"{theme.organisation}{'' if theme.lang == 'zh' else ' '}{theme.t('dashboard_title')}"
    as_of = theme.t("as_of", date=theme.date(data.as_of))
    summary = target_summary(data, theme)
    sections = [{"key": "scorecard", "name": theme.t("scorecard_title")}] + [
        {"key": s["key"], "name": theme.section_name(s)} for s in theme.sections
    ]
    present = {c.section for c in charts}
    nav = "".join(
        f'<a href="#{s["key"]}">{_text(s["name"])}</a>' for s in sections if s["key"] in present
    )
    if briefing_name:
        nav += f'<a href="{html.escape(briefing_name)}">PDF</a>'
    body = []
    for section in sections:
        members = [c for c in charts if c.section == section["key"]]
        if not members:
            continue
        body.append(f'<h2 id="{section["key"]}">{_text(section["name"])}</h2>')
        for chart in members:
            if chart.wide:
                content = _table_html(chart, theme)
            else:
                fig = _screen_figure(chart, theme)
                content = pio.to_html(
                    fig,
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=f"chart-{chart.slug}",
                    config=PLOT_CONFIG,
                    default_width="100%",
                    default_height=f"{fig['layout']['height']}px",
                    validate=False,
                )
            note = f'<p class="note">{_text(chart.note)}</p>' if chart.note else ""
            unit = f" <small>{_text(_unit(chart))}</small>" if _unit(chart) else ""
            body.append(
                f'<section class="chart" id="{chart.slug}" data-chart="{chart.slug}">'
                f"<h3>{_text(chart.title)}{unit}</h3>"
                f'<p class="subtitle">{_text(chart.subtitle)}</p>'
                f'<div class="scroll">{content}</div>{note}</section>'
            )
    css = CSS % {**theme.colors, "font": theme.font["family"]}
    source = theme.t("source", org=theme.organisation, date=as_of)
    stamp = theme.t("generated", timestamp=generated.isoformat(sep=" "))
    lang = "zh-CN" if theme.lang == "zh" else "en"
    summary_html = "".join(f"<p>{_text(line)}</p>" for line in summary.lines)
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(title)} — {_text(as_of)}</title>
<style>{css}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<header><h1>{_text(title)}</h1><p>{_text(as_of)}</p>{summary_html}</header>
<nav>{nav}</nav>
<main>
{chr(10).join(body)}
</main>
<footer>{_text(source)}<br>{_text(stamp)}</footer>
</body>
</html>
"""


def write_dashboard(
    charts: list[Chart],
    path: Path,
    data: ReportData,
    theme: Theme,
    briefing_name: str | None = None,
) -> Path:
    """Write the dashboard atomically (a reader never opens half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(dashboard_html(charts, data, theme, briefing_name), encoding="utf-8")
    partial.replace(path)
    return path
