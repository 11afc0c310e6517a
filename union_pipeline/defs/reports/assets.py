"""Charts for leadership, from the marts, exported to UNION_EXPORT_DIR/<as-of>/ (a PNG per
chart, the HTML dashboard, the briefing PDF), and the briefing mailed after a publish.

Thin on purpose: the figures, exports and mail live in `union_pipeline.reports`. The charts
are one step (the marts read once, one browser); a chart whose figure did not change is not
rendered again. The dashboard and the briefing are made from the chart assets' outputs.
"""

import datetime as dt
import inspect
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import plotly.graph_objects as go

from union_pipeline import districts
from union_pipeline.assetkit.io import by_key, reading, table_ins
from union_pipeline.assetkit.metadata import district_metadata, in_export_folder
from union_pipeline.assetkit.outputs import (
    DISTRICTS,
    MADE_IN_RUN,
    REUSED,
    VERSION,
    Latest,
    UpstreamError,
    district_partitions,
    latest,
    stands,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, package_digest
from union_pipeline.defs.marts.assets import REPORT_MART_KEYS as REPORT_MARTS
from union_pipeline.defs.warehouse.assets import DISTRICT_KEY as WAREHOUSE
from union_pipeline.ingest.specs import load_specs
from union_pipeline.reports import (
    BUILDERS,
    Attachment,
    Chart,
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
    start_browser,
    static_export_problem,
    write_briefing,
    write_dashboard,
)
from union_pipeline.reports.briefing import Briefing
from union_pipeline.reports.figures import order_charts
from union_pipeline.reports.problems import problem_list_path, write_problem_lists
from union_pipeline.reports.render import warn_once
from union_pipeline.reports.robots import (
    briefing_markdown,
    send_dingtalk,
    send_wecom_file,
    send_wecom_markdown,
)
from union_pipeline.reports.summary import (
    build_summary,
    read_quarantine_counts,
    summary_path,
    write_summary_docx,
)
from union_pipeline.reports.workbook import read_reconciliation, workbook_path, write_kpi_workbook
from union_pipeline.settings import ASSETS_DIR
from union_pipeline.warehouse.versions import digest

GROUP = "reports"
REPORTS_CODE = package_digest("reports")
THEME = (ASSETS_DIR / "theme.yaml").read_text(encoding="utf-8")
CHART_FILE = "union/charts_file"
CHART_INPUTS = "union/chart_inputs"  # the marts and code a chart was made from
DIGESTS_FILE = "union/digests_file"  # what each problem list holds, to rewrite only changes
FILES = "union/files"

CHART_DOCS = {
    "kpi_scorecard": """工作指标完成情况 — KPI scorecard: every KPI's latest figure against its
    target.

    One table: the latest actual (year to date for the incomplete year), year-on-year change,
    the year's target, 达成/未达成/进行中 and the projection for the incomplete year, with the
    prior year's result beside it. The briefing's first page after the cover.""",
    "kpi_trends": """指标历年对比 — Year-on-year trend of each KPI against its targets.

    One chart per KPI: complete years as bars, targets as markers, this year to date beside
    last year to the same date, and the projected year end of a flow KPI.""",
    "street_comparison": """各镇街对比 — Streets compared on membership and real-name
    collection rates vs target.

    职工入会率 and 会员采集比例 by street (镇街) for the as-of year, against the district
    target and the district's own rate. A street figure behind fewer than 5 persons is shown
    as "<5" and its number is never exported (small-cell suppression).""",
    "mutual_aid_monthly": """职工医疗互助按月情况 — Mutual aid by month, this year over the prior
    year.

    Enrolments by month enrolled (plan year) and benefits paid by month, the prior year's
    same months overlaid (from marts.mutual_aid_monthly).""",
    "loans_cumulative": """蓝领贷累计发放 — Blue-collar loans, cumulative amount and borrowers, vs
    year-end target.

    Month by month since the scheme began: amount disbursed (亿元) and distinct borrowers,
    with the year-end targets (from marts.loans_monthly).""",
    "training_by_programme": """职工培训分项目情况 — Training by programme: sessions and
    participations per year.

    吾意乐学, 学历提升, 雄镇杯 and any other programme in the data, year by year (from
    marts.training_by_programme).""",
}
CHART_KEYS = {name: dg.AssetKey(["reports", name]) for name in BUILDERS}
CHART_ASSETS = frozenset(CHART_KEYS.values())
# the key a report step reads its district's marts as (every report is the district's)
OWN = dg.AssetKey(["reports", "dashboard"])


def _report_spec(
    name: str, kinds: set[str], deps: list, description: str, code_version: str | None = None
) -> dg.AssetSpec:
    """A report asset: the group, owner, code version and automation every report shares."""
    return dg.AssetSpec(
        dg.AssetKey(["reports", name]),
        group_name=GROUP,
        kinds=kinds,
        owners=[OWNER],
        deps=deps,
        automation_condition=EAGER,
        code_version=code_version or digest(REPORTS_CODE, THEME),
        description=inspect.cleandoc(description),
        # a report not written (no browser for the briefing, an earlier failure) keeps its
        # last materialization
        skippable=True,
    )


def _export_root(context, warehouse: WarehouseResource) -> Path:
    """The district's export folder (see `districts.district_export_dir`)."""
    settings = warehouse.settings
    return districts.district_export_dir(
        settings.export_dir, settings.raw_dir, context.partition_key
    )


def _theme(context):
    return load_theme().of(context.partition_key)


def _chart_records(charts: list[Chart]) -> list[dict]:
    return [
        {
            "slug": c.slug,
            "group": c.group,
            "section": c.section,
            "title": c.title,
            "wide": c.wide,
            "suppressed": c.suppressed,
            "note": c.note,
            "figure": c.figure.to_json(),
        }
        for c in charts
    ]


def _charts_from(record_file: str) -> list[Chart]:
    """The charts as recorded. Their figures were validated when built: not again (plotly's
    validation of 26 figures costs more than the dashboard's HTML)."""
    records = json.loads(Path(record_file).read_text(encoding="utf-8"))
    return [
        Chart(**{**r, "figure": go.Figure(json.loads(r["figure"]), _validate=False)})
        for r in records
    ]


def _exported(paths, charts: list[dict]) -> list[Path]:
    """The files users get of these charts: a PNG each (none where export cannot run)."""
    if static_export_problem():
        return []
    return [paths.png(c["slug"]) for c in charts]


def _pages(folder: Path, charts: list[dict]) -> dict[str, Path]:
    """The charts' SVGs in their output folder: the briefing's pages, nothing else."""
    if static_export_problem():
        return {}
    return {c["slug"]: folder / f"{c['slug']}.svg" for c in charts}


def _chart_files(found: Latest, export_root: Path) -> list[Path]:
    """The files a chart's result would have on this machine now (a browser installed
    since it was made: its PNGs and pages are owed)."""
    charts = [{"slug": slug} for slug in found.get("charts") or []]
    paths = export_paths(export_root, dt.date.fromisoformat(found.get("as_of")))
    folder = Path(found.get(CHART_FILE)).parent
    return _exported(paths, charts) + list(_pages(folder, charts).values())


def _reused_chart(key: dg.AssetKey, previous: Latest) -> dg.MaterializeResult:
    metadata = dict(previous.metadata)
    metadata[REUSED] = dg.MetadataValue.bool(True)
    metadata[MADE_IN_RUN] = dg.MetadataValue.text(previous.get(MADE_IN_RUN, previous.run_id))
    return dg.MaterializeResult(
        asset_key=key, data_version=dg.DataVersion(previous.version), metadata=metadata
    )


def start_charts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict
) -> Callable[[], Iterator[dg.MaterializeResult]]:
    """Every chart from one read of the marts; a chart is rendered only when its figure
    changed or its files are gone. One batch for the browser: every PNG, the SVGs the
    briefing prints from, and the metadata previews.

    The batch is drawn in a thread while the step goes on: the browser draws in processes
    of its own, so the workbook and the problem lists (Python) are written meanwhile.
    Returns what waits for it and gives the charts' results."""
    theme = _theme(context)
    store = warehouse.warehouse
    district = context.partition_key
    groups = [name for name, key in CHART_KEYS.items() if key in context.selected_asset_keys]
    marts = _need(upstream, REPORT_MARTS)
    export_root = _export_root(context, warehouse)
    # all a chart's figure and files are made from: equal, its figure is not built again
    inputs = digest(
        REPORTS_CODE, THEME, theme.lang, theme.organisation, str(export_root), versions_of(marts)
    )
    last = {name: latest(context.instance, CHART_KEYS[name], district) for name in groups}
    if all(
        found is not None
        and found.get(CHART_INPUTS) == inputs
        and found.get(CHART_FILE)
        and stands(found, found.version, files=_chart_files(found, export_root))
        for found in last.values()
    ):
        return lambda: (_reused_chart(CHART_KEYS[name], found) for name, found in last.items())
    start_browser()  # likely to render: Chromium starts while the figures are built
    with reading(store, marts.values()) as con:
        data = read_report_data(con)
    built = build_charts(data, theme, groups)
    paths = export_paths(export_root, data.as_of)
    plans = []
    for name in groups:
        records = _chart_records([c for c in built if c.group == name])
        version = digest(
            REPORTS_CODE, THEME, theme.lang, theme.organisation, str(paths.root), records
        )
        folder = store.outputs.folder("reports", name, version)
        previous = last[name]
        files = _exported(paths, records) + list(_pages(folder, records).values())
        fresh = stands(previous, version, files=files) and bool(previous.get(CHART_FILE))
        plans.append((name, records, version, folder, previous if fresh else None))

    to_render = [c for c in built if any(p[0] == c.group and p[4] is None for p in plans)]
    pages = {
        slug: svg
        for name, records, _, folder, previous in plans
        if previous is None
        for slug, svg in _pages(folder, records).items()
    }
    firsts = [
        records[0]["slug"] for _, records, _, _, previous in plans if previous is None and records
    ]
    drawing = None
    if to_render:
        pool = ThreadPoolExecutor(1, thread_name_prefix="union-static-export")
        drawing = pool.submit(
            export_static, to_render, paths, theme, context.log, svgs=pages, previews=firsts
        )
        pool.shutdown(wait=False)

    def results() -> Iterator[dg.MaterializeResult]:
        static = drawing.result() if drawing is not None else None
        for name, records, version, folder, previous in plans:
            key = CHART_KEYS[name]
            if previous is not None:
                yield _reused_chart(key, previous)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            record_file = folder / "charts.json"
            record_file.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
            group_charts = [c for c in built if c.group == name]
            export_dir = warehouse.settings.export_dir  # paths as the analyst finds them there
            metadata = {
                **district_metadata(district),
                "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
                "charts": dg.MetadataValue.json([r["slug"] for r in records]),
                "export_dir": dg.MetadataValue.path(in_export_folder(paths.charts, export_dir)),
                "static_export": dg.MetadataValue.text(
                    static.skipped
                    if static and static.skipped
                    else f"{len(records)} PNG files (and the briefing's SVG pages)"
                ),
                VERSION: dg.MetadataValue.text(version),
                CHART_INPUTS: dg.MetadataValue.text(inputs),
                CHART_FILE: dg.MetadataValue.path(str(record_file)),
                FILES: dg.MetadataValue.json([str(p) for p in _exported(paths, records)]),
                REUSED: dg.MetadataValue.bool(False),
            }
            if not records:
                metadata["note"] = dg.MetadataValue.text(
                    "no data for this chart in the marts; " + "; ".join(data.notes)
                )
            else:
                image = static.previews.get(records[0]["slug"]) if static else None
                metadata["preview"] = dg.MetadataValue.md(
                    preview_markdown(group_charts[0], theme, image)
                    + _table_markdown(group_charts[0])
                )
                if not static_export_problem():
                    metadata["png"] = dg.MetadataValue.path(
                        in_export_folder(paths.png(records[0]["slug"]), export_dir)
                    )
            if name == "street_comparison":
                metadata["suppressed_cells"] = dg.MetadataValue.int(
                    sum(r["suppressed"] for r in records)
                )
            yield dg.MaterializeResult(
                asset_key=key, data_version=dg.DataVersion(version), metadata=metadata
            )
            # earlier figures of this chart: nothing reads them once every district's latest
            # is recorded
            keep = {folder} | {
                Path(found.get(CHART_FILE)).parent
                for code in district_partitions(context.instance)
                if (found := latest(context.instance, key, code)) and found.get(CHART_FILE)
            }
            store.outputs.cleanup(keep, pattern=f"reports/{name}/*")

    return results


