"""Real exports and hostile files (issue 10): nothing leaks, nothing is lost, nothing blocks
a refresh without a reason. Each test writes a small drop the way users send it."""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest

from tests.drops import (
    CLAIM_HEADER,
    ENROLMENT_HEADER,
    LOAN_HEADER,
    MEMBER_HEADER,
    UNION_HEADER,
    id_number,
    write_csv,
    write_xls,
    write_xlsx,
)
from union_pipeline.ingest import safety
from union_pipeline.ingest.files import FileError
from union_pipeline.ingest.load import load_source
from union_pipeline.ingest.specs import load_specs
from union_pipeline.settings import (
    DEMO_KEY_WARNING,
    DEV_PII_KEY,
    ConfigError,
    load_settings,
    require_pii_key,
)

AS_OF = dt.date(2020, 9, 30)
KEY = b"test-key"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def load(con, raw: Path, *sources: str, key: bytes = KEY, **kwargs):
    specs = load_specs()
    return [load_source(con, specs[s], raw, AS_OF, key, **kwargs) for s in sources]


def union_row(uid: str, **overrides) -> list:
    values = [uid, f"{uid}工会", "招宝山街道", "企业", "10", "2010-01-01", "", "", ""]
    row = dict(zip(UNION_HEADER, values, strict=True)) | overrides
    return [row[h] for h in UNION_HEADER]


def member_row(mid: str, seq: str, **overrides) -> list:
    values = [mid, "张三", id_number(seq=seq), "13812345678", "U1", "2019-01-01", "", "", "",
              "是"]  # fmt: skip
    row = dict(zip(MEMBER_HEADER, values, strict=True)) | overrides
    return [row[h] for h in MEMBER_HEADER]


def with_unions(raw: Path, *ids: str) -> None:
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row(u) for u in ids or ("U1",)])


def clear_pii(text: str) -> list[str]:
    """Every clear ID number (valid check digit, or 15 digits) or mobile number in text."""
    found = []
    for m in re.finditer(r"(?<![\dXx])(\d{17}[\dXx]|\d{15}|1[3-9]\d{9})(?![\dXx])", text):
        run = m.group(1)
        if len(run) == 18:
            total = sum(int(c) * w for c, w in zip(run[:17], ID_WEIGHTS, strict=True))
            if "10X98765432"[total % 11] != run[17].upper():
                continue
        found.append(run)
    return found


def dump(con) -> str:
    """Every value of every staging table, as text."""
    tables = [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'"
    ).fetchall()]  # fmt: skip
    return "\n".join(str(con.execute(f"SELECT * FROM staging.{t}").fetchall()) for t in tables)


# ----------------------------------------------------------------- 1. PII in clear


