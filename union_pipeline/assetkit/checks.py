"""Checks as SQL: a query returning the offending rows; none means passed."""

import dagster as dg
import duckdb

SAMPLE_ROWS = 10


def rows_check_result(
    con: duckdb.DuckDBPyConnection,
    offending_sql: str,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    extra: dict | None = None,
) -> dg.AssetCheckResult:
    """Pass when `offending_sql` returns no rows; the count and a sample are the evidence."""
    count = con.execute(f"SELECT count(*) FROM ({offending_sql})").fetchall()[0][0]
    sample = con.execute(f"SELECT * FROM ({offending_sql}) LIMIT {SAMPLE_ROWS}").df()
    return dg.AssetCheckResult(
        passed=count == 0,
        severity=severity,
        metadata={
            "failing_rows": dg.MetadataValue.int(int(count)),
            "sample": dg.MetadataValue.md(sample.to_markdown(index=False) if count else "(none)"),
            **(extra or {}),
        },
    )
