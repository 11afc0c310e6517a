"""A source whose files did not change has its reference rules run again over its last
output when only a source it references changed (`recheck_references`): the rows, the
quarantine and the counts are those of a load from the files, whichever way a reference
went."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from tests.drops import (
    CLAIM_HEADER,
    ENROLMENT_HEADER,
    MEMBER_HEADER,
    UNION_HEADER,
    id_number,
    write_csv,
)
from union_pipeline.ingest.load import HELD, StagedFiles, load_source, recheck_references
from union_pipeline.ingest.specs import load_specs

AS_OF = dt.date(2020, 9, 30)
KEY = b"test-key"
ENROLMENTS = "mutual_aid_enrollments"
CLAIMS = "mutual_aid_claims"
ORDER = ("unions", "members", ENROLMENTS, CLAIMS)


def member(mid: str, seq: str) -> list[str]:
    return [mid, "张三", id_number(seq=seq), "13812345678", "U1", "2019-01-01", "", "", "", "是"]


def enrolment(eid: str, seq: str, **changes) -> list[str]:
    row = [eid, id_number(seq=seq), "U1", "2019", "2019-01-10", "60", "住院医疗互助"]
    for i, value in changes.items():
        row[int(i[1:])] = value
    return row


@pytest.fixture
def raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    write_csv(
        raw / "unions" / "u.csv",
        UNION_HEADER,
        [["U1", "甲公司工会", "招宝山街道", "企业", "100", "2010-01-05", "", "", ""]],
    )
    write_csv(raw / "members" / "m.csv", MEMBER_HEADER, [member("M1", "101")])
    write_csv(
        raw / ENROLMENTS / "e.csv",
        ENROLMENT_HEADER,
        [
            enrolment("E1", "101"),
            enrolment("E2", "202"),  # no such member (yet)
            enrolment("E3", "101", c5="-5"),  # a row rule: it stays quarantined
            enrolment("E4", "101", c4="2019-03-01"),
            enrolment("E5", "505", c2="U9"),  # neither member nor union (yet)
        ],
        encoding="gb18030",
    )
    write_csv(
        raw / CLAIMS / "c.csv",
        CLAIM_HEADER,
        [
            ["C1", "E404", "2019-05-01", "100", "已发放"],  # no such enrolment
            ["C2", "E4", "2019-02-01", "100", "已发放"],  # before its enrolment
        ],
    )
    return raw


def load_all(raw: Path, folder: Path) -> dict[str, tuple]:
    """Every source loaded from its files; each source's output written to `folder` as
    the IO manager writes it. Returns (result, state) by source."""
    specs = load_specs()
    out = {}
    with duckdb.connect() as con:
        for name in ORDER:
            result = load_source(con, specs[name], raw, AS_OF, KEY)
            out[name] = (result, state(con, name))
            save(con, name, folder / name)
    return out


def save(con, name: str, folder: Path) -> StagedFiles:
    folder.mkdir(parents=True, exist_ok=True)
    staged = StagedFiles(folder / "data.parquet", folder / "held.parquet", folder / "q.parquet")
    con.execute(f"COPY (FROM staging.{name}) TO '{staged.data}'")
    con.execute(f"COPY (FROM {HELD}) TO '{staged.held}'")
    con.execute(f"COPY (FROM staging.quarantine WHERE source = '{name}') TO '{staged.quarantine}'")
    return staged


def state(con, name: str) -> tuple[list, list]:
    """Rows and quarantine rows of a source, in their order (the rows' is reading order)."""
    return (
        con.execute(f"FROM staging.{name}").fetchall(),
        con.execute(f"FROM staging.quarantine WHERE source = '{name}'").fetchall(),
    )


def summary(result) -> dict:
    """What the staging step records of a load and hands back to the next one."""
    return {
        "counts": {
            "rows_read": result.read,
            "repeats_collapsed": result.collapsed,
            "rows_superseded": result.superseded,
        },
        "skipped_by_reason": result.skipped_by_reason,
        "files": result.files,
    }


def recheck(raw: Path, name: str, last: tuple, folder: Path, referenced: tuple[str, ...]):
    """`name` checked again over its output in `folder`, the sources it references loaded
    from the files as they are now."""
    specs = load_specs()
    with duckdb.connect() as con:
        for ref in referenced:
            load_source(con, specs[ref], raw, AS_OF, KEY)
        staged = StagedFiles(folder / "data.parquet", folder / "held.parquet", folder / "q.parquet")
        result = recheck_references(con, specs[name], raw, staged, summary(last[0]), KEY)
        return result, (state(con, name) if result is not None else None)


def same_load(rechecked, loaded) -> None:
    for field in ("read", "loaded", "quarantined", "collapsed", "superseded", "skipped"):
        assert getattr(rechecked, field) == getattr(loaded, field), field
    assert rechecked.quarantine_by_rule == loaded.quarantine_by_rule
    assert rechecked.quarantine_by_file == loaded.quarantine_by_file
    assert [f["quarantined"] for f in rechecked.files] == [f["quarantined"] for f in loaded.files]
    assert rechecked.identity_holds


def test_a_member_who_appears_lets_the_held_enrolment_in(raw, tmp_path):
    before = load_all(raw, tmp_path / "before")
    assert before[ENROLMENTS][0].quarantine_by_rule == {"unknown_member": 2, "out_of_range": 1}
    # E2's member appears; so does E5's, whose union is still unknown: its new rule
    write_csv(raw / "members" / "m2.csv", MEMBER_HEADER, [member("M2", "202"), member("M5", "505")])

    result, rows = recheck(raw, ENROLMENTS, before[ENROLMENTS], tmp_path / "before" / ENROLMENTS,
                           ("unions", "members"))  # fmt: skip
    after = load_all(raw, tmp_path / "after")
    assert result is not None and not result.kept  # E2 came in: new files
    assert rows == after[ENROLMENTS][1]
    same_load(result, after[ENROLMENTS][0])
    assert result.quarantine_by_rule == {"out_of_range": 1, "unknown_union": 1}


def test_nothing_moves_the_last_files_stand(raw, tmp_path):
    before = load_all(raw, tmp_path / "before")
    write_csv(raw / "members" / "m2.csv", MEMBER_HEADER, [member("M3", "303")])  # unreferenced
    folder = tmp_path / "before" / ENROLMENTS
    result, rows = recheck(raw, ENROLMENTS, before[ENROLMENTS], folder, ("unions", "members"))
    assert rows == before[ENROLMENTS][1]
    assert set(result.kept) == {"data", "held", "quarantine"}
    same_load(result, before[ENROLMENTS][0])


def test_an_enrolment_that_disappears_moves_a_held_claim_to_its_new_rule(raw, tmp_path):
    before = load_all(raw, tmp_path / "before")
    assert before[CLAIMS][0].quarantine_by_rule == {
        "unknown_enrollment": 1,
        "claim_before_enrollment": 1,
    }
    # E4 leaves the enrolments: C2, held for its date, is now held for its enrolment
    lines = (raw / ENROLMENTS / "e.csv").read_bytes().decode("gb18030").splitlines()
    (raw / ENROLMENTS / "e.csv").write_bytes(
        "\n".join(x for x in lines if not x.startswith("E4")).encode("gb18030")
    )
    after = load_all(raw, tmp_path / "after")
    result, rows = recheck(raw, CLAIMS, before[CLAIMS], tmp_path / "before" / CLAIMS,
                           ("unions", "members", ENROLMENTS))  # fmt: skip
    assert result is not None
    assert rows == after[CLAIMS][1]
    same_load(result, after[CLAIMS][0])
    assert result.quarantine_by_rule == {"unknown_enrollment": 2}
    # C2's quarantine row: its new rule, its masked values from the last quarantine
    [(rule, values)] = [(q[3], q[6]) for q in rows[1] if q[2] == 3]
    assert rule == "unknown_enrollment" and json.loads(values)["claim_id"] == "C2"


def test_a_row_that_passed_and_fails_now_is_loaded_from_its_files(raw, tmp_path):
    write_csv(raw / "members" / "m2.csv", MEMBER_HEADER, [member("M2", "202")])
    before = load_all(raw, tmp_path / "before")
    (raw / "members" / "m2.csv").unlink()  # E2's member is gone: its masked values are not kept
    result, _ = recheck(raw, ENROLMENTS, before[ENROLMENTS], tmp_path / "before" / ENROLMENTS,
                        ("unions", "members"))  # fmt: skip
    assert result is None
