"""A backfill of every district runs as parallel runs through Dagster's run queue, under the
daemon with the project's deploy/dagster.yaml: every district refreshed, at most two runs at
a time, never two of one district."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.test_recovery import _wait, deployment, start_daemon

pytestmark = pytest.mark.system  # daemon, SIGKILL, queue, browser: `./dev test -m system`

ROOT = Path(__file__).resolve().parent.parent
CODES = ["330211", "330203", "330205"]


def test_backfill_of_every_district_runs_side_by_side_through_the_queue(tmp_path, monkeypatch):
    from union_demo import generate_city

    raw = tmp_path / "raw"
    generate_city(raw, districts=3, scale=0.02, seed=5)
    env = deployment(raw, tmp_path, monkeypatch, automation="off")  # only the backfill's runs
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("district", CODES)
    daemon = start_daemon(env)
    try:
        submitted = subprocess.run(
            [
                sys.executable,
                "-m",
                "dagster",
                "job",
                "backfill",
                "-m",
                "union_pipeline.definitions",
                "-j",
                "district_refresh",
                "--partitions",
                ",".join(CODES),
                "--noprompt",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            most_at_once = 0

            def all_done():
                nonlocal most_at_once
                runs = instance.get_runs(dg.RunsFilter(job_name="district_refresh"))
                started = [r for r in runs if r.status == dg.DagsterRunStatus.STARTED]
                most_at_once = max(most_at_once, len(started))
                finished = [r for r in runs if r.is_finished]
                return len(runs) == len(CODES) and len(finished) == len(CODES) and runs

            runs = _wait("the backfill's runs to finish", 900, all_done)
            failures = [
                (e.message or "")[-1500:]
                for r in runs
                for e in instance.all_logs(r.run_id)
                if e.level >= 40 or "fail" in (e.message or "").lower()
            ]
            assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, failures
            assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(CODES)
            assert 1 <= most_at_once <= 2
            for code in CODES:
                assert (tmp_path / "warehouse" / "districts" / f"{code}.duckdb").is_file()
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