def _table_markdown(chart: Chart) -> str:
    """A table chart's cells as text under its preview (the scorecard): readable at any
    size, where the picture is kept small for the event log."""
    table = next((t for t in chart.figure.data if t.type == "table"), None)
    if table is None:
        return ""
    headers = [str(h).replace("<br>", " ") for h in table.header.values]
    rows = zip(*table.cells.values, strict=True)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(str(v).replace("<br>", " ") for v in row) + " |" for row in rows),
    ]
    return "\n\n" + "\n".join(lines)


def _all_charts(context, theme) -> tuple[list[Chart], dict[str, str]]:
    found = {k: require_chart(context, k) for k in CHART_KEYS.values()}
    charts = [c for f in found.values() for c in _charts_from(f.get(CHART_FILE))]
    return order_charts(charts, theme), {k.to_user_string(): f.version for k, f in found.items()}


def _chart_pages(context) -> dict[str, Path]:
    """Each chart's SVG (its briefing page), beside its record in the chart's output folder."""
    pages = {}
    for key in CHART_KEYS.values():
        record_file = Path(require_chart(context, key).get(CHART_FILE))
        for record in json.loads(record_file.read_text(encoding="utf-8")):
            pages[record["slug"]] = record_file.parent / f"{record['slug']}.svg"
    return pages


