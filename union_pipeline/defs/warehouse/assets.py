"""Publishing: the live warehouse file analysts read, composed from the latest outputs."""

import functools
import re
from pathlib import Path

import dagster as dg

from union_pipeline import districts
from union_pipeline.assetkit.io import by_key, table_ins
from union_pipeline.assetkit.outputs import (
    DISTRICTS,
    REUSED,
    VERSION,
    AllDistricts,
    Latest,
    blocking_check_failures,
    district_partitions,
    is_district_asset,
    latest,
    stands,
    step_partition,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, PII_KEY_WARNING, package_digest
from union_pipeline.defs.marts.assets import MART_KEYS
from union_pipeline.defs.quality.assets import KEY as QUARANTINE
from union_pipeline.ingest.specs import load_specs
from union_pipeline.kpis import describe
from union_pipeline.settings import ASSETS_DIR, city_detail_rows
from union_pipeline.warehouse import Start, sql_path
from union_pipeline.warehouse.versions import LIVE_FILE, digest, live_stat
from union_pipeline.yamlfile import load_yaml

# what the live file was composed of: table -> its output file(s)
SOURCES = "union/published_from"
PUBLISH_CODE = "union/publish_code"  # the code version that composed the file


def _plain(source) -> str | dict[str, str]:
    return {k: str(v) for k, v in source.items()} if isinstance(source, dict) else str(source)


KEY = dg.AssetKey(["warehouse", "union_duckdb"])
DISTRICT_KEY = dg.AssetKey(["warehouse", "district_duckdb"])
# Every asset with an output in a district's warehouse; the publish composes the latest of
# each (the city's file: of every district, and the city's own tables).
PUBLISHED = [
    *(dg.AssetKey(["staging", s]) for s in load_specs()),
    QUARANTINE,
    *MART_KEYS,
]
CITY_TABLES = [
    dg.AssetKey(["staging", "city_targets"]),
    dg.AssetKey(["marts", "city_kpi_yearly"]),
]
CITY_PUBLISHED = [*PUBLISHED, *CITY_TABLES]
CODE_VERSION = package_digest("warehouse")
REFRESH_INFO = "meta.refresh"
DETAIL_INFO = "meta.detail"
DISTRICTS_INFO = "meta.districts"
# the columns of the two tables the publish itself writes (their SELECTs in _publish)
META_COLUMNS = {
    REFRESH_INFO: {
        "published_at": "发布时间 — when this file was published",
        "as_of": "统计截止日 — the as-of date of its figures (marts.refresh_context)",
        "first_year": "首个统计年度 — the first reported year",
        "run_id": "运行编号 — the Dagster run that published it",
        "pii_key": "人员键密钥 — which key made person_key (a warning when the development key)",
        "scope": "范围 — the district's code, or city for the city's file",
    },
    DISTRICTS_INFO: {
        "district": "区县代码 — the district's administrative code",
        "name": "区县名称 — the district's name (assets/districts/<code>.yaml)",
    },
    DETAIL_INFO: {
        "district": "区县代码 — the district whose rows these are",
        "table_name": "表 — the detail table, as named in the district's file",
        "row_count": "行数 — its rows",
        "district_file": "区县文件 — the district's warehouse file, relative to this one",
    },
}
MARTS_DIR = ASSETS_DIR / "marts"
# a series mart's `/* columns: ... */` block: one `name: description` a line
COLUMNS_BLOCK = re.compile(r"/\*\s*columns\b[^\n]*\n(.*?)\*/", re.DOTALL)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def district_file(live: Path, code: str) -> Path:
    """A district's own warehouse file, beside the city's."""
    return live.parent / "districts" / f"{code}.duckdb"


@functools.cache
def mart_column_comments() -> dict[tuple[str, str], str]:
    """{("marts.<name>", column): description} declared in assets/marts/: each series
    mart's `/* columns: */` block, and columns.yaml for the columns a mart's asset leaves
    undescribed."""
    out = {}
    for path in sorted(MARTS_DIR.glob("*.sql")):
        block = COLUMNS_BLOCK.search(path.read_text(encoding="utf-8"))
        for line in block.group(1).splitlines() if block else []:
            column, _, text = line.partition(":")
            if column.strip() and text.strip():
                out[(f"marts.{path.stem}", column.strip())] = text.strip()
    with open(MARTS_DIR / "columns.yaml", encoding="utf-8") as f:
        for table, columns in (load_yaml(f) or {}).items():
            out.update({(table, column): text for column, text in columns.items()})
    return out


def _table_titles() -> dict[str, str]:
    """Each published table's comment: the first line of its asset's description."""
    from union_pipeline.defs.city.assets import CITY_MARTS, CITY_TARGETS_DESCRIPTION
    from union_pipeline.defs.marts.assets import DISTRICT_MARTS, kpi_catalogue

    titles = {
        f"marts.{m.name}": _first_line(m.description)
        for m in (*DISTRICT_MARTS, kpi_catalogue, *CITY_MARTS)
    }
    titles["staging.city_targets"] = _first_line(CITY_TARGETS_DESCRIPTION)
    return titles


def _comments(upstream) -> tuple[dict, dict]:
    """Table comments from each asset's description, column comments from its schema, and
    for staging the Chinese header beside the English name from the source specs."""
    titles = _table_titles()
    tables, columns = {}, {}
    for found in upstream.values():
        schema = found.get("dagster/column_schema")
        for name in found.tables:
            if name in titles:
                tables[name] = titles[name]
            for column in getattr(schema, "columns", []) or []:
                if column.description:
                    columns[(name, column.name)] = column.description
    tables.update(describe.table_comments())
    columns.update(describe.column_comments())
    # what the assets leave undescribed: declared in assets/marts/, and the meta tables
    declared = {
        **mart_column_comments(),
        **{(t, c): text for t, cols in META_COLUMNS.items() for c, text in cols.items()},
    }
    for name_column, text in declared.items():
        columns.setdefault(name_column, text)
    return tables, columns


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def unpublished_districts(instance: dg.DagsterInstance, this_run: str) -> dict[str, bool]:
    """The districts whose latest outputs are not in their own warehouse file, each with
    whether another run of the district is under way (True: the city waits for it; False:
    a blocking check stopped its publish, or its refresh failed)."""
    of_districts = [k for k in PUBLISHED if is_district_asset(k)]
    out = {}
    for code in district_partitions(instance):
        published = latest(instance, DISTRICT_KEY, code)
        now = {
            k.to_user_string(): found.version if (found := latest(instance, k, code)) else None
            for k in of_districts
        }
        taken = published.get("versions") if published else None
        if not taken or any(taken.get(k) != v for k, v in now.items()):
            running = instance.get_run_records(
                dg.RunsFilter(tags={"dagster/partition": code}, statuses=IN_FLIGHT)
            )
            out[code] = any(r.dagster_run.run_id != this_run for r in running)
    return out


def waiting_for(instance: dg.DagsterInstance, this_run: str) -> list[str]:
    """Districts a city step waits for: another run of theirs is under way and they have
    not published yet. The city step then makes nothing; the automation asks again when the
    district's file is published (a city asset depends on it)."""
    return sorted(
        code for code, running in unpublished_districts(instance, this_run).items() if running
    )


def _blocking_failures(context, keys: list[dg.AssetKey], district: str | None) -> list[str]:
    """Why the tables may not be published: for a district, its blocking checks that
    failed; for the city, its own, and every district whose latest outputs its own
    publish did not take (a blocking check stopped it, or its refresh failed)."""
    if district is not None:
        return blocking_check_failures(context, keys, district)
    failed = blocking_check_failures(context, [k for k in keys if not is_district_asset(k)])
    for code, running in unpublished_districts(context.instance, context.run.run_id).items():
        failed.append(
            f"district {code}: its latest outputs are not in its own warehouse file yet "
            + (
                "(its refresh is under way)"
                if running
                else "(a blocking check failed or its refresh failed)"
            )
        )
    return sorted(failed)


def _detail_left_in_districts(upstream, live: Path) -> list[tuple[str, str, int, str]]:
    """(district, table, rows, district file) of every district's detail table, when all
    of them together are more than the city's file copies (UNION_CITY_DETAIL_ROWS); else
    none. The quarantine and the city's own tables are always copied."""
    rows = []
    for key, found in upstream.items():
        if key.path[0] != "staging" or key == QUARANTINE or not is_district_asset(key):
            continue
        for code, part in sorted(getattr(found, "parts", {}).items()):
            count = int(part.get("dagster/row_count", 0) or 0)
            for name in part.tables:
                file = district_file(live, code).relative_to(live.parent).as_posix()
                rows.append((code, name, count, file))
    if sum(r for _, _, r, _ in rows) <= city_detail_rows():
        return []
    return sorted(rows)


def _keep(instance: dg.DagsterInstance) -> set[Path]:
    """The output folders some latest materialization needs, in any district."""
    codes = district_partitions(instance)
    folders = set()
    for key in CITY_PUBLISHED:
        for code in codes if is_district_asset(key) else [None]:
            found = latest(instance, key, code)
            # a staging folder holds its quarantine file beside its table
            folders |= {Path(p).parent for p in (found.tables.values() if found else [])}
    return folders


def _start(
    instance: dg.DagsterInstance,
    tables: dict,
    previous: Latest | None,
    live: Path,
    city_of: list[str],
) -> Start | None:
    """The published file a publish starts from, the one that holds more of `tables` as
    they are: the live file this step wrote last (`previous`), or, for a city of one
    district (`city_of`), that district's own file: then its rows are written once."""

    def known(found: Latest | None) -> bool:
        # composed by this code (a table kept has the layout the code that wrote it gave)
        return (
            found is not None
            and found.get(PUBLISH_CODE) == CODE_VERSION
            and bool(found.get(SOURCES))
            and bool(found.get(LIVE_FILE))
        )

    starts = []
    if known(previous):
        starts.append(Start(live, previous.get(SOURCES), previous.get(LIVE_FILE)))
    if len(city_of) == 1:
        own = latest(instance, DISTRICT_KEY, city_of[0])
        if known(own):
            file = Path(own.get("path"))
            starts.append(Start(file, own.get(SOURCES), own.get(LIVE_FILE), city_of[0]))
    return max(starts, key=lambda s: len(s.keeps(tables)), default=None)


def _publish(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    own_key: dg.AssetKey,
    upstream: dict[dg.AssetKey, Latest | AllDistricts],
    live: Path,
):
    store = warehouse.warehouse
    district = step_partition(context, own_key)
    if district is None and (waiting := waiting_for(context.instance, context.run.run_id)):
        context.log.info(
            f"not published yet: waiting for district {', '.join(waiting)} (its refresh is "
            "under way); the city is published when its file is. 等待区县刷新完成后再发布。"
        )
        return None
    keys = list(upstream)
    failed = _blocking_failures(context, keys, district)
    if failed:
        raise dg.Failure(
            description=(
                "not published: blocking checks failed on "
                + ", ".join(failed)
                + ". The live warehouse keeps its last complete state. "
                "阻断性检查未通过，仓库保持上一次完整状态。"
            )
        )
    # a province-size city leaves its districts' detail rows in their files
    detail = _detail_left_in_districts(upstream, live) if district is None else []
    version = digest(CODE_VERSION, versions_of(upstream), detail)
    previous = latest(context.instance, own_key, district)
    if stands(
        previous, version, files=[live], also=lambda found: found.get(LIVE_FILE) == live_stat(live)
    ):
        context.log.info("the live warehouse already holds the latest outputs")
        metadata = dict(previous.metadata)
        metadata[REUSED] = dg.MetadataValue.bool(True)
        return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=metadata)

    tables = {name: path for found in upstream.values() for name, path in found.tables.items()}
    if detail:
        context.log.info(
            f"{sum(r for _, _, r, _ in detail):,} detail rows of the districts stay in their "
            f"files (over UNION_CITY_DETAIL_ROWS={city_detail_rows():,}): the city's file "
            "holds the marts, the quarantine and meta.detail (where each district's rows are)"
        )
        for name in {name for _, name, _, _ in detail}:
            tables.pop(name, None)
    table_comments, column_comments = _comments(upstream)
    warnings = sorted(
        {
            w
            for found in upstream.values()
            for part in getattr(found, "parts", {None: found}).values()
            if (w := part.get(PII_KEY_WARNING))
        }
    )
    pii_note = "; ".join(warnings) or "secret key (UNION_PII_KEY)"
    table_comments[REFRESH_INFO] = (
        "刷新信息 — when this warehouse was published, as of when, by which run, and which PII "
        "key made person_key"
    )
    table_comments[DISTRICTS_INFO] = "区县 — the districts this warehouse holds: code and name"
    table_comments[DETAIL_INFO] = (
        "明细所在 — the detail tables left in the district files (a province-size city): "
        "ATTACH a district_file READ_ONLY to read them"
    )
    known = districts.load_districts()
    codes = [district] if district else sorted(upstream[QUARANTINE].parts)
    names = ", ".join(
        f"({sql_path(c)}, {sql_path(known[c].name if c in known else c)})" for c in codes
    )
    city_of = codes if district is None and not detail else []
    start = _start(context.instance, tables, previous, live, city_of)
    published = store.publish(
        tables,
        table_comments,
        column_comments,
        derived={
            REFRESH_INFO: f"""
        SELECT now()::TIMESTAMP AS published_at, max(as_of) AS as_of,
               min(first_year) AS first_year, '{context.run.run_id}' AS run_id,
               {sql_path(pii_note)} AS pii_key,
               {sql_path(district or "city")} AS scope
        FROM published.marts.refresh_context""",
            DISTRICTS_INFO: f"SELECT * FROM (VALUES {names}) AS d(district, name)",
            **(
                {
                    DETAIL_INFO: "SELECT * FROM (VALUES "
                    + ", ".join(
                        f"({sql_path(c)}, {sql_path(t)}, {r}, {sql_path(f)})"
                        for c, t, r, f in detail
                    )
                    + ") AS d(district, table_name, row_count, district_file)"
                }
                if detail
                else {}
            ),
        },
        live=live,
        start=start,
    )
    with store.reading(live) as con:
        rows = dict(
            con.execute(
                "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
                "ORDER BY 1"
            ).fetchall()
        )
    keep = _keep(context.instance)
    removed = [
        p
        for layer in ("staging", "marts")
        for p in store.outputs.cleanup(keep, pattern=f"{layer}/*/*")
    ]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "path": dg.MetadataValue.path(str(live)),
            "size_mb": dg.MetadataValue.float(round(live.stat().st_size / 1e6, 1)),
            "districts": dg.MetadataValue.json(codes),
            "tables": dg.MetadataValue.json(rows),
            "versions": dg.MetadataValue.json(versions_of(upstream)),
            "outputs_removed": dg.MetadataValue.int(len(removed)),
            "pii_key": dg.MetadataValue.text(("⚠ " if warnings else "") + pii_note),
            VERSION: dg.MetadataValue.text(version),
            LIVE_FILE: dg.MetadataValue.json(published.identity),
            PUBLISH_CODE: dg.MetadataValue.text(CODE_VERSION),
            SOURCES: dg.MetadataValue.json({n: _plain(src) for n, src in tables.items()}),
            # of the outputs' tables, those written again (the others were the live file's)
            "tables_written": dg.MetadataValue.int(len(published.written)),
            REUSED: dg.MetadataValue.bool(False),
        },
    )


