"""Where exports go and how they are written: UNION_EXPORT_DIR/<as-of date>/.

<as-of>/dashboard-<as-of>.html   interactive, offline
<as-of>/briefing-<as-of>.pdf     A4: cover, scorecard, one chart per page
<as-of>/charts/<slug>.png|.pdf   every chart (A4 landscape)
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from union_pipeline.reports.briefing import Briefing, write_briefing
from union_pipeline.reports.dashboard import write_dashboard
from union_pipeline.reports.data import ReportData, read_report_data
from union_pipeline.reports.figures import Chart, build_charts
from union_pipeline.reports.render import (
    Job,
    render,
    render_bytes,
    static_export_problem,
    warn_once,
)
from union_pipeline.reports.theme import Theme, load_theme

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportPaths:
    root: Path
    as_of: dt.date

    @property
    def charts(self) -> Path:
        return self.root / "charts"

    def png(self, slug: str) -> Path:
        return self.charts / f"{slug}.png"

    def pdf(self, slug: str) -> Path:
        return self.charts / f"{slug}.pdf"

    @property
    def dashboard(self) -> Path:
        return self.root / f"dashboard-{self.as_of.isoformat()}.html"

    @property
    def briefing(self) -> Path:
        return self.root / f"briefing-{self.as_of.isoformat()}.pdf"


def export_paths(export_dir: Path, as_of: dt.date) -> ExportPaths:
    return ExportPaths(Path(export_dir) / as_of.isoformat(), as_of)


@dataclass
class StaticExport:
    files: list[Path] = field(default_factory=list)
    skipped: str | None = None  # why PNG/PDF were not written
    seconds: float = 0.0


def static_jobs(charts: list[Chart], paths: ExportPaths, theme: Theme) -> list[Job]:
    page = theme.page
    jobs = []
    for chart in charts:
        jobs.append(
            Job(
                chart.figure,
                paths.png(chart.slug),
                page["width"],
                page["height"],
                float(page["png_scale"]),
            )
        )
        jobs.append(Job(chart.figure, paths.pdf(chart.slug), page["width"], page["height"]))
    return jobs


def export_static(
    charts: list[Chart], paths: ExportPaths, theme: Theme, logger: logging.Logger | None = None
) -> StaticExport:
    """A PNG and a PDF per chart with the one shared browser; skipped (said once) without."""
    problem = static_export_problem()
    if problem:
        warn_once(problem, logger)
        return StaticExport(skipped=problem)
    started = time.perf_counter()
    jobs = static_jobs(charts, paths, theme)
    render(jobs)
    return StaticExport([j.path for j in jobs], None, time.perf_counter() - started)


def preview_png(chart: Chart, theme: Theme) -> bytes | None:
    """A small PNG of the chart (Dagster's metadata preview); None without a browser."""
    if static_export_problem():
        return None
    page = theme.page
    return render_bytes(chart.figure, page["width"], page["height"], float(page["preview_scale"]))


def preview_markdown(chart: Chart, theme: Theme) -> str:
    image = preview_png(chart, theme)
    if image is None:
        return f"**{chart.title}** (no preview: static export unavailable)"
    data = base64.b64encode(image).decode("ascii")
    return f"![{chart.title}](data:image/png;base64,{data})"


@dataclass
class ReportRun:
    paths: ExportPaths
    charts: list[Chart]
    static: StaticExport
    dashboard: Path
    briefing: Briefing | None
    seconds: dict[str, float]


def export_reports(
    con: duckdb.DuckDBPyConnection,
    export_dir: Path,
    theme: Theme | None = None,
    logger: logging.Logger | None = None,
) -> ReportRun:
    """Everything in one go (bench, scripts): charts, PNG/PDF, dashboard, briefing."""
    theme = theme or load_theme()
    seconds = {}
    started = time.perf_counter()
    data: ReportData = read_report_data(con)
    charts = build_charts(data, theme)
    seconds["read_and_build"] = time.perf_counter() - started
    paths = export_paths(export_dir, data.as_of)
    started = time.perf_counter()
    static = export_static(charts, paths, theme, logger)
    seconds["png_pdf"] = time.perf_counter() - started
    started = time.perf_counter()
    dashboard = write_dashboard(
        charts, paths.dashboard, data, theme, None if static.skipped else paths.briefing.name
    )
    seconds["dashboard"] = time.perf_counter() - started
    briefing = None
    if not static.skipped:
        started = time.perf_counter()
        briefing = write_briefing(
            charts, {c.slug: paths.pdf(c.slug) for c in charts}, paths.briefing, data, theme
        )
        seconds["briefing"] = time.perf_counter() - started
    return ReportRun(paths, charts, static, dashboard, briefing, seconds)