def require_chart(context, key: dg.AssetKey):
    found = latest(context.instance, key, context.partition_key)
    if found is None or not found.get(CHART_FILE) or not Path(found.get(CHART_FILE)).is_file():
        raise dg.Failure(
            f"{key.to_user_string()} has no chart output yet: materialize the "
            f"charts first. 请先生成图表。"
        )
    return found


def _report_data(upstream: dict, warehouse: WarehouseResource):
    marts = _need(upstream, REPORT_MARTS)
    with reading(warehouse.warehouse, marts.values()) as con:
        return read_report_data(con), versions_of(marts)


def _reuse(context, key: dg.AssetKey, version: str, path: Path):
    previous = latest(context.instance, key, context.partition_key)
    if stands(previous, version, files=[path]):
        metadata = dict(previous.metadata)
        metadata[REUSED] = dg.MetadataValue.bool(True)
        return dg.MaterializeResult(
            asset_key=key, data_version=dg.DataVersion(version), metadata=metadata
        )
    return None


def dashboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict):
    """工作指标看板 — Interactive dashboard for phones and desktops, one offline HTML file.

    Every chart in one self-contained page (plotly.js embedded, no CDN): open it from a mail,
    a share or a USB stick without a network. Made from the chart assets; written even when
    PNG/PDF export is not possible on this machine.
    """
    theme = _theme(context)
    charts, chart_versions = _all_charts(context, theme)
    data, mart_versions = _report_data(upstream, warehouse)
    paths = export_paths(_export_root(context, warehouse), data.as_of)
    briefing_name = None if static_export_problem() else paths.briefing.name
    version = digest(
        REPORTS_CODE,
        THEME,
        theme.lang,
        theme.organisation,
        chart_versions,
        mart_versions,
        str(paths.dashboard),
        briefing_name,
    )
    reused = _reuse(context, dg.AssetKey(["reports", "dashboard"]), version, paths.dashboard)
    if reused:
        return reused
    path = write_dashboard(charts, paths.dashboard, data, theme, briefing_name)
    return dg.MaterializeResult(
        asset_key=dg.AssetKey(["reports", "dashboard"]),
        data_version=dg.DataVersion(version),
        metadata={
            "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
            "path": dg.MetadataValue.path(str(path)),
            "charts": dg.MetadataValue.int(len(charts)),
            "size_mb": dg.MetadataValue.float(round(path.stat().st_size / 1e6, 1)),
            VERSION: dg.MetadataValue.text(version),
            REUSED: dg.MetadataValue.bool(False),
        },
    )


