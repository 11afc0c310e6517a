"""The leadership charts as plotly figures, built from ReportData (no I/O here).

Every figure is laid out for one A4 landscape page (theme.yaml `page`): the PNG, the PDF
and the briefing page are the same figure; the dashboard lets it fill the screen width.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from union_pipeline.kpis import Kpi
from union_pipeline.reports.data import ReportData
from union_pipeline.reports.data import flag as _bool
from union_pipeline.reports.data import number as _num
from union_pipeline.reports.privacy import street_values
from union_pipeline.reports.theme import MoneyUnit, Theme

COMPARATOR_SIGNS = {">=": "≥", "<=": "≤"}
FOOTER = "footer"  # the annotation carrying the source line (the dashboard drops it)
UNIT = "unit"  # the unit above a y axis (the dashboard shows it beside the title)


@dataclass
class Chart:
    slug: str  # file name stem, ASCII: kpi_scorecard, trend_members_total, ...
    group: str  # the chart asset that makes it: kpi_scorecard, kpi_trends, ...
    section: str  # theme.yaml section key (dashboard and briefing order)
    title: str
    figure: go.Figure
    wide: bool = False  # a table: keeps its width on a phone (scrolls sideways)
    suppressed: int = 0  # street cells shown as "<5"
    note: str = ""  # the footnote (what "<5" means), shown under the chart

    @property
    def subtitle(self) -> str:
        title = self.figure.layout.title
        return (title.subtitle.text or "") if title and title.subtitle else ""


# ---------------------------------------------------------------------------- helpers


def section_of(code: str, theme: Theme) -> str:
    for section in theme.sections:
        if any(code.startswith(p) for p in section.get("prefixes", [])):
            return section["key"]
    return theme.sections[-1]["key"]


def section_of_chart(slug: str, theme: Theme) -> str | None:
    for section in theme.sections:
        if slug in section.get("charts", []):
            return section["key"]
    return None


def status(row: pd.Series | None, theme: Theme) -> tuple[str, str]:
    """(label, colour) of a kpi_yearly row: 达成 / 未达成 / 进行中 (预计达成/未达成) / 未设目标."""
    c = theme.colors
    if row is None or _num(row["target"]) is None:
        return theme.t("status_no_target"), c["no_target"]
    if bool(row["is_complete_year"]):
        met = _bool(row["target_met"])
        if met is None:
            return theme.t("status_unknown"), c["no_target"]
        return (theme.t("status_met"), c["met"]) if met else (theme.t("status_missed"), c["missed"])
    on_track = _bool(row["on_track"])
    if on_track is None:
        return theme.t("status_in_progress"), c["in_progress"]
    return (
        (theme.t("status_on_track"), c["met"])
        if on_track
        else (theme.t("status_off_track"), c["missed"])
    )


def _target_text(row: pd.Series, kpi: Kpi, theme: Theme, money: MoneyUnit | None = None):
    target = _num(row["target"])
    if target is None:
        return "—"
    sign = COMPARATOR_SIGNS.get(row["comparator"] or ">=", "≥")
    return f"{sign} {theme.fmt(target, kpi.unit, money)}"


def _page_layout(
    fig: go.Figure,
    theme: Theme,
    data: ReportData,
    title: str,
    subtitle: str | None = None,
    note: str | None = None,
    extra_top: int = 56,
) -> go.Figure:
    """Template, size, title and the source line every chart carries (PNG stands alone).

    The title sits at the top of the page, the subtitle's lines under it; the top margin
    grows with them, plus `extra_top` for what sits above the plot (legend, units).
    """
    lines = subtitle.count("<br>") + 1 if subtitle else 0
    top = 24 + theme.font["title_size"] + 14 + (theme.font["subtitle_size"] + 8) * lines
    fig.update_layout(
        template=theme.template(),
        width=theme.page["width"],
        height=theme.page["height"],
        title=dict(
            text=title,
            yref="container",
            y=1,
            yanchor="top",
            pad=dict(t=24),
            subtitle=dict(text=subtitle or ""),
        ),
        margin=dict(t=top + extra_top),
    )
    source = theme.t(
        "source", org=theme.organisation, date=theme.t("as_of", date=theme.date(data.as_of))
    )
    footer = f"{note}　　{source}" if note else source
    fig.add_annotation(
        text=footer,
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        yshift=-62,
        showarrow=False,
        align="left",
        name=FOOTER,
        font=dict(size=theme.font["small_size"], color=theme.colors["muted"]),
    )
    return fig


def _unit_label(
    fig: go.Figure, text: str, theme: Theme, axis: str = "y", x: str = "x", as_unit: bool = True
) -> None:
    """The unit above a y axis, written horizontally (a rotated 万元 reads badly)."""
    if not text or text == "%":
        return
    label = text
    if as_unit:
        label = f"单位：{text}" if theme.lang == "zh" else f"Unit: {text}"
    fig.add_annotation(
        text=label,
        xref=f"{x} domain",
        yref=f"{axis} domain",
        x=0,
        y=1,
        xanchor="left",
        xshift=-48,
        yanchor="bottom",
        yshift=10,
        showarrow=False,
        name=UNIT if as_unit else None,
        font=dict(size=theme.font["small_size"], color=theme.colors["muted"]),
    )


def _style_subplot_titles(fig: go.Figure, theme: Theme, left: bool) -> None:
    """Subplot titles (the only annotations right after make_subplots): bigger, left."""
    for annotation in fig.layout.annotations:
        annotation.update(font=dict(size=theme.font["size"] + 1), yshift=18 if left else 8)
        if left:
            annotation.update(x=0, xanchor="left")


def _with_unit(title: str, unit: str, theme: Theme) -> str:
    """A panel title with its unit: 补助金额（单位：万元）."""
    if not unit or unit == "%":
        return title
    label = f"单位：{unit}" if theme.lang == "zh" else f"unit: {unit}"
    return f"{title}{theme.paren(label)}"


def _tint(color: str, share: float = 0.85) -> str:
    """`color` mixed with white (a status cell's background)."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    r, g, b = (round(v + (255 - v) * share) for v in (r, g, b))
    return f"#{r:02X}{g:02X}{b:02X}"


def _legend_top(fig: go.Figure) -> None:
    fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))


