"""The whole graph, materialized for real into a temporary DuckDB file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.drops import MEMBER_HEADER, write_csv
from tests.runs import with_district
from union_pipeline.definitions import defs


def refresh(raw: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    """A refresh on a fresh instance (the warehouse and exports: the environment's)."""
    monkeypatch.setenv("UNION_RAW_DIR", str(raw))
    job = defs().resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        return job.execute_in_process(
            instance=instance, partition_key=with_district(instance), raise_on_error=False
        )


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_refresh_builds_and_publishes(refreshed_district):
    """The session's shared refresh of the small demo drop (every asset, one run)."""
    env = refreshed_district.live
    with refreshed_district.instance() as instance:
        run = instance.get_run_by_id(refreshed_district.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        checks = [
            e.dagster_event.event_specific_data
            for e in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
    with duckdb.connect(str(env), read_only=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables()"
            ).fetchall()
        }
        assert {
            "staging.members",
            "staging.quarantine",
            "marts.kpi_yearly",
            "marts.kpi_by_street",
            "marts.report_reconciliation",
        } <= tables
        assert con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0] > 1000
    assert not list(env.parent.glob(".union.build-*")), "the build file was swapped in"
    accounted = [c for c in checks if c.check_name == "rows_accounted_for"]
    assert accounted and all(c.passed for c in accounted)


def test_file_error_fails_the_refresh_and_keeps_the_warehouse(refreshed_district, monkeypatch):
    demo_drop, env = refreshed_district.raw, refreshed_district.live
    before = file_digest(env)
    broken = demo_drop / "members" / "zz-broken.csv"
    write_csv(broken, [h for h in MEMBER_HEADER if h != "入会日期"], [["M1"] * 9])
    result = refresh(demo_drop, monkeypatch)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    while error.cause is not None:  # Dagster wraps the user's error
        error = error.cause
    message = error.message
    assert "members/zz-broken.csv" in message and "入会日期 (join_date)" in message
    assert file_digest(env) == before


def test_no_clear_pii_in_any_table(refreshed_district):
    demo_drop, env = refreshed_district.raw, refreshed_district.live
    # not inside a longer run of hex digits: a person_key may hold 11 digits in a row
    id_like = re.compile(r"(?<![0-9a-fA-F])\d{17}[\dXx](?![0-9a-fA-F])")
    phone_like = re.compile(r"(?<![0-9a-fA-F])1[3-9]\d{9}(?![0-9a-fA-F])")
    names = _names_in_drop(demo_drop)
    with duckdb.connect(str(env), read_only=True) as con:
        columns = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for schema, table, column in columns:
            values = [
                v
                for (v,) in con.execute(
                    f'SELECT DISTINCT "{column}" FROM {schema}.{table} WHERE "{column}" IS NOT NULL'
                ).fetchall()
            ]
            for value in values:
                where = f"{schema}.{table}.{column}"
                assert not id_like.search(value), f"ID number in {where}"
                assert not phone_like.search(value), f"phone number in {where}"
                assert value not in names, f"a name in {where}"


def _names_in_drop(raw: Path) -> set[str]:
    import pyarrow.csv as pacsv

    names = set()
    for path in (raw / "members").glob("*.csv"):
        encoding = "gb18030"
        head = path.read_bytes()[:3]
        if head == b"\xef\xbb\xbf":
            encoding = "utf-8-sig"
        else:
            try:
                path.read_bytes().decode("utf-8")
                encoding = "utf-8"
            except UnicodeDecodeError:
                pass
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding.startswith("utf") else encoding
            ),
        )
        names |= {n.strip() for n in table.column("姓名").to_pylist() if n and n.strip()}
    assert names
    return names


