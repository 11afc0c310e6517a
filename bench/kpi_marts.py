"""Time the KPI marts on synthetic staging data (default ~10M members, 25M enrolments).

    .venv/bin/python bench/kpi_marts.py [--members 10000000] [--enrolments 25000000]
                                        [--path /tmp/kpi_bench.duckdb] [--keep]

Generates staging.* in a temporary DuckDB file with SQL (range() + random()), then times
resolve_refresh_context, build_kpi_yearly, build_kpi_by_street and
build_report_reconciliation (and build_kpi_by_street without the persons counts).
Years of activity 2015..2020, as of 2020-09-30 (incomplete): 6 years, 11 evaluation dates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from union_pipeline.kpis import (  # noqa: E402
    build_kpi_by_street,
    build_kpi_yearly,
    build_report_reconciliation,
    resolve_refresh_context,
)

AS_OF = dt.date(2020, 9, 30)
STREETS = ["招宝山街道", "蛟川街道", "骆驼街道", "庄市街道", "贵驷街道", "澥浦镇", "九龙湖镇",
           "区直机关"]  # fmt: skip


def generate(con: duckdb.DuckDBPyConnection, members: int, enrolments: int) -> None:
    unions = max(members // 500, 10)
    claims = enrolments // 8
    loans = max(members // 50, 10)
    training = max(members // 5, 10)
    streets = ", ".join(f"'{s}'" for s in STREETS)
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("SELECT setseed(0.42)").fetchall()
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.unions AS
    SELECT 'U' || i AS union_id, '工会' || i AS union_name,
           ([{streets}])[1 + (i % {len(STREETS)})] AS street,
           '企业' AS org_type, CAST(10 + random() * 990 AS BIGINT) AS employee_count,
           DATE '1990-01-01' + CAST(random() * 11000 AS INTEGER) AS founded_date,
           NULL::DATE AS authorized_date, NULL::BIGINT AS star_rating,
           NULL::DATE AS dissolved_date,
           'unions/u.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM range({unions}) AS t(i)
    """)
    con.execute("""
    UPDATE staging.unions SET
      authorized_date = CASE WHEN random() < 0.7
                             THEN founded_date + CAST(random() * 1500 AS INTEGER) END,
      dissolved_date = CASE WHEN random() < 0.1
                            THEN founded_date + CAST(random() * 4000 AS INTEGER) END
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.members AS
    WITH b AS (
        SELECT i, DATE '1995-01-01' + CAST(random() * 9400 AS INTEGER) AS join_date,
               random() AS r1, random() AS r2, random() AS r3
        FROM range({members}) AS t(i)
    )
    SELECT 'M' || i AS member_id, sha256(CAST(i AS VARCHAR)) AS person_key,
           CASE WHEN i % 2 = 0 THEN '男' ELSE '女' END AS gender,
           CAST(1960 + i % 40 AS INTEGER) AS birth_year, true AS has_phone,
           'U' || (i % {unions}) AS union_id, join_date,
           CASE WHEN r1 < 0.25 THEN least(join_date + CAST(r1 * 4 * 6000 AS INTEGER),
                                          DATE '2020-09-30') END AS leave_date,
           CASE WHEN r2 < 0.6 THEN greatest(join_date, DATE '2016-01-01')
                                   + CAST(r2 * 1000 AS INTEGER) END AS collected_date,
           CASE WHEN r3 < 0.1 THEN greatest(join_date, DATE '2018-06-01')
                                   + CAST(r3 * 3000 AS INTEGER) END AS app_verified_date,
           r3 < 0.5 AS frontline,
           'members/m.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM b
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.mutual_aid_enrollments AS
    WITH b AS (
        SELECT i, CAST(floor(random() * {members}) AS BIGINT) AS m,
               CAST(2015 + floor(random() * 6) AS BIGINT) AS plan_year, random() AS r
        FROM range({enrolments}) AS t(i)
    )
    SELECT 'E' || i AS enrollment_id, sha256(CAST(m AS VARCHAR)) AS person_key,
           '男' AS gender, 1980 AS birth_year, 'U' || (m % {unions}) AS union_id, plan_year,
           make_date(CAST(plan_year - 1 AS INTEGER), 11, 1) + CAST(r * 420 AS INTEGER)
               AS enrolled_date,
           CAST(round(30 + r * 170, 2) AS DECIMAL(18, 2)) AS premium_yuan,
           (['住院医疗互助', '特殊病种', '女职工安康'])[1 + i % 3] AS plan_type,
           'mutual_aid_enrollments/e.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM b
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.mutual_aid_claims AS
    WITH b AS (
        SELECT i, CAST(floor(random() * {enrolments}) AS BIGINT) AS e, random() AS r
        FROM range({claims}) AS t(i)
    )
    SELECT 'C' || i AS claim_id, 'E' || e AS enrollment_id,
           make_date(CAST(2015 + e % 6 AS INTEGER), 1, 1) + CAST(r * 364 AS INTEGER)
               AS claim_date,
           CAST(round(r * 5000, 2) AS DECIMAL(18, 2)) AS benefit_yuan,
           CASE WHEN r < 0.8 THEN '已发放' WHEN r < 0.9 THEN '审核中' ELSE '不予补助' END
               AS status,
           'mutual_aid_claims/c.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM b
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.loans AS
    SELECT 'L' || i AS loan_id,
           sha256(CAST(CAST(floor(random() * {members}) AS BIGINT) AS VARCHAR)) AS person_key,
           '男' AS gender, 1985 AS birth_year,
           DATE '2015-01-01' + CAST(random() * 2100 AS INTEGER) AS disbursed_date,
           CAST(round(10000 + random() * 290000, 2) AS DECIMAL(18, 2)) AS amount_yuan,
           CAST(12 + i % 36 AS BIGINT) AS term_months, '农商行' AS bank, '正常' AS status,
           'loans/l.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM range({loans}) AS t(i)
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE staging.training AS
    SELECT 'T' || i AS record_id,
           sha256(CAST(CAST(floor(random() * {members}) AS BIGINT) AS VARCHAR)) AS person_key,
           '女' AS gender, 1990 AS birth_year,
           (['吾意乐学', '学历提升', '雄镇杯技能竞赛', '技能培训'])[1 + i % 4] AS program,
           'S' || (i // 40) AS session_id,
           DATE '2015-01-01' + CAST((i // 40) % 2100 AS INTEGER) AS session_date,
           CAST(2 AS DECIMAL(18, 2)) AS hours, true AS completed,
           'training/t.csv' AS _source_file, CAST(i + 2 AS INTEGER) AS _source_line
    FROM range({training}) AS t(i)
    """)
    con.execute("""
    CREATE OR REPLACE TABLE staging.targets AS
    SELECT * FROM (VALUES
        ('members_total', 2020::BIGINT, 5000000::DECIMAL(18, 6), '>=', 'plan'),
        ('mutual_aid_enrollments', 2020::BIGINT, 4000000::DECIMAL(18, 6), '>=', 'plan'),
        ('membership_rate', 2019::BIGINT, 0.9::DECIMAL(18, 6), '>=', 'plan')
    ) AS t(kpi_code, year, target_value, comparator, basis)
    """)
    con.execute("""
    CREATE OR REPLACE TABLE staging.published AS
    SELECT kpi_code, year, published, published AS lower, published AS upper,
           NULL::VARCHAR AS quote, NULL::VARCHAR AS note,
           'published/p.csv' AS _source_file, 2 AS _source_line
    FROM (VALUES
        ('members_total', 2019::BIGINT, 235545::DECIMAL(18, 6)),
        ('mutual_aid_enrollments', 2019::BIGINT, 167169::DECIMAL(18, 6)),
        ('mutual_aid_enrollments', 2018::BIGINT, 157260::DECIMAL(18, 6)),
        ('loan_amount_cum_yuan', 2019::BIGINT, 681320000::DECIMAL(18, 6)),
        ('members_collected_rate', 2019::BIGINT, 0.6077::DECIMAL(18, 6))
    ) AS t(kpi_code, year, published)
    """)


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f"{label:<32} {elapsed:8.2f} s   {result if result is not None else ''}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--enrolments", type=int, default=25_000_000)
    parser.add_argument("--path", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the DuckDB file")
    parser.add_argument("--reuse", action="store_true", help="reuse staging in --path")
    args = parser.parse_args()

    path = args.path or Path(tempfile.mkdtemp(prefix="kpi_bench_")) / "bench.duckdb"
    con = duckdb.connect(str(path))
    print(f"DuckDB {duckdb.__version__}, {os.cpu_count()} CPUs, file {path}")
    if not args.reuse:
        timed("generate staging", generate, con, args.members, args.enrolments)
    counts = {
        t: con.execute(f"SELECT count(*) FROM staging.{t}").fetchall()[0][0]
        for t in ("unions", "members", "mutual_aid_enrollments", "mutual_aid_claims",
                  "loans", "training")
    }  # fmt: skip
    print("rows:", counts)
    ctx = timed("resolve_refresh_context", resolve_refresh_context, con, AS_OF, None)
    print("context:", ctx)
    timed("build_kpi_yearly", build_kpi_yearly, con)
    timed("build_kpi_by_street", build_kpi_by_street, con)
    timed("  ... with_persons=False", build_kpi_by_street, con, with_persons=False)
    timed("build_report_reconciliation", build_report_reconciliation, con)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak RSS {peak:.1f} GiB")
    con.close()
    if not args.keep and args.path is None:
        path.unlink()
        path.parent.rmdir()


if __name__ == "__main__":
    main()