def _money_for(values, unit: str, theme: Theme) -> MoneyUnit | None:
    if unit != "元":
        return None
    finite = [abs(v) for v in values if v is not None and not np.isnan(v)]
    return theme.money_unit(max(finite) if finite else 0)


def _yrange(values, unit: str, theme: Theme, money: MoneyUnit | None, headroom=1.18):
    finite = [theme.scale(v, unit, money) for v in values if v is not None and not np.isnan(v)]
    finite = [v for v in finite if v is not None]
    if not finite:
        return None
    low, high = min(0.0, min(finite)), max(finite)
    if high <= 0:
        return [low * headroom, 0]
    return [low * headroom, high * headroom]


# ---------------------------------------------------------------------------- scorecard


def kpi_scorecard(data: ReportData, theme: Theme) -> list[Chart]:
    """One table: every KPI's latest figure, target, status and projection."""
    year = data.as_of_year
    incomplete = not data.is_complete
    c = theme.colors
    names, actuals, yoys, targets, projections, statuses, priors = ([] for _ in range(7))
    status_colors, prior_colors = [], []
    for kpi in data.reported:
        rows = data.series(kpi.code)
        row = rows[rows["year"] == year]
        row = None if row.empty else row.iloc[0]
        prev = rows[rows["year"] == year - 1]
        prev = None if prev.empty else prev.iloc[0]
        values = (
            []
            if row is None
            else [_num(row["actual"]), _num(row["target"]), _num(row["projected_year_end"])]
        )
        money = _money_for(values, kpi.unit, theme)
        names.append(theme.kpi_name(kpi))
        if row is None:
            actuals.append("—"), yoys.append("—"), targets.append("—")
            projections.append("—")
        else:
            actuals.append(theme.fmt(_num(row["actual"]), kpi.unit, money))
            yoys.append(theme.fmt_change(_num(row["yoy_change"]), _num(row["yoy_pct"]), kpi.unit))
            targets.append(_target_text(row, kpi, theme, money))
            projections.append(theme.fmt(_num(row["projected_year_end"]), kpi.unit, money))
        label, color = status(row, theme)
        statuses.append(label)  # no <b>: plotly makes bold table rows taller
        status_colors.append(color)
        label, color = status(prev, theme)
        priors.append(label)
        prior_colors.append(color)

    if incomplete:
        actual_header = theme.t("col_actual_ytd", y=year, md=theme.month_day(data.as_of))
    else:
        actual_header = theme.t("col_actual", y=year)
    headers = [theme.t("col_kpi"), actual_header, theme.t("col_yoy"), theme.t("col_target", y=year)]
    columns = [names, actuals, yoys, targets]
    widths = [3.2 if theme.lang == "zh" else 4.0, 1.7, 1.2, 1.8]
    fonts = [[c["text"]] * len(names)] * 4
    if incomplete:
        headers.append(theme.t("col_projection"))
        columns.append(projections)
        widths.append(1.7)
        fonts.append([c["text"]] * len(names))
    headers.append(theme.t("col_status"))
    columns.append(statuses)
    widths.append(2.0 if incomplete and theme.lang == "zh" else 1.3)
    fonts.append(status_colors)
    if incomplete and year - 1 >= data.first_year:
        headers.append(theme.t("col_prior_status", y=year - 1))
        columns.append(priors)
        widths.append(1.2)
        fonts.append(prior_colors)
    stripe = ["#FFFFFF" if i % 2 == 0 else "#F4F6F9" for i in range(len(names))]
    fills = [stripe] * len(columns)
    status_at = headers.index(theme.t("col_status"))
    fills[status_at] = [_tint(color) for color in status_colors]
    aligns = ["left"] + ["right"] * (status_at - 1) + ["center"] * (len(headers) - status_at)
    n = len(names)
    table_font = theme.font["size"] - (1 if theme.lang == "zh" else 2)
    # fill the page: what the title, header and source line leave, shared by the rows
    row_height = max(22, min(40, int((theme.page["height"] - 245) / max(n, 1))))
    table = go.Table(
        columnwidth=widths,
        header=dict(
            values=headers,
            fill_color=c["header"],
            font=dict(color="#FFFFFF", size=table_font),
            align=aligns,
            height=48,
            line=dict(color=c["header"]),
        ),
        cells=dict(
            values=columns,
            fill_color=fills,
            font=dict(color=fonts, size=table_font),
            align=aligns,
            height=row_height,
            line=dict(color=c["grid"]),
        ),
    )
    fig = go.Figure(table)
    summary = target_summary(data, theme)
    as_of = theme.t("as_of", date=theme.date(data.as_of))
    _page_layout(
        fig,
        theme,
        data,
        theme.t("scorecard_title") + theme.paren(as_of),
        subtitle=theme.join(summary.lines),
        extra_top=12,
    )
    fig.update_layout(margin=dict(l=40, r=40, b=80))
    return [
        Chart(
            "kpi_scorecard",
            "kpi_scorecard",
            "scorecard",
            theme.t("scorecard_title"),
            fig,
            wide=True,
        )
    ]


