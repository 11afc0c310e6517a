"""Publishing: the live warehouse file analysts read, composed from the latest outputs."""

from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.outputs import (
    REUSED,
    VERSION,
    blocking_check_failures,
    latest,
    require,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import EAGER, OWNER, PII_KEY_WARNING, package_digest
from union_pipeline.defs.marts.assets import MART_KEYS
from union_pipeline.defs.quality.assets import KEY as QUARANTINE
from union_pipeline.ingest.specs import load_specs
from union_pipeline.kpis import describe
from union_pipeline.warehouse import sql_path
from union_pipeline.warehouse.versions import digest

KEY = dg.AssetKey(["warehouse", "union_duckdb"])
# Every asset with an output in the warehouse; the publish composes the latest of each.
PUBLISHED = [
    *(dg.AssetKey(["staging", s]) for s in load_specs()),
    QUARANTINE,
    *MART_KEYS,
]
CODE_VERSION = package_digest("warehouse")
LIVE_STAT = "union/live_file"
REFRESH_INFO = "meta.refresh"


def _stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _comments(context, upstream) -> tuple[dict, dict]:
    """Table comments from each asset's description, column comments from its schema, and
    for staging the Chinese header beside the English name from the source specs."""
    graph = context.job_def.asset_layer.asset_graph
    tables, columns = {}, {}
    for key, found in upstream.items():
        schema = found.get("dagster/column_schema")
        for name in found.tables:
            tables[name] = _first_line(graph.get(key).description)
            for column in getattr(schema, "columns", []) or []:
                if column.description:
                    columns[(name, column.name)] = column.description
    tables.update(describe.table_comments())
    columns.update(describe.column_comments())
    return tables, columns


@dg.asset(
    key=KEY,
    group_name="warehouse",
    kinds={"duckdb"},
    owners=[OWNER],
    deps=PUBLISHED,
    code_version=CODE_VERSION,
    automation_condition=EAGER,
)
def union_duckdb(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """数据仓库发布 — The live warehouse file analysts open: the latest output of every staging
    table and mart, swapped in atomically.

    Composed from the latest materialization of each table into a new file that replaces
    the live one in one rename, so readers see a complete state before and after, never a
    half-built table. Whatever ran before (a full refresh, a retry, one asset from the UI),
    the file equals what a full refresh of the same raw files gives. It is not published
    while any table's blocking check fails. Outputs that no latest materialization needs are
    removed afterwards. 全部表的最新结果组成新文件后原子替换，读者只会看到完整状态。
    """
    store = warehouse.warehouse
    upstream = {key: require(context.instance, key) for key in PUBLISHED}
    failed = blocking_check_failures(context, PUBLISHED)
    if failed:
        raise dg.Failure(
            description=(
                "not published: blocking checks failed on "
                + ", ".join(failed)
                + ". The live warehouse keeps its last complete state. "
                "阻断性检查未通过，仓库保持上一次完整状态。"
            )
        )
    version = digest(CODE_VERSION, versions_of(upstream))
    previous = latest(context.instance, KEY)
    live = store.live
    if (
        previous
        and previous.version == version
        and live.exists()
        and previous.get(LIVE_STAT) == _stat(live)
    ):
        context.log.info("the live warehouse already holds the latest outputs")
        metadata = dict(previous.metadata)
        metadata[REUSED] = dg.MetadataValue.bool(True)
        return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=metadata)

    tables = {name: path for found in upstream.values() for name, path in found.tables.items()}
    table_comments, column_comments = _comments(context, upstream)
    warnings = sorted({w for found in upstream.values() if (w := found.get(PII_KEY_WARNING))})
    pii_note = "; ".join(warnings) or "secret key (UNION_PII_KEY)"
    table_comments[REFRESH_INFO] = (
        "刷新信息 — when this warehouse was published, as of when, by which run, and which PII "
        "key made person_key"
    )
    store.publish(
        tables,
        table_comments,
        column_comments,
        derived={
            REFRESH_INFO: f"""
        SELECT now()::TIMESTAMP AS published_at, as_of, first_year,
               '{context.run.run_id}' AS run_id, {sql_path(pii_note)} AS pii_key
        FROM published.marts.refresh_context"""
        },
    )
    with store.reading() as con:
        rows = dict(
            con.execute(
                "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
                "ORDER BY 1"
            ).fetchall()
        )
    # a staging folder holds its quarantine file beside its table
    keep = {Path(p).parent for found in upstream.values() for p in found.tables.values()}
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
            "tables": dg.MetadataValue.json(rows),
            "versions": dg.MetadataValue.json(versions_of(upstream)),
            "outputs_removed": dg.MetadataValue.int(len(removed)),
            "pii_key": dg.MetadataValue.text(("⚠ " if warnings else "") + pii_note),
            VERSION: dg.MetadataValue.text(version),
            LIVE_STAT: dg.MetadataValue.json(_stat(live)),
            REUSED: dg.MetadataValue.bool(False),
        },
    )
