"""Readers query the live warehouse in a loop while refreshes publish new states: the
project's own reader (DuckDB read-only) and a BI tool's (SQLAlchemy + duckdb-engine, as
Superset opens it). The first refresh's files are also checked for a comment on every table
and column."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

from tests import test_sqlalchemy_read as bi
from tests.runs import run, with_district
from tests.test_warehouse import uncommented
from union_pipeline.defs.warehouse.assets import district_file
from union_pipeline.warehouse import Warehouse

# Two views of the same fact from two layers: equal only in a complete, consistent state.
STATE_SQL = """
SELECT (SELECT count(*) FROM marts.kpi_yearly) AS mart_rows,
       (SELECT count(DISTINCT kpi_code) * count(DISTINCT year) FROM marts.kpi_yearly) AS grid,
       (SELECT CAST(as_of AS VARCHAR) FROM marts.refresh_context) AS as_of,
       (SELECT actual FROM marts.kpi_yearly k, marts.refresh_context r
        WHERE kpi_code = 'members_total' AND k.year = year(r.as_of)) AS mart_members,
       (SELECT count(*) FROM staging.members m, marts.refresh_context r
        WHERE m.join_date <= r.as_of AND (m.leave_date IS NULL OR m.leave_date > r.as_of))
           AS staging_members
"""


def read_loop(live: str, stop_file: str, out: str) -> None:
    """Query until stop_file appears; record every state seen, every error, the longest wait."""
    seen, errors, waits = [], [], [0.0]
    warehouse = Warehouse(Path(live))
    while not Path(stop_file).exists():
        started = time.monotonic()
        try:
            with warehouse.reading() as con:
                waits.append(time.monotonic() - started)
                seen.append(list(con.execute(STATE_SQL).fetchall()[0]))
            if len(seen) == 1:
                Path(out + ".ready").touch()  # the test refreshes only once a state was seen
        except Exception as err:  # every error counts against the mechanism
            errors.append(f"{type(err).__name__}: {err}")
        time.sleep(0.005)
    Path(out).write_text(json.dumps({"seen": seen, "errors": errors, "max_wait": max(waits)}))


def test_readers_see_only_complete_consistent_states(refreshed_district, tmp_path, monkeypatch):
    # the first state: the session's shared refresh of the small demo drop (its as-of date
    # is the drop's, 2020-09-30); the refreshes below publish two earlier dates
    live = refreshed_district.live
    stop_file, out = tmp_path / "stop", tmp_path / "reader.json"
    with refreshed_district.instance() as instance:
        district = with_district(instance)
        with Warehouse(live).reading() as con:
            assert con.execute(
                "SELECT CAST(as_of AS VARCHAR) FROM marts.refresh_context"
            ).fetchall() == [("2020-09-30",)]
        # what a reader in a BI tool sees described: every table and column of both files
        assert uncommented(live) == []
        assert uncommented(district_file(live, district)) == []
        reader = multiprocessing.get_context("spawn").Process(
            target=read_loop, args=(str(live), str(stop_file), str(out))
        )
        reader.start()
        sqlalchemy_reader = None
        try:
            # the reader's start-up (a fresh process importing the package) varies with
            # the machine's load: the refreshes begin once it has seen the first state
            ready = Path(str(out) + ".ready")
            deadline = time.monotonic() + 180
            while not ready.exists() and time.monotonic() < deadline and reader.is_alive():
                time.sleep(0.1)
            assert ready.exists(), "the reader never read the first state"
            # a BI tool's pace, not a loop's: the refreshes share the machine with it
            sqlalchemy_reader = bi.start_reader(live, tmp_path, STATE_SQL, pause=0.1)
            for as_of in ("2020-03-31", "2020-06-30"):
                monkeypatch.setenv("UNION_AS_OF", as_of)
                # every asset that publishes; the chart exports (a browser's work) publish
                # nothing a reader queries
                assert run(instance).success
            time.sleep(0.5)
        finally:
            stop_file.touch()
            reader.join(timeout=60)
            if sqlalchemy_reader is not None:
                through_sqlalchemy = bi.stop_reader(*sqlalchemy_reader)
    result = json.loads(out.read_text())
    for seen_by in (result, through_sqlalchemy):
        assert seen_by["errors"] == []
        states = {tuple(s) for s in seen_by["seen"]}
        for mart_rows, grid, _, mart_members, staging_members in states:
            assert mart_rows == grid > 0
            assert mart_members == staging_members
    assert {s[2] for s in map(tuple, result["seen"])} == {"2020-03-31", "2020-06-30", "2020-09-30"}
    # the BI reader started after the first state: it sees the refreshes' states
    assert {"2020-03-31", "2020-06-30"} <= {s[2] for s in through_sqlalchemy["seen"]}
    # never locked out while a refresh publishes (a reader locked out retries every 0.2 s
    # until the writer is done); the bound leaves room for a connect on a loaded 2-core
    # machine (1.05 s was seen under load)
    assert result["max_wait"] < 2.0
