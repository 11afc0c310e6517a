"""One truth: whatever ran, the published warehouse equals a fresh full refresh of the same
files, Dagster's latest materializations describe it, and unchanged work is not redone."""

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

from tests.drops import TARGET_HEADER, UNION_HEADER, write_csv
from tests.runs import (
    DISTRICT,
    materializations,
    refresh_job,
    run,
    warehouse_keys,
    warehouse_state,
    with_district,
)
from union_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch, demo_drop):
    monkeypatch.setenv("UNION_RAW_DIR", str(demo_drop))
    monkeypatch.setenv("UNION_WAREHOUSE", str(tmp_path / "warehouse" / "union.duckdb"))
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("UNION_PII_KEY", "test-key")
    return tmp_path / "warehouse" / "union.duckdb"


@pytest.fixture
def refreshed(refreshed_district):
    """The small demo drop after a full refresh (the session's, every asset, restored for
    this test): (live warehouse file, raw drop, the refresh's run id)."""
    state = refreshed_district
    return state.live, state.raw, state.run_id


def fresh_state(tmp_path: Path, monkeypatch, name: str = "fresh") -> dict:
    """The warehouse a full refresh of the same files gives, built from nothing."""
    live = os.environ["UNION_WAREHOUSE"]
    fresh = tmp_path / name / "union.duckdb"
    monkeypatch.setenv("UNION_WAREHOUSE", str(fresh))
    try:
        with dg.instance_for_test() as instance:
            assert run(instance).success
    finally:
        monkeypatch.setenv("UNION_WAREHOUSE", live)
    return warehouse_state(fresh)


def new_unions(raw: Path) -> Path:
    return write_csv(
        raw / "unions" / "zz-2020-new.csv",
        UNION_HEADER,
        [
            ["U-NEW-1", "新成立甲工会", "招宝山街道", "企业", "80", "2020-05-06", "", "", ""],
            ["U-NEW-2", "新成立乙工会", "蛟川街道", "企业", "30", "2020-06-01", "", "", ""],
        ],
    )


def changed_target(raw: Path) -> Path:
    return write_csv(
        raw / "targets" / "zz-revised.csv",
        TARGET_HEADER,
        [
            ["members_total", "2020", "1", ">=", "revised in the test"],
        ],
    )


def test_reexecution_from_failure_publishes_the_new_data(
    refreshed, refreshed_district, tmp_path, monkeypatch
):
    """A new export arrives with a broken targets file; the file is fixed and the failed run
    re-executed from failure: the live warehouse has the new export."""
    env, demo_drop, _ = refreshed
    job = dg.reconstructable(refresh_job)
    with refreshed_district.instance() as instance:
        before = warehouse_state(env)
        new_unions(demo_drop)
        broken = write_csv(
            demo_drop / "targets" / "zz-broken.csv",
            ["指标代码", "年度"],
            [["members_total", "2020"]],
        )
        first = dg.execute_job(
            job,
            instance,
            asset_selection=warehouse_keys(),
            tags={"dagster/partition": DISTRICT},
            raise_on_error=False,
        )
        assert not first.success
        assert warehouse_state(env) == before, "a failed run publishes nothing"
        broken.unlink()
        retry = dg.execute_job(
            job,
            instance,
            raise_on_error=False,
            # the UI's re-execution keeps the run's tags; execute_job needs them given
            tags={"dagster/partition": DISTRICT},
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        )
        assert retry.success
        published = warehouse_state(env)
    with duckdb.connect(str(env), read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM staging.unions WHERE union_id LIKE 'U-NEW-%'"
            ).fetchall()[0][0]
            == 2
        )
    assert published == fresh_state(tmp_path, monkeypatch)


