"""The refresh job and its nightly schedule."""

from __future__ import annotations

import dagster as dg

from union_pipeline.settings import automation_on

# UNION_AUTOMATION=off: the schedule and the automation sensors start stopped, for a
# deployment (or a test) whose refreshes are launched by hand or as backfills only.
AUTOMATION_ON = automation_on()
SENSOR_STATUS = dg.DefaultSensorStatus.RUNNING if AUTOMATION_ON else dg.DefaultSensorStatus.STOPPED
SCHEDULE_STATUS = (
    dg.DefaultScheduleStatus.RUNNING if AUTOMATION_ON else dg.DefaultScheduleStatus.STOPPED
)

# Refresh runs are tagged so: deploy/dagster.yaml runs one city roll-up at a time, and one
# run per district (its `dagster/partition` tag), districts side by side.
REFRESH_TAGS = {"union/refresh": "district"}
CITY_TAGS = {"union/refresh": "city"}

# The city's assets (not partitioned by district): its group and the city's warehouse
# file. The KPI catalogue, one for every district, is refreshed by both.
CATALOGUE = dg.AssetSelection.assets(dg.AssetKey(["marts", "kpi_catalogue"]))
CITY_ONLY = dg.AssetSelection.groups("city") | dg.AssetSelection.assets(
    dg.AssetKey(["warehouse", "union_duckdb"])
)
CITY = CITY_ONLY | CATALOGUE
DISTRICT = dg.AssetSelection.all(include_sources=True) - CITY_ONLY


def single_district_partition() -> dict[str, str]:
    """A single-district drop has one partition, its district: `refresh_all` runs it when
    launched without one (`dg launch --job refresh_all`); a run's own partition wins."""
    from union_pipeline.districts import default_district, is_city_drop
    from union_pipeline.settings import ConfigError, load_settings

    try:
        raw_dir = load_settings().raw_dir
        return {} if is_city_drop(raw_dir) else {"dagster/partition": default_district()}
    except ConfigError:
        return {}  # the refresh itself reports a bad setting, naming it


refresh_all = dg.define_asset_job(
    "refresh_all",
    # the raw folders are observed first: their data versions are the files' content
    selection=dg.AssetSelection.all(include_sources=True),
    description="Full refresh of one district (the run's partition) and the city after it: "
    "every source, mart, check and export; a step whose inputs did not change keeps its "
    "result. For a single-district drop, the whole refresh. "
    "全量刷新（输入未变的步骤沿用上次结果）。",
    tags={**REFRESH_TAGS, **single_district_partition()},
)

district_refresh = dg.define_asset_job(
    "district_refresh",
    selection=DISTRICT,
    description="One district's refresh (the run's partition): its sources, staging, marts, "
    "checks, warehouse file and reports. A backfill of every district runs them side by "
    "side through the run queue. 单个区县刷新。",
    tags=REFRESH_TAGS,
)

city_refresh = dg.define_asset_job(
    "city_refresh",
    selection=CITY,
    description="The city after its districts: the roll-up, the city's targets, the city "
    "warehouse and reports. 全市汇总。",
    tags=CITY_TAGS,
)


# Named jobs for what an analyst materializes in the UI. Dagster names an ad-hoc run of
# assets `__ASSET_JOB`; its UI's Materialize runs instead the first job, by name, that holds
# every selected asset, and capitals sort before "__": so a Materialize within one layer
# runs (and is named) its layer's job. A selection across layers stays `__ASSET_JOB`, and a
# whole refresh is `district_refresh` or `refresh_all` (docs/使用说明.md).
def _layer_job(
    name: str, selection: dg.AssetSelection, title: str
) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name,
        selection=selection,
        description=f"{title} — what the UI's Materialize runs for assets of this layer "
        "(their checks included); what depends on them follows through automation.",
        tags=REFRESH_TAGS,
    )


ui_sources = _layer_job(
    "Sources",
    dg.AssetSelection.key_prefixes("raw", include_sources=True),
    "观察原始文件 Observe a district's raw folders",
)
ui_staging = _layer_job(
    "Staging",
    dg.AssetSelection.key_prefixes("staging") - CITY_ONLY,
    "校验入库 Load and validate a district's sources (and its quarantine)",
)
ui_marts = _layer_job(
    "Marts",
    dg.AssetSelection.key_prefixes("marts") - CITY_ONLY,
    "指标计算 A district's KPI marts",
)
ui_warehouse = _layer_job(
    "Warehouse",
    dg.AssetSelection.key_prefixes("warehouse") - CITY_ONLY,
    "发布仓库 Publish a district's warehouse file",
)
ui_reports = _layer_job(
    "Reports",
    dg.AssetSelection.key_prefixes("reports") - CITY_ONLY,
    "报表导出 A district's charts, dashboard, briefing and workbooks",
)
ui_city = dg.define_asset_job(
    "City",
    selection=CITY_ONLY,
    description="全市汇总 The city's roll-up, targets, warehouse and reports — what the UI's "
    "Materialize runs for the city's assets.",
    tags=CITY_TAGS,
)

# What a partial materialization (one asset from the UI, a sensor's run) leaves stale is
# brought up to date without another click: every asset is eager.
follow_up = dg.AutomationConditionSensorDefinition(
    "follow_up_downstream",
    target=dg.AssetSelection.all(),
    default_status=SENSOR_STATUS,
    description="Materializes what is downstream of a new materialization (declarative "
    "automation, eager). 上游更新后自动刷新下游。",
)


@dg.schedule(
    job=district_refresh,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=SCHEDULE_STATUS,
    description="Every night at 02:00 Beijing time, every district of the raw drop whose files, "
    "code or settings changed since its last successful refresh; the city follows when its "
    "districts are done (declarative automation). "
    "每晚02:00（北京时间）刷新有变化的区县，全市汇总随后自动进行。",
)
def nightly_refresh(context: dg.ScheduleEvaluationContext):
    from union_pipeline.assetkit import unchanged
    from union_pipeline.districts import district_codes
    from union_pipeline.settings import load_settings

    settings = load_settings()
    codes = district_codes(settings.raw_dir)
    add_districts(context.instance, codes)
    date = context.scheduled_execution_time.strftime("%Y-%m-%d")
    requests, standing = [], []
    for code in codes:
        tags = unchanged.launch_tags(context.instance, settings, code)
        if unchanged.standing_district_run(context.instance, settings, code, tags):
            standing.append(code)  # a run would redo nothing but its bookkeeping
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{date}-{code}",
                partition_key=code,
                tags=tags,
            )
        )
    if not requests:
        return dg.SkipReason(
            f"no district changed since its last refresh ({', '.join(standing)}): their "
            "results stand"
        )
    return requests


def add_districts(instance: dg.DagsterInstance, codes: list[str]) -> None:
    """Register the districts of a drop as partitions (a new district folder adds one)."""
    from union_pipeline.assetkit.outputs import DISTRICTS

    known = set(instance.get_dynamic_partitions(DISTRICTS.name))
    new = [c for c in codes if c not in known]
    if new:
        instance.add_dynamic_partitions(DISTRICTS.name, new)
