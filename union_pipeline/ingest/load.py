"""Load one source into `staging.<source>`: read, type, row rules, repeats, later file wins,
references, quarantine. Plain functions on a DuckDB connection; no Dagster in here.

Every row read ends in exactly one of four places, which `LoadResult` counts from the
tables themselves so that the identity check can fail:
    read = loaded + quarantined + collapsed + superseded
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from union_pipeline.ingest import parse, rules
from union_pipeline.ingest.files import discover, read_batches
from union_pipeline.ingest.specs import SourceSpec

QUARANTINE = "staging.quarantine"
QUARANTINE_DDL = f"""CREATE TABLE IF NOT EXISTS {QUARANTINE} (
    source VARCHAR, file VARCHAR, line INTEGER, rule VARCHAR, "column" VARCHAR,
    rules VARCHAR, values_masked VARCHAR)"""
RULE_ORDER = (
    "unparseable", "missing_required", "invalid_id_number", "invalid_phone", "not_allowed",
    "out_of_range", "after_as_of", "date_order", "conflicting_duplicate",
)


@dataclass
class LoadResult:
    source: str
    read: int
    loaded: int
    quarantined: int
    collapsed: int
    superseded: int
    files: list[dict] = field(default_factory=list)
    quarantine_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def identity_holds(self) -> bool:
        return self.read == self.loaded + self.quarantined + self.collapsed + self.superseded

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0


def _land(con: duckdb.DuckDBPyConnection, spec: SourceSpec, raw_dir: Path) -> list[dict]:
    """All files' rows as text in temp table `landing`, numbered in reading order.

    Landing stays until the load ends: quarantined rows take their masked values from it,
    so the typed rows carry no copy of them.
    """
    columns = ", ".join(f'"{c.name}" VARCHAR' for c in spec.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE landing ({rules.ROW_ID} BIGINT, _file_order INTEGER, "
        f"_line INTEGER, {columns})"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE landing_files (_file_order INTEGER, _file VARCHAR)")
    files, row_id = [], 0
    for order, raw_file in enumerate(discover(spec, raw_dir)):
        con.execute("INSERT INTO landing_files VALUES (?, ?)", [order, raw_file.relative])
        line = 2  # line 1 is the header
        for batch in read_batches(spec, raw_file):
            n = batch.num_rows
            numbered = pa.Table.from_batches([batch]).append_column(
                rules.ROW_ID, pa.array(range(row_id, row_id + n), pa.int64())
            ).append_column("_line", pa.array(range(line, line + n), pa.int32()))
            con.register("landing_batch", numbered)
            con.execute(
                "INSERT INTO landing BY NAME SELECT *, ? AS _file_order FROM landing_batch",
                [order],
            )
            con.unregister("landing_batch")
            line, row_id = line + n, row_id + n
        files.append(
            {
                "file": raw_file.relative,
                "format": raw_file.encoding,
                "rows": line - 2,
                "unknown_columns": raw_file.unknown_columns,
            }
        )
    return files


def _type(con, spec: SourceSpec, today: dt.date) -> None:
    keep = [rules.ROW_ID, "_file_order", "_line",
            f"{parse.content_hash_sql(spec)} AS _content_hash"]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE typed AS "
        + parse.typed_select(spec.columns, today, "landing", keep)
    )


def _apply_row_rules(con, spec: SourceSpec, as_of: dt.date) -> None:
    """Run pandera over typed rows in batches; failures into temp table `failures`."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE failures ({rules.ROW_ID} BIGINT, rule VARCHAR, "
        '"column" VARCHAR)'
    )
    wanted = ", ".join(f'"{c}"' for c in [rules.ROW_ID, *rules.validation_columns(spec)])
    reader = con.sql(f"SELECT {wanted} FROM typed").to_arrow_reader(rules.BATCH_ROWS)
    # failures are few (the threshold is 5%): hold them until the reader is done
    found = list(rules.find_failures(spec, reader, as_of))
    for table in found:
        con.register("failure_batch", table)
        con.execute("INSERT INTO failures SELECT * FROM failure_batch")
        con.unregister("failure_batch")
    # a value present but unparseable is not also "missing"
    con.execute(
        """DELETE FROM failures f WHERE rule = 'missing_required' AND EXISTS (
             SELECT 1 FROM failures g WHERE g._row_id = f._row_id
             AND g.rule = 'unparseable' AND g."column" = f."column")"""
    )