def test_one_asset_materialized_is_followed_by_its_downstream(
    refreshed, refreshed_district, tmp_path, monkeypatch
):
    env, demo_drop, _ = refreshed
    definitions = defs()
    targets = dg.AssetKey(["staging", "targets"])
    with refreshed_district.instance() as instance:
        before = warehouse_state(env)
        # the automation sensor ticks: nothing to do after a full refresh
        evaluation = dg.evaluate_automation_conditions(definitions, instance)
        assert evaluation.total_requested == 0
        changed_target(demo_drop)
        # "Materialize" on one asset in the UI: nothing readers see changes yet ...
        assert run(instance, [targets]).success
        assert warehouse_state(env) == before
        # ... and the automation brings what is downstream up to date without a click
        evaluation = dg.evaluate_automation_conditions(
            definitions, instance, cursor=evaluation.cursor
        )
        requested = {
            k for k in warehouse_keys(include_reports=True) if evaluation.get_num_requested(k)
        }
        assert {
            dg.AssetKey(["marts", "kpi_yearly"]),
            dg.AssetKey(["warehouse", "union_duckdb"]),
        } <= requested
        assert targets not in requested
        # one run, in dependency order (the charts follow on a later tick, as here)
        assert run(instance, sorted(k for k in requested if k.path[0] != "reports")).success
        assert warehouse_state(env) != before
        evaluation = dg.evaluate_automation_conditions(
            definitions, instance, cursor=evaluation.cursor
        )
        assert not [k for k in warehouse_keys() if evaluation.get_num_requested(k)]
        # selecting an asset with its downstream publishes at once
        write_csv(
            demo_drop / "targets" / "zz-revised.csv",
            TARGET_HEADER,
            [["members_total", "2020", "2", ">=", "revised again"]],
        )
        # (in a single-district drop the city's targets are the same folder's)
        city_targets = dg.AssetKey(["staging", "city_targets"])
        downstream = (
            dg.AssetSelection.assets(targets, city_targets)
            .downstream()
            .resolve(definitions.resolve_asset_graph())
        )
        assert run(instance, sorted(k for k in downstream if k.path[0] != "reports")).success
        published = warehouse_state(env)
    with duckdb.connect(str(env), read_only=True) as con:
        assert con.execute(
            "SELECT target FROM marts.kpi_yearly WHERE kpi_code = 'members_total' AND year = 2020"
        ).fetchall() == [(2.0,)]
    assert published == fresh_state(tmp_path, monkeypatch)


def test_a_second_refresh_with_nothing_changed_redoes_nothing(refreshed, refreshed_district):
    env, _, first_run_id = refreshed  # the first refresh: every asset, reports included
    with refreshed_district.instance() as instance:
        inode = env.stat().st_ino
        second = run(instance, include_reports=True)
        assert second.success
    done = materializations(second)
    staging = [k for k in done if k.startswith("staging/")]
    assert len(staging) == 10  # the seven sources, the quarantine, published, city targets
    for key in staging + [k for k in done if k.startswith("marts/")]:
        assert done[key]["union/reused"] is True, f"{key} was redone"
        assert done[key]["union/made_in_run"] == first_run_id, key
    for key in ("reports/kpi_scorecard", "reports/kpi_trends", "reports/dashboard"):
        assert done[key]["union/reused"] is True, f"{key} was rendered again"
    assert done["warehouse/union_duckdb"]["union/reused"] is True
    assert env.stat().st_ino == inode, "the live file was not rewritten"
    # what the readers' staff open: the KPI workbook and the problem-data lists
    for key in ("reports/kpi_workbook", "reports/problem_lists"):
        assert Path(done[key]["path"]).is_file() and done[key]["union/reused"] is True


def test_a_changed_file_reruns_only_its_chain(refreshed, refreshed_district):
    _, demo_drop, _ = refreshed
    with refreshed_district.instance() as instance:
        changed_target(demo_drop)
        second = run(instance)
        assert second.success
    done = materializations(second)
    redone = {k for k, m in done.items() if m.get("union/reused") is False}
    sources = {k for k in redone if k.startswith("staging/") and k != "staging/quarantine"}
    # the drop's targets are the district's and, in a single-district drop, the city's
    assert sources == {"staging/targets", "staging/city_targets"}
    assert "staging/quarantine" in redone  # it gathers every source's held-back rows
    assert "marts/kpi_yearly" in redone
    # their inputs' content did not change: the monthly series stand
    assert {"marts/loans_monthly", "marts/mutual_aid_monthly"}.isdisjoint(redone)
    assert done["warehouse/union_duckdb"]["union/reused"] is False


