"""The schedule, the raw-files sensor and the shape of the definitions."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._utils.schedules import cron_string_iterator

from tests.drops import TARGET_HEADER, write_csv
from union_pipeline.definitions import defs
from union_pipeline.defs.automation.jobs import nightly_refresh
from union_pipeline.defs.automation.sensors import raw_files_sensor


def test_schedule_fires_at_two_in_shanghai():
    assert nightly_refresh.cron_schedule == "0 2 * * *"
    assert nightly_refresh.execution_timezone == "Asia/Shanghai"
    start = dt.datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    # the daemon's own tick arithmetic
    first = next(
        cron_string_iterator(
            start.timestamp(), nightly_refresh.cron_schedule, nightly_refresh.execution_timezone
        )
    )
    assert first.astimezone(ZoneInfo("Asia/Shanghai")) == dt.datetime(
        2026, 11, 24, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai")
    )
    assert first.astimezone(dt.UTC).hour == 18  # the night before, in UTC
    with (
        dg.instance_for_test() as instance,
        partition_loading_context(dynamic_partitions_store=instance),
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=first,
            repository_def=defs().get_repository_def(),
        ) as context,
    ):
        requests = nightly_refresh.evaluate_tick(context).run_requests
        # every district of the drop, registered as a partition
        assert instance.get_dynamic_partitions("district") == ["330211"]
    assert [r.partition_key for r in requests] == ["330211"]
    assert requests[0].job_name in (None, "district_refresh")
    # one run per district at a time (deploy/dagster.yaml limits its partition tag)
    assert nightly_refresh.job.tags["union/refresh"] == "district"


@pytest.fixture
def sensor_env(minimal_drop, monkeypatch):
    monkeypatch.setenv("UNION_RAW_DIR", str(minimal_drop))
    return minimal_drop


def evaluate(cursor=None, published=True):
    """The raw-files sensor's tick on a fresh instance; `published`: the district's file
    was published before (else the sensor asks for its whole refresh)."""
    repo = defs().get_repository_def()
    with (
        dg.instance_for_test() as instance,
        partition_loading_context(dynamic_partitions_store=instance),
    ):
        # the daemon adds the partitions the sensor asks for before its runs are resolved;
        # a test context cannot, so the district is registered as the first tick would
        probe = dg.build_sensor_context(cursor=cursor, repository_def=repo, instance=instance)
        new = raw_files_sensor(probe).dynamic_partitions_requests
        assert [r.partition_keys for r in new] == [["330211"]]
        instance.add_dynamic_partitions("district", ["330211"])
        if published:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(["warehouse", "district_duckdb"]), partition="330211"
                )
            )
        context = dg.build_sensor_context(cursor=cursor, repository_def=repo, instance=instance)
        result = raw_files_sensor.evaluate_tick(context)
    return result


def selected(result) -> set[str]:
    return {k.to_user_string() for k in result.run_requests[0].asset_selection}


def test_sensor_refreshes_touched_sources_and_downstream(sensor_env):
    # a district never published gets its whole refresh, from nothing
    # (the city after it, by automation: its inputs are not there yet)
    never = evaluate(published=False)
    [request] = never.run_requests
    assert request.asset_selection is None and request.job_name == "district_refresh"
    assert request.partition_key == "330211"

    first = evaluate()
    assert {
        "staging/unions",
        "staging/members",
        "staging/targets",
        "marts/kpi_yearly",
        "warehouse/district_duckdb",
    } <= selected(first)
    assert first.run_requests[0].partition_key == "330211"

    unchanged = evaluate(first.cursor)
    assert not unchanged.run_requests

    # touched but identical content: still no run
    path = sensor_env / "targets" / "targets.csv"
    os.utime(path, (time.time() + 5, time.time() + 5))
    touched = evaluate(unchanged.cursor)
    assert not touched.run_requests

    write_csv(path, TARGET_HEADER, [["members_total", "2019", "3", ">=", "changed"]])
    changed = evaluate(touched.cursor)
    # the district's targets, in a single-district drop the city's too
    assert [r.job_name for r in changed.run_requests] == ["district_refresh", "city_refresh"]
    assert "staging/targets" in selected(changed)
    assert "staging/members" not in selected(changed)
    assert {"marts/kpi_yearly", "warehouse/district_duckdb"} <= selected(changed)

    write_csv(sensor_env / "training" / "t.csv", ["记录编号"], [["R1"]])
    added = evaluate(changed.cursor)
    assert "staging/training" in selected(added)
    assert "staging/unions" not in selected(added)
