"""Exports as offices really send them (issue 18): each case failed on the reader before.

GBK files whose first bytes happen to be valid UTF-8, Excel's "Unicode 文本" save, the
headers other source systems use, tab-separated .csv files, ID numbers a workbook stores as
numbers, oversized cells, files in a source folder that are not read.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json

import duckdb
import pytest
from openpyxl import Workbook

from tests.drops import MEMBER_HEADER, TARGET_HEADER, UNION_HEADER, id_number, write_csv
from tests.test_hostile_files import dump, member_row, union_row, with_unions
from union_pipeline.ingest.files import FileError, detect_encoding
from union_pipeline.ingest.load import load_source
from union_pipeline.ingest.specs import load_specs

AS_OF = dt.date(2020, 9, 30)
KEY = b"test-key"


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def load(con, raw, *sources):
    specs = load_specs()
    return [load_source(con, specs[s], raw, AS_OF, KEY) for s in sources]


# ------------------------------------------------------------------------ encodings


@pytest.mark.parametrize("word", ["指标代码", "证件号码", "职工姓名", "统计", "一线职工"])
def test_gbk_text_whose_first_bytes_are_valid_utf8_is_gbk(tmp_path, word):
    data = f"{word},x\n1,2\n".encode("gbk")
    assert data.decode("utf-8", "ignore")  # the trap: a prefix decodes as UTF-8
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert detect_encoding(path, "f.csv") == "gb18030"


def test_gbk_targets_file_starting_with_zhibiao_daima_loads(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(
        raw / "targets" / "t.csv",
        TARGET_HEADER,
        [["members_total", "2020", "240000", ">=", "区总工会2020年工作要点"]],
        encoding="gbk",
    )
    (targets,) = load(con, raw, "targets")
    assert (targets.read, targets.loaded) == (1, 1)
    assert targets.files[0]["format"] == "gb18030"
    assert con.execute("SELECT basis FROM staging.targets").fetchone() == (
        "区总工会2020年工作要点",
    )


def test_gbk_members_export_with_frontline_first_loads(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    header = ["一线职工", *[h for h in MEMBER_HEADER if h != "一线职工"]]
    rows = [[r[-1], *r[:-1]] for r in (member_row("M1", "101"), member_row("M2", "102"))]
    write_csv(raw / "members" / "m.csv", header, rows, encoding="gbk")
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded, members.quarantined) == (2, 2, 0)


def test_gbk_file_with_an_unknown_header_is_told_about_the_header(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "m.csv", ["指标", "职工姓名x"], [["1", "2"]], encoding="gbk")
    with pytest.raises(FileError, match="no header row found") as err:
        load(con, raw, "unions", "members")
    assert "mixes encodings" not in str(err.value)


def test_utf8_rows_then_gbk_rows_is_still_refused_as_mixed(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    good = ",".join(member_row("M1", "101")) + "\n"
    bad = ",".join(member_row("M2", "102", **{"姓名": "王芳"})) + "\n"
    path = raw / "members" / "m.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes((",".join(MEMBER_HEADER) + "\n" + good).encode() + bad.encode("gbk"))
    with pytest.raises(FileError, match=r"line 3 .*mixes encodings"):
        load(con, raw, "unions", "members")


def test_excel_unicode_text_utf16_tab_separated_txt_is_read(tmp_path, con):
    """Excel's 另存为 "Unicode 文本": UTF-16 with BOM, tabs, .txt — once skipped in silence."""
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [member_row("M1", "101")])
    lines = ["\t".join(MEMBER_HEADER)]
    lines += ["\t".join(member_row(f"S{i}", f"{200 + i}")) for i in range(20)]
    text = "\r\n".join(lines) + "\r\n"
    (raw / "members" / "补录.txt").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded, members.quarantined) == (21, 21, 0)
    assert members.files[1]["format"] == "utf-16, tab-separated"
    assert members.unread_files == []


def test_utf32_is_refused_with_how_to_save_again(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    path = raw / "members" / "m.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(",".join(MEMBER_HEADER).encode("utf-32"))
    with pytest.raises(FileError, match=r"members/m.csv: is saved as UTF-32.*UTF-8"):
        load(con, raw, "unions", "members")


# -------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_tab_or_semicolon_separated_csv_is_read(tmp_path, con, delimiter):
    raw = tmp_path / "raw"
    with_unions(raw)
    lines = [delimiter.join(MEMBER_HEADER)]
    lines += [delimiter.join(member_row(f"M{i}", f"{100 + i}")) for i in range(3)]
    (raw / "members").mkdir(parents=True)
    (raw / "members" / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded) == (3, 3)


# ----------------------------------------------------------------------- aliases


def test_other_systems_headers_are_accepted(tmp_path, con):
    raw = tmp_path / "raw"
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, [union_row("U1")])
    aliases = {"身份证号": "公民身份号码", "手机号": "联系电话", "工会编码": "工会代码"}
    header = [aliases.get(h, h) for h in MEMBER_HEADER]
    write_csv(raw / "members" / "m.csv", header, [member_row("M1", "101")])
    _, members = load(con, raw, "unions", "members")
    assert (members.loaded, members.quarantined) == (1, 0)
    assert con.execute("SELECT has_phone, union_id FROM staging.members").fetchone() == (
        True,
        "U1",
    )


def test_every_spec_lists_aliases_for_the_id_number():
    for spec in load_specs().values():
        for col in spec.columns:
            if col.type == "id_number":
                assert {"身份证号码", "公民身份号码", "证件号码"} <= set(col.aliases)


