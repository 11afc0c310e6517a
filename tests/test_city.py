"""A city of districts: one partition per district, the city roll-up, a warehouse file per
district, and a district added while others exist. Real demo drops, real runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.runs import materializations, with_district
from union_pipeline.definitions import defs
from union_pipeline.kpis import load_catalogue

CODES = ["330211", "330203", "330205"]


@pytest.fixture(scope="module")
def city_source(tmp_path_factory) -> Path:
    """A small city of three districts, generated once for this module."""
    from union_demo import generate_city

    raw = tmp_path_factory.mktemp("city") / "raw"
    generate_city(raw, districts=3, scale=0.02, seed=11)
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == sorted([*CODES, "targets"])
    return raw


@pytest.fixture(scope="module")
def grown(city_source, tmp_path_factory) -> dict:
    """The city built once for this module, the way a city grows: two districts and the
    city; then the third district's folder appears, the raw-files sensor asks for it, it
    refreshes alone and the city again. What the tests assert along the way is recorded;
    the end state (three districts, the city file) is what the roll-up tests read."""
    from tests.conftest import TEST_PII_KEY
    from union_pipeline.defs.automation.sensors import raw_files_sensor

    root = tmp_path_factory.mktemp("city_grown")
    raw = root / "raw"
    shutil.copytree(city_source, raw)
    env = {
        "UNION_RAW_DIR": str(raw),
        "UNION_WAREHOUSE": str(root / "wh" / "union.duckdb"),
        "UNION_EXPORT_DIR": str(root / "exports"),
        "UNION_PII_KEY": TEST_PII_KEY,
    }
    seen: dict = {"env": env, "raw": raw}
    third = raw / CODES[2]
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        for name, value in env.items():
            mp.setenv(name, value)
        shutil.move(third, root / "later")
        build(instance, CODES[:2])
        seen["before"] = {code: members_records(instance, code) for code in CODES[:2]}
        with duckdb.connect(str(live()), read_only=True) as con:
            seen["districts_before"] = con.execute("SELECT count(*) FROM meta.districts").fetchall()

        shutil.move(root / "later", third)
        # what the raw-files sensor does when the new folder appears
        context = dg.build_sensor_context(
            instance=instance, repository_def=defs().get_repository_def()
        )
        seen["sensor"] = raw_files_sensor(context)

        build(instance, [CODES[2]])
        seen["after"] = {code: members_records(instance, code) for code in CODES[:2]}

        # a province-size city (past UNION_CITY_DETAIL_ROWS): its file kept aside, then the
        # city's file published again as the roll-up tests read it
        with duckdb.connect(str(live()), read_only=True) as con:
            seen["marts"] = con.execute(
                "SELECT count(*), sum(hash(t)) FROM marts.kpi_yearly t"
            ).fetchall()
        mp.setenv("UNION_CITY_DETAIL_ROWS", "100")
        assert run_city(instance).success
        seen["province"] = root / "province.duckdb"
        shutil.copy(live(), seen["province"])
        mp.delenv("UNION_CITY_DETAIL_ROWS")
        assert run_city(instance).success
    return seen


@pytest.fixture
def city(grown, monkeypatch) -> Path:
    """The grown city's raw drop, with its settings in the environment (read only)."""
    for name, value in grown["env"].items():
        monkeypatch.setenv(name, value)
    return grown["raw"]


def members_records(instance, code: str) -> list:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["staging", "members"]), asset_partitions=[code]
        ),
        limit=10,
    ).records


def run_district(instance, code: str) -> dg.ExecuteInProcessResult:
    """One district's refresh without the chart exports (a browser's work, not this test's)."""
    from union_pipeline.defs.automation.jobs import DISTRICT

    job = defs().resolve_job_def("district_refresh")
    graph = defs().resolve_asset_graph()
    keys = [
        k for k in DISTRICT.resolve(graph) if graph.get(k).is_executable and k.path[0] != "reports"
    ]
    return job.execute_in_process(
        instance=instance,
        partition_key=with_district(instance, code),
        asset_selection=keys,
        raise_on_error=False,
    )


def run_city(instance) -> dg.ExecuteInProcessResult:
    return (
        defs()
        .resolve_job_def("city_refresh")
        .execute_in_process(instance=instance, raise_on_error=False)
    )


