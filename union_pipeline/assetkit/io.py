"""Persistence in one place: the IO manager every table asset's output and input go through.

A step builds its tables in a scratch DuckDB and returns them as `Tables` (the value of its
`MaterializeResult`); the IO manager writes them as Parquet into a folder of that
materialization, never rewritten (`<warehouse dir>/outputs/<layer>/<table>/<version>/`), and
records the files in its metadata. An input is the *latest* materialization of its upstream
asset, whichever run made it: of the same district for a district step, of every district
for a city step. A step receives its upstream as arguments (`Latest`, `AllDistricts`) and
opens them as DuckDB views (`reading`). What a step reads of an asset made in the same step
(a staging source's references, a mart over another mart) comes from the same place
(`latest_tables`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.assetkit.outputs import (
    TABLES,
    AllDistricts,
    Latest,
    district_keys,
    fit_to_build_on,
    is_district_asset,
    latest,
    require,
    require_all,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.warehouse import Warehouse, create_views, scratch

# An input's name says how it is read (an AssetIn may carry no metadata of its own where its
# asset is also a declared dependency): a city step reads every district's; an optional
# input never materialized is None (the step does without it)
ALL_DISTRICTS = "every__"
OPTIONAL = "maybe__"
IO_MANAGER = "io_manager"


@dataclass
class Tables:
    """The tables of one output, as SELECTs over the step's scratch DuckDB (or an earlier
    output's file, when a part is that file unchanged): `data` is the asset's table; other
    parts (a staging source's quarantine) are written beside it."""

    con: duckdb.DuckDBPyConnection
    parts: Mapping[str, str | Path]
    version: str  # names the output's folder


def part_file_key(part: str) -> str:
    """The metadata key of an output's file other than its table (`union/quarantine_file`)."""
    return f"union/{part}_file"


def input_name(key: dg.AssetKey, prefix: str = "") -> str:
    return prefix + key.to_python_identifier()


def table_ins(
    keys: Iterable[dg.AssetKey], all_districts: bool = False, optional: bool = False
) -> dict[str, dg.AssetIn]:
    """The inputs of a step that reads these assets' tables (a city step: of every district;
    optional: None when never materialized)."""
    prefix = (ALL_DISTRICTS if all_districts else "") + (OPTIONAL if optional else "")
    return {input_name(k, prefix): dg.AssetIn(key=k) for k in keys}


def by_key(
    ins: Mapping[str, dg.AssetIn], values: Mapping[str, Latest | AllDistricts]
) -> dict[dg.AssetKey, Latest | AllDistricts]:
    """A step's keyword arguments by the asset each input is."""
    return {ins[name].key: value for name, value in values.items() if name in ins}


def latest_tables(
    instance: dg.DagsterInstance, key: dg.AssetKey, district: str | None
) -> Latest | AllDistricts:
    """The latest materialization of `key` fit to build on: a district asset's in
    `district`, or in every district when `district` is None; a city asset's own."""
    if not is_district_asset(key):
        return require(instance, key)
    if district is None:
        return require_all(instance, key)
    return require(instance, key, district)


class TablesIOManager(dg.ConfigurableIOManager):
    """Writes each output's tables as Parquet into a folder of its materialization and
    records them; loads an input as the latest materialization of its upstream asset."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: Tables | None) -> None:
        if obj is None:  # a result that stands: its files are recorded in its metadata
            return
        key = context.asset_key
        layer, table = key.path[0], key.path[-1]
        store: Warehouse = self.warehouse.warehouse
        files = store.outputs.write(obj.con, layer, table, obj.version, obj.parts)
        context.add_output_metadata(
            {
                TABLES: dg.MetadataValue.json({f"{layer}.{table}": str(files["data"])}),
                **{
                    part_file_key(part): dg.MetadataValue.path(str(path))
                    for part, path in files.items()
                    if part != "data"
                },
            }
        )

    def load_input(self, context: dg.InputContext) -> Latest | AllDistricts | None:
        name = context.name
        district = (
            context.asset_partition_key
            if not name.startswith(ALL_DISTRICTS)
            and context.has_asset_partitions
            and is_district_asset(context.asset_key)
            else None
        )
        optional = name.removeprefix(ALL_DISTRICTS).startswith(OPTIONAL)
        if optional:
            found = latest(context.instance, context.asset_key, district)
            if found is None:
                return None
            if district is not None or not is_district_asset(context.asset_key):
                return fit_to_build_on(found, context.asset_key, district)  # no second lookup
        return latest_tables(context.instance, context.asset_key, district)


@contextlib.contextmanager
def reading(
    warehouse: Warehouse, upstream: Iterable[Latest | AllDistricts]
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A scratch DuckDB with a view for every table of `upstream` (`staging.members`,
    `marts.kpi_yearly`, ...); a city step's view of a district table holds every district,
    with its keys made unique across districts (`district_keys`)."""
    with scratch(warehouse.spill_dir) as con:
        add_views(con, upstream)
        yield con


def add_views(con: duckdb.DuckDBPyConnection, upstream: Iterable[Latest | AllDistricts]) -> None:
    for found in upstream:
        # a city step reads staging rows as the city's (no district column, which the KPI
        # SQL would not expect) and marts by district
        create_views(con, found.tables, district_keys, lambda table: table.startswith("marts."))