def _quarantine(con, spec: SourceSpec, failures_sql: str) -> None:
    """Move rows named by `failures_sql` (_row_id, rule, column) out of `typed`."""
    order = ", ".join(f"'{r}'" for r in RULE_ORDER)
    # evaluated once: the query may be a window or an anti-join over every typed row
    con.execute(f"CREATE OR REPLACE TEMP TABLE moving AS SELECT DISTINCT * FROM ({failures_sql})")
    con.execute(
        f"""INSERT INTO {QUARANTINE}
        WITH f AS (SELECT * FROM moving),
        ranked AS (
            SELECT _row_id,
                   arg_min(rule, coalesce(list_position([{order}], rule), 99)) AS rule,
                   arg_min("column", coalesce(list_position([{order}], rule), 99)) AS "column",
                   string_agg(rule || CASE WHEN "column" IS NULL THEN '' ELSE
                       '(' || "column" || ')' END, '; ' ORDER BY rule, "column") AS rules
            FROM f GROUP BY _row_id)
        SELECT '{spec.name}', lf._file, l._line, r.rule, r."column", r.rules,
               {parse.masked_values_sql(spec)}
        FROM ranked r JOIN landing l USING (_row_id) JOIN landing_files lf USING (_file_order)
        ORDER BY l._row_id"""
    )
    con.execute("DELETE FROM typed WHERE _row_id IN (SELECT _row_id FROM moving)")
    con.execute("DROP TABLE moving")


def _resolve_repeats(con, spec: SourceSpec) -> tuple[int, int]:
    """Within a file: identical repeats collapse, conflicting ones are quarantined.
    Across files: the row from the later file wins. Returns (collapsed, superseded)."""
    key = ", ".join(f'"{k}"' for k in spec.key)
    _quarantine(
        con,
        spec,
        f"""SELECT _row_id, 'conflicting_duplicate' AS rule, '{"+".join(spec.key)}' AS "column"
            FROM typed QUALIFY count(DISTINCT _content_hash)
                OVER (PARTITION BY _file_order, {key}) > 1""",
    )
    collapsed = con.execute(
        f"""DELETE FROM typed WHERE _row_id IN (SELECT _row_id FROM typed QUALIFY
            row_number() OVER (PARTITION BY _file_order, {key} ORDER BY _line) > 1)"""
    ).fetchall()[0][0]
    superseded = con.execute(
        f"""DELETE FROM typed WHERE _row_id IN (SELECT _row_id FROM typed QUALIFY
            row_number() OVER (PARTITION BY {key} ORDER BY _file_order DESC) > 1)"""
    ).fetchall()[0][0]
    return collapsed, superseded


def _apply_references(con, spec: SourceSpec) -> None:
    for ref in spec.references:
        target = f"staging.{ref.source}"
        _quarantine(
            con,
            spec,
            f"""SELECT _row_id, '{ref.rule}' AS rule, '{ref.column}' AS "column" FROM typed t
                WHERE NOT EXISTS (SELECT 1 FROM {target} r
                                  WHERE r."{ref.key}" = t."{ref.column}")""",
        )
        if ref.not_before:
            nb = ref.not_before
            _quarantine(
                con,
                spec,
                f"""SELECT _row_id, '{nb["rule"]}' AS rule, '{nb["column"]}' AS "column"
                    FROM typed t JOIN {target} r ON r."{ref.key}" = t."{ref.column}"
                    WHERE t."{nb["column"]}" < r."{nb["ref_column"]}" """,
            )


def staging_columns(spec: SourceSpec) -> list[str]:
    out = []
    for col in spec.columns:
        if col.type == "id_number":
            out += ["person_key", "gender", "birth_year"]
        elif col.type == "phone":
            out.append("has_phone")
        elif col.type != "name":
            out.append(col.name)
    return out


def load_source(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    raw_dir: Path,
    rule_as_of: dt.date,
    pii_key: bytes,
) -> LoadResult:
    """Replace `staging.<source>` and its quarantine rows with this drop's rows."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(QUARANTINE_DDL)
    for sql in parse.macros_sql(pii_key):
        con.execute(sql)
    files = _land(con, spec, raw_dir)
    read = con.execute("SELECT count(*) FROM landing").fetchall()[0][0]
    _type(con, spec, rule_as_of)
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {QUARANTINE} WHERE source = ?", [spec.name])
    _apply_row_rules(con, spec, rule_as_of)
    _quarantine(con, spec, 'SELECT _row_id, rule, "column" FROM failures')
    collapsed, superseded = _resolve_repeats(con, spec)
    _apply_references(con, spec)
    columns = ", ".join(f'"{c}"' for c in staging_columns(spec))
    con.execute(
        f"""CREATE OR REPLACE TABLE staging.{spec.name} AS
        SELECT {columns}, lf._file AS _source_file, _line AS _source_line
        FROM typed JOIN landing_files lf USING (_file_order) ORDER BY _row_id"""
    )
    con.execute("COMMIT")
    for temp in ("typed", "landing", "landing_files", "failures"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    loaded = con.execute(f"SELECT count(*) FROM staging.{spec.name}").fetchall()[0][0]
    by_rule = dict(
        con.execute(
            f"SELECT rule, count(*) FROM {QUARANTINE} WHERE source = ? GROUP BY rule "
            "ORDER BY 2 DESC",
            [spec.name],
        ).fetchall()
    )
    return LoadResult(
        source=spec.name,
        read=read,
        loaded=loaded,
        quarantined=sum(by_rule.values()),
        collapsed=collapsed,
        superseded=superseded,
        files=files,
        quarantine_by_rule=by_rule,
    )
