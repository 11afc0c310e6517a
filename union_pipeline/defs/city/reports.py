"""The city's dashboard and briefing: its districts side by side, and the city against its
own targets. Written to UNION_EXPORT_DIR/city/<as-of>/ for a city drop."""

import tempfile
from pathlib import Path

import dagster as dg

from union_pipeline import districts
from union_pipeline.assetkit.io import by_key, reading, table_ins
from union_pipeline.assetkit.outputs import REUSED, VERSION, latest, stands, versions_of
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, package_digest
from union_pipeline.reports import (
    export_paths,
    export_static,
    load_theme,
    start_browser,
    static_export_problem,
    write_briefing,
    write_dashboard,
)
from union_pipeline.reports.city import build_city_charts, city_report_data
from union_pipeline.settings import ASSETS_DIR
from union_pipeline.warehouse.versions import digest

CITY_KPI_YEARLY = dg.AssetKey(["marts", "city_kpi_yearly"])
REFRESH_CONTEXT = dg.AssetKey(["marts", "refresh_context"])
CITY_WAREHOUSE = dg.AssetKey(["warehouse", "union_duckdb"])
DASHBOARD = dg.AssetKey(["reports", "city_dashboard"])
BRIEFING = dg.AssetKey(["reports", "city_briefing"])
# the city's roll-up, and every district's refresh context (its as-of date)
CITY_INS = {**table_ins([CITY_KPI_YEARLY]), **table_ins([REFRESH_CONTEXT], all_districts=True)}
CODE = digest(package_digest("reports"), (ASSETS_DIR / "theme.yaml").read_text("utf-8"))


@dg.multi_asset(
    name="city_reports",
    specs=[
        dg.AssetSpec(
            DASHBOARD,
            group_name="city",
            kinds={"plotly", "html"},
            owners=[OWNER],
            deps=[CITY_KPI_YEARLY, REFRESH_CONTEXT, CITY_WAREHOUSE],
            code_version=CODE,
            automation_condition=EAGER,
            skippable=True,
            description="全市工作指标看板 — The city's dashboard: the districts compared (their "
            "progress to their targets, each section's KPIs ranked across the city) and the "
            "city's own scorecard and trends against the city's targets; one offline HTML "
            "file. Written for a city drop (two districts or more).",
        ),
        dg.AssetSpec(
            BRIEFING,
            group_name="city",
            kinds={"plotly", "pdf"},
            owners=[OWNER],
            deps=[CITY_KPI_YEARLY, REFRESH_CONTEXT, CITY_WAREHOUSE],
            code_version=CODE,
            automation_condition=EAGER,
            skippable=True,
            description="全市工作指标简报 — The city's briefing PDF (A4): cover, the city's "
            "scorecard, the districts' progress, then a page per chart. Not written where "
            "this machine cannot export PDF.",
        ),
    ],
    can_subset=True,
    ins=CITY_INS,
)
def city_reports(context: dg.AssetExecutionContext, warehouse: WarehouseResource, **inputs):
    settings = warehouse.settings
    if not districts.is_city_drop(settings.raw_dir):
        context.log.info("a single-district drop: the district's own reports are the city's")
        return
    theme = load_theme().of(None)
    upstream = by_key(CITY_INS, inputs)
    with reading(warehouse.warehouse, upstream.values()) as con:
        as_of, first_year = con.execute(
            "SELECT max(as_of), min(first_year) FROM marts.refresh_context"
        ).fetchall()[0]
        city_yearly = con.execute("SELECT * FROM marts.city_kpi_yearly").df()
    paths = export_paths(
        districts.district_export_dir(settings.export_dir, settings.raw_dir, None), as_of
    )
    can_export = static_export_problem() is None
    version = digest(CODE, theme.lang, versions_of(upstream), str(paths.root), can_export)
    selected = context.selected_asset_keys
    previous = {key: latest(context.instance, key) for key in selected}
    outputs = {DASHBOARD: paths.dashboard, BRIEFING: paths.briefing}
    if all(stands(p, version, files=[outputs[k]]) for k, p in previous.items()):
        for key, found in previous.items():
            metadata = {**found.metadata, REUSED: dg.MetadataValue.bool(True)}
            yield dg.MaterializeResult(
                asset_key=key, data_version=dg.DataVersion(version), metadata=metadata
            )
        return
    if can_export:
        start_browser()  # Chromium starts while the figures are built
    data = city_report_data(city_yearly, as_of, int(first_year))
    charts = build_city_charts(city_yearly, data, theme)
    # the charts' PNGs and the briefing's pages (SVG, in a scratch folder) in one batch
    with tempfile.TemporaryDirectory(prefix="union-city-pages-") as scratch:
        pages = {c.slug: Path(scratch) / f"{i}.svg" for i, c in enumerate(charts)}
        static = export_static(charts, paths, theme, context.log, pages) if can_export else None
        yield from _results(
            context, charts, city_yearly, data, theme, paths, version, static, pages
        )


def _results(context, charts, city_yearly, data, theme, paths, version, static, pages):
    """The dashboard's and the briefing's materializations (the briefing printed here)."""
    as_of, selected = data.as_of, context.selected_asset_keys
    can_export = static is not None and not static.skipped
    common = {
        "as_of": dg.MetadataValue.text(as_of.isoformat()),
        "districts": dg.MetadataValue.int(int(city_yearly["district"].nunique()) - 1),
        "charts": dg.MetadataValue.json([c.slug for c in charts]),
        VERSION: dg.MetadataValue.text(version),
        REUSED: dg.MetadataValue.bool(False),
    }
    briefing_name = paths.briefing.name if can_export else None
    if DASHBOARD in selected:
        path = write_dashboard(charts, paths.dashboard, data, theme, briefing_name)
        yield dg.MaterializeResult(
            asset_key=DASHBOARD,
            data_version=dg.DataVersion(version),
            metadata={**common, "path": dg.MetadataValue.path(str(path))},
        )
    if BRIEFING in selected and can_export:
        made = write_briefing(charts, pages, paths.briefing, data, theme)
        yield dg.MaterializeResult(
            asset_key=BRIEFING,
            data_version=dg.DataVersion(version),
            metadata={
                **common,
                "path": dg.MetadataValue.path(str(made.path)),
                "pages": dg.MetadataValue.int(made.pages),
            },
        )
