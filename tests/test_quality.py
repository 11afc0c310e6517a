"""Great Expectations on the warehouse: each kind of bad warehouse fails the right check.

Real drops on disk, real refreshes into real DuckDB files, real Dagster runs; the Data
Docs site is opened in headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from tests.drops import id_number, write_csv
from tests.runs import materializations, with_district
from union_pipeline.assetkit.outputs import INPUTS, MADE_IN_RUN, REUSED, latest, output_metadata
from union_pipeline.definitions import defs
from union_pipeline.defs.quality.checks import layer_checks, reusable_result, suite_checks
from union_pipeline.ingest.specs import load_specs
from union_pipeline.quality import QualityError, load_suites
from union_pipeline.quality.frames import compute_frame
from union_pipeline.quality.suites import FrameSpec, load_suite
from union_pipeline.quality.validate import compute_frames, validate

AS_OF = dt.date(2020, 9, 30)
YEARS = range(2017, 2021)
STREETS = [
    "招宝山街道",
    "蛟川街道",
    "骆驼街道",
    "庄市街道",
    "贵驷街道",
    "澥浦镇",
    "九龙湖镇",
    "区直机关",
]
CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------- a steady district


def _write(raw: Path, source: str, rows: list[dict]) -> None:
    spec = load_specs()[source]
    header = [c.header for c in spec.columns]
    write_csv(
        raw / spec.folder / f"{source}.csv",
        header,
        [[r.get(c.name, "") for c in spec.columns] for r in rows],
    )


def _days(year: int, count: int, start: int = 0, step: int = 5) -> list[dt.date]:
    """`count` dates spread over `year`, the same days every year, none after the as-of date."""
    first = dt.date(year, 1, 1)
    days = [first + dt.timedelta(days=start + i * step) for i in range(count)]
    return [d for d in days if d.year == year and d <= AS_OF]


def _person(n: int) -> str:
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=97 * n % 14600)  # born 1960-1999
    return id_number(birth=birth.strftime("%Y%m%d"), seq=f"{n % 1000:03d}")


def steady_drop(raw: Path, new_members_2019: int = 60) -> Path:
    """A small district whose figures move steadily from year to year (so that every
    plausibility check passes), with every source; `new_members_2019` bends one KPI."""
    unions = []
    for i in range(24):
        founded = (
            dt.date(2000 + i % 12, 3, 1)
            if i < 16
            else dt.date(2017 + (i - 16) // 2, 3 + 3 * (i % 2), 1)
        )
        unions.append(
            {
                "union_id": f"U{i:02d}",
                "union_name": f"第{i}公司工会",
                "street": STREETS[i % 8],
                "org_type": "企业",
                "employee_count": "120",
                "founded_date": founded.isoformat(),
                "authorized_date": (founded + dt.timedelta(days=30)).isoformat(),
                "star_rating": "3",
            }
        )
    _write(raw, "unions", unions)

    members, n = [], 0
    for year in range(2010, 2021):
        per_year = new_members_2019 if year == 2019 else 60
        for day in _days(year, per_year, step=365 // per_year):
            members.append(
                {
                    "member_id": f"M{n:05d}",
                    "name": "张三",
                    "id_number": _person(n),
                    "union_id": f"U{n % 16:02d}",
                    "join_date": day.isoformat(),
                    "collected_date": (day + dt.timedelta(days=10)).isoformat(),
                    "app_verified_date": (day + dt.timedelta(days=20)).isoformat() if n % 2 else "",
                    "frontline": "是" if n % 3 else "否",
                }
            )
            n += 1
    _write(raw, "members", members)
    early = [m for m in members if m["join_date"] < "2014-01-01"]  # members in every year

    enrollments, claims, loans = [], [], []
    for year in YEARS:
        for i, day in enumerate(_days(year, 40, step=2)):
            m = early[(i * 7 + year) % len(early)]
            eid = f"E{year}{i:03d}"
            enrollments.append(
                {
                    "enrollment_id": eid,
                    "id_number": m["id_number"],
                    "union_id": m["union_id"],
                    "plan_year": str(year),
                    "enrolled_date": day.isoformat(),
                    "premium_yuan": "100",
                    "plan_type": ["住院医疗互助", "特殊病种", "女职工安康"][i % 3],
                }
            )
        for i, day in enumerate(_days(year, 21, start=100, step=12)):
            claims.append(
                {
                    "claim_id": f"C{year}{i:03d}",
                    "enrollment_id": f"E{year}{i:03d}",
                    "claim_date": day.isoformat(),
                    "benefit_yuan": "800",
                    "status": ["已发放", "审核中", "不予补助"][i % 3],
                }
            )
        for i, day in enumerate(_days(year, 15, step=24)):
            m = early[(i * 11 + year * 3) % len(early)]
            loans.append(
                {
                    "loan_id": f"L{year}{i:03d}",
                    "id_number": m["id_number"],
                    "disbursed_date": day.isoformat(),
                    "amount_yuan": "50000",
                    "term_months": "12",
                    "bank": "宁波银行",
                    "status": "正常",
                }
            )
    _write(raw, "mutual_aid_enrollments", enrollments)
    _write(raw, "mutual_aid_claims", claims)
    _write(raw, "loans", loans)

    training, r = [], 0
    for year in YEARS:
        for program, sessions, size in (
            ("吾意乐学", 10, 5),
            ("学历提升", 6, 1),
            ("雄镇杯技能竞赛", 4, 3),
            ("技能培训", 3, 4),
        ):
            for s, day in enumerate(_days(year, sessions, start=10, step=30)):
                for _ in range(size):
                    training.append(
                        {
                            "record_id": f"T{r:05d}",
                            "id_number": _person(5000 + r),
                            "program": program,
                            "session_id": f"{program}-{year}-{s}",
                            "session_date": day.isoformat(),
                            "hours": "4",
                            "completed": "是",
                        }
                    )
                    r += 1
    _write(raw, "training", training)
    _write(
        raw,
        "targets",
        [
            {
                "kpi_code": "members_total",
                "year": "2019",
                "target_value": "500",
                "comparator": ">=",
            },
            {"kpi_code": "members_collected_rate", "year": "2019", "target_value": "0.9"},
        ],
    )
    _write(
        raw,
        "published",
        [
            {
                "kpi_code": "unions_new",
                "year": "2019",
                "published": "2",
                "lower": "2",
                "upper": "2",
            },
        ],
    )
    return raw


# ---------------------------------------------------------------- running it


def _set_env(monkeypatch, root: Path) -> None:
    monkeypatch.setenv("UNION_WAREHOUSE", str(root / "warehouse" / "union.duckdb"))
    monkeypatch.setenv("UNION_EXPORT_DIR", str(root / "exports"))
    monkeypatch.setenv("UNION_PII_KEY", "test-key")
    monkeypatch.setenv("UNION_AS_OF", AS_OF.isoformat())


@pytest.fixture
def env(request, tmp_path, monkeypatch):
    """The folder of the warehouse and the exports, set in the environment: a test of the
    steady district (it asks for `steady`) gets the refreshed steady state's, restored."""
    root = tmp_path
    if "steady" in request.fixturenames:
        root = request.getfixturevalue("steady_state").use()
    _set_env(monkeypatch, root)
    return root


