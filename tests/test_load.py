"""Loading sources: every quarantine rule, repeats, later file wins, file-level errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from tests.drops import MEMBER_HEADER, UNION_HEADER, id_number, write_csv, write_xlsx
from union_pipeline.ingest.files import FileError
from union_pipeline.ingest.load import load_source
from union_pipeline.ingest.specs import load_specs

AS_OF = dt.date(2020, 9, 30)
KEY = b"test-key"


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def load(con, raw: Path, *sources: str):
    specs = load_specs()
    return [load_source(con, specs[s], raw, AS_OF, KEY) for s in sources]


def quarantine(con, source: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT values_masked, rule FROM staging.quarantine WHERE source = ?", [source]
    ).fetchall()
    return {json.loads(v)[next(iter(json.loads(v)))]: rule for v, rule in rows}


def union_row(uid, **overrides):
    row = dict(
        zip(
            UNION_HEADER,
            [uid, f"{uid}工会", "招宝山街道", "企业", "10", "2010-01-01", "", "", ""],
            strict=True,
        )
    )
    row.update(overrides)
    return [row[h] for h in UNION_HEADER]


def member_row(mid, seq, **overrides):
    row = dict(
        zip(
            MEMBER_HEADER,
            [mid, "张三", id_number(seq=seq), "13812345678", "U1", "2019-01-01", "", "", "", "是"],
            strict=True,
        )
    )
    row.update(overrides)
    return [row[h] for h in MEMBER_HEADER]


def test_each_row_rule_quarantines_with_its_name(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(
        raw / "unions" / "u.csv",
        UNION_HEADER,
        [
            union_row("U1"),
            union_row("U2", **{"所属镇街": "火星街道"}),  # not in the street list
            union_row("U3", **{"单位类型": "公司"}),
            union_row("U4", **{"职工人数": "-1"}),
            union_row("U5", **{"成立日期": ""}),
            union_row("U6", **{"成立日期": "2010-02-30"}),
            union_row("U7", **{"撤销日期": "2009-01-01"}),  # before founding
            union_row("U8", **{"星级": "7"}),
        ],
    )
    write_csv(
        raw / "members" / "m.csv",
        MEMBER_HEADER,
        [
            member_row("M1", "101"),
            member_row("M2", "102", **{"身份证号": id_number(seq="102")[:-1] + "Z"}),
            member_row("M3", "103", **{"手机号": "2381234567"}),
            member_row("M4", "104", **{"工会编码": "U404"}),
            member_row("M5", "105", **{"入会日期": "2030-01-01"}),
            member_row("M6", "106", **{"离会日期": "2018-01-01"}),
            member_row("M7", "107", **{"姓名": ""}),
            member_row("M8", "108", **{"一线职工": "maybe"}),
        ],
        encoding="gb18030",
    )
    unions, members = load(con, raw, "unions", "members")
    assert quarantine(con, "unions") == {
        "U2": "not_allowed",
        "U3": "not_allowed",
        "U4": "out_of_range",
        "U5": "missing_required",
        "U6": "unparseable",
        "U7": "date_order",
        "U8": "out_of_range",
    }
    assert quarantine(con, "members") == {
        "M2": "invalid_id_number",
        "M3": "invalid_phone",
        "M4": "unknown_union",
        "M5": "after_as_of",
        "M6": "date_order",
        "M7": "missing_required",
        "M8": "unparseable",
    }
    assert (unions.loaded, unions.quarantined) == (1, 7)
    assert (members.loaded, members.quarantined) == (1, 7)
    assert unions.identity_holds and members.identity_holds


def test_references_across_sources(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row("U1")])
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [member_row("M1", "101")])
    write_csv(
        raw / "mutual_aid_enrollments" / "e.csv",
        ["参保编号", "身份证号", "工会编码", "保障年度", "参保日期", "缴费金额", "保障类型"],
        [
            ["E1", id_number(seq="101"), "U1", "2019", "2019-01-10", "60", "住院医疗互助"],
            ["E2", id_number(seq="999"), "U1", "2019", "2019-01-10", "60", "住院医疗互助"],
        ],
        encoding="utf-8-sig",
    )
    write_csv(
        raw / "mutual_aid_claims" / "c.csv",
        ["申领编号", "参保编号", "申领日期", "补助金额", "状态"],
        [
            ["C1", "E1", "2019-05-01", "1,000.00", "已发放"],
            ["C2", "E404", "2019-05-01", "100", "已发放"],
            ["C3", "E1", "2019-01-01", "100", "已发放"],
        ],
    )
    *_, enrollments, claims = load(
        con, raw, "unions", "members", "mutual_aid_enrollments", "mutual_aid_claims"
    )
    assert quarantine(con, "mutual_aid_enrollments") == {"E2": "unknown_member"}
    assert quarantine(con, "mutual_aid_claims") == {
        "C2": "unknown_enrollment",
        "C3": "claim_before_enrollment",
    }
    assert con.execute("SELECT benefit_yuan FROM staging.mutual_aid_claims").fetchall() == [
        (pytest.approx(1000),)
    ]


def test_repeats_collapse_conflicts_quarantine_and_later_file_wins(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row("U1")])
    write_csv(
        raw / "members" / "2019.csv",
        MEMBER_HEADER,
        [
            member_row("M1", "101"),
            member_row("M1", "101"),  # identical repeat
            member_row("M2", "102"),
            member_row("M2", "102", **{"入会日期": "2019-02-01"}),  # conflicting duplicate
            member_row("M3", "103"),
        ],
    )
    write_xlsx(
        raw / "members" / "2020-update.xlsx",
        MEMBER_HEADER,
        [
            member_row("M3", "103", **{"离会日期": dt.datetime(2020, 3, 1)}),
        ],
    )
    _, members = load(con, raw, "unions", "members")
    assert (
        members.read,
        members.loaded,
        members.quarantined,
        members.collapsed,
        members.superseded,
    ) == (6, 2, 2, 1, 1)
    assert members.identity_holds
    assert quarantine(con, "members") == {"M2": "conflicting_duplicate"}
    rows = con.execute(
        "SELECT member_id, leave_date, _source_file FROM staging.members ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("M1", None, "members/2019.csv"),
        ("M3", dt.date(2020, 3, 1), "members/2020-update.xlsx"),
    ]


def test_canonical_headers_spaces_and_unknown_columns(tmp_path, con):
    raw = tmp_path / "raw"
    header = [" union_id ", "union_name", "street", "employee_count", "founded_date", "备注"]
    write_csv(
        raw / "unions" / "u.csv",
        header,
        [[" U1 ", "甲", " 骆驼街道", "1,000", "2010年1月5日", "x"]],
    )
    (unions,) = load(con, raw, "unions")
    assert unions.files[0]["unknown_columns"] == ["备注"]
    assert con.execute(
        "SELECT union_id, street, employee_count, founded_date FROM staging.unions"
    ).fetchall() == [("U1", "骆驼街道", 1000, dt.date(2010, 1, 5))]


def test_no_pii_in_staging_or_quarantine(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row("U1")])
    number = id_number(seq="101")
    write_csv(
        raw / "members" / "m.csv",
        MEMBER_HEADER,
        [
            member_row("M1", "101", **{"姓名": "欧阳娜娜"}),
            member_row(
                "M2", "102", **{"姓名": "欧阳娜娜", "手机号": "13987654321", "入会日期": "bad"}
            ),
        ],
    )
    load(con, raw, "unions", "members")
    dump = str(con.execute("SELECT * FROM staging.members").fetchall()) + str(
        con.execute("SELECT * FROM staging.quarantine").fetchall()
    )
    for clear in ("欧阳娜娜", number, id_number(seq="102"), "13812345678", "13987654321"):
        assert clear not in dump


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda raw: write_csv(
                raw / "members" / "m.csv", MEMBER_HEADER[:2] + MEMBER_HEADER[3:], [["M1"] * 9]
            ),
            "members/m.csv: required column 身份证号 (id_number) is missing",
        ),
        (
            lambda raw: (
                (raw / "members").mkdir(parents=True)
                or (raw / "members" / "m.csv").write_bytes(
                    ",".join(MEMBER_HEADER).encode("gb18030") + b"\n\xff\xfe\xfd,\x81\n"
                )
            ),
            "members/m.csv: cannot be decoded as UTF-8 or GBK/GB18030",
        ),
        (
            lambda raw: (
                (raw / "members").mkdir(parents=True)
                or (raw / "members" / "m.csv").write_text(
                    ",".join(MEMBER_HEADER) + "\n" + ",".join(member_row("M1", "101")) + ",extra\n"
                )
            ),
            "members/m.csv: line 2 has 11 fields where the header has 10",
        ),
        (lambda raw: None, "members/ (会员实名制名册) is missing"),
        (
            lambda raw: (raw / "members").mkdir(parents=True),
            "members/ (会员实名制名册) holds no .csv, .txt, .xlsx or .xls file",
        ),
    ],
)
def test_file_level_errors_name_the_file_and_problem(tmp_path, con, setup, message):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row("U1")])
    setup(raw)
    load(con, raw, "unions")
    with pytest.raises(FileError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load(con, raw, "members")
    assert id_number(seq="101") not in str(err.value)  # the row's content stays out
