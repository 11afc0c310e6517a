"""The refresh job and its nightly schedule."""

from __future__ import annotations

import dagster as dg

# Runs tagged so are limited to one at a time (deploy/dagster.yaml): two refreshes at once
# would do the same work twice and race to publish.
REFRESH_TAGS = {"union/refresh": "true"}

refresh_all = dg.define_asset_job(
    "refresh_all",
    # the raw folders are observed first: their data versions are the files' content
    selection=dg.AssetSelection.all(include_sources=True),
    description="Full refresh: every source, mart, check and export; a step whose inputs did "
    "not change keeps its result. 全量刷新（输入未变的步骤沿用上次结果）。",
    tags=REFRESH_TAGS,
)

# What a partial materialization (one asset from the UI, a sensor's run) leaves stale is
# brought up to date without another click: every asset is eager.
follow_up = dg.AutomationConditionSensorDefinition(
    "follow_up_downstream",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    run_tags=REFRESH_TAGS,
    description="Materializes what is downstream of a new materialization (declarative "
    "automation, eager). 上游更新后自动刷新下游。",
)

nightly_refresh = dg.ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_all,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 Beijing time. 每晚02:00（北京时间）全量刷新。",
)