BRIEFING = dg.AssetKey(["reports", "briefing"])


def briefing(context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict):
    """领导简报 — Leadership briefing PDF (A4): a cover with the as-of date and the targets met
    and missed, the scorecard, then one chart per page.

    Printed in one go from the chart assets' SVGs (vector, text that copies). Not written
    (no materialization) where this machine cannot export PDF; mailed by
    `reports/briefing_mail` after the warehouse is published.
    """
    problem = static_export_problem()
    if problem:
        warn_once(problem, context.log)
        return
    theme = _theme(context)
    charts, chart_versions = _all_charts(context, theme)
    data, mart_versions = _report_data(upstream, warehouse)
    quarantine, quarantine_version = _quarantine_counts(upstream, warehouse)
    paths = export_paths(_export_root(context, warehouse), data.as_of)
    version = digest(
        REPORTS_CODE,
        THEME,
        KPIS,
        theme.lang,
        theme.organisation,
        chart_versions,
        mart_versions,
        quarantine_version,
        str(paths.briefing),
    )
    reused = _reuse(context, BRIEFING, version, paths.briefing)
    if reused:
        yield reused
        return
    summary = build_summary(data, theme, quarantine)  # the work summary draft: page 2 on
    made = write_briefing(charts, _chart_pages(context), paths.briefing, data, theme, summary)
    yield dg.MaterializeResult(
        asset_key=BRIEFING,
        data_version=dg.DataVersion(version),
        metadata={
            "as_of": dg.MetadataValue.text(data.as_of.isoformat()),
            "path": dg.MetadataValue.path(str(made.path)),
            "pages": dg.MetadataValue.int(made.pages),
            "summary_pages": dg.MetadataValue.int(made.titles.count(summary.title)),
            "titles": dg.MetadataValue.json(made.titles),
            "size_mb": dg.MetadataValue.float(round(made.path.stat().st_size / 1e6, 2)),
            VERSION: dg.MetadataValue.text(version),
            REUSED: dg.MetadataValue.bool(False),
        },
    )


