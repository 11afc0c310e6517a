"""DuckDB reduces a table to the small frame that decides its expectations.

Each reduction keeps the expectation's verdict exact, so GX never needs the whole table:
the rows whose key repeats decide uniqueness, the distinct values decide a value set, the
minimum and maximum decide a range. Only `sample_of` is approximate (for distribution
expectations such as a median), and says so in its note.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from union_pipeline.quality.suites import FrameSpec, QualityError

# A frame is meant to be small; a query returning more has not reduced anything.
MAX_FRAME_ROWS = 200_000
SAMPLE_SEED = 20191231


@dataclass
class Frame:
    df: pd.DataFrame
    note: str
    # set when there is nothing to validate (an empty optional source): the check passes
    skipped: str | None = None


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """Run `sql`; DATE columns come back as datetime.date, as GX compares them with dates."""
    rel = con.sql(sql)
    dates = [c for c, t in zip(rel.columns, rel.types, strict=True) if str(t) == "DATE"]
    df = rel.df()
    for column in dates:
        values = df[column]
        df[column] = pd.Series(
            [None if pd.isna(v) else v.date() for v in values], index=df.index, dtype=object
        )
    return df


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _duplicates(con, spec: FrameSpec) -> Frame:
    cols = ", ".join(_quote(c) for c in spec.columns)
    found = _query(
        con,
        f"""SELECT {cols}, count(*) AS copies,
                   count(*) OVER () AS duplicated_keys, sum(count(*)) OVER () AS rows_involved
            FROM {spec.source} GROUP BY ALL HAVING count(*) > 1
            ORDER BY copies DESC, {cols} LIMIT {int(spec.rows)}""",
    )
    keys = int(found["duplicated_keys"].iloc[0]) if len(found) else 0
    involved = int(found["rows_involved"].iloc[0]) if len(found) else 0
    found = found.drop(columns=["duplicated_keys", "rows_involved"])
    # one frame row per table row carrying a repeated key: GX's uniqueness verdict on this
    # frame is its verdict on the table, and its unexpected values are the repeated keys
    frame = found.loc[found.index.repeat(found["copies"])].reset_index(drop=True)
    note = (
        f"{keys:,} key(s) occur more than once in {spec.source} ({involved:,} rows); "
        f"GX sees {'those rows' if keys <= spec.rows else f'the rows of the first {spec.rows}'}"
        if keys
        else f"no key occurs twice in {spec.source}; GX sees an empty frame"
    )
    return Frame(frame, note)


def _distinct(con, spec: FrameSpec) -> Frame:
    cols = ", ".join(_quote(c) for c in spec.columns)
    df = _query(
        con,
        f"SELECT {cols}, count(*) AS row_count FROM {spec.source} GROUP BY ALL "
        f"ORDER BY ALL LIMIT {MAX_FRAME_ROWS + 1}",
    )
    if len(df) > MAX_FRAME_ROWS:
        raise QualityError(f"distinct_of {spec.columns} of {spec.source}: too many values")
    return Frame(df, f"{len(df):,} distinct value(s) of ({cols}) in {spec.source}")


def _extremes(con, spec: FrameSpec) -> Frame:
    rows = _count(con, spec.source)
    if not rows:
        return Frame(pd.DataFrame(), f"{spec.source} is empty", skipped="the table is empty")
    # min and max of every column in one scan, then a frame of two rows: min, max
    parts = [
        f"{agg}({_quote(c)}) AS {_quote(f'{agg}__{c}')}"
        for c in spec.columns
        for agg in ("min", "max")
    ]
    wide = _query(con, f"SELECT {', '.join(parts)} FROM {spec.source}")
    frame = pd.DataFrame({"stat": ["min", "max"]})
    for c in spec.columns:
        frame[c] = pd.concat([wide[f"min__{c}"], wide[f"max__{c}"]], ignore_index=True)
    return Frame(frame, f"minimum and maximum over the {rows:,} rows of {spec.source}")


def _sample(con, spec: FrameSpec) -> Frame:
    rows = _count(con, spec.source)
    if not rows:
        return Frame(pd.DataFrame(), f"{spec.source} is empty", skipped="the table is empty")
    cols = ", ".join(_quote(c) for c in spec.columns) if spec.columns else "*"
    if rows <= spec.rows:
        df = _query(con, f"SELECT {cols} FROM {spec.source}")
        return Frame(df, f"all {rows:,} rows of {spec.source}")
    df = _query(
        con,
        f"SELECT {cols} FROM {spec.source} "
        f"USING SAMPLE reservoir({int(spec.rows)} ROWS) REPEATABLE ({SAMPLE_SEED})",
    )
    return Frame(
        df,
        f"a reproducible sample of {len(df):,} of the {rows:,} rows of "
        f"{spec.source} (statistics on it are estimates)",
    )


def _volume(con, spec: FrameSpec, previous_rows: int | None) -> Frame:
    rows = _count(con, spec.source)
    change = rows / previous_rows - 1 if previous_rows else None
    frame = pd.DataFrame(
        {"rows": [rows], "previous_rows": [previous_rows], "change": [change]}
    ).astype({"previous_rows": "Int64", "change": "float64"})
    if previous_rows is None:
        note = f"{rows:,} rows; no previous successful refresh to compare with"
    elif not previous_rows:
        note = f"{rows:,} rows; the previous successful refresh had none"
    else:
        note = (
            f"{rows:,} rows now, {previous_rows:,} at the previous successful refresh "
            f"({change:+.1%})"
        )
    return Frame(frame, note)


def _sql(con, spec: FrameSpec) -> Frame:
    df = _query(con, f"SELECT * FROM ({spec.sql}) LIMIT {MAX_FRAME_ROWS + 1}")
    if len(df) > MAX_FRAME_ROWS:
        raise QualityError(
            f"the query of a check on {spec.source} returns more than "
            f"{MAX_FRAME_ROWS:,} rows: aggregate it"
        )
    return Frame(df, f"{len(df):,} row(s) from the check's query")


def reference_relations(district: str | None = None) -> dict[str, pd.DataFrame]:
    """Relations a check's SQL may read besides the warehouse: the KPI catalogue, the
    streets of the district checked (the default district's unless given)."""
    from union_pipeline import districts
    from union_pipeline.kpis import load_catalogue

    catalogue = pd.DataFrame(
        [
            {
                "kpi_code": k.code,
                "kind": k.kind,
                "reported": k.reported,
                "has_street": k.has_street,
                "is_ratio": k.is_ratio,
                "numerator": k.numerator,
                "denominator": k.denominator,
            }
            for k in load_catalogue()
        ]
    )
    found = districts.district(district or districts.default_district())
    streets = pd.DataFrame(found.streets, columns=["street", "kind"])
    return {"catalogue": catalogue, "streets": streets}


def compute_frame(
    con: duckdb.DuckDBPyConnection,
    spec: FrameSpec,
    previous_rows: int | None = None,
    district: str | None = None,
) -> Frame:
    if spec.kind == "duplicates_of":
        return _duplicates(con, spec)
    if spec.kind == "distinct_of":
        return _distinct(con, spec)
    if spec.kind == "extremes_of":
        return _extremes(con, spec)
    if spec.kind == "sample_of":
        return _sample(con, spec)
    if spec.kind == "volume":
        return _volume(con, spec, previous_rows)
    relations = reference_relations(district)
    for name, df in relations.items():
        con.register(name, df)
    try:
        return _sql(con, spec)
    finally:
        for name in relations:
            con.unregister(name)