@pytest.fixture
def instance(request, env):
    """A fresh instance; a test of the steady district gets the steady state's, restored."""
    home = str(env / "home") if "steady" in request.fixturenames else None
    with dg.instance_for_test(temp_dir=home) as instance:
        yield instance


# The reports render charts in a browser (most of a refresh's time) and are not what these
# tests are about: refresh everything else.
WAREHOUSE_ONLY = dg.AssetSelection.all() - dg.AssetSelection.key_prefixes(["reports"])


def refresh(raw: Path, monkeypatch, instance, definitions=None):
    monkeypatch.setenv("UNION_RAW_DIR", str(raw))
    job = dg.define_asset_job("warehouse_refresh", selection=WAREHOUSE_ONLY)
    merged = dg.Definitions.merge(definitions or defs(), dg.Definitions(jobs=[job]))
    return merged.resolve_job_def("warehouse_refresh").execute_in_process(
        instance=instance, partition_key=with_district(instance), raise_on_error=False
    )


def run_checks_alone(instance, *assets: str, definitions=None):
    """Run the gx checks of these assets by themselves: they read their latest outputs."""
    definitions = definitions or defs()
    wanted = {dg.AssetKey(asset.split("/")) for asset in assets}
    keys = [
        k
        for k in definitions.resolve_asset_graph().asset_check_keys
        if k.asset_key in wanted and k.name.startswith("gx_")
    ]
    job = dg.define_asset_job("gx_only", selection=dg.AssetSelection.checks(*keys))
    merged = dg.Definitions.merge(definitions, dg.Definitions(jobs=[job]))
    # a checks-only job has no asset to take the partitions from: the run's tag says which
    return merged.resolve_job_def("gx_only").execute_in_process(
        instance=instance,
        tags={"dagster/partition": with_district(instance)},
        raise_on_error=False,
    )