def test_a_members_file_checks_the_others_references_again_without_their_files(
    refreshed, refreshed_district, tmp_path, monkeypatch
):
    """A new members file: members are staged from the files; the sources that reference
    them only have their references checked again, over their last rows, unless a row that
    passed fails now (its quarantine row needs its file). Either way the warehouse is what
    a fresh refresh of the same files makes."""
    live, demo_drop, _ = refreshed
    members = sorted((demo_drop / "members").glob("*.csv"))[0]
    lines = members.read_bytes().splitlines(keepends=True)
    (demo_drop / "members" / "zz-update.csv").write_bytes(b"".join(lines[:51]))  # an update
    referencing = ("mutual_aid_enrollments", "loans")  # members' (claims: enrolments')
    with refreshed_district.instance() as instance:
        assert (second := run(instance)).success
        done = materializations(second)
        assert done["staging/members"]["staged_from"] == "its files"
        for source in referencing:
            assert done[f"staging/{source}"]["staged_from"].startswith("its last output"), source
        # an update of known members moves no row: the others' rows are the same data, so
        # what is built on them alone stands: the claims, and the marts of these sources
        assert done["staging/mutual_aid_claims"]["union/reused"] is True
        assert done["marts/mutual_aid_monthly"]["union/reused"] is True
        assert done["marts/loans_monthly"]["union/reused"] is True
        assert done["marts/kpi_yearly"]["union/reused"] is False
        # each file is a published one with the changed tables written again (the city's of
        # this one-district drop: the district's file with its district column)
        for published in ("warehouse/district_duckdb", "warehouse/union_duckdb"):
            made = done[published]
            assert 0 < made["tables_written"] < len(made["union/published_from"]), published
            assert "staging.mutual_aid_enrollments" in made["union/published_from"]
        assert warehouse_state(live) == fresh_state(tmp_path, monkeypatch)

        # members leave: rows that referenced them, and passed, are held back now
        (demo_drop / "members" / "zz-update.csv").unlink()
        members.write_bytes(b"".join(lines[:1] + lines[21:]))
        assert (third := run(instance)).success
        done = materializations(third)
        assert done["staging/mutual_aid_enrollments"]["staged_from"] == "its files"
        assert done["staging/mutual_aid_enrollments"]["quarantined_by_rule"]
        assert warehouse_state(live) == fresh_state(tmp_path, monkeypatch, "fresh-after")


@pytest.mark.system
def test_a_killed_refresh_leaves_the_last_good_warehouse(env, demo_drop, tmp_path, monkeypatch):
    """SIGKILL mid-run (as the out-of-memory killer would): readers keep the last good
    warehouse and the next refresh succeeds."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "union_pipeline.definitions",
        "--select",
        "not group:reports",
        "--partition",
        DISTRICT,
    ]
    no_reports = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's storage is under it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        with_district(instance)
    assert subprocess.run(command, env=no_reports, cwd=ROOT, capture_output=True).returncode == 0
    before = warehouse_state(env)
    new_unions(demo_drop)
    refresh = subprocess.Popen(
        command,
        env=no_reports,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    killed_at = None
    for line in refresh.stdout:
        # mid-run, once the members are staged (known by the asset, not a step name)
        if "ASSET_MATERIALIZATION" in line and "Materialized value staging members" in line:
            os.killpg(refresh.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            break
    refresh.wait(timeout=60)
    assert killed_at is not None and refresh.returncode == -signal.SIGKILL
    assert warehouse_state(env) == before, "readers see the last good state"
    again = subprocess.run(command, env=no_reports, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:]
    with duckdb.connect(str(env), read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM staging.unions WHERE union_id LIKE 'U-NEW-%'"
            ).fetchall()[0][0]
            == 2
        )
