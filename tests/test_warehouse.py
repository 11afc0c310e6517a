"""Outputs per materialization and the publish, on real DuckDB and Parquet files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb

from union_pipeline.warehouse import DISTRICT_COMMENT, OutputStore, Start, Warehouse, scratch
from union_pipeline.warehouse.versions import live_stat


def known(file: Path, holds: dict, district: str | None = None) -> Start:
    """`file` as a publish's start, known to hold `holds`."""
    return Start(file, holds, live_stat(file), district)


def uncommented(path: Path) -> list[str]:
    """Every table (`schema.table`) and column (`schema.table.column`) of a warehouse file
    without a DuckDB comment: what a reader in a BI tool would see undescribed."""
    with duckdb.connect(str(path), read_only=True) as con:
        return [
            name
            for (name,) in con.execute("""
            SELECT schema_name || '.' || table_name FROM duckdb_tables()
            WHERE NOT internal AND coalesce(trim(comment), '') = ''
            UNION ALL
            SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns()
            WHERE NOT internal AND coalesce(trim(comment), '') = ''
            ORDER BY 1""").fetchall()
        ]


def test_a_step_beyond_the_memory_limit_spills_into_a_folder_it_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("UNION_DUCKDB_MEMORY", "100MB")
    spill_root = tmp_path / "not" / "yet" / "there"
    with scratch(spill_root) as con:
        # about 300 MB of rows in a database limited to 100 MB: it must spill
        con.execute("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS h FROM range(4000000) r(i)")
        spilled = con.execute("SELECT sum(size) FROM duckdb_temporary_files()").fetchall()[0][0]
        assert spilled and spilled > 50e6
        assert con.execute("SELECT count(DISTINCT h) FROM t").fetchall() == [(4000000,)]
    assert spill_root.is_dir() and not list(spill_root.iterdir()), "spill removed afterwards"


def test_an_output_folder_is_written_once_and_never_rewritten(tmp_path):
    store = OutputStore(tmp_path / "outputs")
    with duckdb.connect() as con:
        first = store.write(con, "staging", "members", "v1", {"data": "SELECT 1 AS x"})
        written = first["data"].stat().st_mtime_ns
        again = store.write(con, "staging", "members", "v1", {"data": "SELECT 2 AS x"})
        assert again == first and first["data"].stat().st_mtime_ns == written
        assert con.execute(f"SELECT x FROM '{first['data']}'").fetchall() == [(1,)]
    assert not [p for p in first["data"].parent.parent.iterdir() if "partial" in p.name]


def test_cleanup_keeps_what_is_needed_and_what_is_young(tmp_path):
    store = OutputStore(tmp_path / "outputs")
    with duckdb.connect() as con:
        old, kept, young = (
            store.write(con, "marts", "kpi_yearly", v, {"data": "SELECT 1 AS x"})["data"].parent
            for v in ("old", "kept", "young")
        )
    hour_ago = time.time() - 7200
    for folder in (old, kept):
        os.utime(folder, (hour_ago, hour_ago))
    removed = store.cleanup({kept}, pattern="marts/*/*")
    assert removed == [old] and kept.is_dir() and young.is_dir()


def test_publish_swaps_in_a_complete_file_readers_of_the_old_one_keep(tmp_path):
    live = tmp_path / "union.duckdb"
    warehouse = Warehouse(live)
    with duckdb.connect() as con:
        first = warehouse.outputs.write(con, "marts", "t", "a", {"data": "SELECT 1 AS x"})
        second = warehouse.outputs.write(con, "marts", "t", "b", {"data": "SELECT 2 AS x"})
    warehouse.publish(
        {"marts.t": first["data"]}, {"marts.t": "表 — a table"}, {("marts.t", "x"): "列 — a column"}
    )
    with warehouse.reading() as old_reader:
        warehouse.publish({"marts.t": second["data"]})
        assert old_reader.execute("SELECT x FROM marts.t").fetchall() == [(1,)]
    with warehouse.reading() as con:
        assert con.execute("SELECT x FROM marts.t").fetchall() == [(2,)]
    assert not list(tmp_path.glob(".union.build-*"))
    with duckdb.connect(str(live), read_only=True) as con:
        # the storage format DuckDB 1.2 and later read
        [(version,)] = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'union'"
        ).fetchall() or [(None,)]
    assert version is None or version.startswith("v1.2")