def duplicate_a_member(instance) -> None:
    """A members materialization with a row twice, as a broken writer would record: the
    checks validate what the latest materialization holds."""
    found = latest(instance, dg.AssetKey(["staging", "members"]), with_district(instance))
    [path] = found.tables.values()
    broken = Path(path).with_name("broken.parquet")
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT * FROM read_parquet('{path}') UNION ALL
                              SELECT * FROM read_parquet('{path}') WHERE member_id = 'M00042')
                        TO '{broken}' (FORMAT parquet)""")
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=["staging", "members"],
            partition=with_district(instance),
            metadata=output_metadata("broken", {"staging.members": broken}),
        )
    )


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in result.get_asset_check_evaluations()
    }


def text(evaluation, key: str) -> str:
    value = evaluation.metadata[key]
    return str(getattr(value, "value", getattr(value, "text", value)))


@pytest.fixture(scope="module")
def steady_state(tmp_path_factory):
    """The steady district refreshed once for this module (its own instance in home/),
    saved and put back where it was made before each test of it (tests/shared.py)."""
    from tests.shared import SavedState

    state = SavedState(tmp_path_factory.mktemp("steady") / "state")
    state.raw = steady_drop(state.root / "raw")
    (state.root / "home").mkdir()
    with (
        pytest.MonkeyPatch.context() as mp,
        dg.instance_for_test(temp_dir=str(state.root / "home")) as instance,
    ):
        _set_env(mp, state.root)
        state.first = refresh(state.raw, mp, instance)
    assert state.first.success
    state.save()
    return state


@pytest.fixture
def steady(steady_state, env, instance):
    """The steady district after its first refresh: (raw drop, that refresh's result); the
    test's `env` and `instance` are that refresh's."""
    return steady_state.raw, steady_state.first


# ---------------------------------------------------------------- the contract


def test_checks_and_severities_are_the_contract():
    graph = defs().resolve_asset_graph()
    gx = {
        f"{k.asset_key.to_user_string()}:{k.name}": graph.get_check_spec(k)
        for k in graph.asset_check_keys
        if k.name.startswith("gx_")
    }
    blocking = {name for name, spec in gx.items() if spec.blocking}
    assert {
        "staging/members:gx_keys_unique",
        "staging/members:gx_derived_values",
        "marts/kpi_by_street:gx_streets_bound_district",
        "marts/report_reconciliation:gx_agrees_with_kpi_yearly",
    } <= blocking
    warning = set(gx) - blocking
    assert {"staging/members:gx_volume", "marts/kpi_yearly:gx_yoy_within_bounds"} <= warning
    # every staging table and the three marts have suites; volumes on every data source
    assert {name.split(":")[0] for name in gx} == {
        *(f"staging/{s}" for s in load_specs()),
        "marts/kpi_yearly",
        "marts/kpi_by_street",
        "marts/report_reconciliation",
    }
    for source in (
        "unions",
        "members",
        "mutual_aid_enrollments",
        "mutual_aid_claims",
        "loans",
        "training",
    ):
        assert f"staging/{source}:gx_volume" in warning
        assert f"staging/{source}:gx_keys_unique" in blocking
    for name in gx:
        kind = name.split(":gx_")[1]
        assert (name in blocking) == (
            kind not in {"volume", "yoy_within_bounds", "ranges"} and not kind.endswith("_covered")
        ), name


def test_definitions_load_without_importing_great_expectations():
    code = (
        "import sys; from union_pipeline.definitions import defs; defs(); "
        "assert 'great_expectations' not in sys.modules, 'GX imported at load time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_every_shipped_expectation_is_a_valid_gx_expectation():
    from union_pipeline.quality.validate import _gx_expectation

    count = 0
    for suite in load_suites():
        for check in suite.checks:
            for i, exp in enumerate(check.expectations):
                _gx_expectation(exp, i, f"{suite.path.name}:{check.name}")
                count += 1
    assert count > 50


def test_a_malformed_suite_is_refused_with_its_file_and_check(tmp_path):
    path = tmp_path / "staging.members.yaml"
    path.write_text(
        "table: staging.members\nchecks:\n  keys:\n    severity: fatal\n"
        "    data: {duplicates_of: [member_id]}\n"
        "    expect: [{expect_column_values_to_be_unique: {column: member_id}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(QualityError, match=r"staging.members.yaml: check keys: severity"):
        load_suite(path)


# ---------------------------------------------------------------- frames: small and exact


@pytest.fixture
def big(tmp_path):
    """A 'province': two million members, two keys repeated, in a real DuckDB file."""
    con = duckdb.connect(str(tmp_path / "big.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.members AS
        SELECT 'M' || i AS member_id, CASE WHEN i % 2 = 0 THEN '男' ELSE '女' END AS gender,
               CAST(1950 + i % 50 AS INTEGER) AS birth_year,
               DATE '1990-01-01' + CAST(i % 10000 AS INTEGER) AS join_date
        FROM range(2000000) t(i)""")
    con.execute(
        "INSERT INTO staging.members SELECT * FROM staging.members "
        "WHERE member_id IN ('M17', 'M1234567')"
    )
    yield con
    con.close()


