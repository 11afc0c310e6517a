"""A refresh of nothing that changed launches nothing: its results stand. Real runs on a
real instance; the headless refresh and the nightly schedule decide the same way."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from union_pipeline import refresh
from union_pipeline.definitions import defs
from union_pipeline.defs.automation.jobs import nightly_refresh


@pytest.fixture
def drop_env(minimal_drop, tmp_path, monkeypatch):
    monkeypatch.setenv("UNION_RAW_DIR", str(minimal_drop))
    monkeypatch.setenv("UNION_WAREHOUSE", str(tmp_path / "wh" / "union.duckdb"))
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return minimal_drop


def _runs() -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs())


def _schedule_tick():
    with (
        dg.DagsterInstance.get() as instance,
        partition_loading_context(dynamic_partitions_store=instance),
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 30, 2, tzinfo=dt.UTC),
            repository_def=defs().get_repository_def(),
        ) as context,
    ):
        return nightly_refresh.evaluate_tick(context)


def test_unchanged_drop_is_not_run_again(drop_env, capsys):
    assert refresh.main([]) == 0
    first = _runs()
    assert len(first) == 1 and first[0].status == dg.DagsterRunStatus.SUCCESS
    settled = len(_runs())
    capsys.readouterr()

    assert refresh.main([]) == 0
    assert "its results stand" in capsys.readouterr().out
    assert len(_runs()) == settled  # no run launched
    tick = _schedule_tick()
    assert not tick.run_requests
    assert "no district changed" in tick.skip_message

    # a file touched (a new export of the same name) is a change: the district runs, and
    # the schedule would launch it with what it was launched on
    members = next((drop_env / "members").glob("*.csv"))
    stat = members.stat()
    os.utime(members, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    tick = _schedule_tick()
    assert [r.partition_key for r in tick.run_requests] == ["330211"]
    assert "union/inputs" in tick.run_requests[0].tags
    assert refresh.main([]) == 0
    assert len(_runs()) == settled + 1
    assert _runs()[0].status == dg.DagsterRunStatus.SUCCESS

    # --force runs what did not change
    assert refresh.main(["--force"]) == 0
    assert len(_runs()) == settled + 2

    # exports deleted: the district runs and writes them again
    exports = Path(os.environ["UNION_EXPORT_DIR"])
    shutil.rmtree(exports)
    assert refresh.main([]) == 0
    assert len(_runs()) == settled + 3
    assert any(exports.rglob("*.html"))


def test_a_run_from_the_ui_since_makes_the_district_run_again(drop_env, capsys):
    """Whatever ran in the district after the last refresh (one asset from the UI, say),
    the next refresh does not take the old run's word for it."""
    assert refresh.main([]) == 0
    count = len(_runs())
    with dg.DagsterInstance.get() as instance:
        job = defs().resolve_job_def("refresh_all")
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(["staging", "unions"])],
            partition_key="330211",
        )
        assert result.success
    capsys.readouterr()
    assert refresh.main([]) == 0
    assert "stand" not in capsys.readouterr().out
    assert len(_runs()) == count + 2  # the UI's run and the refresh's
