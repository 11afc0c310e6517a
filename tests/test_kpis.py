"""KPI catalogue and marts, on a tiny hand-made staging dataset with hand-worked values.

The dataset (streets A = 招宝山街道, B = 蛟川街道):

unions   U1 A 100 emp, founded 2010, authorised 2018-05-01
         U2 B  50 emp, founded 2018-03-10, authorised 2019-01-15
         U3 B  30 emp, founded 2019-06-01
         U4 A  20 emp, founded 2015, authorised 2016, dissolved 2019-07-01
         U5 B  10 emp, founded 2020-01-15
members  M1 P1 U1 joined 2015-03-01, collected 2018-06-01, app 2019-03-01
         M2 P2 U1 joined 2018-02-01, left 2019-12-31 (so not active at 2019 year end)
         M3 P3 U2 joined 2018-05-05, collected 2019-12-31, app 2020-02-29
         M4 P4 U4 joined 2016-01-01, left 2019-07-01
         M5 P5 U3 joined 2019-06-15, collected 2020-01-10
         M6 P6 U1 joined 2020-01-20
         M7 P7 U1 joined 2019-02-10, collected 2019-02-10, left 2019-05-01
         M8 P8 U3 joined 2020-02-29   <- latest event: as-of date 2020-02-29 (leap day)
enrolments (plan year, enrolled, premium): E1 P1 U1 2018 01-10 100; E2 P2 U1 2018 2018-03-05 50;
         E3/E4 P1 U1 2019 2018-12-20 100 + 30 (two plan types: two person-times);
         E5 P3 U2 2019 2019-04-01 100; E6 P5 U3 2020 2019-12-15 120; E7 P3 U2 2020 2020-02-01 80
claims   C1 E1 2018-06-01 500 paid; C2 E2 2018-07-01 300 rejected; C3 E2 2018-09-01 200 paid;
         C8 E1 2019-01-15 40 paid; C4 E3 2019-02-01 100 paid; C5 E4 2019-03-01 50 paid;
         C6 E5 2019-05-01 80 pending; C7 E6 2020-01-05 60 paid
loans    L1 P1 2018-04-01 10000; L2 P2 2019-01-20 20000; L3 P2 2019-08-01 15000;
         L4 P3 2020-02-10 5000
training 吾意乐学 S1 2018-03-01 (P1, P2), S2 2019-01-10 (P3), S3 2019-06-01 (P1),
         S7 2020-02-15 (P4);
         学历提升 P10 S4 2019-09-01 and S5 2019-10-01; 雄镇杯 S6 2019-11-01 (P2, P3);
         技能培训 S8 2018-01-05 (P5, counts for no KPI)

First activity year 2018 (plan years, claims, loans, training; joins do not count).
As of 2020-02-29, the prior year is compared at 2019-02-28, seasonality uses 2018-02-28 and
2019-02-28; days elapsed in 2020 = 60, days in 2020 = 366.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pytest

from union_pipeline.kpis import (
    CatalogueError,
    KpiError,
    build_kpi_by_street,
    build_kpi_yearly,
    build_report_reconciliation,
    load_catalogue,
    parse_catalogue,
    read_refresh_context,
    resolve_refresh_context,
    same_day_in,
)

D = dt.date
A, B = "招宝山街道", "蛟川街道"

STAGING_DDL = {
    "unions": "union_id VARCHAR, union_name VARCHAR, street VARCHAR, org_type VARCHAR, "
    "employee_count BIGINT, founded_date DATE, authorized_date DATE, star_rating BIGINT, "
    "dissolved_date DATE",
    "members": "member_id VARCHAR, person_key VARCHAR, gender VARCHAR, birth_year INTEGER, "
    "has_phone BOOLEAN, union_id VARCHAR, join_date DATE, leave_date DATE, "
    "collected_date DATE, app_verified_date DATE, frontline BOOLEAN",
    "mutual_aid_enrollments": "enrollment_id VARCHAR, person_key VARCHAR, gender VARCHAR, "
    "birth_year INTEGER, union_id VARCHAR, plan_year BIGINT, enrolled_date DATE, "
    "premium_yuan DECIMAL(18,2), plan_type VARCHAR",
    "mutual_aid_claims": "claim_id VARCHAR, enrollment_id VARCHAR, claim_date DATE, "
    "benefit_yuan DECIMAL(18,2), status VARCHAR",
    "loans": "loan_id VARCHAR, person_key VARCHAR, gender VARCHAR, birth_year INTEGER, "
    "disbursed_date DATE, amount_yuan DECIMAL(18,2), term_months BIGINT, bank VARCHAR, "
    "status VARCHAR",
    "training": "record_id VARCHAR, person_key VARCHAR, gender VARCHAR, birth_year INTEGER, "
    "program VARCHAR, session_id VARCHAR, session_date DATE, hours DECIMAL(18,2), "
    "completed BOOLEAN",
    "targets": "kpi_code VARCHAR, year BIGINT, target_value DECIMAL(18,6), comparator VARCHAR, "
    "basis VARCHAR",
    "published": "kpi_code VARCHAR, year BIGINT, published DECIMAL(18,6), lower DECIMAL(18,6), "
    "upper DECIMAL(18,6), quote VARCHAR, note VARCHAR",
}

UNIONS = [  # union_id, street, employee_count, founded, authorized, dissolved
    ("U1", A, 100, D(2010, 1, 1), D(2018, 5, 1), None),
    ("U2", B, 50, D(2018, 3, 10), D(2019, 1, 15), None),
    ("U3", B, 30, D(2019, 6, 1), None, None),
    ("U4", A, 20, D(2015, 1, 1), D(2016, 1, 1), D(2019, 7, 1)),
    ("U5", B, 10, D(2020, 1, 15), None, None),
]
MEMBERS = [  # member_id, person, union, join, leave, collected, app_verified
    ("M1", "P1", "U1", D(2015, 3, 1), None, D(2018, 6, 1), D(2019, 3, 1)),
    ("M2", "P2", "U1", D(2018, 2, 1), D(2019, 12, 31), D(2018, 2, 1), None),
    ("M3", "P3", "U2", D(2018, 5, 5), None, D(2019, 12, 31), D(2020, 2, 29)),
    ("M4", "P4", "U4", D(2016, 1, 1), D(2019, 7, 1), None, None),
    ("M5", "P5", "U3", D(2019, 6, 15), None, D(2020, 1, 10), None),
    ("M6", "P6", "U1", D(2020, 1, 20), None, None, None),
    ("M7", "P7", "U1", D(2019, 2, 10), D(2019, 5, 1), D(2019, 2, 10), None),
    ("M8", "P8", "U3", D(2020, 2, 29), None, None, None),
]
ENROLMENTS = [  # enrollment_id, person, union, plan_year, enrolled, premium, plan_type
    ("E1", "P1", "U1", 2018, D(2018, 1, 10), 100, "住院医疗互助"),
    ("E2", "P2", "U1", 2018, D(2018, 3, 5), 50, "住院医疗互助"),
    ("E3", "P1", "U1", 2019, D(2018, 12, 20), 100, "住院医疗互助"),
    ("E4", "P1", "U1", 2019, D(2018, 12, 20), 30, "特殊病种"),
    ("E5", "P3", "U2", 2019, D(2019, 4, 1), 100, "住院医疗互助"),
    ("E6", "P5", "U3", 2020, D(2019, 12, 15), 120, "住院医疗互助"),
    ("E7", "P3", "U2", 2020, D(2020, 2, 1), 80, "女职工安康"),
]
CLAIMS = [  # claim_id, enrollment_id, claim_date, benefit, status
    ("C1", "E1", D(2018, 6, 1), 500, "已发放"),
    ("C2", "E2", D(2018, 7, 1), 300, "不予补助"),
    ("C3", "E2", D(2018, 9, 1), 200, "已发放"),
    ("C4", "E3", D(2019, 2, 1), 100, "已发放"),
    ("C5", "E4", D(2019, 3, 1), 50, "已发放"),
    ("C6", "E5", D(2019, 5, 1), 80, "审核中"),
    ("C7", "E6", D(2020, 1, 5), 60, "已发放"),
    ("C8", "E1", D(2019, 1, 15), 40, "已发放"),
]
LOANS = [  # loan_id, person, disbursed, amount
    ("L1", "P1", D(2018, 4, 1), 10000),
    ("L2", "P2", D(2019, 1, 20), 20000),
    ("L3", "P2", D(2019, 8, 1), 15000),
    ("L4", "P3", D(2020, 2, 10), 5000),
]
TRAINING = [  # record_id, person, program, session_id, session_date
    ("T1", "P1", "吾意乐学", "S1", D(2018, 3, 1)),
    ("T2", "P2", "吾意乐学", "S1", D(2018, 3, 1)),
    ("T3", "P3", "吾意乐学", "S2", D(2019, 1, 10)),
    ("T4", "P1", "吾意乐学", "S3", D(2019, 6, 1)),
    ("T5", "P10", "学历提升", "S4", D(2019, 9, 1)),
    ("T6", "P10", "学历提升", "S5", D(2019, 10, 1)),
    ("T7", "P2", "雄镇杯技能竞赛", "S6", D(2019, 11, 1)),
    ("T8", "P3", "雄镇杯技能竞赛", "S6", D(2019, 11, 1)),
    ("T9", "P4", "吾意乐学", "S7", D(2020, 2, 15)),
    ("T10", "P5", "技能培训", "S8", D(2018, 1, 5)),
]
TARGETS = [  # kpi_code, year, target, comparator
    ("members_total", 2019, 3, ">="),
    ("members_new", 2020, 5, ">="),
    ("mutual_aid_benefit_yuan", 2019, 150, "<="),
    ("loan_amount_yuan", 2020, 12000, "<="),
    ("members_collected_rate", 2018, 0.5, ">="),
    ("unions_new", 2019, 1, None),  # no comparator: the catalogue default (>=)
]
PUBLISHED = [  # kpi_code, year, published, lower, upper
    ("members_total", 2019, 3, 3, 3),
    ("mutual_aid_premium_yuan", 2019, 230, 230, 240),
    ("members_collected_rate", 2019, 0.6667, 0.66665, 0.66675),
    ("training_sessions", 2019, 3, 3, 3),
    ("loan_amount_yuan", 2017, 1, 1, 1),
    ("members_new", 2020, 2, 2, 2),
]


def _insert(con, table: str, columns: str, rows: list[tuple]) -> None:
    marks = ", ".join("?" for _ in columns.split(","))
    for i, row in enumerate(rows, start=2):
        con.execute(
            f"INSERT INTO staging.{table} ({columns}, _source_file, _source_line) "
            f"VALUES ({marks}, ?, ?)",
            [*row, f"{table}/test.csv", i],
        )


def make_staging(path, published: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE SCHEMA staging")
    for table, cols in STAGING_DDL.items():
        con.execute(
            f"CREATE TABLE staging.{table} ({cols}, _source_file VARCHAR, _source_line INTEGER)"
        )
    _insert(
        con,
        "unions",
        "union_id, street, employee_count, founded_date, authorized_date, dissolved_date",
        UNIONS,
    )
    _insert(
        con,
        "members",
        "member_id, person_key, union_id, join_date, leave_date, collected_date, app_verified_date",
        MEMBERS,
    )
    _insert(
        con,
        "mutual_aid_enrollments",
        "enrollment_id, person_key, union_id, plan_year, enrolled_date, premium_yuan, plan_type",
        ENROLMENTS,
    )
    _insert(
        con,
        "mutual_aid_claims",
        "claim_id, enrollment_id, claim_date, benefit_yuan, status",
        CLAIMS,
    )
    _insert(con, "loans", "loan_id, person_key, disbursed_date, amount_yuan", LOANS)
    _insert(con, "training", "record_id, person_key, program, session_id, session_date", TRAINING)
    _insert(con, "targets", "kpi_code, year, target_value, comparator", TARGETS)
    if published:
        _insert(con, "published", "kpi_code, year, published, lower, upper", PUBLISHED)
    con.execute("COMMIT")
    return con


@pytest.fixture
def con(tmp_path):
    con = make_staging(tmp_path / "warehouse.duckdb")
    yield con
    con.close()


def yearly(con) -> dict[tuple[str, int], tuple]:
    rows = con.execute("SELECT * FROM marts.kpi_yearly ORDER BY kpi_code, year").fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def assert_row(got: tuple, want: tuple, key) -> None:
    assert len(got) == len(want), key
    for name, g, w in zip(COLUMNS[2:], got, want, strict=True):
        if isinstance(w, float) and not isinstance(w, bool):
            assert g is not None and math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (
                key, name, g, w,
            )  # fmt: skip
        else:
            assert g == w and type(g) is type(w), (key, name, g, w)


COLUMNS = [
    "kpi_code", "year", "actual", "prior_actual", "yoy_change", "yoy_pct", "target",
    "comparator", "target_met", "is_complete_year", "projected_year_end", "on_track",
]  # fmt: skip

N = None
# (kpi_code, year): actual, prior_actual, yoy_change, yoy_pct, target, comparator, target_met,
#                   is_complete_year, projected_year_end, on_track       -- as of 2020-02-29
FIRST = (N, N, N, N, N, N, True, N, N)  # 2018: first year, no target
EXPECTED_FEB29 = {
    # members_total: at 2018-12-31 M1 M2 M3 M4; 2019-12-31 M1 M3 M5 (M2 left on 31 Dec);
    # 2020-02-29 M1 M3 M5 M6 M8; prior at 2019-02-28: M1 M2 M3 M4 M7 (M7 left in May)
    ("members_total", 2018): (4.0, *FIRST),
    ("members_total", 2019): (3.0, 4.0, -1.0, -0.25, 3.0, ">=", True, True, N, N),
    ("members_total", 2020): (5.0, 5.0, 0.0, 0.0, N, N, N, False, 5.0, N),
    # members_new: 2018 M2 M3 (02-28: M2); 2019 M7 M5 (02-28: M7); 2020 M6 M8
    # s = (1 + 1) / (2 + 2) = 0.5 -> 2 / 0.5 = 4; target 5 -> not on track
    ("members_new", 2018): (2.0, *FIRST),
    ("members_new", 2019): (2.0, 2.0, 0.0, 0.0, N, N, N, True, N, N),
    ("members_new", 2020): (2.0, 1.0, 1.0, 1.0, 5.0, ">=", N, False, 4.0, False),
    # collected: 2018 M1 M2; 2019 M1 M3 (collected on 31 Dec counts); 2020 M1 M3 M5;
    # 2019-02-28: M1 M2 M7
    ("members_collected", 2018): (2.0, *FIRST),
    ("members_collected", 2019): (2.0, 2.0, 0.0, 0.0, N, N, N, True, N, N),
    ("members_collected", 2020): (3.0, 3.0, 0.0, 0.0, N, N, N, False, 3.0, N),
    # rate from parts: 2/4, 2/3, 3/5; prior 3/5
    ("members_collected_rate", 2018): (0.5, N, N, N, 0.5, ">=", True, True, N, N),
    ("members_collected_rate", 2019): (2 / 3, 0.5, 1 / 6, 1 / 3, N, N, N, True, N, N),
    ("members_collected_rate", 2020): (0.6, 0.6, 0.0, 0.0, N, N, N, False, 0.6, N),
    # app verified: M1 from 2019-03-01, M3 on 2020-02-29 (the as-of date itself)
    ("members_app_verified", 2018): (0.0, *FIRST),
    ("members_app_verified", 2019): (1.0, 0.0, 1.0, N, N, N, N, True, N, N),
    ("members_app_verified", 2020): (2.0, 0.0, 2.0, N, N, N, N, False, 2.0, N),
    # employees of active unions: 170 (U1 U2 U4), 180 (U1 U2 U3; U4 dissolved),
    # 190 (+U5); 2019-02-28: 170
    ("membership_rate", 2018): (4 / 170, *FIRST),
    (
        "membership_rate",
        2019,
    ): (3 / 180, 4 / 170, 3 / 180 - 4 / 170, (3 / 180 - 4 / 170) / (4 / 170), N, N, N, True, N, N),
    (
        "membership_rate",
        2020,
    ): (
        5 / 190,
        5 / 170,
        5 / 190 - 5 / 170,
        (5 / 190 - 5 / 170) / (5 / 170),
        N,
        N,
        N,
        False,
        5 / 190,
        N,
    ),  # fmt: skip
    # unions_new: U2, U3, U5; none founded by 28 Feb in 2018 or 2019: s = 0 ->
    # fallback 1 * 366 / 60 = 6.1; target without comparator takes >=
    ("unions_new", 2018): (1.0, *FIRST),
    ("unions_new", 2019): (1.0, 1.0, 0.0, 0.0, 1.0, ">=", True, True, N, N),
    ("unions_new", 2020): (1.0, 0.0, 1.0, N, N, N, N, False, 6.1, N),
    # authorised & active: 2018 U1 U4; 2019 U1 U2 (U4 dissolved); 2020 U1 U2;
    # 2019-02-28: U1 U2 U4
    ("unions_authorized", 2018): (2.0, *FIRST),
    ("unions_authorized", 2019): (2.0, 2.0, 0.0, 0.0, N, N, N, True, N, N),
    ("unions_authorized", 2020): (2.0, 3.0, -1.0, -1 / 3, N, N, N, False, 2.0, N),
    # enrolments by plan year: 2018 E1 E2 (02-28: E1); 2019 E3 E4 E5 (02-28: E3 E4, both
    # P1: two person-times); 2020 E6 E7; s = 3/5 -> 2 / 0.6
    ("mutual_aid_enrollments", 2018): (2.0, *FIRST),
    ("mutual_aid_enrollments", 2019): (3.0, 2.0, 1.0, 0.5, N, N, N, True, N, N),
    ("mutual_aid_enrollments", 2020): (2.0, 2.0, 0.0, 0.0, N, N, N, False, 10 / 3, N),
    # premiums: 150 (02-28: 100), 230 (02-28: 130), 200; s = 230/380
    ("mutual_aid_premium_yuan", 2018): (150.0, *FIRST),
    ("mutual_aid_premium_yuan", 2019): (230.0, 150.0, 80.0, 80 / 150, N, N, N, True, N, N),
    (
        "mutual_aid_premium_yuan",
        2020,
    ): (200.0, 130.0, 70.0, 70 / 130, N, N, N, False, 200 * 380 / 230, N),
    # paid claims: 2018 P1 (C1) and P2 (C3; C2 rejected); 2019 P1 only (C8 C4 C5; C6 pending);
    # 2020 P5; 02-28: 0 and 1 -> s = 1/3
    ("mutual_aid_claimants", 2018): (2.0, *FIRST),
    ("mutual_aid_claimants", 2019): (1.0, 2.0, -1.0, -0.5, N, N, N, True, N, N),
    ("mutual_aid_claimants", 2020): (1.0, 1.0, 0.0, 0.0, N, N, N, False, 3.0, N),
    # benefits paid: 700 (02-28: 0), 190 (02-28: 140), 60; s = 140/890; target <= 150 missed
    ("mutual_aid_benefit_yuan", 2018): (700.0, *FIRST),
    (
        "mutual_aid_benefit_yuan",
        2019,
    ): (190.0, 700.0, -510.0, -510 / 700, 150.0, "<=", False, True, N, N),
    (
        "mutual_aid_benefit_yuan",
        2020,
    ): (60.0, 140.0, -80.0, -80 / 140, N, N, N, False, 60 * 890 / 140, N),
    # loans: P2 borrows twice in 2019 (one borrower); s = 1/2 -> 2
    ("loan_borrowers", 2018): (1.0, *FIRST),
    ("loan_borrowers", 2019): (1.0, 1.0, 0.0, 0.0, N, N, N, True, N, N),
    ("loan_borrowers", 2020): (1.0, 1.0, 0.0, 0.0, N, N, N, False, 2.0, N),
    # amounts: 10000 (02-28: 0), 35000 (02-28: 20000), 5000; s = 20000/45000 -> 11250 <= 12000
    ("loan_amount_yuan", 2018): (10000.0, *FIRST),
    ("loan_amount_yuan", 2019): (35000.0, 10000.0, 25000.0, 2.5, N, N, N, True, N, N),
    (
        "loan_amount_yuan",
        2020,
    ): (5000.0, 20000.0, -15000.0, -0.75, 12000.0, "<=", N, False, 11250.0, True),
    # cumulative: projection is the current value
    ("loan_borrowers_cum", 2018): (1.0, *FIRST),
    ("loan_borrowers_cum", 2019): (2.0, 1.0, 1.0, 1.0, N, N, N, True, N, N),
    ("loan_borrowers_cum", 2020): (3.0, 2.0, 1.0, 0.5, N, N, N, False, 3.0, N),
    ("loan_amount_cum_yuan", 2018): (10000.0, *FIRST),
    ("loan_amount_cum_yuan", 2019): (45000.0, 10000.0, 35000.0, 3.5, N, N, N, True, N, N),
    (
        "loan_amount_cum_yuan",
        2020,
    ): (50000.0, 30000.0, 20000.0, 2 / 3, N, N, N, False, 50000.0, N),
    # 吾意乐学 sessions: S1; S2 S3 (02-28: S2); S7; s = 1/3 -> 3
    ("training_sessions", 2018): (1.0, *FIRST),
    ("training_sessions", 2019): (2.0, 1.0, 1.0, 1.0, N, N, N, True, N, N),
    ("training_sessions", 2020): (1.0, 1.0, 0.0, 0.0, N, N, N, False, 3.0, N),
    # 吾意乐学 records: 2, 2 (02-28: 1), 1; s = 1/4 -> 4
    ("training_participations", 2018): (2.0, *FIRST),
    ("training_participations", 2019): (2.0, 2.0, 0.0, 0.0, N, N, N, True, N, N),
    ("training_participations", 2020): (1.0, 1.0, 0.0, 0.0, N, N, N, False, 4.0, N),
    # 学历提升: P10 twice in 2019 = 1 person; s = 0 -> fallback 0
    ("education_enrollees", 2018): (0.0, *FIRST),
    ("education_enrollees", 2019): (1.0, 0.0, 1.0, N, N, N, N, True, N, N),
    ("education_enrollees", 2020): (0.0, 0.0, 0.0, N, N, N, N, False, 0.0, N),
    # 雄镇杯: S6 with two participants = 1 event
    ("contest_events", 2018): (0.0, *FIRST),
    ("contest_events", 2019): (1.0, 0.0, 1.0, N, N, N, N, True, N, N),
    ("contest_events", 2020): (0.0, 0.0, 0.0, N, N, N, N, False, 0.0, N),
}


# ------------------------------------------------------------------ catalogue


def test_catalogue_loads_the_contract_kpis():
    kpis = load_catalogue()
    reported = [k.code for k in kpis if k.reported]
    assert set(reported) == {c for c, _ in EXPECTED_FEB29}
    assert len(reported) == 20
    by_code = {k.code: k for k in kpis}
    assert by_code["membership_rate"].numerator == "members_total"
    assert by_code["membership_rate"].denominator == "union_employees"
    assert by_code["membership_rate"].has_street
    assert not by_code["loan_borrowers"].has_street
    assert not by_code["training_sessions"].has_street
    assert by_code["mutual_aid_claimants"].has_street
    for k in kpis:
        assert k.name_zh and k.name_en and k.unit and k.definition_en and k.definition_zh


def _entry(**overrides):
    entry = {
        "code": "x_count",
        "name_zh": "某数",
        "name_en": "Some count",
        "unit": "人",
        "kind": "flow",
        "definition": {"en": "some", "zh": "某"},
        "rows": "SELECT p.year, p.at_date FROM eval_points AS p",
        "value": "count(*)",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([_entry(), _entry()], "KPI 'x_count': field 'code': duplicate"),
        ([_entry(kind="level")], "KPI 'x_count': field 'kind': 'level' is not one of"),
        (
            [
                _entry(),
                _entry(
                    code="r",
                    kind="ratio",
                    rows=None,
                    value=None,
                    numerator="x_count",
                    denominator="nope",
                ),
            ],
            "KPI 'r': field 'denominator': 'nope' is not a KPI",
        ),  # fmt: skip
        ([_entry(unit="")], "KPI 'x_count': field 'unit': required"),
        ([_entry(value=None)], "KPI 'x_count': field 'value': required"),
        ([_entry(rows="SELECT 1")], "KPI 'x_count': field 'rows': must select from"),
        ([_entry(colour="red")], "KPI 'x_count': field 'colour': unknown field"),
        ([_entry(numerator="a")], "KPI 'x_count': field 'numerator': only a ratio"),
        ([_entry(definition={"en": "x"})], "KPI 'x_count': field 'definition.zh'"),
        ([_entry(street="yes")], "KPI 'x_count': field 'street': 'yes' is not true/false"),
        ([_entry(target_comparator="=")], "KPI 'x_count': field 'target_comparator'"),
        ([_entry(code="Bad Code")], "entry #1: field 'code'"),
        (
            [_entry(value="count(DISTINCT person_key)")],
            "KPI 'x_count': field 'additive': a distinct count does not add up",
        ),
        ([_entry(additive="no")], "KPI 'x_count': field 'additive': 'no' is not true/false"),
        (
            [
                _entry(street=False),
                _entry(
                    code="r",
                    kind="ratio",
                    rows=None,
                    value=None,
                    numerator="x_count",
                    denominator="x_count",
                    street=True,
                ),
            ],
            "KPI 'r': field 'street': true, but a part has no street",
        ),  # fmt: skip
    ],
)
def test_catalogue_rejects_bad_entries(entries, message):
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(")):
        parse_catalogue({"kpis": entries})


def test_catalogue_file_errors(tmp_path):
    bad = tmp_path / "kpis.yaml"
    bad.write_text("kpis: [\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(bad)
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")


# ------------------------------------------------------------ refresh context


def test_refresh_context_from_data(con):
    ctx = resolve_refresh_context(con)
    assert ctx.as_of == D(2020, 2, 29)  # latest event: M8 joined on the leap day
    assert ctx.first_year == 2018  # not 2010/2015 (foundings and joins do not count)
    assert not ctx.is_complete
    assert con.execute("SELECT * FROM marts.refresh_context").fetchall() == [(D(2020, 2, 29), 2018)]
    types = con.execute("DESCRIBE marts.refresh_context").fetchall()
    assert [(r[0], r[1]) for r in types] == [("as_of", "DATE"), ("first_year", "INTEGER")]
    assert read_refresh_context(con) == ctx


def test_refresh_context_overrides(con):
    ctx = resolve_refresh_context(con, as_of=D(2019, 6, 30), first_year=2019)
    assert (ctx.as_of, ctx.first_year) == (D(2019, 6, 30), 2019)
    with pytest.raises(KpiError, match="first year 2021"):
        resolve_refresh_context(con, as_of=D(2020, 2, 29), first_year=2021)


def test_builders_need_the_refresh_context(con):
    with pytest.raises(KpiError, match="resolve_refresh_context"):
        build_kpi_yearly(con)


def test_same_day_in_maps_leap_day():
    assert same_day_in(2019, D(2020, 2, 29)) == D(2019, 2, 28)
    assert same_day_in(2016, D(2020, 2, 29)) == D(2016, 2, 29)
    assert same_day_in(2019, D(2020, 6, 30)) == D(2019, 6, 30)


# ---------------------------------------------------------------- kpi_yearly


def test_kpi_yearly_columns_and_types(con):
    resolve_refresh_context(con)
    result = build_kpi_yearly(con)
    assert result["rows"] == 60
    types = [(r[0], r[1]) for r in con.execute("DESCRIBE marts.kpi_yearly").fetchall()]
    assert types == [
        ("kpi_code", "VARCHAR"), ("year", "INTEGER"), ("actual", "DOUBLE"),
        ("prior_actual", "DOUBLE"), ("yoy_change", "DOUBLE"), ("yoy_pct", "DOUBLE"),
        ("target", "DOUBLE"), ("comparator", "VARCHAR"), ("target_met", "BOOLEAN"),
        ("is_complete_year", "BOOLEAN"), ("projected_year_end", "DOUBLE"),
        ("on_track", "BOOLEAN"),
    ]  # fmt: skip


def test_kpi_yearly_as_of_leap_day(con):
    """Every cell of the 60 rows, as of 2020-02-29 (incomplete year, prior at 2019-02-28)."""
    resolve_refresh_context(con)
    build_kpi_yearly(con)
    got = yearly(con)
    assert set(got) == set(EXPECTED_FEB29)
    for key, want in EXPECTED_FEB29.items():
        assert_row(got[key], want, key)


def test_kpi_yearly_single_incomplete_year_uses_day_fallback(con):
    """First year 2020: no prior year, no complete year for seasonality -> actual*366/60."""
    resolve_refresh_context(con, first_year=2020)
    build_kpi_yearly(con)
    got = yearly(con)
    assert {y for _, y in got} == {2020}
    assert_row(
        got[("members_new", 2020)],
        (2.0, N, N, N, 5.0, ">=", N, False, 2 * 366 / 60, True),  # 12.2 >= 5
        "members_new",
    )
    assert_row(
        got[("loan_amount_yuan", 2020)],
        (5000.0, N, N, N, 12000.0, "<=", N, False, 30500.0, False),  # 5000*366/60
        "loan_amount_yuan",
    )
    assert_row(got[("members_total", 2020)], (5.0, N, N, N, N, N, N, False, 5.0, N), "total")


def test_kpi_yearly_complete_as_of_year(con):
    """As of 2019-12-31: the as-of year is complete; later rows are ignored."""
    resolve_refresh_context(con, as_of=D(2019, 12, 31))
    build_kpi_yearly(con)
    got = yearly(con)
    assert {y for _, y in got} == {2018, 2019}
    for key, want in EXPECTED_FEB29.items():
        if key[1] <= 2019:
            assert_row(got[key], want, key)


def test_kpi_yearly_mid_year_as_of_counts_only_rows_up_to_it(con):
    """As of 2019-06-30, first year 2019: year to date; prior is 2018 at 2018-06-30."""
    resolve_refresh_context(con, as_of=D(2019, 6, 30), first_year=2018)
    build_kpi_yearly(con)
    got = yearly(con)
    # members active 2019-06-30: M1 M2 M3 M4 (left 07-01); M7 left in May; M5 joins 06-15
    # -> M1 M2 M3 M4 M5 = 5; at 2018-06-30: M1 M2 M3 M4 = 4
    assert_row(
        got[("members_total", 2019)],
        (5.0, 4.0, 1.0, 0.25, 3.0, ">=", N, False, 5.0, True),
        "members_total",
    )
    # loans 2019 to 06-30: L2 20000; 2018 to 06-30: L1 10000; s = 10000/10000 = 1
    assert_row(
        got[("loan_amount_yuan", 2019)],
        (20000.0, 10000.0, 10000.0, 1.0, N, N, N, False, 20000.0, N),
        "loan_amount_yuan",
    )


# ------------------------------------------------------------- kpi_by_street


def test_kpi_by_street(con):
    resolve_refresh_context(con)
    build_kpi_by_street(con)
    types = [(r[0], r[1]) for r in con.execute("DESCRIBE marts.kpi_by_street").fetchall()]
    assert types[:4] == [
        ("kpi_code", "VARCHAR"), ("year", "INTEGER"), ("street", "VARCHAR"), ("actual", "DOUBLE")
    ]  # fmt: skip
    rows = con.execute("SELECT kpi_code, year, street, actual, persons FROM marts.kpi_by_street")
    cells = {(k, y, s): (a, p) for k, y, s, a, p in rows.fetchall()}
    codes = {k for k, _, _ in cells}
    assert codes == {
        "members_total", "members_new", "members_collected", "members_collected_rate",
        "members_app_verified", "membership_rate", "unions_new", "unions_authorized",
        "mutual_aid_enrollments", "mutual_aid_premium_yuan", "mutual_aid_claimants",
        "mutual_aid_benefit_yuan",
    }  # fmt: skip
    assert len(cells) == 12 * 3 * 2  # dense: every KPI, year and street
    assert cells[("members_total", 2018, A)] == (3.0, 3)  # M1 M2 (U1), M4 (U4)
    assert cells[("members_total", 2018, B)] == (1.0, 1)  # M3
    assert cells[("members_total", 2020, A)] == (2.0, 2)  # M1 M6
    assert cells[("members_total", 2020, B)] == (3.0, 3)  # M3 M5 M8
    assert cells[("membership_rate", 2019, A)][0] == pytest.approx(1 / 100)  # U4 dissolved
    assert cells[("membership_rate", 2019, B)][0] == pytest.approx(2 / 80)  # U2 + U3
    assert cells[("members_collected_rate", 2019, B)][0] == pytest.approx(1 / 2)  # M3 of M3 M5
    assert cells[("unions_new", 2020, A)] == (0.0, None)
    assert cells[("unions_new", 2020, B)] == (1.0, None)
    assert cells[("mutual_aid_claimants", 2018, A)] == (2.0, 2)
    assert cells[("mutual_aid_claimants", 2018, B)] == (0.0, 0)
    assert cells[("mutual_aid_enrollments", 2019, A)] == (2.0, 1)  # E3 E4: one person

    build_kpi_yearly(con)
    district = {k: v[0] for k, v in yearly(con).items()}
    additive = codes - {"members_collected_rate", "membership_rate", "mutual_aid_claimants"}
    for code in additive:
        for year in (2018, 2019, 2020):
            total = cells[(code, year, A)][0] + cells[(code, year, B)][0]
            assert total == pytest.approx(district[(code, year)]), (code, year)


def test_kpi_by_street_without_persons(con):
    resolve_refresh_context(con)
    with_p = build_kpi_by_street(con)
    cells = con.execute("SELECT kpi_code, year, street, actual FROM marts.kpi_by_street")
    cells = sorted(cells.fetchall())
    assert build_kpi_by_street(con, with_persons=False) == with_p
    again = con.execute("SELECT kpi_code, year, street, actual, persons FROM marts.kpi_by_street")
    again = sorted(again.fetchall())
    assert [r[:4] for r in again] == cells
    assert {r[4] for r in again} == {None}


# ---------------------------------------------------- report_reconciliation


def test_report_reconciliation(con):
    resolve_refresh_context(con)
    result = build_report_reconciliation(con)
    assert result == {"rows": 6, "matched": 4, "unmatched": 2}
    types = [(r[0], r[1]) for r in con.execute("DESCRIBE marts.report_reconciliation").fetchall()]
    assert types == [
        ("kpi_code", "VARCHAR"), ("year", "INTEGER"), ("published", "DOUBLE"),
        ("lower", "DOUBLE"), ("upper", "DOUBLE"), ("quote", "VARCHAR"), ("note", "VARCHAR"),
        ("computed", "DOUBLE"), ("match", "BOOLEAN"), ("name_zh", "VARCHAR"),
        ("difference", "DOUBLE"),
    ]  # fmt: skip
    rows = con.execute(
        'SELECT kpi_code, year, computed, "match", difference FROM marts.report_reconciliation'
    ).fetchall()
    got = {(k, y): (c, m, d) for k, y, c, m, d in rows}
    assert got[("members_total", 2019)] == (3.0, True, 0.0)
    assert got[("mutual_aid_premium_yuan", 2019)] == (230.0, True, 0.0)
    assert got[("members_collected_rate", 2019)][0] == pytest.approx(2 / 3)
    assert got[("members_collected_rate", 2019)][1] is True
    assert got[("training_sessions", 2019)] == (2.0, False, -1.0)
    assert got[("loan_amount_yuan", 2017)] == (None, False, None)  # before the first year
    assert got[("members_new", 2020)] == (2.0, True, 0.0)  # year to date


def test_report_reconciliation_empty_without_published(tmp_path):
    con = make_staging(tmp_path / "w.duckdb", published=False)
    resolve_refresh_context(con)
    assert build_report_reconciliation(con) == {"rows": 0, "matched": 0, "unmatched": 0}
    empty = [r[:2] for r in con.execute("DESCRIBE marts.report_reconciliation").fetchall()]
    con.execute("DROP TABLE staging.published")
    assert build_report_reconciliation(con)["rows"] == 0
    missing = [r[:2] for r in con.execute("DESCRIBE marts.report_reconciliation").fetchall()]
    assert empty == missing and len(empty) == 11
    con.close()


# ------------------------------------------------------- catalogue as data


def test_a_new_kpi_is_a_catalogue_entry(con):
    """A KPI added to the catalogue flows through without code changes."""
    entries = [
        _entry(
            code="frontline_new",
            kind="flow",
            street=True,
            rows="""
            SELECT p.year, p.at_date, u.street
            FROM eval_points AS p
            JOIN staging.members AS m
              ON year(m.join_date) = p.year AND m.join_date <= p.at_date
            JOIN staging.unions AS u USING (union_id)
            -- trailing comment is fine
            """,
        ),
        _entry(
            code="unions_total",
            kind="stock",
            rows="SELECT p.year, p.at_date FROM eval_points AS p "
            "JOIN staging.unions AS u ON u.founded_date <= p.at_date",
        ),
    ]
    catalogue = parse_catalogue({"kpis": entries})
    resolve_refresh_context(con)
    build_kpi_yearly(con, catalogue)
    got = yearly(con)
    assert [got[("frontline_new", y)][0] for y in (2018, 2019, 2020)] == [2.0, 2.0, 2.0]
    assert [got[("unions_total", y)][0] for y in (2018, 2019, 2020)] == [3.0, 4.0, 5.0]


def test_a_broken_kpi_sql_is_named(con):
    catalogue = parse_catalogue({"kpis": [_entry(value="sum(no_such_column)")]})
    resolve_refresh_context(con)
    with pytest.raises(KpiError, match="KPI 'x_count'"):
        build_kpi_yearly(con, catalogue)
