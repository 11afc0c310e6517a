"""Running the real definitions against a real instance, and comparing warehouses."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.definitions import defs


def refresh_job() -> dg.JobDefinition:
    """The nightly job, as `dg launch --job refresh_all` runs it (reconstructable)."""
    return defs().resolve_job_def("refresh_all")


def warehouse_keys(include_reports: bool = False) -> list[dg.AssetKey]:
    """Every executable asset, without the chart exports unless asked (they need a browser
    and cost most of a refresh)."""
    graph = defs().resolve_asset_graph()
    return sorted(
        k for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable and (include_reports or k.path[0] != "reports")
    )


def run(instance: dg.DagsterInstance, selection: list[dg.AssetKey] | None = None,
        include_reports: bool = False) -> dg.ExecuteInProcessResult:
    return refresh_job().execute_in_process(
        instance=instance,
        asset_selection=selection or warehouse_keys(include_reports),
        raise_on_error=False,
    )


def warehouse_state(path: Path) -> dict[str, tuple]:
    """Every table of a warehouse file with its row count and an order-free digest of its
    rows: two files with equal states hold the same data."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1"
        ).fetchall()
        return {
            name: tuple(con.execute(f"SELECT count(*), sum(hash(t)) FROM {name} AS t")
                        .fetchall()[0])
            for (name,) in tables
        }


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset (user string) -> metadata of its materialization in this run."""
    out = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        out[materialization.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in materialization.metadata.items()
        }
    return out