@dataclass
class TargetSummary:
    complete_year: int | None
    met: list[str]
    missed: list[str]
    incomplete_year: int | None
    on_track: list[str]
    off_track: list[str]
    lines: list[str]

    @property
    def has_targets(self) -> bool:
        return bool(self.met or self.missed or self.on_track or self.off_track)


def target_summary(data: ReportData, theme: Theme) -> TargetSummary:
    """Targets met and missed in the last complete year; on/off track in the current one."""
    yearly = data.yearly
    complete = yearly[yearly["is_complete_year"].astype(bool)]
    complete_year = int(complete["year"].max()) if not complete.empty else None
    names = {k.code: theme.kpi_name(k) for k in data.catalogue}
    order = {k.code: i for i, k in enumerate(data.catalogue)}

    def pick(rows: pd.DataFrame, column: str, value: bool) -> list[str]:
        rows = rows[rows["target"].notna() & rows[column].notna()]
        rows = rows[rows[column].astype(bool) == value]
        codes = sorted(rows["kpi_code"], key=lambda code: order.get(code, 999))
        return [names.get(code, code) for code in codes]

    met = missed = on = off = []
    lines = []
    if complete_year is not None:
        rows = yearly[yearly["year"] == complete_year]
        met, missed = pick(rows, "target_met", True), pick(rows, "target_met", False)
        if met or missed:
            lines.append(
                theme.t("summary_complete", y=complete_year, met=len(met), missed=len(missed))
            )
    incomplete_year = None
    if not data.is_complete:
        incomplete_year = data.as_of_year
        rows = yearly[yearly["year"] == incomplete_year]
        on, off = pick(rows, "on_track", True), pick(rows, "on_track", False)
        if on or off:
            lines.append(
                theme.t(
                    "summary_incomplete",
                    y=incomplete_year,
                    date=theme.month_day(data.as_of),
                    on=len(on),
                    off=len(off),
                )
            )
    if not lines:
        lines.append(theme.t("summary_none"))
    return TargetSummary(complete_year, met, missed, incomplete_year, on, off, lines)


# ---------------------------------------------------------------------------- trends


def _trend_subtitle(
    kpi: Kpi, rows: pd.DataFrame, data: ReportData, theme: Theme, money: MoneyUnit | None
) -> str:
    sep = theme.comma
    lines = []
    current = rows[~rows["is_complete_year"].astype(bool)]
    complete = rows[rows["is_complete_year"].astype(bool)]
    if not current.empty:
        row = current.iloc[-1]
        parts = [
            f"{theme.period(int(row['year']), data.as_of, kpi.kind)} "
            f"{theme.fmt(_num(row['actual']), kpi.unit, money)}"
        ]
        if _num(row["prior_actual"]) is not None:
            change = theme.fmt_change(_num(row["yoy_change"]), _num(row["yoy_pct"]), kpi.unit)
            parts.append(f"{theme.t('col_yoy')} {change}")
        if kpi.kind == "flow" and _num(row["projected_year_end"]) is not None:
            parts.append(
                f"{theme.t('legend_projection')} "
                f"{theme.fmt(_num(row['projected_year_end']), kpi.unit, money)}"
            )
        if _num(row["target"]) is not None:
            parts.append(f"{theme.t('legend_target')} {_target_text(row, kpi, theme, money)}")
        parts.append(status(row, theme)[0])
        lines.append(sep.join(parts))
    if not complete.empty:
        row = complete.iloc[-1]
        parts = [
            f"{theme.year(int(row['year']))} {theme.fmt(_num(row['actual']), kpi.unit, money)}"
        ]
        if _num(row["target"]) is not None:
            parts.append(f"{theme.t('legend_target')} {_target_text(row, kpi, theme, money)}")
            parts.append(status(row, theme)[0])
        lines.append(sep.join(parts))
    return "<br>".join(lines)


