"""Print a digest of every staging result of a raw drop, to prove a change to the loader
changes no result: run it before and after, the outputs must be identical.

    UNION_PII_KEY=bench-key .venv/bin/python bench/staging_digest.py /tmp/stg/raw > before.txt

Per source: the staging table's schema, row count, an order-free hash of all its columns and
an ordered one (the rows' order is part of the output: Parquet files are written in it); the
same for its rows of staging.quarantine; and the LoadResult (counts, files, warnings) as JSON.
The rule dates are fixed (--as-of, --today) so that the digest does not change by the day.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import duckdb

from union_pipeline.ingest.load import QUARANTINE, load_source
from union_pipeline.ingest.specs import load_specs

# references first: a source's referenced sources are loaded before it
ORDER = (
    "unions",
    "members",
    "targets",
    "published",
    "training",
    "loans",
    "mutual_aid_enrollments",
    "mutual_aid_claims",
)


def table_digest(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> dict:
    """Schema, count, order-free and ordered (by rowid: insertion order) hashes of the rows
    of a table that `where` selects."""
    schema = con.execute(f"DESCRIBE {table}").fetchall()
    count, unordered, ordered = con.execute(
        f"""SELECT count(*), sum(h), md5(string_agg(h::VARCHAR, ',' ORDER BY n))
        FROM (SELECT rowid AS n, hash(t) AS h FROM {table} t WHERE {where})"""
    ).fetchall()[0]
    return {
        "schema": hashlib.md5(repr(schema).encode()).hexdigest(),
        "rows": count,
        "hash": str(unordered),
        "ordered": ordered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--as-of", default="2020-09-30")
    parser.add_argument("--today", default="2026-12-01")
    args = parser.parse_args()
    key = os.environ.get("UNION_PII_KEY", "bench-key").encode()
    as_of, today = dt.date.fromisoformat(args.as_of), dt.date.fromisoformat(args.today)
    specs = load_specs()
    con = duckdb.connect(":memory:")
    for name in ORDER:
        result = load_source(con, specs[name], args.raw, as_of, key, today=today)
        print(f"== {name}")
        print("staging   ", json.dumps(table_digest(con, f"staging.{name}")))
        quarantine = table_digest(con, QUARANTINE, f"source = '{name}'")
        print("quarantine", json.dumps(quarantine))
        summary = dataclasses.asdict(result)
        print("result    ", json.dumps(summary, ensure_ascii=False, sort_keys=True))
        print("identity  ", result.identity_holds)


if __name__ == "__main__":
    main()