BRIEFING_MAIL = dg.AssetKey(["reports", "briefing_mail"])
DELIVERED = "union/delivered"  # per channel part: the briefing version it delivered, the run
# a channel and the messages it sends (WeCom: the markdown, then the PDF as a file)
CHANNELS = {"mail": ["mail"], "dingtalk": ["dingtalk"], "wecom": ["wecom", "wecom_file"]}
NOT_CONFIGURED = (
    "not configured (set UNION_SMTP_HOST and UNION_BRIEFING_TO, UNION_DINGTALK_WEBHOOK or "
    "UNION_WECOM_WEBHOOK to deliver it)"
)


def _delivered(before) -> dict[str, dict]:
    """What each channel delivered so far, from the step's latest materialization."""
    if before is None:
        return {}
    found = dict(before.get(DELIVERED) or {})
    if not found and before.get("mailed_version"):  # recorded before the robots came
        found["mail"] = {"version": before.get("mailed_version"), "run": before.run_id}
    return found


def briefing_mail(context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict):
    """简报推送 — The briefing delivered to leadership (mail, DingTalk, WeCom), once per new
    briefing.

    After the warehouse is published, every configured channel gets the latest briefing
    unless it already had that very briefing: mail (UNION_SMTP_HOST, UNION_BRIEFING_TO) with
    the PDF attached; the DingTalk group robot (UNION_DINGTALK_WEBHOOK, UNION_DINGTALK_SECRET)
    the headline figures and the targets at risk; the WeCom group robot (UNION_WECOM_WEBHOOK)
    the same and the PDF as a file. A retry or an unchanged refresh sends nothing. A channel
    that still fails after its retries fails this step, after the others were tried and what
    was sent recorded: the run shows red, the failure alert goes out and a re-execution
    sends to the failed channels only. 简报生成后推送（邮件、钉钉、企业微信），同一份简报
    每个渠道只发一次；推送失败时本步骤标红。
    """
    made = latest(context.instance, BRIEFING, context.partition_key)
    if made is None:
        yield dg.MaterializeResult(
            asset_key=BRIEFING_MAIL,
            metadata={
                "delivery": dg.MetadataValue.text(
                    "no briefing (static export unavailable on this machine)"
                )
            },
        )
        return
    before = latest(context.instance, BRIEFING_MAIL, context.partition_key)
    delivered = _delivered(before)
    settings = warehouse.settings
    to = recipients_from_env("UNION_BRIEFING_TO")
    try:
        smtp, smtp_problem = smtp_config_from_env(), None
    except ValueError as err:
        smtp, smtp_problem = None, str(err)
    configured = {
        "mail": bool(to) and (smtp is not None or smtp_problem is not None),
        "dingtalk": bool(settings.dingtalk_webhook),
        "wecom": bool(settings.wecom_webhook),
    }
    path = Path(made.get("path"))
    states: dict[str, str] = {}
    failed: dict[str, str] = {}
    attempts: dict[str, int] = {}
    metadata: dict[str, dg.MetadataValue] = {}
    text = None  # (data, theme), read once when something is to be sent

    def record(part: str, result) -> bool:
        attempts[part] = result.attempts
        if result.sent or getattr(result, "skipped", False):  # skipped: the API cannot take it
            delivered[part] = {"version": made.version, "run": context.run.run_id}
        return result.sent or getattr(result, "skipped", False)

    for channel, parts in CHANNELS.items():
        if not configured[channel]:
            states[channel] = "not configured"
            continue
        todo = [p for p in parts if delivered.get(p, {}).get("version") != made.version]
        if not todo:
            run = delivered[parts[0]].get("run") or "?"
            states[channel] = f"already sent: this briefing was sent in run {run[:8]}"
            continue
        if text is None:
            data, _ = _report_data(upstream, warehouse)
            text = (data, _theme(context))
        data, theme = text
        if channel == "mail":
            if smtp_problem:
                attempts["mail"] = 0
                states[channel], failed[channel] = f"FAILED: {smtp_problem}", smtp_problem
                continue
            briefing_file = Briefing(path, int(made.get("pages", 0)), list(made.get("titles", [])))
            dashboard = export_paths(_export_root(context, warehouse), data.as_of).dashboard
            subject, body = mail_text(briefing_file, data, theme, dashboard)
            result = send_mail(
                subject, body, to, [Attachment.from_path(path)], smtp, logger=context.log
            )
            metadata["recipients"] = dg.MetadataValue.int(len(to))
            metadata["mail_subject"] = dg.MetadataValue.text(subject)
            states[channel] = result.summary
            if not record("mail", result):
                failed[channel] = result.error or "not sent"
        elif channel == "dingtalk":
            title, markdown = briefing_markdown(data, theme)
            result = send_dingtalk(
                settings.dingtalk_webhook,
                settings.dingtalk_secret,
                title,
                markdown,
                logger=context.log,
            )
            states[channel] = result.summary
            if not record("dingtalk", result):
                failed[channel] = result.error or "not sent"
        else:
            done = []
            if "wecom" in todo:
                file_line = theme.t("mail_attachment", file=path.name, pages=made.get("pages", 0))
                _, markdown = briefing_markdown(data, theme, file_line)
                result = send_wecom_markdown(settings.wecom_webhook, markdown, logger=context.log)
                if not record("wecom", result):
                    states[channel] = f"markdown {result.summary}"
                    failed[channel] = f"markdown: {result.error}"
                    continue  # the file follows its message, on the next attempt
                done.append("markdown")
            result = send_wecom_file(settings.wecom_webhook, path, logger=context.log)
            if not record("wecom_file", result):
                states[channel] = f"file {result.summary}"
                failed[channel] = f"file: {result.error}"
                continue
            if result.skipped:
                states[channel] = f"sent {' and '.join(done) or 'nothing'}; file {result.summary}"
                continue
            done.append(f"file {path.name}")
            states[channel] = f"sent {' and '.join(done)} (attempt {result.attempts})"

    active = [c for c in CHANNELS if configured[c]]
    summary = "; ".join(f"{c}: {states[c]}" for c in active) if active else NOT_CONFIGURED
    metadata.update(
        {
            "delivery": dg.MetadataValue.text(summary),
            **{c: dg.MetadataValue.text(states[c]) for c in CHANNELS},
            "failed_channels": dg.MetadataValue.json(sorted(failed)),
            "delivery_attempts": dg.MetadataValue.json(attempts),
            DELIVERED: dg.MetadataValue.json(delivered),
        }
    )
    if delivered.get("mail", {}).get("version") == made.version:
        metadata["mailed_version"] = dg.MetadataValue.text(made.version)
    for channel, reason in failed.items():
        context.log.error(f"briefing not delivered by {channel}: {reason}")
    yield dg.MaterializeResult(asset_key=BRIEFING_MAIL, metadata=metadata)
    if failed:
        # after the materialization: what was sent stays recorded, a re-execution of this
        # step sends to the failed channels only
        raise dg.Failure(
            description="简报推送失败 / briefing not delivered: "
            + "; ".join(f"{c}: {r}" for c, r in failed.items()),
            metadata={"failed_channels": dg.MetadataValue.json(sorted(failed))},
            allow_retries=False,
        )


