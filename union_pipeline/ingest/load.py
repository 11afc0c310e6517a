"""Load one source into `staging.<source>`: read, type, row rules, repeats, later file wins,
references, quarantine. Plain functions on a DuckDB connection; no Dagster in here.

Every row read (below the header row) ends in exactly one of five places, which
`LoadResult` counts from the tables themselves so that the identity check can fail:
    read = loaded + quarantined + collapsed + superseded + skipped
where skipped rows are blank rows and totals rows (合计/小计), counted by reason.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from union_pipeline.ingest import parse, rules
from union_pipeline.ingest.files import (
    CELL_LIMIT,
    FIRST_CELL,
    LINE,
    discover,
    unread_files,
)
from union_pipeline.ingest.reading import read_batches
from union_pipeline.ingest.specs import SourceSpec
from union_pipeline.settings import check_pii_key
from union_pipeline.warehouse import sql_path

QUARANTINE = "staging.quarantine"
QUARANTINE_DDL = f"""CREATE TABLE IF NOT EXISTS {QUARANTINE} (
    source VARCHAR, file VARCHAR, line INTEGER, rule VARCHAR, "column" VARCHAR,
    rules VARCHAR, values_masked VARCHAR)"""
# the rows a reference rule held back, typed as staged (`held_back`; an output part)
HELD = "held_back"
# landed rows are typed at most this many at a time (see _land): a typing sorts its rows
TYPE_ROWS = 1_000_000
RULE_ORDER = (
    "excel_number",
    "oversized_cell",
    "unparseable",
    "missing_required",
    "invalid_id_number",
    "invalid_phone",
    "not_allowed",
    "out_of_range",
    "after_as_of",
    "future_date",
    "date_order",
    "conflicting_duplicate",
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
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)  # blank, totals
    quarantine_by_file: dict[str, int] = field(default_factory=dict)
    unread_files: list[str] = field(default_factory=list)  # in the folder, not .csv/.xls(x)
    pii_key_warning: str | None = None  # set when the public demo key keys the demo drop
    title_zh: str = ""
    # said once per file, for the log and the person who runs the refresh
    file_warnings: list[str] = field(default_factory=list)
    # the output's parts that are the last output's files as they are (`recheck_references`)
    kept: dict[str, Path] = field(default_factory=dict)

    @property
    def identity_holds(self) -> bool:
        return self.read == (
            self.loaded + self.quarantined + self.collapsed + self.superseded + self.skipped
        )

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    def threshold_exceeded(self, threshold: float) -> bool:
        return self.quarantine_share > threshold

    def threshold_message(self, threshold: float) -> str:
        """The quarantine against the threshold, in Chinese and English: the source, its
        files and its top rules with counts. Counts only, never a value."""
        over = self.threshold_exceeded(threshold)
        top = list(self.quarantine_by_rule.items())[:3]
        files = sorted(self.quarantine_by_file.items(), key=lambda kv: -kv[1])[:5]
        rules_zh = "；".join(f"{r} {n} 行" for r, n in top) or "无"
        files_zh = "；".join(f"{f} {n} 行" for f, n in files) or "无"
        rules_en = (
            "; ".join(
                f"{r} {n} ({rules.RULES[r][0]}: {rules.RULES[r][1]})"
                if r in rules.RULES
                else f"{r} {n}"
                for r, n in top
            )
            or "none"
        )
        files_en = ", ".join(f"{f} ({n})" for f, n in files) or "none"
        name = f"{self.title_zh} ({self.source})" if self.title_zh else self.source
        share, limit = f"{self.quarantine_share:.1%}", f"{threshold:.1%}"
        return (
            f"{name}：读入 {self.read} 行，隔离 {self.quarantined} 行（{share}），"
            f"{'超过' if over else '未超过'}阈值 {limit}。主要规则：{rules_zh}。"
            f"涉及文件：{files_zh}。隔离明细（已脱敏）见 staging.quarantine，"
            "规则说明见 docs/data-contract.md。\n"
            f"{self.source}: {self.quarantined} of {self.read} rows quarantined ({share}), "
            f"{'above' if over else 'within'} the threshold of {limit} "
            f"(UNION_QUARANTINE_THRESHOLD). Top rules: {rules_en}. Files: {files_en}. "
            "The rows are in staging.quarantine with their values masked; "
            "docs/data-contract.md explains each rule."
        )


def _prefetched(batches: Iterator) -> Iterator:
    """The batches of a reader, the next one read in a thread while the caller works on
    this one: pyarrow's reading and cleaning and DuckDB's typing release the GIL, so on
    two cores they overlap. The reader's errors come out where its batch would have."""
    done = object()
    ahead: queue.Queue = queue.Queue(maxsize=1)  # one batch ahead: memory stays bounded
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ahead.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(done)
        except BaseException as err:  # handed to the caller, raised there
            ahead.put(err)

    reader = threading.Thread(target=read, name="read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _cleaned(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, list]]:
    """Each batch's cells cleaned as far as Arrow does it (`parse.clean_batch`)."""
    for batch in batches:
        yield parse.clean_batch(batch, [c for c in batch.schema.names if c != LINE])


def _land(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, raw_dir: Path, as_of: dt.date
) -> list[dict]:
    """All files' rows as cleaned text in temp table `landing`, numbered in reading order,
    and typed as they land, a batch or more at a time, into temp table `typed` (`_type`):
    DuckDB types rows while the next batch is read.

    Landing stays until the load ends: quarantined rows take their masked values from it,
    so the typed rows carry no copy of them.
    """
    columns = ", ".join(f'"{c.name}" VARCHAR' for c in spec.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE landing ({rules.ROW_ID} BIGINT, _file_order INTEGER, "
        f"{LINE} INTEGER, {FIRST_CELL} VARCHAR, {columns})"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE landing_files (_file_order INTEGER, _file VARCHAR)")
    _type(con, spec, as_of, None)  # the empty table
    files, row_id, typed, due = [], 0, 0, 0
    for order, raw_file in enumerate(discover(spec, raw_dir)):
        con.execute("INSERT INTO landing_files VALUES (?, ?)", [order, raw_file.relative])
        rows = 0
        for batch, odd in _prefetched(_cleaned(read_batches(spec, raw_file))):
            n = batch.num_rows
            numbered = pa.Table.from_batches([parse.finish_clean(con, batch, odd)]).append_column(
                rules.ROW_ID, pa.array(range(row_id, row_id + n), pa.int64())
            )
            con.register("landing_batch", numbered)
            con.execute(
                "INSERT INTO landing BY NAME SELECT *, ? AS _file_order FROM landing_batch",
                [order],
            )
            con.unregister("landing_batch")
            rows, row_id = rows + n, row_id + n
            # each typing scans the keyed hashes found so far (`_type`): rows are typed
            # once as many have landed (so the scans grow no faster than the rows), or
            # TYPE_ROWS (a typing's sort and joins stay that big at most)
            if row_id - typed >= min(due, TYPE_ROWS):
                due = _type(con, spec, as_of, (typed, row_id))
                typed = row_id
        # lines the reader dropped as blank are read rows all the same, and skipped
        files.append(
            {
                **raw_file.metadata(),
                "rows": rows + raw_file.blank_lines,
                "skipped": {"blank": raw_file.blank_lines} if raw_file.blank_lines else {},
            }
        )
    if row_id > typed:
        _type(con, spec, as_of, (typed, row_id))
    con.execute("DROP TABLE IF EXISTS person_keys")  # every row typed: its memory back
    return files


def _skip(con, spec: SourceSpec) -> None:
    """Blank rows and totals rows (合计/小计) out of `landing` into temp table `skipped`:
    harmless, so counted by reason rather than quarantined."""
    nothing = " AND ".join(f'"{c.name}" IS NULL' for c in spec.columns)
    first = FIRST_CELL  # cleaned as it landed
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE skipped AS
        SELECT {rules.ROW_ID}, _file_order,
               CASE WHEN {first} IS NULL AND {nothing} THEN 'blank' ELSE 'totals' END AS reason
        FROM landing
        WHERE ({first} IS NULL AND {nothing}) OR up_totals({first})"""
    )
    if con.execute("SELECT count(*) FROM skipped").fetchall()[0][0]:
        for table in ("landing", "typed"):
            con.execute(
                f"DELETE FROM {table} WHERE {rules.ROW_ID} IN (SELECT {rules.ROW_ID} FROM skipped)"
            )


def _type(con, spec: SourceSpec, today: dt.date, rows: tuple[int, int] | None) -> int:
    """Type the landed rows numbered in [start, end) of `rows` into temp table `typed`;
    without `rows`, create it empty. Returns the number of keyed hashes so far.

    The keyed hash of an ID number is two SHA-256 a value, the dearest part of typing, and
    a person's rows repeat (one a year, one a file): each distinct ID number is hashed
    once a load, into temp table `person_keys`, and joined from there. It is hashed
    whatever its validity, and kept only where valid (see `parse._id_number_stages`)."""
    keep = [rules.ROW_ID, "_file_order", "_line"]
    source = "landing"
    if rows:
        source = f"(FROM landing WHERE {rules.ROW_ID} >= {rows[0]} AND {rules.ROW_ID} < {rows[1]})"
    ids = [c.name for c in spec.columns if c.type == "id_number"]
    hashed = "__person_key" if ids else None
    if ids:  # one at most: its hash is the one person_key
        if not rows:
            con.execute("CREATE OR REPLACE TEMP TABLE person_keys (value VARCHAR, hash VARCHAR)")
        con.execute(
            f"""INSERT INTO person_keys
            SELECT value, up_person_key(up_id_norm(value)) FROM (
                SELECT DISTINCT "{ids[0]}" AS value FROM {source} WHERE "{ids[0]}" IS NOT NULL
            ) ANTI JOIN person_keys USING (value)"""
        )
        source = f"""(SELECT s.*, k.hash AS "{hashed}" FROM {source} s
            LEFT JOIN person_keys k ON s."{ids[0]}" = k.value)"""
    select = parse.typed_select(spec.columns, today, source, keep, spec.join_columns, hashed)
    if rows:
        # in reading order (the join above may not keep it): typed rows then stay in it,
        # and the staging table is written from them in it without sorting them all
        con.execute(f"INSERT INTO typed {select} ORDER BY {rules.ROW_ID}")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE typed AS {select} LIMIT 0")
    return con.execute("SELECT count(*) FROM person_keys").fetchall()[0][0] if ids else 0


# How Excel writes a number it holds: 3.30211E+17, or 13812345678.0 when saved as text
EXCEL_NUMBER = r"[+-]?\d+(\.\d*)?[eE][+-]?\d+|\d+\.\d*"


def _shape_failures_sql(spec: SourceSpec) -> str:
    """(_row_id, rule, column) of cells no export of this column holds, found on the raw
    text before typing: an ID or phone number Excel turned into a number (its digits are
    lost; read as digits it would key somebody else), and cells past Excel's own limit."""
    cases = [
        (
            # the cheap tests spare nearly every cell the regular expression
            f"(contains(\"{c.name}\", '.') OR contains(lower(\"{c.name}\"), 'e')) AND "
            f"regexp_full_match(\"{c.name}\", '{EXCEL_NUMBER}')",
            "excel_number",
            c.name,
        )
        for c in spec.columns
        if c.type in ("id_number", "phone")
    ]
    cases += [
        (
            f'strlen("{c.name}") > {CELL_LIMIT} AND length("{c.name}") > {CELL_LIMIT}',
            "oversized_cell",
            c.name,
        )
        for c in spec.columns
    ]
    found = ", ".join(
        f"CASE WHEN ({test}) THEN {{'rule': '{rule}', 'column': '{column}'}} END"
        for test, rule, column in cases
    )
    anywhere = " OR ".join(f"({test})" for test, _, _ in cases)
    return f"""SELECT _row_id, f.rule, f."column" FROM (
        SELECT _row_id, unnest(list_filter([{found}], lambda x: x IS NOT NULL)) AS f
        FROM landing WHERE {anywhere})"""


def _apply_row_rules(con, spec: SourceSpec, as_of: dt.date, today: dt.date) -> None:
    """Run pandera over typed rows in batches; failures into temp table `failures`."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE failures ({rules.ROW_ID} BIGINT, rule VARCHAR, "
        '"column" VARCHAR)'
    )
    wanted = ", ".join(f'"{c}"' for c in [rules.ROW_ID, *rules.validation_columns(spec)])
    reader = con.sql(f"SELECT {wanted} FROM typed").to_arrow_reader(rules.BATCH_ROWS)
    # failures are few (the threshold is 5%): hold them until the reader is done
    found = list(rules.find_failures(spec, reader, as_of, today))
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


def _quarantine(con, spec: SourceSpec, failures_sql: str, hold: bool = False) -> None:
    """Move rows named by `failures_sql` (_row_id, rule, column) out of `typed`, into
    `moved` with this pass's number; `_write_quarantine` makes their rows at the end.
    `hold`: the typed rows are kept aside in `held` (a reference may appear later)."""
    # evaluated once: the query may be a window or an anti-join over every typed row
    con.execute(f"CREATE OR REPLACE TEMP TABLE moving AS SELECT DISTINCT * FROM ({failures_sql})")
    if not con.execute("SELECT count(*) FROM moving").fetchall()[0][0]:
        con.execute("DROP TABLE moving")  # most passes find nothing: no delete
        return
    con.execute(
        """INSERT INTO moved SELECT (SELECT coalesce(max(pass), 0) + 1 FROM moved),
        _row_id, rule, "column" FROM moving"""
    )
    if hold:
        con.execute("INSERT INTO held FROM typed WHERE _row_id IN (SELECT _row_id FROM moving)")
    con.execute("DELETE FROM typed WHERE _row_id IN (SELECT _row_id FROM moving)")
    con.execute("DROP TABLE moving")


def _write_quarantine(con, spec: SourceSpec) -> None:
    """The moved rows into `quarantined`: their first rule, all rules and masked values,
    in one join with `landing` for all passes (a row moves in one pass only), in the order
    of the passes, then of the rows."""
    if not con.execute("SELECT count(*) FROM moved").fetchall()[0][0]:
        return
    order = ", ".join(f"'{r}'" for r in RULE_ORDER)
    con.execute(
        f"""INSERT INTO quarantined
        WITH ranked AS (
            SELECT _row_id, min(pass) AS pass,
                   arg_min(rule, coalesce(list_position([{order}], rule), 99)) AS rule,
                   arg_min("column", coalesce(list_position([{order}], rule), 99)) AS "column",
                   string_agg(rule || CASE WHEN "column" IS NULL THEN '' ELSE
                       '(' || "column" || ')' END, '; ' ORDER BY rule, "column") AS rules
            FROM moved GROUP BY _row_id)
        SELECT '{spec.name}', lf._file, l._line, r.rule, r."column", r.rules,
               {parse.masked_values_sql(spec)}
        FROM ranked r JOIN landing l USING (_row_id) JOIN landing_files lf USING (_file_order)
        ORDER BY r.pass, l._row_id"""
    )


def _resolve_repeats(con, spec: SourceSpec) -> tuple[int, int]:
    """Within a file: identical repeats collapse, conflicting ones are quarantined.
    Across files: the row from the later file wins. Returns (collapsed, superseded).

    Only rows whose key occurs more than once can be either: the windows run over those
    few rows, not over every row."""
    key = ", ".join(f'"{k}"' for k in spec.key)
    same = " AND ".join(f't."{k}" IS NOT DISTINCT FROM r."{k}"' for k in spec.key)
    # the content hash of those few rows only, from their landed text
    content = parse.content_hash_sql(spec, "l")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE repeats AS
        SELECT _row_id, t._file_order, t._line, {content} AS _content_hash,
               {", ".join(f't."{k}"' for k in spec.key)}
        FROM (FROM typed t SEMI JOIN (SELECT {key} FROM typed GROUP BY ALL HAVING count(*) > 1) r
              ON {same}) t JOIN landing l USING (_row_id)"""
    )

    def drop(ids_sql: str) -> int:
        """Delete the rows `ids_sql` names from typed and from the repeats."""
        con.execute(f"CREATE OR REPLACE TEMP TABLE dropping AS {ids_sql}")
        con.execute("DELETE FROM repeats WHERE _row_id IN (SELECT _row_id FROM dropping)")
        n = con.execute(
            "DELETE FROM typed WHERE _row_id IN (SELECT _row_id FROM dropping)"
        ).fetchall()[0][0]
        con.execute("DROP TABLE dropping")
        return n

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE conflicting AS
        SELECT _row_id, 'conflicting_duplicate' AS rule, '{"+".join(spec.key)}' AS "column"
        FROM repeats QUALIFY count(DISTINCT _content_hash)
            OVER (PARTITION BY _file_order, {key}) > 1"""
    )
    _quarantine(con, spec, "SELECT * FROM conflicting")
    con.execute("DELETE FROM repeats WHERE _row_id IN (SELECT _row_id FROM conflicting)")
    con.execute("DROP TABLE conflicting")
    collapsed = drop(
        f"""SELECT _row_id FROM repeats QUALIFY
            row_number() OVER (PARTITION BY _file_order, {key} ORDER BY _line) > 1"""
    )
    superseded = drop(
        f"""SELECT _row_id FROM repeats QUALIFY
            row_number() OVER (PARTITION BY {key} ORDER BY _file_order DESC) > 1"""
    )
    con.execute("DROP TABLE repeats")
    return collapsed, superseded


def _reference_passes(spec: SourceSpec, rows: str, ids: list[str]) -> list[str]:
    """The reference rules in their order, each a query of (`ids`, rule, column) over the
    relation `rows`: a referenced row that does not exist, a date before the referenced
    row's. A row moved in one pass is not in the `rows` of the next."""
    chosen = ", ".join(f't."{c}"' for c in ids)
    passes = []
    for ref in spec.references:
        target = f"staging.{ref.source}"
        passes.append(
            f"""SELECT {chosen}, '{ref.rule}' AS rule, '{ref.column}' AS "column" FROM {rows} t
                WHERE NOT EXISTS (SELECT 1 FROM {target} r
                                  WHERE r."{ref.key}" = t."{ref.column}")"""
        )
        if ref.not_before:
            nb = ref.not_before
            passes.append(
                f"""SELECT {chosen}, '{nb["rule"]}' AS rule, '{nb["column"]}' AS "column"
                    FROM {rows} t JOIN {target} r ON r."{ref.key}" = t."{ref.column}"
                    WHERE t."{nb["column"]}" < r."{nb["ref_column"]}" """
            )
    return passes


def reference_rules(spec: SourceSpec) -> set[str]:
    return {r.rule for r in spec.references} | {
        r.not_before["rule"] for r in spec.references if r.not_before
    }


def _apply_references(con, spec: SourceSpec) -> None:
    """The reference rules over the typed rows; the rows they move are kept aside in
    `held` as well, typed: a later refresh checks them again when only a referenced
    source changed (`recheck_references`), without reading the files."""
    con.execute("CREATE OR REPLACE TEMP TABLE held AS FROM typed LIMIT 0")
    for failures in _reference_passes(spec, "typed", [rules.ROW_ID]):
        _quarantine(con, spec, failures, hold=True)


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
    *,
    today: dt.date | None = None,
) -> LoadResult:
    """Replace `staging.<source>` and its quarantine rows with this drop's rows.

    `today` is the refresh date (default: the real one): a date after it is a typo,
    quarantined as `future_date` whatever `rule_as_of` says. Raises ConfigError when the
    public development key would key anything but the generated demo drop.
    """
    key_warning = check_pii_key(pii_key, raw_dir)  # first: before any row is hashed
    today = today or dt.date.today()
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(QUARANTINE_DDL)
    for sql in parse.macros_sql(pii_key):
        con.execute(sql)
    files = _land(con, spec, raw_dir, rule_as_of)
    read = con.execute("SELECT count(*) FROM landing").fetchall()[0][0]
    read += sum(f["skipped"].get("blank", 0) for f in files)
    _skip(con, spec)
    # this load's quarantine rows gather here: the shared table changes only at the end
    con.execute(f"CREATE OR REPLACE TEMP TABLE quarantined AS FROM {QUARANTINE} LIMIT 0")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE moved (pass INTEGER, {rules.ROW_ID} BIGINT, "
        'rule VARCHAR, "column" VARCHAR)'
    )
    _quarantine(con, spec, _shape_failures_sql(spec))
    _apply_row_rules(con, spec, rule_as_of, today)
    _quarantine(con, spec, 'SELECT _row_id, rule, "column" FROM failures')
    collapsed, superseded = _resolve_repeats(con, spec)
    _apply_references(con, spec)
    _write_quarantine(con, spec)
    # the raw text is needed no more (quarantined rows have their masked values): freed
    # before the typed rows are copied, so a big source is never held three times over
    for temp in ("landing", "failures", "moved"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    columns = ", ".join(f'"{c}"' for c in staging_columns(spec))
    # a file's name by its number, as a list: a join would not keep the rows' order
    names = [
        r[0] for r in con.execute("SELECT _file FROM landing_files ORDER BY _file_order").fetchall()
    ]
    names = "([" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + "]::VARCHAR[])"
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {QUARANTINE} WHERE source = ?", [spec.name])
    con.execute(f"INSERT INTO {QUARANTINE} FROM quarantined")
    staged = f"{columns}, {names}[_file_order + 1] AS _source_file, _line AS _source_line"
    con.execute(f"CREATE OR REPLACE TABLE staging.{spec.name} AS SELECT {staged} FROM typed")
    con.execute("COMMIT")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {HELD} AS SELECT {staged} FROM held")
    for order, reason, n in con.execute(
        "SELECT _file_order, reason, count(*) FROM skipped GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        skipped = files[order]["skipped"]
        skipped[reason] = skipped.get(reason, 0) + n
    for temp in ("typed", "held", "landing_files", "skipped", "quarantined"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return _result(con, spec, raw_dir, read, (collapsed, superseded), files, key_warning)


def _result(
    con,
    spec: SourceSpec,
    raw_dir: Path,
    read: int,
    repeats: tuple[int, int],
    files: list[dict],
    key_warning: str | None,
    kept: dict[str, Path] | None = None,
) -> LoadResult:
    """The load's counts, from `staging.<source>` and the quarantine themselves."""
    collapsed, superseded = repeats
    loaded = con.execute(f"SELECT count(*) FROM staging.{spec.name}").fetchall()[0][0]
    by_rule = dict(
        con.execute(
            f"SELECT rule, count(*) FROM {QUARANTINE} WHERE source = ? GROUP BY rule "
            "ORDER BY 2 DESC",
            [spec.name],
        ).fetchall()
    )
    by_file = dict(
        con.execute(
            f"SELECT file, count(*) FROM {QUARANTINE} WHERE source = ? GROUP BY file "
            "ORDER BY 2 DESC, 1",
            [spec.name],
        ).fetchall()
    )
    unread = unread_files(spec, raw_dir)
    warnings = _file_warnings(con, spec, unread)
    skipped_by_reason: dict[str, int] = {}
    for f in files:
        f["quarantined"] = by_file.get(f["file"], 0)
        for reason, n in f["skipped"].items():
            skipped_by_reason[reason] = skipped_by_reason.get(reason, 0) + n
    return LoadResult(
        source=spec.name,
        read=read,
        loaded=loaded,
        quarantined=sum(by_rule.values()),
        collapsed=collapsed,
        superseded=superseded,
        files=files,
        quarantine_by_rule=by_rule,
        skipped=sum(skipped_by_reason.values()),
        skipped_by_reason=skipped_by_reason,
        quarantine_by_file=by_file,
        unread_files=unread,
        pii_key_warning=key_warning,
        title_zh=spec.title_zh,
        file_warnings=warnings,
        kept=kept or {},
    )


def _drop(con, relation: str) -> None:
    """Drop the table or view `relation` (schema.name, or a temp name), if there is one."""
    schema, _, name = relation.rpartition(".")
    found = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = ? "
        "AND (? = '' OR table_schema = ?)",
        [name, schema, schema],
    ).fetchall()
    for (kind,) in found:
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {relation}")


@dataclass(frozen=True)
class StagedFiles:
    """A source's last output: its rows, the rows only a reference rule held back (typed,
    as staged) and its quarantine rows."""

    data: Path
    held: Path
    quarantine: Path


def recheck_references(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    raw_dir: Path,
    staged: StagedFiles,
    load: dict,
    pii_key: bytes,
) -> LoadResult | None:
    """`staging.<source>` and its quarantine rows when only a source it references changed:
    its reference rules run again over its last output's rows (its rows and the rows a
    reference held back), and its files are not read. `load` is that output's summary
    (`counts`, `skipped_by_reason`, `files`).

    Returns None when a row that passed must now be held back: its masked values come from
    its raw text, which only a load from the files has (the caller loads). When no row
    moves either way, the result keeps the last output's files (`LoadResult.kept`).
    """
    key_warning = check_pii_key(pii_key, raw_dir)
    ids = ["_source_file", "_source_line"]  # a row's identity among a source's rows
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW candidates AS
        FROM read_parquet({sql_path(staged.data)})
        UNION ALL FROM read_parquet({sql_path(staged.held)})"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE moved "
        '(pass INTEGER, _source_file VARCHAR, _source_line INTEGER, rule VARCHAR, "column" VARCHAR)'
    )
    remaining = "(FROM candidates ANTI JOIN moved USING (_source_file, _source_line))"
    for n, failures in enumerate(_reference_passes(spec, remaining, ids), 1):
        con.execute(f"INSERT INTO moved SELECT DISTINCT {n}, * FROM ({failures})")
    last = sql_path(staged.quarantine)
    con.execute(f"CREATE OR REPLACE TEMP TABLE last_quarantine AS FROM read_parquet({last})")
    by_reference = ", ".join(f"'{r}'" for r in sorted(reference_rules(spec)))
    # a held row's masked values are in the last quarantine; a row that passed has none
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE referenced AS
        SELECT '{spec.name}' AS source, m._source_file AS file, m._source_line AS line, m.rule,
               m."column", m.rule || '(' || m."column" || ')' AS rules, q.values_masked,
               q.file IS NOT NULL AS known, m.pass
        FROM moved m LEFT JOIN last_quarantine q
          ON q.file = m._source_file AND q.line = m._source_line"""
    )
    if con.execute("SELECT count(*) FROM referenced WHERE NOT known").fetchall()[0][0]:
        return None
    unchanged = con.execute(
        f"""SELECT count(*) = 0 FROM (
            (SELECT file, line, rule, "column", rules FROM referenced
             EXCEPT ALL SELECT file, line, rule, "column", rules FROM last_quarantine
             WHERE rule IN ({by_reference}))
            UNION ALL
            (SELECT file, line, rule, "column", rules FROM last_quarantine
             WHERE rule IN ({by_reference})
             EXCEPT ALL SELECT file, line, rule, "column", rules FROM referenced))"""
    ).fetchall()[0][0]
    # reading order, as a load from the files has it: the files' order, then their lines
    names = [f["file"] for f in load.get("files", [])]
    listed = "[" + ", ".join(sql_path(n) for n in names) + "]::VARCHAR[]"
    con.execute(QUARANTINE_DDL)
    con.execute(f"DELETE FROM {QUARANTINE} WHERE source = ?", [spec.name])
    con.execute(f"INSERT INTO {QUARANTINE} FROM last_quarantine WHERE rule NOT IN ({by_reference})")
    con.execute(
        f"""INSERT INTO {QUARANTINE}
        SELECT source, file, line, rule, "column", rules, values_masked FROM referenced
        ORDER BY pass, list_position({listed}, file), line"""
    )
    for relation in (f"staging.{spec.name}", HELD):  # a load's tables, where one ran before
        _drop(con, relation)
    if unchanged:
        data = sql_path(staged.data)
        con.execute(f"CREATE OR REPLACE VIEW staging.{spec.name} AS FROM read_parquet({data})")
        kept = {"data": staged.data, "held": staged.held, "quarantine": staged.quarantine}
    else:
        con.execute(
            f"""CREATE OR REPLACE VIEW staging.{spec.name} AS
            FROM candidates ANTI JOIN moved USING (_source_file, _source_line)
            ORDER BY list_position({listed}, _source_file), _source_line"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {HELD} AS
            FROM candidates SEMI JOIN moved USING (_source_file, _source_line)"""
        )
        kept = {}
    counts = load["counts"]
    files = [dict(f) for f in load.get("files", [])]  # `_result` sets their quarantined
    return _result(
        con,
        spec,
        raw_dir,
        counts["rows_read"],
        (counts["repeats_collapsed"], counts["rows_superseded"]),
        files,
        key_warning,
        kept,
    )


def _file_warnings(con, spec: SourceSpec, unread: list[str]) -> list[str]:
    """What a file's sender must hear once rather than row by row: Excel's number damage,
    oversized cells, and files in the folder that are not read."""
    out = []
    rows = con.execute(
        f"""SELECT file, rule, "column", count(*), min(line) FROM {QUARANTINE}
        WHERE source = ? AND rule IN ('excel_number', 'oversized_cell')
        GROUP BY ALL ORDER BY ALL""",
        [spec.name],
    ).fetchall()
    for file, rule, column, n, line in rows:
        header = spec.column(column).header
        if rule == "excel_number":
            out.append(
                f"{file}: {n} cell(s) of column {header} are numbers, not text (Excel shows "
                "them like 3.30211E+17 and has lost their last digits); their rows are held "
                f"back (excel_number), the first at line {line}. Format the column as text "
                "(设置单元格格式 → 文本), enter the numbers again and export again."
            )
        else:
            out.append(
                f"{file}: {n} row(s) have a cell of column {header} longer than Excel's "
                f"32,767 characters, the first at line {line}; they are held back "
                "(oversized_cell). Check those rows and export again."
            )
    out += [
        f"{name}: not read (only .csv, .xlsx and .xls files, and .txt exports with the "
        "header row, are); save it as one of those if it holds rows of this source"
        for name in unread
    ]
    return out
