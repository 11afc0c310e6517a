"""Charts for leadership: built from the live warehouse after it is published, exported to
UNION_EXPORT_DIR/<as-of>/ (PNG + PDF per chart, the HTML dashboard, the briefing PDF).

Thin on purpose: the figures, exports and mail live in `union_pipeline.reports`.
"""

import time

import dagster as dg

from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import OWNER
from union_pipeline.reports import (
    Attachment,
    build_charts,
    export_paths,
    export_static,
    load_theme,
    mail_text,
    preview_markdown,
    read_report_data,
    recipients_from_env,
    send_mail,
    smtp_config_from_env,
    static_export_problem,
    write_briefing,
    write_dashboard,
)
from union_pipeline.reports.render import warn_once

GROUP = "reports"
WAREHOUSE = dg.AssetKey(["warehouse", "union_duckdb"])
CHART_ASSETS = ["kpi_scorecard", "kpi_trends", "street_comparison", "mutual_aid_monthly",
                "loans_cumulative", "training_by_programme"]
CHART_KEYS = [dg.AssetKey(["reports", name]) for name in CHART_ASSETS]


def _report_asset(name: str, deps: list[dg.AssetKey], **kwargs):
    return dg.asset(key=["reports", name], group_name=GROUP, kinds={"plotly"},
                    owners=[OWNER], deps=deps, **kwargs)


def _read(warehouse: WarehouseResource):
    # read-only on the live file: the refresh published it, other readers may be on it too
    with warehouse.warehouse.reading() as con:
        return read_report_data(con)


def _export_charts(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                   name: str) -> dg.MaterializeResult:
    started = time.perf_counter()
    theme = load_theme()
    data = _read(warehouse)
    charts = build_charts(data, theme, [name])
    paths = export_paths(warehouse.settings.export_dir, data.as_of)
    static = export_static(charts, paths, theme, context.log)
    metadata = {
        "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
        "charts": dg.MetadataValue.json([c.slug for c in charts]),
        "export_dir": dg.MetadataValue.path(str(paths.charts)),
        "static_export": dg.MetadataValue.text(
            static.skipped or f"{len(static.files)} files in {static.seconds:.1f} s"),
        "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
    }
    if not charts:
        metadata["note"] = dg.MetadataValue.text(
            "no data for this chart in the warehouse; " + "; ".join(data.notes))
        return dg.MaterializeResult(metadata=metadata)
    if static.files:
        metadata["files"] = dg.MetadataValue.json([str(p) for p in static.files])
        metadata["png"] = dg.MetadataValue.path(str(paths.png(charts[0].slug)))
        metadata["pdf"] = dg.MetadataValue.path(str(paths.pdf(charts[0].slug)))
    metadata["preview"] = dg.MetadataValue.md(preview_markdown(charts[0], theme))
    if name == "street_comparison":
        metadata["suppressed_cells"] = dg.MetadataValue.int(sum(c.suppressed for c in charts))
    return dg.MaterializeResult(metadata=metadata)