def test_frames_are_small_and_decide_exactly(big):
    members = "staging.members"
    dup = compute_frame(big, FrameSpec("duplicates_of", members, ("member_id",), rows=1000))
    assert sorted(dup.df["member_id"]) == ["M1234567", "M1234567", "M17", "M17"]
    assert "2 key(s) occur more than once" in dup.note
    distinct = compute_frame(big, FrameSpec("distinct_of", members, ("gender",)))
    assert distinct.df.to_dict("list") == {"gender": ["女", "男"], "row_count": [1000002, 1000000]}
    ext = compute_frame(big, FrameSpec("extremes_of", members, ("birth_year", "join_date")))
    assert ext.df.to_dict("list") == {
        "stat": ["min", "max"],
        "birth_year": [1950, 1999],
        "join_date": [dt.date(1990, 1, 1), dt.date(2017, 5, 18)],
    }
    sample = compute_frame(big, FrameSpec("sample_of", members, ("birth_year",), rows=5000))
    assert len(sample.df) == 5000 and "estimates" in sample.note
    volume = compute_frame(big, FrameSpec("volume", members), previous_rows=3000004)
    assert volume.df["change"].iloc[0] == pytest.approx(2000002 / 3000004 - 1)


def test_uniqueness_over_millions_fails_with_the_repeated_keys(big, tmp_path):
    suite = {s.table: s for s in load_suites()}["staging.members"]
    checks = [c for c in suite.checks if c.name in ("keys_unique", "derived_values")]
    frames = compute_frames(big, suite, checks)
    assert max(len(f.df) for f, _ in frames.values()) < 200  # never the table itself
    outcomes = {o.check.name: o for o in validate(suite, frames)}
    keys = outcomes["keys_unique"]
    assert not keys.passed
    (failure,) = keys.failures
    assert failure.label == "expect_column_values_to_be_unique(column=member_id)"
    assert failure.observed.startswith("4 of 4 values unexpected")
    assert set(failure.evidence["member_id"]) == {"M17", "M1234567"}
    assert set(failure.evidence["copies"]) == {2}
    # birth year is never null here, gender only 男/女: that check passes
    assert outcomes["derived_values"].passed


def test_an_expectation_gx_cannot_evaluate_fails_its_check(big, tmp_path):
    path = tmp_path / "staging.members.yaml"
    path.write_text(
        """table: staging.members
checks:
  typo:
    severity: warn
    data: {extremes_of: [join_date]}
    expect:
      - expect_column_min_to_be_between: {column: join_dat, min_value: 1950-01-01}
""",
        encoding="utf-8",
    )
    suite = load_suite(path)
    (outcome,) = validate(suite, compute_frames(big, suite))
    assert not outcome.passed
    assert outcome.failures[0].error and "join_dat" in outcome.failures[0].error


def test_a_check_changed_in_the_process_is_validated_as_it_now_reads(tmp_path):
    """GX's definition of a check is made once per process, while the check stays as it
    is written: a changed check (same name) is validated as changed, and back again."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.members AS SELECT range AS birth_year FROM range(1950, 2000)")

    def suite_with(lowest: int):
        path = tmp_path / str(lowest) / "staging.members.yaml"
        path.parent.mkdir()
        path.write_text(
            f"""table: staging.members
checks:
  born_after:
    severity: warn
    data: {{extremes_of: [birth_year]}}
    expect:
      - expect_column_min_to_be_between: {{column: birth_year, min_value: {lowest}}}