def test_two_aliases_of_one_column_are_refused_naming_both(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    header = [*MEMBER_HEADER, "证件号码"]
    write_csv(raw / "members" / "m.csv", header, [[*member_row("M1", "101"), "x"]])
    with pytest.raises(FileError) as err:
        load(con, raw, "unions", "members")
    message = str(err.value)
    assert "身份证号" in message and "证件号码" in message and "members/m.csv" in message


# ------------------------------------------------------------- Excel's own damage


def test_id_numbers_stored_as_numbers_are_never_read_as_digits(tmp_path, con):
    """A merged title, a date line, the header on row 3, IDs as numbers: Excel's float keeps
    15-17 digits, so some wrong IDs pass the check digit. None may load."""
    raw = tmp_path / "raw"
    with_unions(raw)
    book = Workbook()
    sheet = book.active
    sheet.append(["2020年会员名册"])
    sheet.merge_cells("A1:J1")
    sheet.append(["导出日期：2020-09-30"])
    sheet.append(MEMBER_HEADER)
    ids = [id_number(seq=f"{100 + i}") for i in range(53)]
    for i, number in enumerate(ids):
        row = member_row(f"M{i}", f"{100 + i}")
        row[2] = int(number[:17] + ("0" if number[17] == "X" else number[17]))
        row[3] = 13812345678 if i % 2 else "13812345678"
        sheet.append(row)
    sheet.append(member_row("T1", "999"))  # an ID typed as text loads
    (raw / "members").mkdir(parents=True)
    book.save(raw / "members" / "名册.xlsx")
    _, members = load(con, raw, "unions", "members")
    assert (members.read, members.loaded, members.quarantined) == (54, 1, 53)
    assert members.quarantine_by_rule == {"excel_number": 53}
    assert con.execute("SELECT member_id FROM staging.members").fetchall() == [("T1",)]
    assert len(members.file_warnings) == 1
    warning = members.file_warnings[0]
    assert "members/名册.xlsx" in warning and "身份证号" in warning and "text" in warning
    everything = dump(con) + str(con.execute("SELECT * FROM staging.quarantine").fetchall())
    for number in ids:  # neither the ID nor the digits Excel made of it
        assert number[:15] not in everything and number[-12:] not in everything


def test_scientific_notation_in_a_csv_id_column_is_excel_number(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    rows = [
        member_row("M1", "101", **{"身份证号": "3.30211E+17"}),
        member_row("M2", "102", **{"手机号": "13812345678.0"}),
        member_row("M3", "103"),
    ]
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, rows)
    _, members = load(con, raw, "unions", "members")
    assert members.loaded == 1
    assert members.quarantine_by_rule == {"excel_number": 2}
    rules = dict(con.execute('SELECT line, "column" FROM staging.quarantine').fetchall())
    assert rules == {2: "id_number", 3: "phone"}


# --------------------------------------------------------------- oversized cells


def test_a_cell_of_a_million_characters_is_held_back_with_its_line(tmp_path, con):
    raw = tmp_path / "raw"
    rows = [union_row("U1"), union_row("U2", **{"工会名称": "工" * 1_000_000}), union_row("U3")]
    write_csv(raw / "unions" / "u.csv", UNION_HEADER, rows)
    (unions,) = load(con, raw, "unions")
    assert (unions.read, unions.loaded, unions.quarantined) == (3, 2, 1)
    line, rule, values = con.execute(
        "SELECT line, rule, values_masked FROM staging.quarantine"
    ).fetchone()
    assert (line, rule) == (3, "oversized_cell")
    assert len(json.loads(values)["union_name"]) <= 200
    assert any("unions/u.csv" in w and "line 3" in w for w in unions.file_warnings)


def test_a_huge_cell_in_the_first_lines_does_not_stop_the_header_search(tmp_path, con):
    raw = tmp_path / "raw"
    (raw / "unions").mkdir(parents=True)
    title = "说明" + "。" * 200_000  # a title row longer than the csv module's field limit
    body = [",".join(UNION_HEADER), ",".join(union_row("U1"))]
    (raw / "unions" / "u.csv").write_text("\n".join([title, *body]) + "\n", encoding="utf-8")
    (unions,) = load(con, raw, "unions")
    assert unions.loaded == 1


# -------------------------------------------------------------- files not read


def test_a_file_in_a_source_folder_that_is_not_read_is_named(tmp_path, con):
    raw = tmp_path / "raw"
    with_unions(raw)
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [member_row("M1", "101")])
    (raw / "members" / "补充名单.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    (raw / "members" / "说明.txt").write_text("本目录放会员名册", encoding="utf-8")
    _, members = load(con, raw, "unions", "members")
    assert sorted(members.unread_files) == ["members/补充名单.doc", "members/说明.txt"]
    said = "\n".join(members.file_warnings)
    assert "members/补充名单.doc: not read" in said and "members/说明.txt: not read" in said


def test_the_contract_lists_every_accepted_header():
    from union_pipeline.settings import ASSETS_DIR

    contract = (ASSETS_DIR.parent / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for spec in load_specs().values():
        section = contract.split(f"### `{spec.folder}/`", 1)[1].split("\n### ", 1)[0]
        for col in spec.columns:
            row = next(r for r in section.splitlines() if f"| {col.name} | {col.type} |" in r)
            assert row.startswith(f"| {col.header} | {', '.join(col.aliases)} |"), row