@_report_asset("kpi_scorecard", [WAREHOUSE])
def kpi_scorecard(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """工作指标完成情况 — KPI scorecard: every KPI's latest figure against its target.

    One table: the latest actual (year to date for the incomplete year), year-on-year change,
    the year's target, 达成/未达成/进行中 and the projection for the incomplete year, with the
    prior year's result beside it. The briefing's first page after the cover.
    """
    return _export_charts(context, warehouse, "kpi_scorecard")


@_report_asset("kpi_trends", [WAREHOUSE])
def kpi_trends(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """指标历年对比 — Year-on-year trend of each KPI against its targets.

    One chart per KPI: complete years as bars, targets as markers, this year to date beside
    last year to the same date, and the projected year end of a flow KPI.
    """
    return _export_charts(context, warehouse, "kpi_trends")


@_report_asset("street_comparison", [WAREHOUSE])
def street_comparison(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """各镇街对比 — Streets compared on membership and real-name collection rates vs target.

    职工入会率 and 会员采集比例 by street (镇街) for the as-of year, against the district
    target and the district's own rate. A street figure behind fewer than 5 persons is shown
    as "<5" and its number is never exported (small-cell suppression).
    """
    return _export_charts(context, warehouse, "street_comparison")


@_report_asset("mutual_aid_monthly", [WAREHOUSE])
def mutual_aid_monthly(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """职工医疗互助按月情况 — Mutual aid by month, this year over the prior year.

    Enrolments by month enrolled (plan year) and benefits paid by month, the prior year's
    same months overlaid.
    """
    return _export_charts(context, warehouse, "mutual_aid_monthly")


@_report_asset("loans_cumulative", [WAREHOUSE])
def loans_cumulative(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """蓝领贷累计发放 — Blue-collar loans, cumulative amount and borrowers, vs year-end target.

    Month by month since the scheme began: amount disbursed (亿元) and distinct borrowers,
    with the year-end targets.
    """
    return _export_charts(context, warehouse, "loans_cumulative")


@_report_asset("training_by_programme", [WAREHOUSE])
def training_by_programme(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """职工培训分项目情况 — Training by programme: sessions and participations per year.

    吾意乐学, 学历提升, 雄镇杯 and any other programme in the data, year by year.
    """
    return _export_charts(context, warehouse, "training_by_programme")


@_report_asset("dashboard", [WAREHOUSE, *CHART_KEYS])
def dashboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """工作指标看板 — Interactive dashboard for phones and desktops, one offline HTML file.

    Every chart in one self-contained page (plotly.js embedded, no CDN): open it from a mail,
    a share or a USB stick without a network. Written even when PNG/PDF export is not
    possible on this machine.
    """
    theme = load_theme()
    data = _read(warehouse)
    charts = build_charts(data, theme)
    paths = export_paths(warehouse.settings.export_dir, data.as_of)
    briefing_name = None if static_export_problem() else paths.briefing.name
    path = write_dashboard(charts, paths.dashboard, data, theme, briefing_name)
    return dg.MaterializeResult(metadata={
        "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
        "path": dg.MetadataValue.path(str(path)),
        "charts": dg.MetadataValue.int(len(charts)),
        "size_mb": dg.MetadataValue.float(round(path.stat().st_size / 1e6, 1)),
    })


@_report_asset("briefing", [WAREHOUSE, *CHART_KEYS], output_required=False)
def briefing(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """领导简报 — Leadership briefing PDF (A4), mailed to leadership when configured.

    A cover with the as-of date and the targets met and missed, the scorecard, then one chart
    per page. With UNION_SMTP_HOST and UNION_BRIEFING_TO set it is mailed; a failed send is
    logged and shown here (delivery), retried with backoff, and never fails the refresh.
    Not written (no materialization) where this machine cannot export PDF.
    """
    problem = static_export_problem()
    if problem:
        warn_once(problem, context.log)
        return
    theme = load_theme()
    data = _read(warehouse)
    charts = build_charts(data, theme)
    paths = export_paths(warehouse.settings.export_dir, data.as_of)
    made = write_briefing(charts, {c.slug: paths.pdf(c.slug) for c in charts},
                          paths.briefing, data, theme)
    metadata = {
        "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
        "path": dg.MetadataValue.path(str(made.path)),
        "pages": dg.MetadataValue.int(made.pages),
        "size_mb": dg.MetadataValue.float(round(made.path.stat().st_size / 1e6, 2)),
    }
    metadata.update(_deliver(context, made, data, theme, paths))
    yield dg.MaterializeResult(metadata=metadata)


def _deliver(context, made, data, theme, paths) -> dict:
    """Mail the briefing when configured; any failure is reported, never raised."""
    to = recipients_from_env("UNION_BRIEFING_TO")
    try:
        config = smtp_config_from_env()
    except ValueError as err:
        context.log.error(f"briefing not mailed: {err}")
        return {"delivery": dg.MetadataValue.text(f"FAILED: {err}")}
    if config is None or not to:
        return {"delivery": dg.MetadataValue.text(
            "not configured (set UNION_SMTP_HOST and UNION_BRIEFING_TO to mail it)")}
    subject, body = mail_text(made, data, theme, paths.dashboard)
    result = send_mail(subject, body, to, [Attachment.from_path(made.path)], config,
                       logger=context.log)
    if not result.sent:
        context.log.error(f"briefing not mailed: {result.summary}")
    return {
        "delivery": dg.MetadataValue.text(result.summary),
        "delivery_attempts": dg.MetadataValue.int(result.attempts),
        "recipients": dg.MetadataValue.int(len(to)),
        "mail_subject": dg.MetadataValue.text(subject),
    }
