"""The refresh job and its nightly schedule."""

from __future__ import annotations

import dagster as dg

# Runs tagged so are limited to one at a time (deploy/dagster.yaml): each refresh publishes
# a whole warehouse, so two at once would each drop the other's work.
REFRESH_TAGS = {"union/refresh": "true"}

refresh_all = dg.define_asset_job(
    "refresh_all",
    selection=dg.AssetSelection.all(),
    description="Full refresh: every source, mart, check and export. 全量刷新。",
    tags=REFRESH_TAGS,
)

nightly_refresh = dg.ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_all,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 Beijing time. 每晚02:00（北京时间）全量刷新。",
)