def test_csv_without_header_row_fails_without_quoting_the_row(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    number = id_number(seq="101")
    write_csv(
        raw / "members" / "m.csv",
        member_row("M1", "101", **{"姓名": "欧阳娜娜"}),
        [member_row("M2", "102")],
    )  # the first data row where the header belongs
    with pytest.raises(FileError, match=r"members/m.csv: no header row found") as err:
        load(con, raw, "unions", "members")
    assert "会员编号" in str(err.value)  # says what was expected
    for clear in ("欧阳娜娜", number, "13812345678", id_number(seq="102")):
        assert clear not in str(err.value)


def test_member_id_that_is_the_id_number_is_hashed_and_still_joins(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    ids = [id_number(seq=s) for s in ("101", "102", "103")]
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [
        member_row(ids[0], "101"),
        member_row(ids[1], "102"),
        member_row(ids[2], "103", **{"入会日期": "bad"}),  # quarantined
    ])  # fmt: skip
    write_csv(
        raw / "loans" / "l.csv",
        LOAN_HEADER,
        [["L1", ids[0], "2020-01-02", "100000", "36", "工商银行", "正常"]],
    )
    _, members, loans = load(con, raw, "unions", "members", "loans")
    assert (members.loaded, members.quarantined, loans.loaded) == (2, 1, 1)
    keys = con.execute("SELECT member_id, person_key FROM staging.members").fetchall()
    assert all(member_id == person_key for member_id, person_key in keys)  # same HMAC
    (masked,) = con.execute("SELECT values_masked FROM staging.quarantine").fetchone()
    assert json.loads(masked)["member_id"] == ids[2][:6] + "********" + ids[2][-4:]
    assert clear_pii(dump(con)) == []


def test_no_clear_id_or_phone_anywhere_whatever_column_it_arrives_in(tmp_path, con):
    raw = tmp_path / "raw"
    person, other = id_number(seq="101"), id_number(seq="102")
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [
        union_row("U1", **{"工会名称": f"联系人13912345678 身份证{other}"}),
        union_row("13700001111"),  # a union code that is a phone number
    ])  # fmt: skip
    write_csv(raw / "members" / "m.csv", [*MEMBER_HEADER, "备注"], [
        [*member_row("M1", "101", **{"工会编码": "13700001111"}), "x"],
        [*member_row("M2", "102", **{"入会日期": other}), "y"],  # shifted: ID in a date
        [*member_row("M3", "103", **{"一线职工": "13812345678"}), "z"],
    ])  # fmt: skip
    write_csv(raw / "mutual_aid_enrollments" / "e.csv", ENROLMENT_HEADER, [
        ["13600002222", person, "U1", "2019", "2019-01-10", "60", "住院医疗互助"],
        ["E2", person, "U1", "2019", "2019-01-10", "13812345678", "住院医疗互助"],
    ])  # fmt: skip
    write_csv(raw / "mutual_aid_claims" / "c.csv", CLAIM_HEADER, [
        ["C1", "13600002222", "2019-05-01", "100", "已发放"],  # joins the hashed enrolment
        ["C2", "13600002222", "2019-05-01", "100", f"已发放 {person}"],
    ])  # fmt: skip
    unions, members, enrol, claims = load(
        con, raw, "unions", "members", "mutual_aid_enrollments", "mutual_aid_claims"
    )
    assert (unions.loaded, members.loaded, enrol.loaded, claims.loaded) == (2, 1, 1, 1)
    assert enrol.quarantine_by_rule == {"unparseable": 1}  # a phone is not an amount
    assert claims.quarantine_by_rule == {"not_allowed": 1}
    everything = dump(con)
    assert clear_pii(everything) == []
    assert "139****5678" in everything  # masked where it is no key: still findable
    quarantined = str(con.execute("SELECT * FROM staging.quarantine").fetchall())
    assert "330211********" in quarantined and "138****5678" in quarantined


# ----------------------------------------------------------------------- 2. the key


def test_public_key_refuses_a_real_drop_and_says_how_to_set_one(tmp_path, con, monkeypatch):
    raw = tmp_path / "raw"
    with_unions(raw)
    with pytest.raises(ConfigError, match=r"export UNION_PII_KEY=") as err:
        load(con, raw, "unions", key=DEV_PII_KEY.encode())
    assert "secret" in str(err.value) and "stable" in str(err.value)
    monkeypatch.delenv("UNION_PII_KEY")
    settings = load_settings()
    with pytest.raises(ConfigError, match="UNION_PII_KEY"):
        require_pii_key(settings, raw)
    assert con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'"
    ).fetchone() == (0,)  # refused before anything was written


def test_public_key_keys_only_the_generated_demo_drop(demo_drop, con, monkeypatch):
    monkeypatch.delenv("UNION_PII_KEY")
    settings = load_settings()
    assert require_pii_key(settings, demo_drop) == DEMO_KEY_WARNING
    (unions,) = load(con, demo_drop, "unions", key=settings.pii_key)
    assert unions.pii_key_warning == DEMO_KEY_WARNING and unions.loaded > 0
    # a real export dropped into the demo folder makes it a real drop
    write_csv(demo_drop / "unions" / "zz_real.csv", UNION_HEADER, [union_row("U1")])
    with pytest.raises(ConfigError, match="UNION_PII_KEY"):
        require_pii_key(settings, demo_drop)
    monkeypatch.setenv("UNION_PII_KEY", "a-long-secret")
    assert require_pii_key(load_settings(), demo_drop) is None


