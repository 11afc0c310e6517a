"""Great Expectations on the warehouse as a whole, and from one refresh to the next.

pandera (in `ingest/`) judges each row as it arrives; the suites here judge tables:
keys, value sets, ranges, volumes against the previous refresh, year-on-year plausibility
and the consistency of the marts. They are data, `assets/expectations/*.yaml`.

How a check runs, so that province-sized tables are never pulled into memory:
DuckDB reduces the table to a small frame that decides the expectation exactly (the rows
whose key repeats, the distinct values, the extremes, a sample, a few aggregates), and
GX validates that frame with its pandas engine (GX's SQL engine on DuckDB fails every
expectation silently, GX issues 10738 and 11579). One ephemeral GX context serves the
process (`validate.gx_context`); results go to a Data Docs site in the export folder, built
with GX's `build_data_docs`. No Dagster in here; `defs/quality/` turns outcomes into asset
checks (and reuses an outcome while its tables are unchanged). GX itself (~3 s to import)
is imported only when a suite runs.
"""

from union_pipeline.quality.suites import (
    CheckDef,
    ExpectationDef,
    QualityError,
    Suite,
    load_suites,
)

__all__ = ["CheckDef", "ExpectationDef", "QualityError", "Suite", "load_suites"]