def trend_figure(kpi: Kpi, data: ReportData, theme: Theme) -> go.Figure:
    """Years as bars, target markers; the year to date beside last year to the same date."""
    c = theme.colors
    rows = data.series(kpi.code)
    flags = rows["is_complete_year"].astype(bool)
    complete, current = rows[flags], rows[~flags]
    values = [
        _num(v)
        for col in ("actual", "prior_actual", "target", "projected_year_end")
        for v in rows[col]
    ]
    money = _money_for(values, kpi.unit, theme)

    def fmt(v):
        return theme.fmt(_num(v), kpi.unit, money, decimals=1 if kpi.unit == "ratio" else None)

    def scaled(v):
        return theme.scale(_num(v), kpi.unit, money)

    fig = go.Figure()
    labels: dict[int, str] = {}
    categories = []
    for year in complete["year"]:
        labels[int(year)] = theme.year(int(year))
        categories.append(labels[int(year)])
    fig.add_bar(
        x=[labels[int(y)] for y in complete["year"]],
        y=[scaled(v) for v in complete["actual"]],
        text=[fmt(v) for v in complete["actual"]],
        name=theme.t("legend_complete"),
        marker_color=c["complete"],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{x}：%{text}<extra></extra>",
    )
    if not current.empty:
        row = current.iloc[-1]
        year = int(row["year"])
        prior_label = theme.period(year - 1, data.as_of, kpi.kind)
        current_label = theme.period(year, data.as_of, kpi.kind)
        labels[year] = current_label
        if _num(row["prior_actual"]) is not None:
            categories.append(prior_label)
            fig.add_bar(
                x=[prior_label],
                y=[scaled(row["prior_actual"])],
                text=[fmt(row["prior_actual"])],
                name=theme.t("legend_prior"),
                marker_color=c["prior"],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}：%{text}<extra></extra>",
            )
        categories.append(current_label)
        fig.add_bar(
            x=[current_label],
            y=[scaled(row["actual"])],
            text=[fmt(row["actual"])],
            name=theme.t("legend_current"),
            marker_color=c["current"],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}：%{text}<extra></extra>",
        )
        projection = _num(row["projected_year_end"])
        if kpi.kind == "flow" and projection is not None:
            fig.add_scatter(
                x=[current_label],
                y=[scaled(projection)],
                mode="markers+text",
                marker=dict(symbol="diamond-open", size=16, color=c["current"], line=dict(width=3)),
                text=[f"  {fmt(projection)}"],
                textposition="middle right",
                textfont=dict(color=c["current"]),
                name=theme.t("legend_projection"),
                hovertemplate=f"{theme.t('legend_projection')}：%{{text}}<extra></extra>",
                cliponaxis=False,
            )
    targets = rows[rows["target"].notna()]
    if not targets.empty:
        xs = [labels[int(y)] for y in targets["year"]]
        for x, value in zip(xs, targets["target"], strict=True):
            index = categories.index(x)
            fig.add_shape(
                type="line",
                xref="x",
                yref="y",
                x0=index - 0.42,
                x1=index + 0.42,
                y0=scaled(value),
                y1=scaled(value),
                line=dict(color=c["target"], width=4),
            )
        fig.add_scatter(
            x=xs,
            y=[scaled(v) for v in targets["target"]],
            mode="markers",
            marker=dict(
                symbol="line-ew-open",
                size=22,
                color=c["target"],
                line=dict(width=4, color=c["target"]),
            ),
            name=theme.t("legend_target"),
            text=[_target_text(r, kpi, theme, money) for _, r in targets.iterrows()],
            hovertemplate=f"%{{x}} {theme.t('hover_target')}：%{{text}}<extra></extra>",
        )
    if not current.empty and len(categories) > 2 and not complete.empty:
        # complete years | the year to date beside last year to the same date
        split = len(complete) - 0.5
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=split,
            x1=split,
            y0=0,
            y1=1,
            line=dict(color=c["grid"], width=2, dash="dot"),
        )
    fig.update_layout(barmode="overlay", bargap=0.3)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=categories)
    fig.update_yaxes(
        tickformat=theme.tickformat(kpi.unit),
        rangemode="tozero",
        range=_yrange(values, kpi.unit, theme, money),
    )
    _unit_label(fig, theme.axis_title(kpi.unit, money), theme)
    _legend_top(fig)
    _page_layout(
        fig,
        theme,
        data,
        theme.kpi_name(kpi),
        subtitle=_trend_subtitle(kpi, rows, data, theme, money),
        extra_top=60,
    )
    return fig


def kpi_trends(data: ReportData, theme: Theme) -> list[Chart]:
    return [
        Chart(
            f"trend_{kpi.code}",
            "kpi_trends",
            section_of(kpi.code, theme),
            theme.kpi_name(kpi),
            trend_figure(kpi, data, theme),
        )
        for kpi in data.reported
    ]


# ---------------------------------------------------------------------------- streets