# ------------------------------------------------------------------ 4. future dates


def test_a_future_date_is_quarantined_and_cannot_move_the_as_of_date(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [member_row("M1", "101")])
    write_csv(
        raw / "mutual_aid_enrollments" / "e.csv",
        ENROLMENT_HEADER,
        [["E1", id_number(seq="101"), "U1", "2019", "2019-01-10", "60", "住院医疗互助"]],
    )
    write_csv(raw / "mutual_aid_claims" / "c.csv", CLAIM_HEADER, [
        ["C1", "E1", "2019-05-01", "100", "已发放"],
        ["C2", "E1", "2999-06-01", "100", "已发放"],  # a typo for 2019
    ])  # fmt: skip
    specs = load_specs()
    # even when the rules' as-of date is later still (UNION_AS_OF mistyped as well)
    results = [
        load_source(con, specs[s], raw, dt.date(3000, 1, 1), KEY, today=dt.date(2020, 10, 1))
        for s in ("unions", "members", "mutual_aid_enrollments", "mutual_aid_claims")
    ]
    assert results[-1].quarantine_by_rule == {"future_date": 1}
    assert con.execute("SELECT max(claim_date) FROM staging.mutual_aid_claims").fetchone() == (
        dt.date(2019, 5, 1),
    )


# --------------------------------------------------------------------- 5. .xls files


def test_xls_export_is_read(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "2019.csv", MEMBER_HEADER, [member_row("M1", "101")])
    write_xls(
        raw / "members" / "2020-update.xls",
        MEMBER_HEADER,
        [member_row("M2", "102"), member_row("M1", "101", **{"离会日期": "2020-03-01"})],
    )
    (tmp_path / "raw" / "members" / "说明.txt").write_text("not data")
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded, members.superseded) == (3, 2, 1)
    assert [f["format"] for f in members.files] == ["utf-8", "xls"]
    assert members.unread_files == ["members/说明.txt"]
    assert con.execute(
        "SELECT member_id, leave_date FROM staging.members ORDER BY 1"
    ).fetchall() == [("M1", dt.date(2020, 3, 1)), ("M2", None)]


# ------------------------------------------------- 6. harmless things do not block


def test_trailing_blank_rows_are_skipped_and_counted(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    path = write_csv(
        raw / "members" / "m.csv",
        MEMBER_HEADER,
        [member_row(f"M{i}", f"{100 + i}") for i in range(10)],
    )
    with open(path, "a", encoding="utf-8") as f:
        f.write(",,,,,,,,,\n" * 280 + ",,,,\n" * 10 + "\n" * 10)  # Excel's leftovers
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded, members.quarantined) == (310, 10, 0)
    assert members.skipped_by_reason == {"blank": 300}
    assert members.identity_holds and not members.threshold_exceeded(0.05)


def test_title_row_above_the_header_and_the_sheet_with_the_headers(tmp_path, con):
    from openpyxl import Workbook

    raw = tmp_path / "raw"
    with_unions(raw)
    title = ["镇海区会员实名制名册（截至2020年9月30日）"]
    write_csv(
        raw / "members" / "a.csv",
        title,
        [[], MEMBER_HEADER, member_row("M1", "101")],
        encoding="gb18030",
    )
    book = Workbook()
    book.active.title = "填表说明"
    book.active.append(["请按模板填写"])  # instructions, no headers
    sheet = book.create_sheet("名册")
    sheet.append(title)
    sheet.append(MEMBER_HEADER)
    sheet.append(member_row("M2", "102"))
    sheet.append([" ", None, "\u3000"])  # looks empty: a blank row
    book.create_sheet("空白")
    (raw / "members" / "b.xlsx").parent.mkdir(exist_ok=True)
    book.save(raw / "members" / "b.xlsx")
    _, members = load(con, raw, "unions", "members")
    assert (members.loaded, members.quarantined, members.skipped) == (2, 0, 1)
    meta = {f["file"]: (f["sheet"], f["header_row"]) for f in members.files}
    assert meta == {"members/a.csv": (None, 3), "members/b.xlsx": ("名册", 2)}
    assert con.execute(
        "SELECT member_id, _source_line FROM staging.members ORDER BY 1"
    ).fetchall() == [("M1", 4), ("M2", 3)]


