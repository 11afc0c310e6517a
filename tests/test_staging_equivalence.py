"""The faster staging paths give what the plain SQL gives, cell for cell: the Arrow cleaning
(`clean_batch` + `finish_clean`) against `clean_sql`, the staged parsing of numbers, dates
and booleans against the macros inline, the ID number's keyed hash joined against it
computed row by row."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from union_pipeline.ingest import parse
from union_pipeline.ingest.specs import Column

TODAY = dt.date(2020, 9, 30)
# what exports hold at the edges of a cell: spaces of every kind, Excel's text guards,
# full-width forms, zero-width characters, CJK, quotes
PIECES = [
    *"aZ09-/.,，:元¥￥+eE年月日",
    " ",
    "\t",
    "\r",
    "\n",
    "\u3000",
    "\u00a0",
    "\u2007",
    "\u202f",
    "\u2000",
    "\u200b",
    "\ufeff",
    "＝",
    "１",
    "Ａ",
    "'",
    '="',
    '"',
    "=",
    "张",
    "—",
    "“",
    "2020-01-05",
    "2020/1/5",
    "2020年1月5日",
    "1,234.50",
    "330211199003071234",
    "13812345678",
    "是",
    "否",
    "TRUE",
    "",
]


def _cells(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    cells: list[str | None] = [None, "", " ", '=""', "'", "'  ", '="  x "', "\u3000\u3000"]
    while len(cells) < n:
        cells.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 5))))
    return cells


@pytest.fixture
def con(macros_con):
    return macros_con


def test_arrow_cleaning_is_the_sql_cleaning(con):
    cells = _cells(20_000, seed=1)
    # a column of ASCII only takes a shorter path (nothing to fold)
    ascii_only = [c if c is None or c.isascii() else None for c in _cells(20_000, seed=3)]
    columns = {"a": cells, "b": list(reversed(cells)), "c": ascii_only}
    batch = pa.record_batch(
        {**{k: pa.array(v, pa.string()) for k, v in columns.items()}, "n": range(len(cells))}
    )
    fast = parse.finish_clean(con, *parse.clean_batch(batch, list(columns)))
    expected = con.sql(parse.clean_sql(list(columns), "batch", ["n"]) + " ORDER BY n").fetchall()
    got = zip(*(fast.column(k).to_pylist() for k in ("n", *columns)), strict=True)
    assert list(got) == expected


def _inline(col: Column) -> tuple[str, str]:
    """The parse of int/decimal/date/bool as it was written before staging it."""
    raw, text = f'"{col.name}"', f'up_text("{col.name}")'
    parsed = {
        "int": f"CASE WHEN NOT up_pii_like({raw}) THEN up_int({raw}) END",
        "decimal": f"CASE WHEN NOT up_pii_like({raw}) THEN "
        f"TRY_CAST(up_number(up_unit({raw})) AS DECIMAL(18, {col.scale})) END",
        "date": f"up_date({raw})",
        "bool": f"up_bool({raw})",
    }[col.type]
    return parsed, f"({text} IS NULL OR {parsed} IS NOT NULL)"


@pytest.mark.parametrize("kind", ["int", "decimal", "date", "bool"])
def test_staged_parsing_is_the_inline_parsing(con, kind):
    col = Column(name="v", header="v", type=kind)
    values = pa.table({"n": range(5_000), "v": pa.array(_cells(5_000, seed=2), pa.string())})
    con.register("cells", values)
    staged = parse.typed_select([col], TODAY, "cells", ["n"])
    value, flag = _inline(col)
    inline = f"SELECT n, {value} AS v, {flag} AS v__parsed FROM cells"
    assert (
        con.sql(f"SELECT n, v, v__parsed FROM ({staged}) ORDER BY n").fetchall()
        == con.sql(inline + " ORDER BY n").fetchall()
    )
    con.unregister("cells")


def test_joined_person_key_is_the_inline_one(con):
    col = Column(name="id_number", header="身份证号", type="id_number")
    ids = ["330211199003071234", "33021119900307123x", " 330211 19900307123X ", "1", None]
    ids += [f"3302111990030{i:05d}" for i in range(2_000)]
    con.register("ids", pa.table({"n": range(len(ids)), "id_number": pa.array(ids, pa.string())}))
    hashed = """(SELECT *, up_person_key(up_id_norm(id_number)) AS __key FROM ids)"""
    joined = parse.typed_select([col], TODAY, hashed, ["n"], hashed="__key")
    inline = parse.typed_select([col], TODAY, "ids", ["n"])
    assert (
        con.sql(f"FROM ({joined}) ORDER BY n").fetchall()
        == con.sql(f"FROM ({inline}) ORDER BY n").fetchall()
    )
    con.unregister("ids")