def street_figure(code: str, data: ReportData, theme: Theme) -> tuple[go.Figure, int] | None:
    """Streets ranked on a rate against the target and the district; small cells "<5".

    A dot per street (rates differ by tenths of a point: bars from zero would hide it), last
    year's end as a hollow dot, the target and the district as vertical lines.
    """
    kpi = data.kpi(code)
    year = data.as_of_year
    if (
        kpi is None
        or data.by_street[
            (data.by_street["kpi_code"] == code) & (data.by_street["year"] == year)
        ].empty
    ):
        return None
    c = theme.colors
    values = street_values(
        data.by_street, data.catalogue, code, year, theme.min_persons, theme.is_persons_unit
    )
    prior = street_values(
        data.by_street, data.catalogue, code, year - 1, theme.min_persons, theme.is_persons_unit
    ).set_index("street")["value"]
    shown = values[~values["suppressed"]].sort_values("value", ascending=True, na_position="first")
    hidden = values[values["suppressed"]].sort_values("street", ascending=False)
    order = list(hidden["street"]) + list(shown["street"])  # best at the top
    row = data.latest(code)
    target = _num(row["target"]) if row is not None and int(row["year"]) == year else None
    comparator = (row["comparator"] if target is not None else None) or ">="
    district = _num(row["actual"]) if row is not None and int(row["year"]) == year else None

    def meets(v):
        if target is None or v is None or np.isnan(v):
            return None
        return v >= target if comparator == ">=" else v <= target

    def pct(v):
        return theme.fmt(v, "ratio", decimals=1)

    prior_shown = prior.reindex(shown["street"])
    finite = [
        v
        for v in [*shown["value"], *prior_shown, target, district]
        if v is not None and not np.isnan(v)
    ]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = max((high - low) * 0.12, 0.005)
    low, high = max(low - pad, 0.0), high + pad * 1.6  # room for the labels on the right

    fig = go.Figure()
    if prior_shown.notna().any():
        fig.add_scatter(
            y=list(shown["street"]),
            x=list(prior_shown),
            mode="markers",
            marker=dict(symbol="circle-open", size=14, color=c["muted"], line=dict(width=2)),
            name=theme.t("year_end", y=year - 1),
            text=[pct(v) for v in prior_shown],
            hovertemplate="%{y} %{fullData.name}：%{text}<extra></extra>",
        )
    for ok, color, name in (
        (True, c["current"], theme.t("at_or_above_target")),
        (False, c["missed"], theme.t("below_target")),
    ):
        part = shown[[(meets(v) in (True, None)) == ok for v in shown["value"]]]
        if part.empty:
            continue
        fig.add_scatter(
            y=list(part["street"]),
            x=list(part["value"]),
            mode="markers+text",
            marker=dict(size=18, color=color),
            name=name if target is not None else theme.period(year, data.as_of, kpi.kind),
            text=[f"  {pct(v)}" for v in part["value"]],
            textposition="middle right",
            textfont=dict(color=color),
            cliponaxis=False,
            hovertemplate="%{y}：%{text}<extra></extra>",
        )
    if not hidden.empty:
        label = theme.t("suppressed")
        fig.add_scatter(
            y=list(hidden["street"]),
            x=[low] * len(hidden),
            mode="text",
            text=[f" {label}"] * len(hidden),
            textposition="middle right",
            showlegend=False,
            textfont=dict(color=c["muted"]),
            hovertemplate=f"%{{y}}：{label}<extra></extra>",
        )
    lines = []
    if target is not None:
        lines.append((target, c["target"], "solid", f"{theme.t('legend_target')} {pct(target)}"))
    if district is not None:
        lines.append((district, c["district"], "dash", f"{theme.t('district')} {pct(district)}"))
    for i, (x, color, dash, text) in enumerate(lines):
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=x,
            x1=x,
            y0=0,
            y1=1,
            line=dict(color=color, width=3, dash=dash),
        )
        fig.add_annotation(
            x=x,
            xref="x",
            y=1,
            yref="paper",
            yanchor="bottom",
            text=text,
            showarrow=False,
            font=dict(color=color),
            yshift=4 + 22 * i,
        )
    period = theme.period(year, data.as_of, kpi.kind)
    if target is not None:
        sign = COMPARATOR_SIGNS.get(comparator, "≥")
        subtitle = theme.t(
            "street_subtitle", period=period, district=pct(district), target=f"{sign} {pct(target)}"
        )
    else:
        subtitle = theme.t("street_subtitle_no_target", period=period, district=pct(district))
    fig.update_xaxes(
        tickformat=".1%" if high - low < 0.06 else ".0%", range=[low, high], side="bottom"
    )
    fig.update_yaxes(
        type="category", categoryorder="array", categoryarray=order, ticksuffix="  ", showgrid=True
    )
    note = theme.t("suppressed_note") if not hidden.empty else None
    _page_layout(
        fig,
        theme,
        data,
        theme.t("street_title", name=theme.kpi_name(kpi)),
        subtitle=subtitle,
        note=note,
        extra_top=24 + 24 * len(lines),
    )
    fig.update_layout(
        margin=dict(l=40), legend=dict(orientation="h", x=0, xanchor="left", y=-0.06, yanchor="top")
    )
    return fig, int(len(hidden))


