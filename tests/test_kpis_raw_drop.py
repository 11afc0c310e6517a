"""The hand-worked KPI dataset of test_kpis.py, sent as a RAW drop and loaded by the loader.

test_kpis.py builds staging by hand and checks every cell of `marts.kpi_yearly` against
hand-worked values. Here the very same rows (imported from test_kpis.py, not copied) are
written to disk the way users send them: Chinese headers, a GBK CSV, UTF-8-BOM CSVs, xlsx
workbooks with real Excel dates, dates as 2019/3/5, 2019.3.5 and 2019年3月5日, amounts with
thousands separators, persons as ID numbers (one per person, the same across sources).
Every source goes through `load_source`; nothing may be quarantined, staging must hold the
hand-made rows, and `marts.kpi_yearly` must match EXPECTED_FEB29 cell by cell.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.drops import MEMBER_HEADER, TARGET_HEADER, UNION_HEADER, id_number, write_csv, write_xlsx
from tests.test_kpis import (
    CLAIMS,
    ENROLMENTS,
    EXPECTED_FEB29,
    LOANS,
    MEMBERS,
    TARGETS,
    TRAINING,
    UNIONS,
    assert_row,
    yearly,
)
from union_pipeline.ingest.load import load_source
from union_pipeline.ingest.specs import load_specs
from union_pipeline.kpis import build_kpi_yearly, resolve_refresh_context

AS_OF = dt.date(2020, 2, 29)  # the rules' as-of date: M8 joins on it, nothing is after it
KEY = b"raw-drop-test-key"
SOURCES = (
    "unions",
    "members",
    "mutual_aid_enrollments",
    "mutual_aid_claims",
    "loans",
    "training",
    "targets",
)
ENROLMENT_HEADER = [
    "参保编号",
    "身份证号",
    "工会编码",
    "保障年度",
    "参保日期",
    "缴费金额",
    "保障类型",
]
CLAIM_HEADER = ["申领编号", "参保编号", "申领日期", "补助金额", "状态"]
LOAN_HEADER = ["贷款编号", "身份证号", "放款日期", "贷款金额", "期限月数", "合作银行", "状态"]
TRAINING_HEADER = ["记录编号", "身份证号", "项目", "场次编号", "日期", "学时", "结业"]


def person_id(person: str) -> str:
    """P1 -> a valid ID number, distinct per person (P10 -> seq 110)."""
    return id_number(seq=f"{100 + int(person[1:]):03d}")


def slash(d: dt.date | None) -> str:
    return "" if d is None else f"{d.year}/{d.month}/{d.day}"


def dotted(d: dt.date | None) -> str:
    return "" if d is None else f"{d.year}.{d.month}.{d.day}"


def chinese(d: dt.date | None) -> str:
    return "" if d is None else f"{d.year}年{d.month}月{d.day}日"


def write_drop(raw: Path) -> None:
    # unions: GBK CSV (Excel on Chinese Windows), dates as 2010/1/1
    write_csv(
        raw / "unions" / "基层工会名册.csv",
        UNION_HEADER,
        [
            [
                uid,
                f"{uid}工会",
                street,
                "企业",
                str(emp),
                slash(founded),
                slash(auth),
                "",
                slash(diss),
            ]
            for uid, street, emp, founded, auth, diss in UNIONS
        ],
        encoding="gb18030",
    )
    # members: xlsx with real Excel dates (empty cell = None)
    write_xlsx(
        raw / "members" / "会员实名制名册.xlsx",
        MEMBER_HEADER,
        [
            [mid, "张三", person_id(p), "13812345678", uid, join, leave, collected, app, "是"]
            for mid, p, uid, join, leave, collected, app in MEMBERS
        ],
    )
    # enrolments: UTF-8 with BOM, ISO dates
    write_csv(
        raw / "mutual_aid_enrollments" / "参保明细.csv",
        ENROLMENT_HEADER,
        [
            [eid, person_id(p), uid, str(year), enrolled.isoformat(), f"{premium:.2f}", plan]
            for eid, p, uid, year, enrolled, premium, plan in ENROLMENTS
        ],
        encoding="utf-8-sig",
    )
    # claims: plain UTF-8, dates as 2019年3月5日
    write_csv(
        raw / "mutual_aid_claims" / "补助申领.csv",
        CLAIM_HEADER,
        [
            [cid, eid, chinese(d), f"{benefit:,.2f}", status]
            for cid, eid, d, benefit, status in CLAIMS
        ],
    )
    # loans: GBK CSV, dates as 2019.3.5, amounts with thousands separators
    write_csv(
        raw / "loans" / "蓝领贷.csv",
        LOAN_HEADER,
        [
            [lid, person_id(p), dotted(d), f"{amount:,.2f}", "12", "宁波银行", "正常"]
            for lid, p, d, amount in LOANS
        ],
        encoding="gb18030",
    )
    # training: UTF-8 with BOM
    write_csv(
        raw / "training" / "培训记录.csv",
        TRAINING_HEADER,
        [
            [rid, person_id(p), program, sid, d.isoformat(), "2", "是"]
            for rid, p, program, sid, d in TRAINING
        ],
        encoding="utf-8-sig",
    )
    # targets: xlsx with numeric cells; no comparator = empty cell
    write_xlsx(
        raw / "targets" / "年度目标.xlsx",
        TARGET_HEADER,
        [[code, year, value, comparator, "测试"] for code, year, value, comparator in TARGETS],
    )


@pytest.fixture
def loaded(tmp_path):
    raw = tmp_path / "raw"
    write_drop(raw)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    specs = load_specs()
    results = {s: load_source(con, specs[s], raw, AS_OF, KEY) for s in SOURCES}
    yield con, results
    con.close()


def test_every_raw_row_loads(loaded):
    con, results = loaded
    expected_rows = {
        "unions": UNIONS, "members": MEMBERS, "mutual_aid_enrollments": ENROLMENTS,
        "mutual_aid_claims": CLAIMS, "loans": LOANS, "training": TRAINING, "targets": TARGETS,
    }  # fmt: skip
    for source, result in results.items():
        n = len(expected_rows[source])
        counts = (result.read, result.loaded, result.quarantined, result.collapsed,
                  result.superseded)  # fmt: skip
        assert counts == (n, n, 0, 0, 0), (source, counts, result.quarantine_by_rule)
        assert result.identity_holds
    assert con.execute("SELECT count(*) FROM staging.quarantine").fetchall() == [(0,)]


def _persons(con) -> dict[str, str]:
    """person P* -> person_key, checked to be one key per person and one person per key."""
    pairs = set()
    for table, id_col, rows in (
        ("members", "member_id", MEMBERS),
        ("mutual_aid_enrollments", "enrollment_id", ENROLMENTS),
        ("loans", "loan_id", LOANS),
        ("training", "record_id", TRAINING),
    ):
        person_of = {r[0]: r[1] for r in rows}
        got = con.execute(f"SELECT {id_col}, person_key FROM staging.{table}").fetchall()
        pairs |= {(person_of[rid], key) for rid, key in got}
    keys = dict(pairs)
    assert len(keys) == len(pairs), "a person got two different person_keys"
    assert len(set(keys.values())) == len(keys), "two persons share a person_key"
    return keys


def test_staging_holds_the_hand_made_rows(loaded):
    """What the loader produced equals, column for column, what test_kpis.py inserts."""
    con, _ = loaded
    keys = _persons(con)

    def rows(sql: str) -> set[tuple]:
        return set(con.execute(sql).fetchall())

    def with_keys(rows_: list[tuple], at: int) -> set[tuple]:
        return {(*r[:at], keys[r[at]], *r[at + 1 :]) for r in rows_}

    assert rows(
        "SELECT union_id, street, employee_count, founded_date, authorized_date, dissolved_date "
        "FROM staging.unions"
    ) == set(UNIONS)
    assert rows(
        "SELECT member_id, person_key, union_id, join_date, leave_date, collected_date, "
        "app_verified_date FROM staging.members"
    ) == with_keys(MEMBERS, 1)
    assert rows(
        "SELECT enrollment_id, person_key, union_id, plan_year, enrolled_date, premium_yuan, "
        "plan_type FROM staging.mutual_aid_enrollments"
    ) == with_keys(ENROLMENTS, 1)
    assert rows(
        "SELECT claim_id, enrollment_id, claim_date, benefit_yuan, status "
        "FROM staging.mutual_aid_claims"
    ) == set(CLAIMS)
    assert rows(
        "SELECT loan_id, person_key, disbursed_date, amount_yuan FROM staging.loans"
    ) == with_keys(LOANS, 1)
    assert rows(
        "SELECT record_id, person_key, program, session_id, session_date FROM staging.training"
    ) == with_keys(TRAINING, 1)
    assert rows("SELECT kpi_code, year, target_value, comparator FROM staging.targets") == set(
        TARGETS
    )


def test_kpi_yearly_from_the_raw_drop(loaded):
    """Every cell of the 60 rows equals the hand-worked values of test_kpis.py."""
    con, _ = loaded
    ctx = resolve_refresh_context(con, None, None)
    assert (ctx.as_of, ctx.first_year) == (dt.date(2020, 2, 29), 2018)
    build_kpi_yearly(con)
    got = yearly(con)
    assert set(got) == set(EXPECTED_FEB29)
    for key, want in EXPECTED_FEB29.items():
        assert_row(got[key], want, key)