""",
            encoding="utf-8",
        )
        return load_suite(path)

    strict, lax = suite_with(1960), suite_with(1900)
    for suite, passes in ((strict, False), (lax, True), (strict, False), (strict, False)):
        (outcome,) = validate(suite, compute_frames(con, suite), docs_dir=tmp_path / "docs")
        assert outcome.passed is passes
    manifest = json.loads((tmp_path / "docs" / "gx" / "docs-manifest.json").read_text())
    results = manifest["suites"]["staging.members.born_after"]["results"]
    assert [r["success"] for r in results] == [False, False, True, False]  # newest first


# ---------------------------------------------------------------- in Dagster, for real


def test_clean_refresh_passes_every_suite_and_writes_data_docs(steady, env):
    _, result = steady
    checks = {k: e for k, e in evaluations(result).items() if ":gx_" in k}
    assert len(checks) == sum(len(s.checks) for s in load_suites())
    failed = {k: text(e, "evidence") for k, e in checks.items() if not e.passed}
    assert not failed, failed
    members = checks["staging/members:gx_keys_unique"]
    assert members.severity == dg.AssetCheckSeverity.ERROR
    docs = env / "exports" / text(members, "data_docs")  # relative to the export folder
    assert docs == env / "exports" / "data_docs" / "index.html" and docs.exists()
    page = env / "exports" / text(members, "validation_result")
    assert page.exists() and page.is_relative_to(docs.parent)
    assert "no key occurs twice" in text(members, "gx_frame")


def test_a_duplicated_key_fails_the_blocking_key_check_with_the_key(steady, env, instance):
    duplicate_a_member(instance)
    result = run_checks_alone(instance, "staging/members")
    checks = evaluations(result)
    keys = checks["staging/members:gx_keys_unique"]
    assert not keys.passed and keys.severity == dg.AssetCheckSeverity.ERROR
    assert text(keys, "expectation") == "expect_column_values_to_be_unique(column=member_id)"
    assert text(keys, "observed") == "2 of 2 values unexpected: [M00042, M00042]"
    assert re.search(r"\|\s*M00042\s*\|\s*2\s*\|", text(keys, "evidence"))  # key, copies
    assert checks["staging/members:gx_derived_values"].passed
    # the failure is also in the Data Docs page the check links
    page = env / "exports" / text(keys, "validation_result")
    assert "M00042" in page.read_text(encoding="utf-8")


def test_a_source_losing_a_third_warns_and_the_refresh_goes_on(steady, env, monkeypatch, instance):
    raw, first = steady
    members = raw / "members" / "members.csv"
    lines = members.read_text(encoding="utf-8").splitlines()
    members.write_text("\n".join(lines[: 1 + (len(lines) - 1) * 6 // 10]) + "\n", encoding="utf-8")
    result = refresh(raw, monkeypatch, instance)
    assert result.success, "a WARN check never stops a refresh"
    checks = evaluations(result)
    volume = checks["staging/members:gx_volume"]
    assert not volume.passed and volume.severity == dg.AssetCheckSeverity.WARN
    assert text(volume, "previous_refresh_run") == first.run_id
    observed = float(text(volume, "observed").split("[")[1].rstrip("]"))
    assert observed == pytest.approx(-0.4, abs=0.01)
    assert "at the previous successful refresh (-40" in text(volume, "gx_frame")
    assert checks["staging/unions:gx_volume"].passed  # the others did not move
    with duckdb.connect(str(env / "warehouse" / "union.duckdb"), read_only=True) as con:
        loaded = con.execute("SELECT count(*) FROM staging.members").fetchall()[0][0]
    assert loaded == (len(lines) - 1) * 6 // 10, "published despite the warning"
    # run alone from the UI, the check compares the live state with the refresh before it
    alone = evaluations(run_checks_alone(instance, "staging/members"))["staging/members:gx_volume"]
    assert not alone.passed and text(alone, "previous_refresh_run") == first.run_id


def test_a_kpi_jumping_300_percent_warns_with_the_kpi_and_year(
    env, tmp_path, monkeypatch, instance
):
    raw = steady_drop(tmp_path / "raw", new_members_2019=240)  # 60 a year, then 240
    result = refresh(raw, monkeypatch, instance)
    assert result.success
    yoy = evaluations(result)["marts/kpi_yearly:gx_yoy_within_bounds"]
    assert not yoy.passed and yoy.severity == dg.AssetCheckSeverity.WARN
    evidence = text(yoy, "evidence")
    assert (
        "expect_column_values_to_be_between(column=yoy_pct, min_value=-0.5, "
        "max_value=1.0) where kpi_code = members_new" in evidence
    )
    rows = [r for r in evidence.splitlines() if "members_new" in r and "2019" in r]
    assert rows and re.search(r"\|\s+3\s+\|$", rows[0]), evidence  # +300 %
    # the way back down is also out of bounds: 2020 to date against 2019 to date
    assert any("members_new" in r and "2020" in r for r in evidence.splitlines())


def test_a_failing_error_check_blocks_the_marts_and_the_publish(
    steady, env, tmp_path, monkeypatch, instance
):
    raw, first = steady
    live = env / "warehouse" / "union.duckdb"
    before = live.read_bytes()
    suite_file = tmp_path / "suites" / "staging.unions.yaml"
    suite_file.parent.mkdir()
    suite_file.write_text(
        """table: staging.unions