def test_publish_removes_the_build_files_of_a_dead_writer_and_keeps_a_live_ones(tmp_path):
    """A publish killed mid-write leaves its build file and .wal: the next publish removes
    them at once when their writer is gone, and leaves a running writer's alone."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    dead = [tmp_path / f".union.build-{gone.pid}-0123456789ab.duckdb"]
    dead.append(dead[0].with_name(dead[0].name + ".wal"))
    alive = tmp_path / f".union.build-{os.getpid()}-ba9876543210.duckdb"
    for path in [*dead, alive]:
        path.write_bytes(b"half a file")
    warehouse = Warehouse(tmp_path / "union.duckdb")
    with duckdb.connect() as con:
        out = warehouse.outputs.write(con, "marts", "t", "a", {"data": "SELECT 1 AS x"})
    warehouse.publish({"marts.t": out["data"]})
    assert not any(p.exists() for p in dead)
    assert alive.exists()  # young, and its writer (this process) runs


def test_publish_describes_the_district_column_it_adds_and_nothing_else(tmp_path):
    live = tmp_path / "union.duckdb"
    warehouse = Warehouse(live)
    with duckdb.connect() as con:
        files = {
            code: warehouse.outputs.write(con, "marts", "t", code, {"data": "SELECT 1 AS x"})[
                "data"
            ]
            for code in ("330211", "330212")
        }
    warehouse.publish({"marts.t": files}, {}, {("marts.t", "x"): "列 — a column"})
    # the table has no comment: the check names it, and only it
    assert uncommented(live) == ["marts.t"]
    warehouse.publish({"marts.t": files}, {"marts.t": "表 — a table"}, {})
    assert uncommented(live) == ["marts.t.x"]
    warehouse.publish(
        {"marts.t": files}, {"marts.t": "表 — a table"}, {("marts.t", "x"): "列 — a column"}
    )
    assert uncommented(live) == []
    with duckdb.connect(str(live), read_only=True) as con:
        assert con.execute(
            "SELECT comment FROM duckdb_columns() WHERE column_name = 'district'"
        ).fetchall() == [(DISTRICT_COMMENT,)]


def test_publish_over_a_known_file_writes_only_the_tables_whose_outputs_changed(tmp_path):
    """Given what the live file holds, a publish starts from a copy of it: a table whose
    output file is the same is kept as it is (not read again), one whose output changed is
    written again, one no longer published is gone, and the file does not grow with every
    publish."""
    live = tmp_path / "union.duckdb"
    warehouse = Warehouse(live)
    rows = "SELECT i AS x, md5(i::VARCHAR) AS h FROM range({n}) r(i)"
    with duckdb.connect() as con:
        write = warehouse.outputs.write
        big = write(con, "staging", "big", "a", {"data": rows.format(n=300_000)})["data"]
        small = [
            write(con, "marts", "t", f"v{i}", {"data": rows.format(n=100_000 + i)})["data"]
            for i in range(6)
        ]
        gone = write(con, "marts", "gone", "a", {"data": "SELECT 1 AS x"})["data"]
    first = {"staging.big": big, "marts.t": small[0], "marts.gone": gone}
    warehouse.publish(first, {"staging.big": "大表 — big"})
    big.rename(big.with_suffix(".moved"))  # a publish that read it again would fail
    sizes, holds = [], first
    for i in range(1, 6):
        tables = {"staging.big": big, "marts.t": small[i]}
        done = warehouse.publish(tables, {"staging.big": "大表 — big"}, start=known(live, holds))
        assert done.written == ["marts.t"] and done.identity == live_stat(live)
        holds = tables
        sizes.append(live.stat().st_size)
        with duckdb.connect(str(live), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM marts.t").fetchall() == [(100_000 + i,)]
            assert con.execute("SELECT count(*), sum(x) FROM staging.big").fetchall() == [
                (300_000, sum(range(300_000)))
            ]
            assert con.execute(
                "SELECT table_name, comment FROM duckdb_tables() ORDER BY 1"
            ).fetchall() == [("big", "大表 — big"), ("t", None)]
    assert max(sizes) <= 1.5 * sizes[0], f"the file grows with each publish: {sizes}"
    # a kept table's comment the new ones no longer give is gone
    warehouse.publish(holds, {}, start=known(live, holds))
    with duckdb.connect(str(live), read_only=True) as con:
        assert con.execute(
            "SELECT comment FROM duckdb_tables() WHERE table_name = 'big'"
        ).fetchall() == [(None,)]
    # nothing kept: nothing copied, and the file is no bigger than one composed anew
    moved = {"staging.big": small[1], "marts.t": small[2]}
    assert warehouse.publish(moved).written == ["marts.t", "staging.big"]
    anew = live.stat().st_size
    warehouse.publish(
        {"staging.big": small[3], "marts.t": small[4]}, start=known(live, moved | {"marts.t": big})
    )
    assert live.stat().st_size <= 1.1 * anew
    # a table whose recorded source is not its source now is written again
    warehouse.publish({"staging.big": small[0]}, start=known(live, {"staging.big": big}))
    with duckdb.connect(str(live), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.big").fetchall() == [(100_000,)]
        assert con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal"
        ).fetchall() == [("staging",)]


def test_a_table_whose_output_is_a_link_to_the_published_one_is_kept(tmp_path):
    """An output that kept its last rows links their file into its own folder: the
    publish sees the same rows and does not read them again."""
    warehouse = Warehouse(tmp_path / "union.duckdb")
    with duckdb.connect() as con:
        first = warehouse.outputs.write(con, "staging", "e", "a", {"data": "SELECT 1 AS x"})
        linked = warehouse.outputs.write(con, "staging", "e", "b", {"data": first["data"]})
    warehouse.publish({"staging.e": first["data"]})
    assert linked["data"] != first["data"] and linked["data"].samefile(first["data"])
    done = warehouse.publish(
        {"staging.e": linked["data"]}, start=known(warehouse.live, {"staging.e": first["data"]})
    )
    assert done.written == []
    with warehouse.reading() as con:
        assert con.execute("SELECT x FROM staging.e").fetchall() == [(1,)]


def test_a_city_of_one_district_starts_from_its_file_and_adds_the_district_column(tmp_path):
    """The city's file of a one-district drop is that district's file with a `district`
    column: its tables are not written again; a file replaced since it was recorded is not
    started from."""
    warehouse = Warehouse(tmp_path / "union.duckdb")
    district = tmp_path / "districts" / "330211.duckdb"
    with duckdb.connect() as con:
        rows = warehouse.outputs.write(con, "staging", "m", "a", {"data": "SELECT 7 AS x"})
        city = warehouse.outputs.write(con, "marts", "c", "a", {"data": "SELECT 1 AS y"})
    warehouse.publish({"staging.m": rows["data"]}, live=district)
    tables = {"staging.m": {"330211": rows["data"]}, "marts.c": city["data"]}
    expected = [("staging", "m", "x", "INTEGER"), ("staging", "m", "district", "VARCHAR")]
    start = known(district, {"staging.m": rows["data"]}, "330211")
    assert warehouse.publish(tables, start=start).written == ["marts.c"]
    with warehouse.reading() as con:
        assert con.execute("SELECT x, district FROM staging.m").fetchall() == [(7, "330211")]
        columns = con.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = 'm' ORDER BY column_index"
        ).fetchall()
        assert columns == expected
        assert con.execute(
            "SELECT comment FROM duckdb_columns() WHERE column_name = 'district'"
        ).fetchall() == [(DISTRICT_COMMENT,)]
    # the same tables composed from the outputs: the same columns, in the same order
    fresh = Warehouse(tmp_path / "fresh.duckdb")
    assert fresh.publish(tables).written == ["marts.c", "staging.m"]
    with fresh.reading() as con:
        assert (
            con.execute(
                "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = 'm' ORDER BY column_index"
            ).fetchall()
            == expected
        )
    os.utime(district)  # replaced since (its identity differs): not started from
    assert warehouse.publish(tables, start=start).written == ["marts.c", "staging.m"]
