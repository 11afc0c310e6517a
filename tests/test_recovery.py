"""A run worker killed under the daemon (as the out-of-memory killer would) does not block
later refreshes: the run is marked failed and the next one starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import TEST_PII_KEY
from union_pipeline.defs.automation.sensors import worker_pid

pytestmark = pytest.mark.system  # daemon, SIGKILL, queue, browser: `./dev test -m system`

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's commands


def deployment(raw: Path, folder: Path, monkeypatch, automation: str | None = "on") -> dict:
    """The environment of a deployment in `folder` (its instance, warehouse and exports)
    over the drop `raw`, its instance made and the test's DAGSTER_HOME; `automation`:
    UNION_AUTOMATION (None: the default)."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's storage is under it
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    # the storage is made here first: two processes creating it at once collide
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "UNION_RAW_DIR": str(raw),
        "UNION_PII_KEY": TEST_PII_KEY,
        "UNION_WAREHOUSE": str(folder / "warehouse" / "union.duckdb"),
        "UNION_EXPORT_DIR": str(folder / "exports"),
    }
    if automation is not None:
        env["UNION_AUTOMATION"] = automation
    return env


def _wait(what: str, seconds: float, probe):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def start_daemon(env: dict) -> subprocess.Popen:
    """`dagster-daemon run` on the project's definitions, in a session of its own (so the
    test can stop it with its children)."""
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "union_pipeline.definitions"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_killed_run_worker_frees_the_queue(demo_drop, tmp_path, monkeypatch):
    env = deployment(demo_drop, tmp_path, monkeypatch, automation=None)
    # the daemon runs the sensors: the file sensor's first tick requests a refresh
    daemon = start_daemon(env)
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:

            def started_with_worker():
                for record in instance.get_run_records(
                    dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
                ):
                    pid = worker_pid(instance, record.dagster_run.run_id)
                    if pid:
                        return record.dagster_run.run_id, pid
                return None

            killed_run, pid = _wait("a refresh run to start", 120, started_with_worker)
            os.kill(pid, signal.SIGKILL)
            _wait(
                "the killed run to be marked failed",
                90,
                lambda: instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE,
            )
            # the queue (one refresh at a time) moves on: the retry or the next run starts
            _wait(
                "another run to start",
                90,
                lambda: [
                    r
                    for r in instance.get_run_records(
                        dg.RunsFilter(
                            statuses=[
                                dg.DagsterRunStatus.STARTED,
                                dg.DagsterRunStatus.SUCCESS,
                                dg.DagsterRunStatus.FAILURE,
                            ]
                        )
                    )
                    if r.dagster_run.run_id != killed_run
                ],
            )
            # said by Dagster's code server when it saw its child die, else by our sensor
            logs = [e.message for e in instance.all_logs(killed_run) if e.message]
            assert any(
                "terminated by signal 9" in m or f"worker (pid {pid}) is gone" in m for m in logs
            ), logs[-5:]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)


def test_a_live_worker_started_by_multiprocessing_is_alive_and_a_reused_pid_is_not():
    """The code server starts run workers by multiprocessing (no "dagster" in their command
    line): such a worker is alive; a process younger than the worker's record is not it."""
    import multiprocessing

    from union_pipeline.machine import worker_alive

    recorded = time.time() + 1
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(30,))
    child.start()
    try:
        assert worker_alive(child.pid, recorded)
        assert not worker_alive(child.pid, recorded - 3600)  # a pid reused since
    finally:
        child.kill()
        child.join()
    assert not worker_alive(child.pid, recorded)


def test_a_killed_headless_refresh_is_marked_failed_by_the_next(tmp_path, monkeypatch):
    """`python -m union_pipeline.refresh` runs its runs in its own process: killed (as the
    out-of-memory killer would), its run stays STARTED until the next refresh marks it
    failed and runs the district again."""
    import signal
    import sys

    from union_demo import generate

    root = Path(__file__).resolve().parent.parent
    generate(tmp_path / "raw", scale=0.02, seed=7)
    env = deployment(tmp_path / "raw", tmp_path, monkeypatch, automation=None)
    command = [sys.executable, "-m", "union_pipeline.refresh"]
    refresh = subprocess.Popen(
        [*command, "--verbose"],  # Dagster's events on the terminal: where to kill it
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    for line in refresh.stdout:
        # mid-run, once the members are staged (known by the asset, not a step name)
        if "ASSET_MATERIALIZATION" in line and "Materialized value staging members" in line:
            os.killpg(refresh.pid, signal.SIGKILL)
            break
    refresh.wait(timeout=60)
    assert refresh.returncode == -signal.SIGKILL
    with dg.DagsterInstance.get() as instance:  # the deployment's (DAGSTER_HOME)
        [killed] = instance.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED  # nobody else will say it died
    again = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"run {killed.run_id[:8]}" in again.stdout and "marked failed" in again.stdout
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        latest_run = instance.get_runs(limit=1)[0]
        assert latest_run.run_id != killed.run_id
        assert latest_run.status == dg.DagsterRunStatus.SUCCESS
