"""The contract's parsing rules, evaluated by the SQL the loader uses."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest

from tests.drops import id_number
from union_pipeline.ingest import parse
from union_pipeline.ingest.specs import Column

TODAY = dt.date(2020, 9, 30)


@pytest.fixture
def con(macros_con):
    return macros_con


def typed(con, col: Column, raw: str | None):
    query = parse.typed_select([col], TODAY, f'(SELECT ?::VARCHAR AS "{col.name}")', [])
    result = con.execute(query, [raw])
    names = [d[0] for d in result.description]
    return dict(zip(names, result.fetchall()[0], strict=True))


@pytest.mark.parametrize(
    "raw",
    [
        "2019-03-05",
        "2019/3/5",
        "2019.3.5",
        "2019年3月5日",
        " 2019-03-05 ",
        "2019-03-05 00:00:00",
        "2019/03/05",
    ],
)
def test_every_date_style_parses(con, raw):
    assert typed(con, Column("d", "日期", "date"), raw) == {
        "d": dt.date(2019, 3, 5),
        "d__parsed": True,
    }


@pytest.mark.parametrize(
    "raw", ["2019-02-30", "2019-13-01", "05/03/2019", "yesterday", "19-3-5", "epoch", "infinity"]
)
def test_impossible_or_foreign_dates_are_flagged_not_guessed(con, raw):
    assert typed(con, Column("d", "日期", "date"), raw) == {"d": None, "d__parsed": False}


def test_empty_cell_is_null_not_an_error(con):
    assert typed(con, Column("d", "日期", "date"), "  ") == {"d": None, "d__parsed": True}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1,234.50", "1234.50"), ("12", "12.00"), (" 0.5 ", "0.50"), ("1，234", "1234.00")],
)
def test_amounts_with_thousands_separators(con, raw, expected):
    result = typed(con, Column("a", "金额", "decimal"), raw)
    assert str(result["a"]) == expected and result["a__parsed"]


@pytest.mark.parametrize("raw", ["12美元", "USD 12", "1,2,3", "12,34.5", "1,234,5"])
def test_unparseable_amount_is_flagged(con, raw):
    assert typed(con, Column("a", "金额", "decimal"), raw)["a__parsed"] is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("是", True),
        ("否", False),
        ("Y", True),
        ("n", False),
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
    ],
)
def test_booleans(con, raw, expected):
    assert typed(con, Column("b", "结业", "bool"), raw) == {"b": expected, "b__parsed": True}


def test_integers_reject_fractions(con):
    assert typed(con, Column("n", "人数", "int"), "12.0")["n"] == 12
    assert typed(con, Column("n", "人数", "int"), "12.5")["n__parsed"] is False


def test_valid_id_number_gives_key_gender_and_birth_year(con):
    number = id_number(region="330211", birth="19851231", seq="457")  # odd 17th digit: male
    result = typed(con, Column("id_number", "身份证号", "id_number"), number)
    expected_key = hmac.new(b"test-key", number.encode(), hashlib.sha256).hexdigest()
    assert result == {
        "id_number__ok": True,
        "person_key": expected_key,
        "gender": "男",
        "birth_year": 1985,
    }


def test_id_number_with_x_check_digit_and_lower_case(con):
    number = next(n for s in range(100, 200) if (n := id_number(seq=str(s))).endswith("X"))
    lower = typed(con, Column("id_number", "身份证号", "id_number"), number.lower())
    upper = typed(con, Column("id_number", "身份证号", "id_number"), number)
    assert lower["id_number__ok"] and lower["person_key"] == upper["person_key"]


@pytest.mark.parametrize(
    "bad",
    [
        id_number()[:-1] + ("0" if id_number()[-1] != "0" else "1"),  # wrong check digit
        id_number(birth="19900230"),  # 30 February
        id_number(birth="21000101"),  # born in the future
        id_number()[:17],  # 17 characters
        "33021119900307123A",
    ],
)
def test_invalid_id_numbers(con, bad):
    result = typed(con, Column("id_number", "身份证号", "id_number"), bad)
    assert result == {
        "id_number__ok": False,
        "person_key": None,
        "gender": None,
        "birth_year": None,
    }


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("13812345678", True), ("138-1234-5678", True), ("23812345678", False), ("1381234567", False)],
)
def test_phone_rule(con, raw, ok):
    assert typed(con, Column("phone", "手机号", "phone"), raw)["phone__ok"] is ok


def test_masks_hide_the_person(con):
    row = con.execute(
        "SELECT up_mask_id('33021119900307123X'), up_mask_name('张三丰'), "
        "up_mask_phone('13812345678')"
    ).fetchall()[0]
    assert row == ("330211********123X", "张**", "138****5678")
