"""Publishing: the run's build file becomes the live warehouse analysts read."""

import dagster as dg

from union_pipeline.assetkit.resources import WRITER_POOL, WarehouseResource
from union_pipeline.assetkit.staging import OWNER
from union_pipeline.ingest.specs import load_specs

# Everything that writes the warehouse; the publish waits for all of it (and its checks).
WRITTEN = [dg.AssetKey(["staging", s]) for s in load_specs()] + [
    dg.AssetKey(["marts", m]) for m in ("kpi_yearly", "kpi_by_street", "report_reconciliation")
]


@dg.asset(
    key=["warehouse", "union_duckdb"],
    group_name="warehouse",
    kinds={"duckdb"},
    owners=[OWNER],
    pool=WRITER_POOL,
    deps=WRITTEN,
)
def union_duckdb(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """The live warehouse file: this refresh's complete state, swapped in atomically.

    Runs last: only when every staging table and mart of the run was built (and no blocking
    check failed) does the run's build file replace the live one, so readers never see a
    half-built state. 数据仓库发布：全部表构建完成后原子替换，读者只会看到完整状态。
    """
    live = warehouse.publish(context)
    with warehouse.warehouse.reading() as con:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
            "ORDER BY 1"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(live)),
            "size_mb": dg.MetadataValue.float(round(live.stat().st_size / 1e6, 1)),
            "tables": dg.MetadataValue.json({name: rows for name, rows in tables}),
        }
    )
