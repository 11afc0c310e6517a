"""What a Dagster user types first, on a single-district drop, as a subprocess: it works, or
it stops in one line that names the command that does (no traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.runs import DISTRICT

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MATERIALIZE_ALL = ["dagster", "asset", "materialize", "-m", "union_pipeline.definitions"]


@pytest.fixture
def env(minimal_drop, tmp_path) -> dict[str, str]:
    """A fresh instance and warehouse, as a newcomer's first session has them, on the
    smallest single-district drop (what is typed, not the figures, is under test)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UNION_RAW_DIR": str(minimal_drop),
        "UNION_WAREHOUSE": str(tmp_path / "warehouse" / "union.duckdb"),
        "UNION_EXPORT_DIR": str(tmp_path / "exports"),
        "UNION_AUTOMATION": "off",
    }


def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.returncode, done.stdout + done.stderr


def told(output: str) -> str:
    """The one line the project says; Dagster's own warnings may stand around it."""
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("union-pipeline:")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_a_launch_without_its_district_names_the_command_that_works(env):
    code, output = cli(env, *MATERIALIZE_ALL, "--select", "*")
    assert code != 0
    line = told(output)
    assert (
        f"run: dagster asset materialize -m union_pipeline.definitions --select '*' "
        f"--partition {DISTRICT}" in line
    )

    code, output = cli(env, "dg", "launch", "--job", "district_refresh")
    assert code != 0
    assert f"run: dg launch --job district_refresh --partition {DISTRICT}" in told(output)

    code, output = cli(env, "dg", "launch", "--job", "refresh_all", "--partition", "999999")
    assert code != 0
    assert f"district 999999 is not in the drop {env['UNION_RAW_DIR']}" in told(output)
    assert f"(it has {DISTRICT})" in told(output)


def test_refresh_all_and_the_named_command_run_the_drop_on_a_fresh_instance(env):
    # the job knows the drop's one district, and the launch registers it
    code, output = cli(env, "dg", "launch", "--job", "refresh_all")
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    live = Path(env["UNION_WAREHOUSE"])
    district = live.parent / "districts" / f"{DISTRICT}.duckdb"
    with duckdb.connect(str(district), read_only=True) as con:
        assert con.execute("SELECT scope FROM meta.refresh").fetchall() == [(DISTRICT,)]
    published = live.stat().st_mtime_ns

    # what the stopped command named: every asset, the district's partition
    code, output = cli(env, *MATERIALIZE_ALL, "--select", "*", "--partition", DISTRICT)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    assert "RUN_SUCCESS" in output
    with duckdb.connect(str(live), read_only=True) as con:
        assert con.execute("SELECT DISTINCT district FROM marts.kpi_yearly").fetchall() == [
            (DISTRICT,)
        ]
    assert live.stat().st_mtime_ns >= published