DISTRICT_INS = table_ins(PUBLISHED)
# the city's file: every district's tables and the city's own
CITY_INS = {
    **table_ins([k for k in CITY_PUBLISHED if is_district_asset(k)], all_districts=True),
    **table_ins([k for k in CITY_PUBLISHED if not is_district_asset(k)]),
}


@dg.asset(
    key=DISTRICT_KEY,
    group_name="warehouse",
    kinds={"duckdb"},
    owners=[OWNER],
    ins=DISTRICT_INS,
    code_version=CODE_VERSION,
    automation_condition=EAGER,
    partitions_def=DISTRICTS,
)
def district_duckdb(context: dg.AssetExecutionContext, warehouse: WarehouseResource, **inputs):
    """区县数据仓库 — A district's own warehouse file: its staging tables and marts, no row of
    another district, swapped in atomically.

    `<warehouse dir>/districts/<code>.duckdb`, composed from the district's latest outputs
    into a new file that replaces the live one in one rename, so readers see a complete
    state before and after. Not published while a blocking check of the district fails.
    区县分析人员使用的数据仓库文件：仅含本区县数据，原子替换。
    """
    live = district_file(warehouse.warehouse.live, context.partition_key)
    return _publish(context, warehouse, DISTRICT_KEY, by_key(DISTRICT_INS, inputs), live)