@pytest.fixture(scope="module")
def demo_scale_1(tmp_path_factory):
    """The calibrated demo district (scale 1) refreshed once without the reports, for the
    tests below: (the run's result, the warehouse file). 1-2 minutes."""
    from tests.conftest import TEST_PII_KEY
    from union_demo import generate

    root = tmp_path_factory.mktemp("scale1")
    raw, warehouse = root / "raw1", root / "warehouse" / "union.duckdb"
    generate(raw, scale=1)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("UNION_PII_KEY", TEST_PII_KEY)
        env.setenv("UNION_WAREHOUSE", str(warehouse))
        env.setenv("UNION_EXPORT_DIR", str(root / "exports"))
        env.setenv("UNION_RAW_DIR", str(raw))
        definitions = defs()
        job = definitions.resolve_implicit_global_asset_job_def()
        graph = definitions.resolve_asset_graph()
        warehouse_keys = [
            k
            for k in graph.get_all_asset_keys()
            if graph.get(k).is_executable and k.path[0] != "reports"
        ]
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                instance=instance,
                partition_key=with_district(instance),
                asset_selection=warehouse_keys,
                raise_on_error=False,
            )
    return result, warehouse


@pytest.mark.system  # the full calibrated district
def test_demo_scale_1_reconciles_every_published_figure(demo_scale_1):
    result, warehouse = demo_scale_1
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT kpi_code, year, computed, lower, upper, match FROM marts.report_reconciliation"
        ).fetchall()
        shares = con.execute(
            "SELECT q.source, count(*) / any_value(s.n) FROM staging.quarantine q JOIN "
            "(SELECT 'members' AS source, count(*) AS n FROM staging.members) s USING (source) "
            "GROUP BY ALL"
        ).fetchall()
    assert len(rows) == 18
    assert [r for r in rows if not r[-1]] == []
    assert all(share < 0.05 for _, share in shares)
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks if c.check_name == "rows_accounted_for")
    assert all(c.passed for c in checks if c.check_name == "quarantine_under_threshold")


# the 2019 annual report's own words for its figures (工作总结), as the draft must write them
PUBLISHED_2019 = {
    "16.7169万人次": ("mutual_aid_enrollments", 167169),
    "1054余万元": ("mutual_aid_premium_yuan", None),  # 10,540,000-10,549,999
    "9909人次": ("mutual_aid_enrollments", 167169),
    "6.3%": ("mutual_aid_enrollments", 167169),
    "12496名": ("mutual_aid_claimants", 12496),
    "787.48万元": ("mutual_aid_benefit_yuan", None),  # rounded to 0.01万
    "3688人": ("loan_borrowers_cum", 3688),
    "6.8132亿元": ("loan_amount_cum_yuan", None),  # 0.0001亿
    "4456人": ("members_new", 4456),
    "37家": ("unions_new", 37),
    "1255家": ("unions_authorized", 1255),
    "143141人次": ("members_collected", 143141),
    "60.77%": ("members_collected_rate", None),
    "16421人次": ("members_app_verified", 16421),
    "66名": ("education_enrollees", 66),
    "28场": ("contest_events", 28),
}


@pytest.mark.system  # the full calibrated district
def test_demo_scale_1_work_summary_writes_the_published_figures(demo_scale_1):
    """The acceptance test of the work summary draft: its 2019 paragraphs carry the
    report's published figures, written as the report writes them, each sentence with the
    KPI codes and values it comes from."""
    from union_pipeline.reports import load_theme, read_report_data
    from union_pipeline.reports.summary import build_summary, read_quarantine_counts

    result, warehouse = demo_scale_1
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = read_report_data(con)
        counts = read_quarantine_counts(con)
    summary = build_summary(data, load_theme(lang="zh").of("330211"), counts)
    part_2019 = next(p for p in summary.parts if "2019年工作情况" in p.heading)
    sentences = [s for p in part_2019.paragraphs for s in p.sentences]
    text = "".join(s.text for s in sentences)
    found = [figure for figure in PUBLISHED_2019 if figure in text]
    assert len(found) >= 14, f"missing: {sorted(set(PUBLISHED_2019) - set(found))}"
    assert "较去年增加9909人次，同比增长6.3%" in text
    assert "12496名职工申领医疗互助补助金787.48万元" in text
    for figure in found:
        code, value = PUBLISHED_2019[figure]
        sentence = next(s for s in sentences if figure in s.text)
        assert code in sentence.codes, figure
        if value is not None:
            assert (f"{code}.actual", float(value)) in sentence.values, figure
    # and the 2020 year to date, and what needs attention
    assert any(p.heading.startswith("二、2020年1–9月") for p in summary.parts)
    assert summary.parts[-1].heading == "三、数据研判"