title: a stricter roster
checks:
  streets_allowlist:
    severity: error
    description: only the city-centre streets (a rule this district breaks)
    data: {distinct_of: [street]}
    expect:
      - expect_column_distinct_values_to_be_in_set: {column: street, value_set: [招宝山街道]}
""",
        encoding="utf-8",
    )
    strict = dg.Definitions.merge(
        defs(), dg.Definitions(asset_checks=[suite_checks(load_suite(suite_file), "strict")])
    )
    blocked = refresh(raw, monkeypatch, instance, strict)
    assert not blocked.success
    check = evaluations(blocked)["staging/unions:gx_streets_allowlist"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "蛟川街道" in text(check, "observed")
    built = {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
    assert "staging/unions" in built
    assert "marts/kpi_yearly" not in built and "warehouse/union_duckdb" not in built
    assert live.read_bytes() == before, "the live warehouse is the first refresh's"
    # unchanged, the failed result stands (reused, not run again) and still blocks
    again = refresh(raw, monkeypatch, instance, strict)
    assert not again.success
    check = evaluations(again)["staging/unions:gx_streets_allowlist"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata[REUSED].value and check.metadata[MADE_IN_RUN].value == blocked.run_id
    built = {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()}
    assert "marts/kpi_yearly" not in built and live.read_bytes() == before
    # the blocked runs never became refreshes: the next change compares with the first
    unions = raw / "unions" / "unions.csv"
    last = unions.read_text(encoding="utf-8").splitlines()[-1]
    with open(unions, "a", encoding="utf-8") as f:
        f.write(last.replace("U23", "U99", 1) + "\n")
    third = refresh(raw, monkeypatch, instance)
    volume = evaluations(third)["staging/unions:gx_volume"]
    assert volume.passed and text(volume, "previous_refresh_run") == first.run_id
    assert not volume.metadata[REUSED].value


# ---------------------------------------------------------------- only what changed


def gx_evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {k: e for k, e in evaluations(result).items() if ":gx_" in k}


def reused(evaluation) -> bool:
    return evaluation.metadata[REUSED].value


def made_in(evaluation) -> str:
    return evaluation.metadata[MADE_IN_RUN].value


def test_unchanged_tables_report_their_previous_results(steady, env, monkeypatch, instance):
    raw, first = steady
    before = gx_evaluations(first)
    assert not any(reused(e) for e in before.values())
    second = refresh(raw, monkeypatch, instance)
    assert second.success
    again = gx_evaluations(second)
    assert again.keys() == before.keys()
    for name, e in again.items():
        assert reused(e) and made_in(e) == first.run_id, name
        assert e.passed == before[name].passed and e.severity == before[name].severity
        assert text(e, "expectations") == text(before[name], "expectations")
        assert text(e, "validation_result") == text(before[name], "validation_result")
        assert e.partition == before[name].partition
    # a volume judges a table when it changed: unchanged, "no previous refresh" stands
    assert "previous_refresh_run" not in again["staging/members:gx_volume"].metadata
    # nothing new was validated, so the Data Docs history did not grow
    manifest = json.loads((env / "exports" / "data_docs" / "gx" / "docs-manifest.json").read_text())
    assert all(len(info["results"]) == 1 for info in manifest["suites"].values())

    # one source changes: its checks (and the marts') run again, the others stand
    members = raw / "members" / "members.csv"
    lines = members.read_text(encoding="utf-8").splitlines()
    members.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    third_run = refresh(raw, monkeypatch, instance)
    third = gx_evaluations(third_run)
    for name in ("keys_unique", "derived_values", "ranges", "volume"):
        e = third[f"staging/members:gx_{name}"]
        assert not reused(e) and e.passed, name
    volume = third["staging/members:gx_volume"]
    assert "at the previous successful refresh (-0.2%)" in text(volume, "gx_frame")
    assert text(volume, "previous_refresh_run") == second.run_id
    assert not reused(third["marts/kpi_yearly:gx_prior_year_chain"])
    assert made_in(third["staging/unions:gx_keys_unique"]) == first.run_id
    assert made_in(third["staging/unions:gx_volume"]) == first.run_id
    # loans refer to members: their references were checked again over their rows; when
    # no row moved (the member who left had no loan) the loans table is the same data, and
    # its checks stand; when one did, it is a new table, checked again
    loans = materializations(third_run)["staging/loans"]
    assert loans["staged_from"].startswith("its last output")
    same_rows = loans["union/version"] == materializations(second)["staging/loans"]["union/version"]
    assert reused(third["staging/loans:gx_keys_unique"]) == same_rows


def test_a_failed_blocking_result_is_reused_as_failed(steady, env, instance):
    duplicate_a_member(instance)
    first = evaluations(run_checks_alone(instance, "staging/members"))
    second = run_checks_alone(instance, "staging/members")
    again = evaluations(second)
    keys = again["staging/members:gx_keys_unique"]
    assert reused(keys) and made_in(keys) == made_in(first["staging/members:gx_keys_unique"])
    assert not keys.passed and keys.severity == dg.AssetCheckSeverity.ERROR
    assert text(keys, "observed") == "2 of 2 values unexpected: [M00042, M00042]"
    assert text(keys, "evidence") == text(first["staging/members:gx_keys_unique"], "evidence")
    # the district's latest evaluation is the failed one: the publish stays blocked
    check_key = dg.AssetCheckKey(dg.AssetKey(["staging", "members"]), "gx_keys_unique")
    latest_record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[
        check_key
    ]
    assert latest_record.run_id == second.run_id
    assert latest_record.evaluation.passed is False
    assert latest_record.evaluation.blocking
    # another district's evaluation is not this one's: the same data there runs GX again
    instance.add_dynamic_partitions("district", ["330299"])
    assert (
        reusable_result(
            instance,
            dg.AssetKey(["staging", "members"]),
            members_keys_check(),
            keys.metadata[INPUTS].value,
            "330299",
            env / "exports" / "data_docs",
        )
        is None
    )


def test_a_check_step_publishes_its_suites_pages_in_one_build(steady, env, instance, monkeypatch):
    from union_pipeline.quality.validate import gx_context

    site = env / "exports" / "data_docs"
    shutil.rmtree(site)  # no page to link: every check is validated again
    context = gx_context()
    build, builds = context.build_data_docs, []

    def counted(*args, **kwargs):
        builds.append(kwargs)
        return build(*args, **kwargs)

    monkeypatch.setattr(context, "build_data_docs", counted)
    # two tables' suites in one step (staging_checks)
    result = run_checks_alone(instance, "staging/members", "staging/unions")
    assert result.success
    checks = gx_evaluations(result)
    assert {k.split(":")[0] for k in checks} == {"staging/members", "staging/unions"}
    assert len(builds) == 1, "one Data Docs build for the step's suites"
    manifest = json.loads((site / "gx" / "docs-manifest.json").read_text(encoding="utf-8"))
    index = (site / "index.html").read_text(encoding="utf-8")
    for name, e in checks.items():
        assert not reused(e) and e.passed, name
        assert (env / "exports" / text(e, "validation_result")).is_file(), name
        assert (env / "exports" / text(e, "data_docs")) == site / "index.html"
        suite = text(e, "expectation_suite")
        assert len(manifest["suites"][suite]["results"]) == 1
        assert f'data-suite="{suite}"' in index
        assert float(text(e, "seconds")) > 0


def test_a_suite_that_cannot_be_validated_fails_its_step_after_the_others_report(
    steady, env, instance, tmp_path
):
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "staging.unions.yaml").write_text(
        """table: staging.unions