def test_excel_text_guards_full_width_digits_and_currency_are_accepted(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    plain = [id_number(seq=s) for s in ("101", "102", "103", "104", "105")]
    wide = plain[3].translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [
        member_row("M1", "101", **{"身份证号": "\t" + plain[0]}),
        member_row("M2", "102", **{"身份证号": "'" + plain[1]}),
        member_row("M3", "103", **{"身份证号": f'="{plain[2]}"'}),
        member_row("M4", "104", **{"身份证号": wide, "手机号": "１３８１２３４５６７８"}),
        member_row("M5", "105", **{"会员编号": "\u3000M5\u00a0", "入会日期": "２０１９-０１-０１"}),
    ], encoding="utf-8-sig")  # fmt: skip
    write_csv(raw / "mutual_aid_enrollments" / "e.csv", ENROLMENT_HEADER, [
        ["E1", plain[0], "U1", "2019", "2019-01-10", "1,234.50元", "住院医疗互助"],
        ["E2", plain[1], "U1", "2019", "2019-01-10", "￥60", "住院医疗互助"],
        ["E3", plain[2], "U1", "２０１９", "2019-01-10", "¥ 60.5", "住院医疗互助"],
    ])  # fmt: skip
    _, members, enrol = load(con, raw, "unions", "members", "mutual_aid_enrollments")
    assert (members.loaded, members.quarantined) == (5, 0), members.quarantine_by_rule
    assert (enrol.loaded, enrol.quarantined) == (3, 0), enrol.quarantine_by_rule
    con.execute("CREATE TEMP TABLE plain (id VARCHAR)")
    con.executemany("INSERT INTO plain VALUES (?)", [[p] for p in plain])
    assert con.execute(
        "SELECT count(*) FROM staging.members m JOIN (SELECT up_person_key(id) AS k FROM plain) "
        "p ON m.person_key = p.k"
    ).fetchone() == (5,)  # the same person_key as the plain ID number
    assert con.execute(
        "SELECT list(premium_yuan::VARCHAR ORDER BY enrollment_id) "
        "FROM staging.mutual_aid_enrollments"
    ).fetchone() == (["1234.50", "60.00", "60.50"],)
    assert con.execute("SELECT member_id FROM staging.members WHERE member_id = 'M5'").fetchone()


def test_totals_rows_are_recognised_and_counted_not_quarantined(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [
        union_row("U1"), union_row("U2"),
        ["小计", "", "", "", "20", "", "", "", ""],
        union_row("U3"),
        ["合 计", "", "", "", "30", "", "", "", ""],
    ])  # fmt: skip
    write_xlsx(raw / "unions" / "v.xlsx", ["序号", *UNION_HEADER], [
        [1, *union_row("U4")],
        [None, "总计：1家", None, None, None, 10],
    ])  # fmt: skip
    (unions,) = load(con, raw, "unions")
    assert (unions.read, unions.loaded, unions.quarantined) == (7, 4, 0)
    assert unions.skipped_by_reason == {"totals": 3}
    assert [f["skipped"] for f in unions.files] == [{"totals": 2}, {"totals": 1}]
    assert unions.identity_holds


# ------------------------------------------------------------------ 7. clear messages