@dg.asset(
    key=KEY,
    group_name="warehouse",
    kinds={"duckdb"},
    owners=[OWNER],
    ins=CITY_INS,
    # after every district's own publish: the city holds what its districts published
    deps=[DISTRICT_KEY],
    code_version=CODE_VERSION,
    automation_condition=EAGER,
    output_required=False,  # not while a district's refresh is under way
)
def union_duckdb(context: dg.AssetExecutionContext, warehouse: WarehouseResource, **inputs):
    """数据仓库发布 — The live warehouse file analysts open (UNION_WAREHOUSE): every
    district's staging tables and marts with a `district` column, and the city roll-ups,
    swapped in atomically.

    Composed from the latest materialization of each table in every district into a new
    file that replaces the live one in one rename, so readers see a complete state before
    and after, never a half-built table. Whatever ran before (a full refresh, a retry, one
    asset from the UI), the file equals what a full refresh of the same raw files gives. It
    is not published while any blocking check of any district fails. Outputs that no
    latest materialization needs are removed afterwards.
    全部区县的最新结果及全市汇总组成新文件后原子替换，读者只会看到完整状态。
    """
    upstream = by_key(CITY_INS, inputs)
    result = _publish(context, warehouse, KEY, upstream, warehouse.warehouse.live)
    if result is not None:
        yield result
