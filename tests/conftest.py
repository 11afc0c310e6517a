"""Shared fixtures."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.drops import MEMBER_HEADER, TARGET_HEADER, UNION_HEADER, id_number, write_csv

TEST_PII_KEY = "test-only-pii-key-not-a-secret"


@pytest.fixture(autouse=True)
def pii_key(monkeypatch) -> str:
    """Every test refreshes with a key of its own; a test of the refusal deletes it."""
    monkeypatch.setenv("UNION_PII_KEY", TEST_PII_KEY)
    return TEST_PII_KEY


@pytest.fixture
def minimal_drop(tmp_path: Path) -> Path:
    """Two unions, a handful of members, one target: the smallest drop that refreshes."""
    return write_minimal_drop(tmp_path / "raw")


def write_minimal_drop(raw: Path) -> Path:
    """The `minimal_drop`, written into `raw`."""
    write_csv(
        raw / "unions" / "unions.csv",
        UNION_HEADER,
        [
            ["U1", "甲公司工会", "招宝山街道", "企业", "100", "2010-01-05", "2019-03-05", "3", ""],
            ["U2", "乙公司工会", "蛟川街道", "企业", "50", "2019-06-01", "", "", ""],
        ],
    )
    write_csv(
        raw / "members" / "members.csv",
        MEMBER_HEADER,
        [
            [
                "M1",
                "张三",
                id_number(seq="123"),
                "13812345678",
                "U1",
                "2019-01-01",
                "",
                "",
                "",
                "是",
            ],
            ["M2", "李四", id_number(seq="124"), "", "U2", "2019-07-01", "", "", "", "否"],
        ],
        encoding="gb18030",
    )
    write_csv(
        raw / "targets" / "targets.csv",
        TARGET_HEADER,
        [
            ["members_total", "2019", "2", ">=", "test"],
        ],
    )
    return raw


@pytest.fixture
def as_of() -> dt.date:
    return dt.date(2020, 9, 30)


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """A small generated demo district, generated once per session."""
    from union_demo import generate

    raw = tmp_path_factory.mktemp("demo") / "raw"
    generate(raw, scale=0.02, seed=7)
    return raw


@pytest.fixture
def demo_drop(demo_source, tmp_path) -> Path:
    """A private copy of the small demo drop, free to change."""
    raw = tmp_path / "raw"
    shutil.copytree(demo_source, raw)
    return raw


@pytest.fixture(scope="session")
def district_state(demo_source, tmp_path_factory):
    """The small demo drop refreshed once per session (`python -m union_pipeline.refresh`,
    reports included); use it through `refreshed_district`."""
    from tests.shared import RefreshedDistrict

    state = RefreshedDistrict(tmp_path_factory.mktemp("shared") / "district", TEST_PII_KEY)
    state.build(demo_source)
    return state


@pytest.fixture
def refreshed_district(district_state, monkeypatch):
    """The refreshed small demo district, as the refresh left it, with its settings and
    DAGSTER_HOME in the environment; the test may change it (the next test gets it back)."""
    district_state.use()
    for name, value in district_state.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("UNION_AS_OF", raising=False)
    return district_state


@pytest.fixture
def macros_con():
    """An in-memory DuckDB with the reader's SQL macros (keyed with a test key)."""
    import duckdb

    from union_pipeline.ingest import parse

    con = duckdb.connect()
    for sql in parse.macros_sql(b"test-key"):
        con.execute(sql)
    yield con
    con.close()
