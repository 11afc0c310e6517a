"""End to end: the analyst's Dagster UI, served on 127.0.0.1, over a refreshed warehouse."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from union_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.system  # daemon, SIGKILL, queue, browser: `./dev test -m system`

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ASSETS_QUERY = """{ assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name
        executionForLatestMaterialization { status } } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def refreshed_home(demo_drop, tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "UNION_RAW_DIR": str(demo_drop),
        "UNION_WAREHOUSE": str(tmp_path / "union.duckdb"),
        "UNION_EXPORT_DIR": str(tmp_path / "exports"),
    }
    Path(env["DAGSTER_HOME"]).mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", env["DAGSTER_HOME"])
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        # the headless refresh: the district's partition registered, then its run
        [bin_dir / "python", "-m", "union_pipeline.refresh"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    return env


def test_ui_shows_graph_and_check_results(refreshed_home, tmp_path):
    port = free_port()
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [
            bin_dir / "dagster-webserver",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        env=refreshed_home,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "webserver did not answer"
                assert server.poll() is None, "webserver exited"
                time.sleep(0.5)
        nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"staging/members", "marts/kpi_yearly", "warehouse/union_duckdb"} <= set(by_key)
        assert by_key["staging/members"]["groupName"] == "membership"
        checks = {
            c["name"]: (c["executionForLatestMaterialization"] or {}).get("status")
            for c in by_key["staging/members"]["assetChecksOrError"]["checks"]
        }
        assert checks["rows_accounted_for"] == "SUCCEEDED"
        assert checks["quarantine_under_threshold"] == "SUCCEEDED"

        if CHROMIUM is None:
            pytest.skip("chromium is not installed (apt-get install chromium)")
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome'}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"http://127.0.0.1:{port}/assets/staging/members",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        # the app rendered the asset from the server: its description, not the page shell
        assert "会员实名制名册" in dom, dom[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