def street_comparison(data: ReportData, theme: Theme) -> list[Chart]:
    charts = []
    for code in [k.code for k in data.reported if k.compare_streets]:
        built = street_figure(code, data, theme)
        if built is None:
            continue
        fig, suppressed = built
        slug = f"street_{code}"
        charts.append(
            Chart(
                slug,
                "street_comparison",
                section_of_chart(slug, theme) or section_of(code, theme),
                theme.t("street_title", name=theme.kpi_name(data.kpi(code))),
                fig,
                suppressed=suppressed,
                note=theme.t("suppressed_note") if suppressed else "",
            )
        )
    return charts


# ---------------------------------------------------------------------------- mutual aid


def _month_panel(
    fig,
    row: int,
    frame: pd.DataFrame,
    column: str,
    year: int,
    theme: Theme,
    money: MoneyUnit | None,
    unit: str,
    as_of: dt.date,
    show_legend: bool,
    with_before: bool,
) -> None:
    c = theme.colors
    months = ([0] if with_before else []) + list(range(1, 13))
    labels = {m: (theme.t("before_year") if m == 0 else theme.month(m)) for m in months}

    def series(y):
        part = frame[frame["year"] == y].set_index("month")[column]
        return part.reindex(months)

    current, prior = series(year), series(year - 1)
    last_month = as_of.month if as_of.year == year else 12
    shown = [m for m in months if m <= last_month]

    def text(v):
        return theme.fmt(_num(v), unit, money, with_unit=False)

    fig.add_bar(
        x=[labels[m] for m in shown],
        y=[theme.scale(_num(current[m]), unit, money) for m in shown],
        text=[text(current[m]) for m in shown],
        textposition="auto",
        textangle=0,
        constraintext="none",
        insidetextanchor="end",
        insidetextfont=dict(color="#FFFFFF", size=theme.font["small_size"]),
        outsidetextfont=dict(color=c["current"], size=theme.font["small_size"]),
        marker_color=c["current"],
        name=theme.year(year),
        legendgroup="current",
        showlegend=show_legend,
        row=row,
        col=1,
        hovertemplate=f"{theme.year(year)} %{{x}}：%{{text}}<extra></extra>",
    )
    fig.add_scatter(
        x=[labels[m] for m in months],
        y=[theme.scale(_num(prior[m]), unit, money) for m in months],
        mode="lines+markers",
        line=dict(color=c["muted"], width=3),
        marker=dict(size=8),
        name=theme.year(year - 1),
        legendgroup="prior",
        showlegend=show_legend,
        row=row,
        col=1,
        connectgaps=True,
        text=[text(prior[m]) for m in months],
        hovertemplate=f"{theme.year(year - 1)} %{{x}}：%{{text}}<extra></extra>",
    )
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=[labels[m] for m in months],
        row=row,
        col=1,
    )
    finite = [v for v in list(current) + list(prior) if _num(v) is not None]
    high = theme.scale(max(finite), unit, money) if finite else 1
    fig.update_yaxes(tickformat=",~f", range=[0, (high or 1) * 1.15], row=row, col=1)


def mutual_aid_monthly(data: ReportData, theme: Theme) -> list[Chart]:
    year = data.as_of_year
    panels = []
    enrol, benefits = data.enrolments_monthly, data.benefits_monthly
    if enrol is not None and not enrol[enrol["year"].isin([year, year - 1])].empty:
        panels.append(
            (
                "enrolments",
                enrol,
                "enrolments",
                "人次",
                theme.t("enrolments_panel"),
                "mutual_aid_enrollments",
            )
        )
    if benefits is not None and not benefits[benefits["year"].isin([year, year - 1])].empty:
        panels.append(
            (
                "benefits",
                benefits,
                "benefit_yuan",
                "元",
                theme.t("benefits_panel"),
                "mutual_aid_benefit_yuan",
            )
        )
    if not panels:
        return []
    monies = [
        _money_for(list(frame[frame["year"].isin([year, year - 1])][column]), unit, theme)
        for _key, frame, column, unit, _title, _code in panels
    ]
    titles = [
        _with_unit(p[4], theme.axis_title(p[3], money), theme)
        for p, money in zip(panels, monies, strict=True)
    ]
    fig = make_subplots(rows=len(panels), cols=1, vertical_spacing=0.2, subplot_titles=titles)
    _style_subplot_titles(fig, theme, left=True)
    summary = []
    for i, (_key, frame, column, unit, _title, code) in enumerate(panels, start=1):
        money = monies[i - 1]
        with_before = (
            bool(((frame["month"] == 0) & frame["year"].isin([year, year - 1])).any())
            if "month" in frame
            else False
        )
        _month_panel(
            fig,
            i,
            frame,
            column,
            year,
            theme,
            money,
            unit,
            data.as_of,
            show_legend=(i == 1),
            with_before=with_before,
        )
        row = data.latest(code)
        kpi = data.kpi(code)
        if row is not None and kpi is not None and int(row["year"]) == year:
            text = f"{theme.kpi_name(kpi)} {theme.fmt(_num(row['actual']), kpi.unit)}"
            if _num(row["prior_actual"]) is not None:
                change = theme.fmt_change(_num(row["yoy_change"]), _num(row["yoy_pct"]), kpi.unit)
                text += theme.paren(f"{theme.t('col_yoy')} {change}")
            summary.append(text)
    subtitle = theme.t("mutual_aid_subtitle", y=year, py=year - 1, date=theme.date(data.as_of))
    if summary:
        subtitle += "<br>" + theme.join(summary)
    _legend_top(fig)
    _page_layout(fig, theme, data, theme.t("mutual_aid_title"), subtitle=subtitle, extra_top=64)
    return [
        Chart(
            "mutual_aid_monthly",
            "mutual_aid_monthly",
            section_of_chart("mutual_aid_monthly", theme) or "mutual_aid",
            theme.t("mutual_aid_title"),
            fig,
        )
    ]


