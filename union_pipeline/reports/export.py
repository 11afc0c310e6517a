"""Where exports go and how they are written: UNION_EXPORT_DIR/<as-of date>/.

<as-of>/dashboard-<as-of>.html   interactive, offline
<as-of>/briefing-<as-of>.pdf     A4: cover, scorecard, one chart per page
<as-of>/charts/<slug>.png        every chart (A4 landscape, 2x)

A chart's PDF page exists only inside the briefing: the briefing is printed in one go from
the charts' SVGs (`write_briefing`), which the chart step renders beside the PNGs, in the
same batch, into the chart asset's own output folder.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from union_pipeline.reports.briefing import Briefing, write_briefing
from union_pipeline.reports.dashboard import write_dashboard
from union_pipeline.reports.data import ReportData, read_report_data
from union_pipeline.reports.figures import Chart, build_charts
from union_pipeline.reports.render import (
    Job,
    Raster,
    rasterize,
    render,
    render_bytes,
    start_browser,
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
        """Where earlier versions wrote a chart's own PDF (removed when it is rendered)."""
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
    files: list[Path] = field(default_factory=list)  # the PNGs in charts/
    skipped: str | None = None  # why PNG/SVG were not written
    seconds: float = 0.0
    previews: dict[str, bytes] = field(default_factory=dict)  # slug -> small PNG


def export_static(
    charts: list[Chart],
    paths: ExportPaths,
    theme: Theme,
    logger: logging.Logger | None = None,
    svgs: dict[str, Path] | None = None,
    previews: Collection[str] = (),
) -> StaticExport:
    """A PNG per chart, with the one shared browser; skipped (said once) without one.

    Each chart is drawn once, as SVG (kept where `svgs` says: the briefing's pages), and
    its PNG (and the small PNG of the `previews` slugs) drawn from that SVG."""
    problem = static_export_problem()
    if problem:
        warn_once(problem, logger)
        return StaticExport(skipped=problem)
    started = time.perf_counter()
    page = theme.page
    width, height = page["width"], page["height"]
    with tempfile.TemporaryDirectory(prefix="union-svg-") as scratch:
        svgs = svgs or {}
        pages = {
            c.slug: svgs.get(c.slug) or Path(scratch) / f"{i}.svg" for i, c in enumerate(charts)
        }
        render([Job(c.figure, pages[c.slug], width, height) for c in charts])
        rasters = [
            Raster(pages[c.slug], paths.png(c.slug), width, height, float(page["png_scale"]))
            for c in charts
        ]
        small = [c.slug for c in charts if c.slug in previews]
        rasters += [
            Raster(pages[slug], None, width, height, float(page["preview_scale"])) for slug in small
        ]
        images = rasterize(rasters)
    for chart in charts:  # a chart's own PDF of earlier versions: nothing uses it now
        paths.pdf(chart.slug).unlink(missing_ok=True)
    exported = [paths.png(c.slug) for c in charts]
    previews_made = dict(zip(small, images[len(charts) :], strict=True))
    return StaticExport(exported, None, time.perf_counter() - started, previews_made)


def preview_png(chart: Chart, theme: Theme) -> bytes | None:
    """A small PNG of the chart (Dagster's metadata preview); None without a browser."""
    if static_export_problem():
        return None
    page = theme.page
    return render_bytes(chart.figure, page["width"], page["height"], float(page["preview_scale"]))


def preview_markdown(chart: Chart, theme: Theme, image: bytes | None = None) -> str:
    """The preview as markdown; `image`: the small PNG when already rendered."""
    image = image if image is not None else preview_png(chart, theme)
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
    """Everything in one go (bench, scripts): charts, PNGs, dashboard, briefing."""
    theme = theme or load_theme()
    seconds = {}
    started = time.perf_counter()
    start_browser()  # Chromium starts while the marts are read and the figures built
    data: ReportData = read_report_data(con)
    charts = build_charts(data, theme)
    seconds["read_and_build"] = time.perf_counter() - started
    paths = export_paths(export_dir, data.as_of)
    with tempfile.TemporaryDirectory(prefix="union-pages-") as scratch:
        svgs = {c.slug: Path(scratch) / f"{i}.svg" for i, c in enumerate(charts)}
        started = time.perf_counter()
        static = export_static(charts, paths, theme, logger, svgs)
        seconds["png_svg"] = time.perf_counter() - started
        started = time.perf_counter()
        dashboard = write_dashboard(
            charts, paths.dashboard, data, theme, None if static.skipped else paths.briefing.name
        )
        seconds["dashboard"] = time.perf_counter() - started
        briefing = None
        if not static.skipped:
            started = time.perf_counter()
            briefing = write_briefing(charts, svgs, paths.briefing, data, theme)
            seconds["briefing"] = time.perf_counter() - started
    return ReportRun(paths, charts, static, dashboard, briefing, seconds)