STAGING_KEYS = [dg.AssetKey(["staging", s]) for s in load_specs()]
QUARANTINE = dg.AssetKey(["staging", "quarantine"])
UNIONS = dg.AssetKey(["staging", "unions"])
RECONCILIATION = dg.AssetKey(["marts", "report_reconciliation"])


def _sources(upstream: dict) -> list[dict]:
    """What the workbook's about sheet says of each source: from its materialization."""
    out = []
    for key in STAGING_KEYS:
        found = upstream.get(key)
        if found is None:
            continue
        spec = load_specs()[key.path[-1]]
        out.append(
            {
                "source": spec.name,
                "title": spec.title_zh,
                "rows_loaded": found.get("rows_loaded", 0),
                "rows_quarantined": found.get("rows_quarantined", 0),
                "files": [f["file"] for f in found.get("files", []) or []],
            }
        )
    return out


KPIS = (ASSETS_DIR / "kpis.yaml").read_text(encoding="utf-8")  # the draft's wording


def _quarantine_counts(upstream: dict, warehouse: WarehouseResource):
    """(rows held back per source and rule, its version) for the draft's 数据研判: counts
    only; (None, None) where the quarantine was never materialized."""
    found = upstream.get(QUARANTINE)
    if found is None:
        return None, None
    with reading(warehouse.warehouse, [found]) as con:
        return read_quarantine_counts(con), versions_of({QUARANTINE: found})


