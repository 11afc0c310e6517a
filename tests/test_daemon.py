"""Under the daemon, as deployed: it starts from nothing (a fresh instance beside a drop
publishes the district's file and the city's by itself), and what an analyst materializes
in the UI leaves both files as a full refresh of the same files would, with no failed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.runs import warehouse_state
from tests.test_recovery import ROOT, _wait, deployment, start_daemon

pytestmark = pytest.mark.system  # daemon: `./dev test -m system`


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
REFRESH = [sys.executable, "-m", "union_pipeline.refresh"]


def failed_runs(instance: dg.DagsterInstance) -> list[tuple]:
    return [
        (r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition"), r.dagster_run.run_id)
        for r in instance.get_run_records()
        if r.dagster_run.status == dg.DagsterRunStatus.FAILURE
    ]


def test_a_daemon_on_a_fresh_instance_publishes_both_files(demo_drop, tmp_path, monkeypatch):
    env = deployment(demo_drop, tmp_path, monkeypatch)
    home = Path(env["DAGSTER_HOME"])
    warehouse = Path(env["UNION_WAREHOUSE"])
    daemon = start_daemon(env)
    district = warehouse.parent / "districts" / "330211.duckdb"
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def settled() -> bool:
                if not (warehouse.exists() and district.exists()):
                    return False
                return not instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT))

            _wait("both files published and no run under way", 600, settled)
            assert not failed_runs(instance)
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
    for path in (warehouse, district):
        with duckdb.connect(str(path), read_only=True) as con:
            members = con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0]
            yearly = con.execute("SELECT count(*) FROM marts.kpi_yearly").fetchall()[0][0]
        assert members > 0 and yearly > 0, path
    assert Path(tmp_path / "exports").is_dir()


def test_a_target_materialized_from_the_ui_leaves_both_files_as_a_full_refresh(
    demo_drop, tmp_path, monkeypatch
):
    """A yearly target changed in the targets file; the analyst materializes
    staging/targets for the district (as the UI's Materialize does); the daemon's sensors
    and automation do the rest. The district's file and the city's then equal those of a
    fresh full refresh of the same files, and no run failed on the way (a city step waits
    for the district instead of failing)."""
    import openpyxl

    env = deployment(demo_drop, tmp_path / "deployed", monkeypatch)
    subprocess.run(REFRESH, env=env, cwd=ROOT, check=True, capture_output=True)
    [targets] = (demo_drop / "targets").glob("*.xlsx")
    book = openpyxl.load_workbook(targets)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    target = header.index("目标值")
    # a count's target (a rate's must stay a fraction): doubled
    row = next(r for r in sheet.iter_rows(min_row=2) if float(r[target].value or 0) > 1)
    row[target].value = float(row[target].value) * 2
    book.save(targets)

    daemon = start_daemon(env)
    try:
        materialize = [
            *(sys.executable, "-m", "dagster", "asset", "materialize"),
            *("-m", "union_pipeline.definitions"),
            *("--select", "staging/targets", "--partition", "330211"),
        ]
        done = subprocess.run(materialize, env=env, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        with dg.DagsterInstance.get() as instance:
            quiet_since = [None]

            def settled() -> bool:
                # the sensors tick every 30-60 s: settled once nothing ran for 90 s
                if instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT)):
                    quiet_since[0] = None
                    return False
                quiet_since[0] = quiet_since[0] or time.monotonic()
                return time.monotonic() - quiet_since[0] > 90

            _wait("the automation to settle", 900, settled)
            assert not failed_runs(instance)
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)

    fresh = deployment(demo_drop, tmp_path / "fresh", monkeypatch)
    subprocess.run(REFRESH, env=fresh, cwd=ROOT, check=True, capture_output=True)
    for name in ("union.duckdb", "districts/330211.duckdb"):
        deployed = Path(env["UNION_WAREHOUSE"]).parent / name
        expected = Path(fresh["UNION_WAREHOUSE"]).parent / name
        assert warehouse_state(deployed) == warehouse_state(expected), name
