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


@pytest.fixture(scope="module")
def refreshed_once(tmp_path_factory):
    """The minimal drop after its first headless refresh (one run), saved once for this
    module and put back where it was made before each test (tests/shared.py)."""
    from tests.conftest import TEST_PII_KEY, write_minimal_drop
    from tests.shared import SavedState

    state = SavedState(tmp_path_factory.mktemp("unchanged") / "state")
    write_minimal_drop(state.root / "raw")
    (state.root / "home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        _set_env(mp, state.root)
        mp.setenv("UNION_PII_KEY", TEST_PII_KEY)
        assert refresh.main([]) == 0
    state.save()
    return state


def _set_env(monkeypatch, root: Path) -> None:
    monkeypatch.setenv("UNION_RAW_DIR", str(root / "raw"))
    monkeypatch.setenv("UNION_WAREHOUSE", str(root / "wh" / "union.duckdb"))
    monkeypatch.setenv("UNION_EXPORT_DIR", str(root / "exports"))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "home"))


@pytest.fixture
def drop_env(refreshed_once, monkeypatch):
    """The minimal drop refreshed once (`refresh.main([])`), its settings in the environment."""
    root = refreshed_once.use()
    _set_env(monkeypatch, root)
    return root / "raw"


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
    # the first refresh (drop_env's) was one run, and it succeeded
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

    # the same export sent again (touched, same content), and a file no source reads:
    # nothing to do
    members = next((drop_env / "members").glob("*.csv"))
    stat = members.stat()
    os.utime(members, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (drop_env / "members" / "readme.txt").write_text("sent by the office", encoding="utf-8")
    assert refresh.main([]) == 0
    assert "its results stand" in capsys.readouterr().out
    assert len(_runs()) == settled
    assert not _schedule_tick().run_requests

    # a new export whose content differs is a change: the district runs, and the schedule
    # would launch it with what it was launched on
    members.write_bytes(members.read_bytes() + b"\n")  # a blank line more
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
    count = len(_runs())  # after the first refresh (drop_env's)
    assert count == 1
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