# ---------------------------------------------------------------------------- loans


def _loan_series(data: ReportData) -> pd.DataFrame | None:
    """date, amount_yuan (cumulative), borrowers (cumulative)."""
    loans = data.loans_monthly
    if loans is not None and not loans.empty:
        frame = loans.sort_values("month").copy()
        frame["date"] = pd.to_datetime(frame["month"]) + pd.offsets.MonthEnd(0)
        frame["amount_yuan"] = frame["amount_yuan"].cumsum()
        frame["borrowers"] = frame["new_borrowers"].cumsum()
        # the as-of month ends on the as-of date
        frame.loc[frame["date"] > pd.Timestamp(data.as_of), "date"] = pd.Timestamp(data.as_of)
        return frame[["date", "amount_yuan", "borrowers"]]
    amount, borrowers = data.series("loan_amount_cum_yuan"), data.series("loan_borrowers_cum")
    if amount.empty or borrowers.empty:
        return None
    merged = amount[["year", "actual", "is_complete_year"]].merge(
        borrowers[["year", "actual"]], on="year", suffixes=("_amount", "_borrowers")
    )
    merged["date"] = [
        pd.Timestamp(dt.date(int(y), 12, 31)) if bool(done) else pd.Timestamp(data.as_of)
        for y, done in zip(merged["year"], merged["is_complete_year"], strict=True)
    ]
    return merged.rename(columns={"actual_amount": "amount_yuan", "actual_borrowers": "borrowers"})[
        ["date", "amount_yuan", "borrowers"]
    ]


def loans_cumulative(data: ReportData, theme: Theme) -> list[Chart]:
    frame = _loan_series(data)
    if frame is None or frame.empty:
        return []
    c = theme.colors
    money = theme.money_unit(float(frame["amount_yuan"].max()))
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.14,
        subplot_titles=[
            _with_unit(theme.t("loans_amount_panel"), money.label, theme),
            _with_unit(theme.t("loans_borrowers_panel"), theme.axis_title("人"), theme),
        ],
    )
    _style_subplot_titles(fig, theme, left=True)
    panels = [
        (1, "amount_yuan", "元", "loan_amount_cum_yuan", money),
        (2, "borrowers", "人", "loan_borrowers_cum", None),
    ]
    for row, column, unit, code, unit_money in panels:
        values = [theme.scale(float(v), unit, unit_money) for v in frame[column]]
        fig.add_scatter(
            x=frame["date"],
            y=values,
            mode="lines",
            line=dict(color=c["current"], width=3),
            fill="tozeroy",
            fillcolor="rgba(31,95,168,0.12)",
            showlegend=False,
            text=[theme.fmt(float(v), unit, unit_money) for v in frame[column]],
            hovertemplate="%{x|%Y-%m}：%{text}<extra></extra>",
            row=row,
            col=1,
        )
        last = frame.iloc[-1]
        fig.add_scatter(
            x=[last["date"]],
            y=[theme.scale(float(last[column]), unit, unit_money)],
            mode="markers+text",
            marker=dict(size=10, color=c["current"]),
            text=[theme.fmt(float(last[column]), unit, unit_money)],
            textposition="top left",
            textfont=dict(color=c["current"]),
            showlegend=False,
            hoverinfo="skip",
            row=row,
            col=1,
            cliponaxis=False,
        )
        targets = data.series(code)
        targets = targets[targets["target"].notna()]
        top = [float(frame[column].max())]
        if not targets.empty:
            top += list(targets["target"].astype(float))
            fig.add_scatter(
                x=[pd.Timestamp(dt.date(int(y), 12, 31)) for y in targets["year"]],
                y=[theme.scale(float(v), unit, unit_money) for v in targets["target"]],
                mode="markers",
                marker=dict(
                    symbol="line-ew-open",
                    size=26,
                    color=c["target"],
                    line=dict(width=4, color=c["target"]),
                ),
                name=theme.t("year_end_target"),
                legendgroup="target",
                showlegend=(row == 1),
                text=[theme.fmt(float(v), unit, unit_money) for v in targets["target"]],
                hovertemplate=f"%{{x|%Y}} {theme.t('year_end_target')}：%{{text}}<extra></extra>",
                row=row,
                col=1,
            )
        fig.update_yaxes(
            tickformat=",~f",
            row=row,
            col=1,
            range=[0, theme.scale(max(top), unit, unit_money) * 1.15],
        )
    end = pd.Timestamp(dt.date(data.as_of_year, 12, 31)) + pd.Timedelta(days=45)
    start = pd.Timestamp(dt.date(frame["date"].min().year, 1, 1)) - pd.Timedelta(days=15)
    fig.update_xaxes(
        range=[start, end], tickformat="%Y年" if theme.lang == "zh" else "%Y", dtick="M12"
    )
    last = frame.iloc[-1]
    subtitle = theme.t(
        "loans_subtitle",
        amount=theme.fmt(float(last["amount_yuan"]), "元"),
        borrowers=f"{float(last['borrowers']):,.0f}",
        date=theme.date(data.as_of),
    )
    _legend_top(fig)
    _page_layout(fig, theme, data, theme.t("loans_title"), subtitle=subtitle, extra_top=64)
    return [
        Chart(
            "loans_cumulative",
            "loans_cumulative",
            section_of_chart("loans_cumulative", theme) or "loans",
            theme.t("loans_title"),
            fig,
        )
    ]