def kpi_workbook(context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict):
    """工作指标工作簿 — The KPIs as an Excel workbook: scorecard, every KPI by year per domain,
    by street ("<5" suppressed), the reconciliation, and what the refresh read.

    `UNION_EXPORT_DIR/<as-of>/工作指标-<as-of>.xlsx`, with real number formats (万元, %),
    a frozen header row and widths that fit Chinese text. 供在 Excel 中查阅的工作指标。

    Beside it the work summary draft `工作总结数据-<as-of>.docx` (公文 layout): the figures
    in the annual report's words and 数据研判; its sentences, with the KPI codes and values
    behind each, in the sheet 文字稿数据. 工作总结文字稿数据。
    """
    theme = _theme(context)
    keys = [*REPORT_MARTS, RECONCILIATION]
    if upstream.get(QUARANTINE) is not None:
        keys.append(QUARANTINE)  # the draft counts the rows held back, per source
    read = _need(upstream, keys)
    with reading(warehouse.warehouse, read.values()) as con:
        data = read_report_data(con)
        reconciliation = read_reconciliation(con)
        quarantine = read_quarantine_counts(con)
    paths = export_paths(_export_root(context, warehouse), data.as_of)
    path = workbook_path(paths.root, data.as_of, theme)
    docx = summary_path(paths.root, data.as_of, theme)
    sources = _sources(upstream)
    version = digest(
        REPORTS_CODE,
        THEME,
        KPIS,
        theme.lang,
        theme.organisation,
        versions_of(read),
        sources,
        str(path),
    )
    reused = _reuse(context, dg.AssetKey(["reports", "kpi_workbook"]), version, path)
    if reused and docx.is_file():
        return reused
    summary = build_summary(data, theme, quarantine)
    sheets = write_kpi_workbook(
        data, path, theme, sources, dt.datetime.now(), reconciliation, summary
    )
    write_summary_docx(summary, docx)
    return dg.MaterializeResult(
        asset_key=dg.AssetKey(["reports", "kpi_workbook"]),
        data_version=dg.DataVersion(version),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "summary_docx": dg.MetadataValue.path(str(docx)),
            "summary_sentences": dg.MetadataValue.int(len(summary.sentences)),
            "sheets": dg.MetadataValue.json(sheets),
            VERSION: dg.MetadataValue.text(version),
            REUSED: dg.MetadataValue.bool(False),
        },
    )


def _digests(context, key: dg.AssetKey) -> dict | None:
    """The previous problem lists' digests (None: write every file)."""
    found = latest(context.instance, key, context.partition_key)
    path = Path(found.get(DIGESTS_FILE, "")) if found and found.get(DIGESTS_FILE) else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def problem_lists(context: dg.AssetExecutionContext, warehouse: WarehouseResource, upstream: dict):
    """问题数据清单 — Every held-back row to send back to the union that sent it: one workbook
    with a sheet per source, and one file per union (按工会/) and per street (按镇街/).

    File, line, the rule in Chinese words and what to do about it, the row's values masked
    exactly as in the quarantine. A file whose rows did not change (and that was not touched
    since) is not written again. 按数据源、工会、镇街拆分的问题数据清单，发回各工会更正。
    """
    theme = _theme(context)
    keys = [QUARANTINE, UNIONS, dg.AssetKey(["marts", "refresh_context"])]
    read = _need(upstream, keys)
    with reading(warehouse.warehouse, read.values()) as con:
        as_of = con.execute("SELECT as_of FROM marts.refresh_context").fetchall()[0][0]
        paths = export_paths(_export_root(context, warehouse), as_of)
        path = problem_list_path(paths.root, as_of, theme)
        version = digest(
            REPORTS_CODE, THEME, theme.lang, theme.organisation, versions_of(read), str(path)
        )
        reused = _reuse(context, dg.AssetKey(["reports", "problem_lists"]), version, path)
        if reused:
            return reused
        quarantine = con.execute("SELECT * FROM staging.quarantine").df()
        unions = con.execute("SELECT union_id, union_name, street FROM staging.unions").df()
    store = warehouse.warehouse
    key = dg.AssetKey(["reports", "problem_lists"])
    written = write_problem_lists(
        quarantine, unions, paths.root, as_of, theme.lang, previous=_digests(context, key)
    )
    # what each file holds (digest) and its stamp: the next run rewrites only what changed
    folder = store.outputs.folder("reports", "problem_lists", version)
    folder.mkdir(parents=True, exist_ok=True)
    digests_file = folder / "digests.json"
    digests_file.write_text(json.dumps(written["digests"], ensure_ascii=False), encoding="utf-8")
    keep = {folder} | {
        Path(found.get(DIGESTS_FILE)).parent
        for code in district_partitions(context.instance)
        if (found := latest(context.instance, key, code)) and found.get(DIGESTS_FILE)
    }
    store.outputs.cleanup(keep, pattern="reports/problem_lists/*")
    return dg.MaterializeResult(
        asset_key=key,
        data_version=dg.DataVersion(version),
        metadata={
            "path": dg.MetadataValue.path(str(written["path"])),
            "rows_by_source": dg.MetadataValue.json(written["rows"]),
            "union_files": dg.MetadataValue.int(len(written["unions"])),
            "street_files": dg.MetadataValue.int(len(written["streets"])),
            "files_written": dg.MetadataValue.int(written["written"]),
            DIGESTS_FILE: dg.MetadataValue.path(str(digests_file)),
            **(
                {"note": dg.MetadataValue.text(written["unions_skipped"])}
                if written["unions_skipped"]
                else {}
            ),
            VERSION: dg.MetadataValue.text(version),
            REUSED: dg.MetadataValue.bool(False),
        },
    )


