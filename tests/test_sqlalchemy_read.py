"""The warehouse read as BI tools read it: SQLAlchemy + duckdb-engine, read-only, the way
Superset opens it (`duckdb:////path/union.duckdb`, engine parameters
`{"connect_args": {"read_only": true}}`, a connection per query), while publishes swap in
new states. tests/test_concurrent_reads.py runs this reader beside a real refresh."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import duckdb
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from union_pipeline.warehouse import Warehouse


def engine(live: str | Path) -> sa.Engine:
    """What Superset builds from the URI and engine parameters of docs/使用说明.md; NullPool
    (Superset's default for a database it reads) so that each query sees the latest file."""
    return sa.create_engine(
        f"duckdb:///{Path(live).resolve()}", connect_args={"read_only": True}, poolclass=NullPool
    )


def read_loop(live: str, stop_file: str, out: str, sql: str, pause: float) -> None:
    """Query `sql` through SQLAlchemy every `pause` seconds until stop_file appears; record
    every state seen and every error (a lock error, a missing table: each counts against
    the publish)."""
    seen, errors = [], []
    reader = engine(live)
    while not Path(stop_file).exists():
        try:
            with reader.connect() as con:
                seen.append(list(con.execute(sa.text(sql)).one()))
            if len(seen) == 1:
                Path(out + ".ready").touch()
        except Exception as err:  # every error counts against the mechanism
            errors.append(f"{type(err).__name__}: {err}")
        time.sleep(pause)
    reader.dispose()
    Path(out).write_text(json.dumps({"seen": seen, "errors": errors}, default=str))


def start_reader(live: Path, tmp_path: Path, sql: str, pause: float = 0.005):
    """A reader in a process of its own, as a BI tool is; returns (process, stop, out) once
    it has read the first state."""
    stop_file, out = tmp_path / "sqlalchemy.stop", tmp_path / "sqlalchemy.json"
    reader = multiprocessing.get_context("spawn").Process(
        target=read_loop, args=(str(live), str(stop_file), str(out), sql, pause)
    )
    reader.start()
    ready = Path(str(out) + ".ready")
    deadline = time.monotonic() + 180  # a fresh process imports duckdb and SQLAlchemy
    while not ready.exists() and time.monotonic() < deadline and reader.is_alive():
        time.sleep(0.1)
    assert ready.exists(), "the SQLAlchemy reader never read the first state"
    return reader, stop_file, out


def stop_reader(reader, stop_file: Path, out: Path) -> dict:
    stop_file.touch()
    reader.join(timeout=60)
    return json.loads(out.read_text())


# Two tables of one state: equal only when both come from the same complete publish.
STATE_SQL = """
SELECT (SELECT count(*) FROM marts.rows) AS row_count,
       (SELECT n FROM marts.summary) AS summary_n,
       (SELECT comment FROM duckdb_tables() WHERE table_name = 'rows') AS comment
"""


def publish_state(warehouse: Warehouse, n: int) -> None:
    with duckdb.connect() as con:
        rows = warehouse.outputs.write(
            con, "marts", "rows", str(n), {"data": f"SELECT range AS i FROM range({n * 20_000})"}
        )
        summary = warehouse.outputs.write(
            con, "marts", "summary", str(n), {"data": f"SELECT {n * 20_000} AS n"}
        )
    warehouse.publish(
        {"marts.rows": rows["data"], "marts.summary": summary["data"]},
        {"marts.rows": f"state {n}", "marts.summary": f"state {n}"},
    )


def test_sqlalchemy_reader_sees_complete_states_while_publishes_swap(tmp_path):
    live = tmp_path / "union.duckdb"
    warehouse = Warehouse(live)
    publish_state(warehouse, 1)
    reader, stop_file, out = start_reader(live, tmp_path, STATE_SQL)
    try:
        for n in range(2, 12):
            publish_state(warehouse, n)
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        result = stop_reader(reader, stop_file, out)
    # DuckDB opens the file by its path three times while connecting: a swap in between
    # fails that connection (its catalog does not deserialize), and only that one; nothing
    # half-built is ever read (below). docs/使用说明.md tells BI users to run it again.
    opening_race = [e for e in result["errors"] if "Serialization Error" in e]
    assert [e for e in result["errors"] if e not in opening_race] == []
    assert len(opening_race) <= max(1, len(result["seen"]) // 20), "more than a rare race"
    states = {tuple(s) for s in result["seen"]}
    assert len(states) > 2, "the reader saw too few publishes to tell"
    for row_count, summary_n, comment in states:
        assert row_count == summary_n, "a reader saw two tables of different states"
        assert comment == f"state {row_count // 20_000}"
    assert (220_000, 220_000, "state 11") in states  # the last state, once published


def test_an_open_sqlalchemy_connection_keeps_its_state_and_cannot_write(tmp_path):
    live = tmp_path / "union.duckdb"
    warehouse = Warehouse(live)
    publish_state(warehouse, 1)
    reader = engine(live)
    with reader.connect() as con:
        assert con.execute(sa.text("SELECT count(*) FROM marts.rows")).scalar() == 20_000
        publish_state(warehouse, 2)
        # the snapshot it opened, whole, until it reconnects
        assert con.execute(sa.text("SELECT count(*) FROM marts.rows")).scalar() == 20_000
        try:
            con.execute(sa.text("CREATE TABLE marts.mine AS SELECT 1 AS x"))
            wrote = True
        except sa.exc.DBAPIError as err:
            wrote = False
            assert "read-only" in str(err).lower()
        assert not wrote, "a read-only connection wrote to the warehouse"
    with reader.connect() as con:
        assert con.execute(sa.text("SELECT count(*) FROM marts.rows")).scalar() == 40_000
    reader.dispose()
