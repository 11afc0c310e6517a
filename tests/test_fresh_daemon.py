"""The deployment the README describes starts from nothing: a daemon on a fresh instance
beside a drop publishes the district's file and the city's by itself, with no failed run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.test_recovery import ROOT, _wait, start_daemon

pytestmark = pytest.mark.system  # daemon: `./dev test -m system`


def test_a_daemon_on_a_fresh_instance_publishes_both_files(demo_drop, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    warehouse = tmp_path / "warehouse" / "union.duckdb"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "UNION_RAW_DIR": str(demo_drop),
        "UNION_PII_KEY": "test-key",
        "UNION_WAREHOUSE": str(warehouse),
        "UNION_EXPORT_DIR": str(tmp_path / "exports"),
        "UNION_AUTOMATION": "on",
    }
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
    daemon = start_daemon(env)
    district = warehouse.parent / "districts" / "330211.duckdb"
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:

            def settled() -> bool:
                if not (warehouse.exists() and district.exists()):
                    return False
                active = instance.get_run_records(
                    dg.RunsFilter(
                        statuses=[
                            dg.DagsterRunStatus.QUEUED,
                            dg.DagsterRunStatus.NOT_STARTED,
                            dg.DagsterRunStatus.STARTING,
                            dg.DagsterRunStatus.STARTED,
                        ]
                    )
                )
                return not active

            _wait("both files published and no run under way", 600, settled)
            runs = instance.get_run_records()
            failed = [r.dagster_run for r in runs if r.dagster_run.status.value == "FAILURE"]
            assert not failed, [
                (r.job_name, r.tags.get("dagster/partition"), r.run_id[:8]) for r in failed
            ]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
    for path in (warehouse, district):
        with duckdb.connect(str(path), read_only=True) as con:
            members = con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0]
            yearly = con.execute("SELECT count(*) FROM marts.kpi_yearly").fetchall()[0][0]
        assert members > 0 and yearly > 0, path
    assert Path(tmp_path / "exports").is_dir()