title: fine
checks:
  streets_named:
    severity: warn
    description: every union has a street
    data: {distinct_of: [street]}
    expect:
      - expect_column_values_to_not_be_null: {column: street}
""",
        encoding="utf-8",
    )
    (suites / "staging.members.yaml").write_text(
        """table: staging.members
title: broken
checks:
  no_such_expectation:
    severity: warn
    description: an expectation GX does not have
    data: {distinct_of: [gender]}
    expect:
      - expect_column_values_to_be_lovely: {column: gender}
""",
        encoding="utf-8",
    )
    fine, broken = (load_suite(suites / f"staging.{t}.yaml") for t in ("unions", "members"))
    step = layer_checks("two_suites", "a fine suite, then a broken one", [fine, broken])
    both = dg.Definitions.merge(defs(), dg.Definitions(asset_checks=[step]))
    result = run_checks_alone(instance, "staging/unions", "staging/members", definitions=both)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "two_suites")
    assert "not a GX expectation" in str(failure.event_specific_data.error)
    # the suite validated before it reports, its page published
    checks = evaluations(result)
    assert "staging/members:gx_no_such_expectation" not in checks
    fine_check = checks["staging/unions:gx_streets_named"]
    assert fine_check.passed
    assert (env / "exports" / text(fine_check, "validation_result")).is_file()


def members_keys_check():
    suite = {s.table: s for s in load_suites()}["staging.members"]
    return next(c for c in suite.checks if c.name == "keys_unique")


def test_one_gx_context_serves_every_validation(big, tmp_path):
    from union_pipeline.quality.validate import gx_context

    suite = {s.table: s for s in load_suites()}["staging.members"]
    frames = compute_frames(big, suite)
    validate(suite, frames, docs_dir=tmp_path / "a", run_name="one")
    context = gx_context()
    validate(suite, frames, docs_dir=tmp_path / "b", run_name="two")
    validate(suite, frames)
    assert gx_context() is context
    assert type(context).__name__ == "EphemeralDataContext"
    # each site has its pages; the results are on disk, not piling up in memory
    for site in ("a", "b"):
        assert (tmp_path / site / "index.html").exists()
        assert list((tmp_path / site / "validations").rglob("*.html"))
    assert not context.validation_results_store.list_keys()


def test_a_step_builds_its_data_docs_once_for_every_suite(big, tmp_path, monkeypatch):
    """GX sets up its renderers anew in each build: a check step's suites are validated
    first and their pages built in one call (DocsBatch), each page there, each suite in
    the index, and the outcomes carrying their share of the time."""
    from union_pipeline.quality.validate import DocsBatch, gx_context

    suite = {s.table: s for s in load_suites()}["staging.members"]
    frames = compute_frames(big, suite)
    context = gx_context()
    builds = []
    original = type(context).build_data_docs

    def counted(self, *args, **kwargs):
        builds.append(kwargs.get("resource_identifiers"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(context), "build_data_docs", counted)
    batch = DocsBatch()
    # two validations, as of two suites: each adds its results to the batch
    outcomes = [
        outcome
        for run_name in ("r1", "r2")
        for outcome in validate(suite, frames, docs_dir=tmp_path, run_name=run_name, batch=batch)
    ]
    assert not builds and not (tmp_path / "index.html").exists()  # nothing before publish
    batch.publish()
    assert len(builds) == 1
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    pages = {outcome.page for outcome in outcomes}
    assert len(pages) == len(outcomes) == 2 * len(suite.checks)
    assert all(page is not None and page.exists() for page in pages)
    assert all(outcome.gx_suite in index and outcome.seconds > 0 for outcome in outcomes)
    assert not context.validation_results_store.list_keys()


# ---------------------------------------------------------------- Data Docs, offline


def _dump_dom(page: Path, profile: Path) -> str:
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
def test_data_docs_open_offline_in_chromium(steady, env, instance, tmp_path):
    duplicate_a_member(instance)
    failing = evaluations(run_checks_alone(instance, "staging/members"))
    site = env / "exports" / "data_docs"
    dom = _dump_dom(site / "index.html", tmp_path / "chromium")
    shown = set(re.findall(r'<tr class="suite" data-suite="([^"]+)"', dom))
    assert shown == {s.gx_suite_name(c) for s in load_suites() for c in s.checks}
    row = re.search(
        r'<tr class="suite" data-suite="staging.members.keys_unique">(.*?)</tr>', dom, re.S
    ).group(1)
    assert "✘" in row and "0/1 expectations met" in row and "✔" in row  # history: passed
    page = env / "exports" / text(failing["staging/members:gx_keys_unique"], "validation_result")
    page_dom = _dump_dom(page, tmp_path / "chromium")
    visible = re.sub(r"<(script|style)\b.*?</\1>", "", page_dom, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", visible)
    assert "staging.members.keys_unique" in visible and "values must be unique" in visible
    assert "M00042" in visible
    for html_file in site.rglob("*.html"):  # nothing is fetched from the network
        html = html_file.read_text(encoding="utf-8")
        assert not re.search(r'<(script|link|img)\b[^>]*(src|href)="https?://', html), html_file
        assert not re.search(r"url\(\s*['\"]?https?://", html), html_file


def test_data_docs_keep_a_bounded_history(tmp_path, big):
    from union_pipeline.quality import datadocs

    suite = {s.table: s for s in load_suites()}["staging.members"]
    checks = [c for c in suite.checks if c.name == "keys_unique"]
    frames = compute_frames(big, suite, checks)
    for i in range(datadocs.KEEP_RESULTS + 3):
        validate(suite, frames, docs_dir=tmp_path / "docs", run_name=f"run{i:03d}")
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    stored = list((tmp_path / "docs" / "gx" / "validations").rglob("*.json"))
    assert len(pages) == len(stored) == datadocs.KEEP_RESULTS
    assert not any("run000" in str(p) for p in pages)


def test_evidence_frames_do_not_carry_full_person_keys():
    from union_pipeline.quality.suites import ExpectationDef
    from union_pipeline.quality.validate import _evidence

    frame = pd.DataFrame({"person_key": ["a" * 64, "a" * 64], "copies": [2, 2]})
    rows = _evidence(
        frame,
        ExpectationDef("expect_column_values_to_be_unique", {"column": "person_key"}),
        {"partial_unexpected_index_list": [0, 1]},
    )
    assert list(rows["person_key"]) == ["aaaaaaaa…"]
