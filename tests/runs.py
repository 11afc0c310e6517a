"""Running the real definitions against a real instance, and comparing warehouses."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.definitions import defs

# the district of a single-district drop (assets/districts/330211.yaml says `default: true`)
DISTRICT = "330211"


def refresh_job() -> dg.JobDefinition:
    """The refresh of a single-district drop, as `python -m union_pipeline.refresh` runs it."""
    return defs().resolve_job_def("refresh_all")


def with_district(instance: dg.DagsterInstance, code: str = DISTRICT) -> str:
    """Register a district partition (as the raw-files sensor or the refresh does)."""
    from union_pipeline.defs.automation.jobs import add_districts

    add_districts(instance, [code])
    return code


def warehouse_keys(include_reports: bool = False) -> list[dg.AssetKey]:
    """Every executable asset, without the chart exports unless asked (they need a browser
    and cost most of a refresh)."""
    graph = defs().resolve_asset_graph()
    return sorted(
        k
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable and (include_reports or k.path[0] != "reports")
    )


def run(
    instance: dg.DagsterInstance,
    selection: list[dg.AssetKey] | None = None,
    include_reports: bool = False,
) -> dg.ExecuteInProcessResult:
    return refresh_job().execute_in_process(
        instance=instance,
        asset_selection=selection or warehouse_keys(include_reports),
        partition_key=with_district(instance),
        raise_on_error=False,
    )


def warehouse_state(path: Path) -> dict[str, tuple]:
    """Every table of a warehouse file with its row count and an order-free digest of its
    rows: two files with equal states hold the same data."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
            "WHERE schema_name <> 'meta' ORDER BY 1"  # meta: when and by which run
        ).fetchall()
        return {
            name: tuple(
                con.execute(f"SELECT count(*), sum(hash(t)) FROM {name} AS t").fetchall()[0]
            )
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


def register_marts(instance: dg.DagsterInstance, warehouse: Path, folder: Path) -> None:
    """The marts of a hand-made warehouse file, recorded as the latest materializations of
    the mart assets (their outputs as Parquet), so report assets can run on them alone."""
    from union_pipeline.assetkit.outputs import output_metadata

    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
            ).fetchall()
        ]
        for name in names:
            path = folder / f"{name}.parquet"
            con.execute(f"COPY marts.{name} TO '{path}' (FORMAT parquet)")
            # the KPI catalogue is the city's (one for every district), the others a district's
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=["marts", name],
                    partition=None if name == "kpi_catalogue" else with_district(instance),
                    metadata=output_metadata(f"test-{name}", {f"marts.{name}": path}),
                )
            )


def report_keys() -> list[dg.AssetKey]:
    """The charts (as the reports package builds them), the dashboard, the briefing and its
    delivery."""
    from union_pipeline.reports import BUILDERS

    names = [*BUILDERS, "dashboard", "briefing", "briefing_mail"]
    return [dg.AssetKey(["reports", name]) for name in names]


def materialize_charts_and_briefing(
    instance: dg.DagsterInstance, warehouse: Path, only_mail: bool = False
) -> dg.ExecuteInProcessResult:
    """The reports step for the charts, the dashboard, the briefing and its delivery (only
    the delivery: `only_mail`), on marts recorded as materialized; a failed step does not
    raise. Its resources: the warehouse `warehouse` and the IO manager."""
    from union_pipeline.assetkit.io import IO_MANAGER, TablesIOManager
    from union_pipeline.assetkit.resources import WarehouseResource

    resource = WarehouseResource(path=str(warehouse))
    # every asset of the project (the reports' inputs are theirs); only the reports run
    everything = [a for a in defs().assets or [] if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        everything,
        selection=[dg.AssetKey(["reports", "briefing_mail"])] if only_mail else report_keys(),
        instance=instance,
        partition_key=with_district(instance),
        resources={"warehouse": resource, IO_MANAGER: TablesIOManager(warehouse=resource)},
        raise_on_error=False,
    )
