"""The refresh job and its nightly schedule."""

from __future__ import annotations

import os

import dagster as dg

# UNION_AUTOMATION=off: the schedule and the automation sensors start stopped, for a
# deployment (or a test) whose refreshes are launched by hand or as backfills only.
AUTOMATION_ON = os.environ.get("UNION_AUTOMATION", "on") != "off"
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

refresh_all = dg.define_asset_job(
    "refresh_all",
    # the raw folders are observed first: their data versions are the files' content
    selection=dg.AssetSelection.all(include_sources=True),
    description="Full refresh of one district (the run's partition) and the city after it: "
    "every source, mart, check and export; a step whose inputs did not change keeps its "
    "result. For a single-district drop, the whole refresh. "
    "全量刷新（输入未变的步骤沿用上次结果）。",
    tags=REFRESH_TAGS,
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