KPI_WORKBOOK = dg.AssetKey(["reports", "kpi_workbook"])
PROBLEM_LISTS = dg.AssetKey(["reports", "problem_lists"])
DASHBOARD = dg.AssetKey(["reports", "dashboard"])
# after the charts, in the order each reads the one before; each only when selected
REPORTS = [
    (
        KPI_WORKBOOK,
        kpi_workbook,
        _report_spec(
            "kpi_workbook",
            {"excel"},
            # the sources: what each read, on the workbook's about sheet
            [*REPORT_MARTS, RECONCILIATION, WAREHOUSE, *STAGING_KEYS, QUARANTINE],
            kpi_workbook.__doc__,
        ),
    ),
    (
        PROBLEM_LISTS,
        problem_lists,
        _report_spec(
            "problem_lists",
            {"excel"},
            [QUARANTINE, UNIONS, dg.AssetKey(["marts", "refresh_context"]), WAREHOUSE],
            problem_lists.__doc__,
        ),
    ),
    (
        DASHBOARD,
        dashboard,
        _report_spec("dashboard", {"plotly", "html"}, list(CHART_KEYS.values()), dashboard.__doc__),
    ),
    (
        BRIEFING,
        briefing,
        _report_spec("briefing", {"plotly", "pdf"}, list(CHART_KEYS.values()), briefing.__doc__),
    ),
    (
        BRIEFING_MAIL,
        briefing_mail,
        _report_spec(
            "briefing_mail",
            {"email"},
            [BRIEFING, WAREHOUSE],
            briefing_mail.__doc__,
            code_version="mail-2",
        ),
    ),
]


# what the reports read: the marts, the quarantine and the roster; the sources' own
# materializations (what the workbook says each read); a never-made quarantine, None
REPORT_INS = table_ins(
    [*REPORT_MARTS, RECONCILIATION, UNIONS, QUARANTINE, *STAGING_KEYS], optional=True
)


def _need(upstream: dict, keys) -> dict:
    """The inputs a report reads, each materialized (a step loads every input, whichever of
    its reports run: a missing one fails only the report that needs it)."""
    missing = [k for k in keys if upstream.get(k) is None]
    if missing:
        names = ", ".join(k.to_user_string() for k in missing)
        raise UpstreamError(
            f"{names} not materialized yet: materialize them (or run the full refresh) first. "
            f"{names} 尚未物化，请先刷新。"
        )
    return {k: upstream[k] for k in keys}


@dg.multi_asset(
    name="reports",
    ins=REPORT_INS,
    specs=[
        *(
            _report_spec(name, {"plotly"}, [*REPORT_MARTS, WAREHOUSE], CHART_DOCS[name])
            for name in CHART_KEYS
        ),
        *(spec for _, _, spec in REPORTS),
    ],
    partitions_def=DISTRICTS,
    can_subset=True,
)
def reports(context: dg.AssetExecutionContext, warehouse: WarehouseResource, **inputs):
    """A district's reports in one step: the charts, then the workbook, the problem lists,
    the dashboard, the briefing and its delivery. Each keeps its last result when what it
    is made from did not change. The browser draws the charts while the workbook and the
    problem lists are written (`start_charts`)."""
    upstream = by_key(REPORT_INS, inputs)
    selected = context.selected_asset_keys
    produced: set[dg.AssetKey] = set()
    chart_results = None
    if selected & set(CHART_KEYS.values()):
        chart_results = start_charts(context, warehouse, upstream)
    for key, make, spec in REPORTS:
        if key not in selected:
            continue
        if chart_results is not None and any(dep.asset_key in CHART_ASSETS for dep in spec.deps):
            for result in chart_results():
                produced.add(result.asset_key)
                yield result
            chart_results = None
        # as Dagster skips a step whose upstream was not made: a report whose upstream in
        # this step was selected but not made (no briefing without a browser) is not made
        if any(dep.asset_key in selected - produced for dep in spec.deps):
            continue
        made = make(context, warehouse, upstream)
        for result in made if inspect.isgenerator(made) else [made] if made else []:
            produced.add(result.asset_key)
            yield result
    for result in chart_results() if chart_results is not None else []:
        yield result