# ---------------------------------------------------------------------------- training

MAX_PROGRAMMES = 5


def training_by_programme(data: ReportData, theme: Theme) -> list[Chart]:
    frame = data.training
    if frame is None or frame.empty:
        return []
    c = theme.colors
    totals = frame.groupby("program")["participations"].sum().sort_values(ascending=False)
    programmes = list(totals.index[:MAX_PROGRAMMES])
    years = list(range(data.first_year, data.as_of_year + 1))

    def label(y: int) -> str:  # two short lines: narrow panels would tilt long ones
        if y == data.as_of_year and not data.is_complete:
            month = theme.month(data.as_of.month)
            return f"{theme.year(y)}<br>{theme.t('ytd_short', m=data.as_of.month, mon=month)}"
        return theme.year(y)

    fig = make_subplots(
        rows=2,
        cols=len(programmes),
        vertical_spacing=0.16,
        horizontal_spacing=0.06,
        subplot_titles=[theme.programme(p) for p in programmes] + [""] * len(programmes),
    )
    _style_subplot_titles(fig, theme, left=False)
    measures = [
        (1, "sessions", theme.t("sessions")),
        (2, "participations", theme.t("participations")),
    ]
    for col, programme in enumerate(programmes, start=1):
        part = frame[frame["program"] == programme].set_index("year").reindex(years)
        for row, column, title in measures:
            values = [_num(v) or 0.0 for v in part[column]]
            colors = [
                c["current"] if (y == data.as_of_year and not data.is_complete) else c["complete"]
                for y in years
            ]
            fig.add_bar(
                x=[label(y) for y in years],
                y=values,
                marker_color=colors,
                text=[f"{v:,.0f}" for v in values],
                textposition="outside",
                cliponaxis=False,
                showlegend=False,
                row=row,
                col=col,
                hovertemplate=f"{theme.programme(programme)} %{{x}} {title}：%{{text}}"
                "<extra></extra>",
            )
            fig.update_yaxes(
                range=[0, max(values + [1]) * 1.25], tickformat=",~f", row=row, col=col
            )
            if col == 1:
                index = (row - 1) * len(programmes) + 1
                suffix = "" if index == 1 else str(index)
                _unit_label(fig, title, theme, axis=f"y{suffix}", x=f"x{suffix}", as_unit=False)
            fig.update_xaxes(
                type="category",
                tickfont=dict(size=theme.font["small_size"]),
                tickangle=0,
                row=row,
                col=col,
            )
    _page_layout(
        fig,
        theme,
        data,
        theme.t("training_title"),
        subtitle=theme.t("training_subtitle", date=theme.date(data.as_of)),
        extra_top=60,
    )
    return [
        Chart(
            "training_by_programme",
            "training_by_programme",
            section_of_chart("training_by_programme", theme) or "training",
            theme.t("training_title"),
            fig,
        )
    ]


# ---------------------------------------------------------------------------- all

BUILDERS: dict[str, Callable[[ReportData, Theme], list[Chart]]] = {
    "kpi_scorecard": kpi_scorecard,
    "kpi_trends": kpi_trends,
    "street_comparison": street_comparison,
    "mutual_aid_monthly": mutual_aid_monthly,
    "loans_cumulative": loans_cumulative,
    "training_by_programme": training_by_programme,
}


def build_charts(data: ReportData, theme: Theme, groups: list[str] | None = None) -> list[Chart]:
    """The charts of `groups` (default all), in reading order: scorecard, then by section."""
    charts = []
    for group in groups or list(BUILDERS):
        charts += BUILDERS[group](data, theme)
    return order_charts(charts, theme)


def order_charts(charts: list[Chart], theme: Theme) -> list[Chart]:
    rank = {"scorecard": -1} | {s["key"]: i for i, s in enumerate(theme.sections)}
    # within a section: the KPI trends first, then the section's own charts
    return sorted(
        charts, key=lambda ch: (rank.get(ch.section, len(rank)), ch.group != "kpi_trends")
    )