def build(instance, codes=CODES) -> dict[str, dict]:
    for code in codes:
        result = run_district(instance, code)
        assert result.success, code
    result = run_city(instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["city_total_is_sum_of_districts"] is True
    return materializations(result)


def live(name: str = "union.duckdb") -> Path:
    import os

    return Path(os.environ["UNION_WAREHOUSE"]).with_name(name)


def test_city_rollup_sums_counts_counts_persons_once_and_ranks(city):
    catalogue = {k.code: k for k in load_catalogue()}
    with duckdb.connect(str(live()), read_only=True) as con:
        rows = con.execute(
            "SELECT district, level, kpi_code, year, actual, city_rank, districts_ranked "
            "FROM marts.city_kpi_yearly"
        ).fetchall()
        by = {(d, k, y): (a, r, n) for d, level, k, y, a, r, n in rows}
        city = {(k, y): a for d, level, k, y, a, r, n in rows if level == "city"}
        districts = {}
        for d, level, k, y, a, r, _n in rows:
            if level == "district":
                districts.setdefault((k, y), {})[d] = (a, r)
        assert {d for d, level, *_ in rows if level == "district"} == set(CODES)

        # additive KPIs: the city is the sum of its districts
        counts = ["members_total", "unions_new", "loan_amount_yuan", "training_participations"]
        for code in counts:
            for (k, y), value in city.items():
                if k == code:
                    total = sum(a for a, _ in districts[(k, y)].values())
                    assert value == pytest.approx(total), (k, y)

        # a distinct count of persons: counted across districts by person_key
        distinct = con.execute(
            """SELECT count(DISTINCT person_key) FROM staging.loans
               WHERE disbursed_date <= (SELECT max(as_of) FROM marts.refresh_context)"""
        ).fetchall()[0][0]
        year = max(y for k, y in city if k == "loan_borrowers_cum")
        assert city[("loan_borrowers_cum", year)] == distinct

        # persons registered in two districts: the demo city has them
        shared = con.execute(
            """SELECT count(*) FROM (SELECT person_key FROM staging.members
               GROUP BY person_key HAVING count(DISTINCT district) > 1)"""
        ).fetchall()[0][0]
        assert shared > 0

        # a ratio from the summed parts, not an average of the districts' ratios
        ratio = catalogue["members_collected_rate"]
        for (k, y), value in city.items():
            if k == ratio.code and value is not None:
                parts = city[(ratio.numerator, y)] / city[(ratio.denominator, y)]
                assert value == pytest.approx(parts), y

        # ranks: 1 is the largest value (targets are `>=`), every district ranked
        for (k, y), per in districts.items():
            ranked = sorted((r, a) for a, r in per.values() if a is not None)
            if catalogue[k].target_comparator == ">=" and ranked:
                assert ranked[0][0] == 1
                assert ranked[0][1] == max(a for _, a in ranked)
            assert all(by[(d, k, y)][2] == len(ranked) for d in per)

        # the city's own targets, from the city's targets/ folder
        targets = con.execute(
            "SELECT count(*) FROM marts.city_kpi_yearly WHERE level = 'city' AND target IS NOT NULL"
        ).fetchall()[0][0]
        assert targets > 0


def test_each_district_file_holds_its_own_rows_only(city):
    with duckdb.connect(str(live()), read_only=True) as city_con:
        tables = [
            name
            for (name,) in city_con.execute(
                """SELECT table_schema || '.' || table_name FROM information_schema.columns
                   WHERE column_name = 'district' AND table_schema IN ('staging', 'marts')
                     AND table_name NOT LIKE 'city_%'"""
            ).fetchall()
        ]
        assert {"staging.members", "staging.quarantine", "marts.kpi_yearly"} <= set(tables)
        for code in CODES:
            path = live("districts") / f"{code}.duckdb"
            with duckdb.connect(str(path), read_only=True) as con:
                assert con.execute("SELECT district FROM meta.districts").fetchall() == [(code,)]
                for table in tables:
                    own = con.execute(
                        f"SELECT count(*), sum(hash(t)) FROM {table} AS t"
                    ).fetchall()[0]
                    columns = [
                        c
                        for (c,) in con.execute(
                            f"SELECT column_name FROM (DESCRIBE {table})"
                        ).fetchall()
                    ]
                    listed = ", ".join(f'"{c}"' for c in columns)
                    in_city = city_con.execute(
                        f"""SELECT count(*), sum(hash(t)) FROM
                            (SELECT {listed} FROM {table} WHERE district = ?) AS t""",
                        [code],
                    ).fetchall()[0]
                    # the same rows as the city file holds for this district, and no other
                    assert own == in_city, (code, table)
                total = city_con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0]
                mine = con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0]
                assert 0 < mine < total


def test_a_district_added_later_refreshes_alone_and_joins_the_city(city, grown):
    assert grown["districts_before"] == [(2,)]
    result = grown["sensor"]
    requests = result.run_requests
    added = [r for r in result.dynamic_partitions_requests]
    assert any(CODES[2] in r.partition_keys for r in added)
    assert {r.partition_key for r in requests if r.partition_key} >= {CODES[2]}
    for code in CODES[:2]:
        assert grown["before"][code], code
        assert len(grown["after"][code]) == len(grown["before"][code]), (
            "the other districts were not refreshed"
        )
    with duckdb.connect(str(live()), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM meta.districts").fetchall()[0][0] == 3
        assert sorted(
            d for (d,) in con.execute("SELECT DISTINCT district FROM staging.members").fetchall()
        ) == sorted(CODES)


def test_a_province_size_city_leaves_the_detail_rows_in_the_district_files(city, grown):
    """Past UNION_CITY_DETAIL_ROWS the city's file holds the marts, the quarantine and
    meta.detail (where each district's rows are); the detail stays in the district files."""
    with duckdb.connect(str(grown["province"]), read_only=True) as con:
        names = {
            n
            for (n,) in con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables()"
            ).fetchall()
        }
        assert "staging.members" not in names and "staging.mutual_aid_enrollments" not in names
        assert {"staging.quarantine", "staging.city_targets", "marts.kpi_yearly"} <= names
        marts = con.execute("SELECT count(*), sum(hash(t)) FROM marts.kpi_yearly t").fetchall()
        assert marts == grown["marts"]
        detail = con.execute(
            "SELECT district, row_count, district_file FROM meta.detail "
            "WHERE table_name = 'staging.members' ORDER BY district"
        ).fetchall()
        assert [d for d, _, _ in detail] == sorted(CODES)
        for code, rows, file in detail:
            assert file == f"districts/{code}.duckdb"
            con.execute(f"ATTACH '{live().parent / file}' AS d{code} (READ_ONLY)")
            attached = f"SELECT count(*) FROM d{code}.staging.members"
            assert con.execute(attached).fetchall()[0][0] == rows > 0
    # the city's file as published without the threshold holds them
    with duckdb.connect(str(live()), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0] > 0
