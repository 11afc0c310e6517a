"""The city's reports: its districts side by side (ranked small multiples per section, and
their progress to their targets), and the city's own scorecard and trends against the
city's targets, in the style of a district's charts (same theme, same page)."""

from __future__ import annotations

import math

import pandas as pd
from plotly import graph_objects as go
from plotly.subplots import make_subplots

from union_pipeline.kpis import load_catalogue
from union_pipeline.reports.data import ReportData
from union_pipeline.reports.data import number as _num
from union_pipeline.reports.figures import Chart, _page_layout, build_charts, section_of
from union_pipeline.reports.theme import Theme

YEARLY_COLUMNS = [
    "kpi_code",
    "year",
    "actual",
    "prior_actual",
    "yoy_change",
    "yoy_pct",
    "target",
    "comparator",
    "target_met",
    "is_complete_year",
    "projected_year_end",
    "on_track",
]


def city_report_data(city_yearly: pd.DataFrame, as_of, first_year: int) -> ReportData:
    """The city's own rows as a district's report data (its scorecard and trends)."""
    own = city_yearly[city_yearly["level"] == "city"][YEARLY_COLUMNS]
    own = own[own["year"].between(first_year, as_of.year)].sort_values(["kpi_code", "year"])
    empty = pd.DataFrame(columns=["kpi_code", "year", "street", "actual", "persons"])
    return ReportData(
        as_of=as_of,
        first_year=first_year,
        catalogue=load_catalogue(),
        yearly=own.reset_index(drop=True),
        by_street=empty,
    )


def _period(data: ReportData, theme: Theme) -> str:
    if data.is_complete:
        return theme.t("year", y=data.as_of_year)
    return theme.t("flow_period", y=data.as_of_year, m=data.as_of.month)


def ranking_charts(districts: pd.DataFrame, data: ReportData, theme: Theme) -> list[Chart]:
    """Per section, a small multiple per KPI: the districts' as-of-year figures, best at the
    top, each district's own target as a tick."""
    year = data.as_of_year
    rows = districts[districts["year"] == year]
    c = theme.colors
    charts = []
    for section in theme.sections:
        kpis = [
            k
            for k in data.reported
            if section_of(k.code, theme) == section["key"] and k.code in set(rows["kpi_code"])
        ]
        if not kpis:
            continue
        cols = 2 if len(kpis) > 1 else 1
        grid_rows = math.ceil(len(kpis) / cols)
        fig = make_subplots(
            rows=grid_rows,
            cols=cols,
            subplot_titles=[theme.kpi_name(k) for k in kpis],
            horizontal_spacing=0.22,
            vertical_spacing=0.12 if grid_rows > 1 else 0.1,
        )
        for i, kpi in enumerate(kpis):
            r, col = i // cols + 1, i % cols + 1
            part = rows[rows["kpi_code"] == kpi.code].copy()
            # plotly draws the first bar at the bottom: the best district last, on top
            lower_better = kpi.target_comparator == "<="
            part = part.sort_values("actual", ascending=not lower_better, na_position="first")
            values = [_num(v) for v in part["actual"]]
            fig.add_bar(
                row=r,
                col=col,
                y=list(part["district_name"]),
                x=values,
                orientation="h",
                marker_color=c["current"],
                text=[theme.fmt(v, kpi.unit) for v in values],
                textposition="outside",
                cliponaxis=False,
                showlegend=False,
                hovertemplate="%{y}: %{text}<extra></extra>",
            )
            targets = [_num(v) for v in part["target"]]
            if any(v is not None for v in targets):
                fig.add_scatter(
                    row=r,
                    col=col,
                    y=list(part["district_name"]),
                    x=targets,
                    mode="markers",
                    marker=dict(symbol="line-ns", size=18, line=dict(color=c["target"], width=3)),
                    showlegend=False,
                    hovertemplate="%{y}: " + theme.t("city_district") + " %{x}<extra></extra>",
                )
            largest = max([v for v in [*values, *targets] if v is not None] or [1])
            fig.update_xaxes(row=r, col=col, range=[0, largest * 1.3], showticklabels=False)
        title = theme.t("city_ranking_title", section=theme.section_name(section))
        subtitle = theme.t("city_ranking_subtitle", period=_period(data, theme))
        _page_layout(fig, theme, data, title, subtitle, extra_top=30)
        fig.update_layout(height=max(theme.page["height"], 260 * grid_rows + 220))
        charts.append(
            Chart(
                slug=f"city_ranking_{section['key']}",
                group="city_ranking",
                section=section["key"],
                title=title,
                figure=fig,
            )
        )
    return charts


def progress_chart(districts: pd.DataFrame, data: ReportData, theme: Theme) -> Chart | None:
    """Districts x KPIs with a target: actual (complete year) or projected year end (the
    current year) as a share of the district's target; 100% and more is met."""
    year = data.as_of_year
    rows = districts[(districts["year"] == year) & districts["target"].notna()].copy()
    if rows.empty:
        return None
    basis = rows["actual"].where(rows["is_complete_year"].astype(bool), rows["projected_year_end"])
    share = basis / rows["target"]
    lower = rows["comparator"] == "<="
    rows["share"] = share.where(~lower, rows["target"] / basis)
    order = [k.code for k in data.catalogue if k.code in set(rows["kpi_code"])]
    names = {k.code: theme.kpi_name(k) for k in data.catalogue}
    # a KPI a row (its name reads across), a district a column
    table = rows.pivot_table(index="kpi_code", columns="district_name", values="share")
    table = table.reindex(index=order)
    c = theme.colors
    text = [[theme.fmt(_num(v), "ratio", decimals=0) for v in row] for row in table.to_numpy()]
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=list(table.columns),
            y=[names[code] for code in table.index],
            text=text,
            texttemplate="%{text}",
            zmin=0.6,
            zmid=1.0,
            zmax=1.4,
            colorscale=[[0, c["missed"]], [0.5, "#FFFFFF"], [1, c["met"]]],
            showscale=False,
            hovertemplate="%{x} · %{y}: %{text}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    title = theme.t("city_progress_title")
    _page_layout(fig, theme, data, title, theme.t("city_progress_subtitle", y=year), extra_top=44)
    fig.update_xaxes(side="top")
    fig.update_yaxes(autorange="reversed")
    return Chart(
        slug="city_progress", group="city_progress", section="scorecard", title=title, figure=fig
    )


def build_city_charts(city_yearly: pd.DataFrame, data: ReportData, theme: Theme) -> list[Chart]:
    """The city's scorecard and trends, its districts' progress and the ranked sections."""
    districts = city_yearly[city_yearly["level"] == "district"]
    charts = build_charts(data, theme, ["kpi_scorecard", "kpi_trends"])
    progress = progress_chart(districts, data, theme)
    charts += [progress] if progress else []
    charts += ranking_charts(districts, data, theme)
    rank = {"scorecard": -1} | {s["key"]: i for i, s in enumerate(theme.sections)}
    # the city's scorecard, its districts' progress; per section the districts, then the city
    within = {"kpi_scorecard": 0, "city_progress": 1, "city_ranking": 2, "kpi_trends": 3}
    return sorted(charts, key=lambda ch: (rank.get(ch.section, len(rank)), within.get(ch.group, 9)))