def test_mixed_encodings_in_a_bom_file_name_the_line_and_byte(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    good = ",".join(member_row("M1", "101")) + "\r\n"
    pasted = ",".join(member_row("M2", "102", **{"姓名": "李四"})) + "\r\n"
    body = codecs.BOM_UTF8 + (",".join(MEMBER_HEADER) + "\r\n" + good).encode("utf-8")
    (raw / "members").mkdir(parents=True)
    (raw / "members" / "m.csv").write_bytes(body + pasted.encode("gbk"))
    offset = len(body) + pasted.encode("gbk").index("李".encode("gbk"))
    with pytest.raises(FileError) as err:
        load(con, raw, "unions", "members")
    message = str(err.value)
    assert message.startswith(f"members/m.csv: line 3 (byte offset {offset}) is not UTF-8")
    assert "CSV column" not in message and "李四" not in message


def test_threshold_message_names_source_files_and_top_rules(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "a.csv", MEMBER_HEADER, [
        member_row("M1", "101"),
        member_row("M2", "102", **{"入会日期": "2019-02-30"}),
        member_row("M3", "103", **{"入会日期": "2019-13-01", "姓名": "欧阳娜娜"}),
    ])  # fmt: skip
    write_csv(
        raw / "members" / "b.csv", MEMBER_HEADER, [member_row("M4", "104", **{"工会编码": "U404"})]
    )
    _, members = load(con, raw, "unions", "members")
    assert members.threshold_exceeded(0.05)
    message = members.threshold_message(0.05)
    for part in ("会员实名制名册 (members)", "members/a.csv", "members/b.csv", "unparseable 2",
                 "unknown_union 1", "75.0%", "5.0%", "staging.quarantine"):  # fmt: skip
        assert part in message, part
    assert "超过阈值" in message and "above the threshold" in message
    assert "欧阳" not in message and "2019-13-01" not in message and not clear_pii(message)


def test_duplicated_header_column_is_an_error_naming_both(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_xlsx(
        raw / "members" / "m.xlsx",
        [*MEMBER_HEADER, "member_id"],
        [[*member_row("M1", "101"), "M9"]],
    )
    with pytest.raises(FileError) as err:
        load(con, raw, "unions", "members")
    assert str(err.value).startswith(
        "members/m.xlsx, sheet Sheet: columns 1 (会员编号) and 11 (member_id) are both member_id"
    )


def test_link_out_of_the_raw_folder_is_refused_without_quoting(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    secret = write_csv(
        tmp_path / "elsewhere" / "roster.csv",
        MEMBER_HEADER,
        [member_row("M1", "101", **{"姓名": "欧阳娜娜"})],
    )
    (raw / "members").mkdir()
    (raw / "members" / "m.csv").symlink_to(secret)
    with pytest.raises(FileError, match=r"members/m.csv: is a link to a file outside") as err:
        load(con, raw, "unions", "members")
    assert "欧阳娜娜" not in str(err.value) and id_number(seq="101") not in str(err.value)
    # a link inside the drop is fine
    (raw / "members" / "m.csv").unlink()
    inside = write_csv(raw / "archive" / "m.csv", MEMBER_HEADER, [member_row("M1", "101")])
    (raw / "members" / "m.csv").symlink_to(inside)
    assert load(con, raw, "members")[0].loaded == 1


# ------------------------------------------------------------- outputs safe to open


@pytest.mark.parametrize(
    ("text", "safe"),
    [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+86 138", "'+86 138"),
     ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("甲公司工会", "甲公司工会"),
     ("", ""), (None, None)],
)  # fmt: skip
def test_formulas_are_neutralised_in_python_and_sql(text, safe):
    assert safety.neutralise_formula(text) == safe
    sql = safety.neutralise_formula_sql("$1::VARCHAR")
    assert duckdb.connect().execute(f"SELECT {sql}", [text]).fetchone() == (safe,)


def test_preview_cells_are_truncated():
    long = "长" * 500
    assert safety.truncate_cell("short") == "short"
    cut = safety.truncate_cell(long)
    assert len(cut) == 200 and cut.endswith("…")
    sql = safety.truncate_cell_sql("$1::VARCHAR")
    assert duckdb.connect().execute(f"SELECT {sql}", [long]).fetchone() == (cut,)
