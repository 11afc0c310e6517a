"""Outputs per materialization, as Dagster sees them.

A materialization records in its metadata the version of its inputs and the Parquet files
it wrote (`union/tables`: `schema.table` -> file). Downstream steps read the *latest*
materialization of each upstream asset, whichever run made it, so a retry, a re-execution
from failure or one asset materialized from the UI reads what the catalog shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.warehouse import Warehouse, create_views, scratch

# the data version downstream steps key on: the output's content where it is cheap to
# digest (marts), else the digest of its inputs (staging)
VERSION = "union/version"
# the digest of what the result was made from: equal inputs, the result stands
INPUTS = "union/inputs"
TABLES = "union/tables"
# False when the step's own blocking rule failed (the quarantine threshold): what depends
# on it must not build on it, in this run or a later one.
PUBLISHABLE = "union/publishable"
REUSED = "union/reused"
MADE_IN_RUN = "union/made_in_run"


class UpstreamError(RuntimeError):
    """An upstream asset has no usable materialization; the message says what to do."""


def _value(metadata: dict, key: str, default=None):
    entry = metadata.get(key)
    return default if entry is None else getattr(entry, "value", entry)


@dataclass(frozen=True)
class Latest:
    key: dg.AssetKey
    run_id: str
    metadata: dict

    @property
    def version(self) -> str | None:
        return _value(self.metadata, VERSION)

    @property
    def inputs(self) -> str | None:
        return _value(self.metadata, INPUTS) or self.version

    @property
    def tables(self) -> dict[str, str]:
        return dict(_value(self.metadata, TABLES, {}) or {})

    @property
    def publishable(self) -> bool:
        return bool(_value(self.metadata, PUBLISHABLE, True))

    @property
    def made_in_run(self) -> str:
        return _value(self.metadata, MADE_IN_RUN, self.run_id)

    def get(self, key: str, default=None):
        return _value(self.metadata, key, default)

    @property
    def files_exist(self) -> bool:
        return all(Path(p).exists() for p in self.tables.values())


def latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> Latest | None:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return Latest(key, event.run_id, dict(event.asset_materialization.metadata))


def reusable(instance: dg.DagsterInstance, key: dg.AssetKey, inputs: str) -> Latest | None:
    """The latest materialization when it was made from the same inputs and its files are
    still there: its result stands, the work is not redone."""
    found = latest(instance, key)
    if found and found.inputs == inputs and found.files_exist:
        return found
    return None


def require(instance: dg.DagsterInstance, key: dg.AssetKey) -> Latest:
    """The latest materialization of an upstream asset, fit to build on."""
    name = key.to_user_string()
    found = latest(instance, key)
    if found is None or not found.tables:
        raise UpstreamError(
            f"{name} has not been materialized yet: materialize it (or run the full refresh) "
            f"first. {name} 尚未物化，请先刷新它。"
        )
    if not found.publishable:
        raise UpstreamError(
            f"{name}: its latest materialization (run {found.run_id[:8]}) failed a blocking "
            f"rule; fix its files and refresh it. {name} 最近一次物化未通过阻断性检查。"
        )
    if not found.files_exist:
        raise UpstreamError(
            f"{name}: the output files of its latest materialization are gone; "
            f"materialize it again. {name} 的输出文件已不存在，请重新物化。"
        )
    return found


def versions_of(upstream: dict[dg.AssetKey, Latest]) -> dict[str, str | None]:
    return {k.to_user_string(): v.version for k, v in sorted(upstream.items())}


@contextlib.contextmanager
def reading_latest(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], warehouse: Warehouse
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[dg.AssetKey, Latest]]]:
    """A scratch DuckDB with a view for every table of the latest materialization of
    `keys` (`staging.members`, `marts.kpi_yearly`, ...)."""
    upstream = {key: require(instance, key) for key in keys}
    with scratch(warehouse.spill_dir) as con:
        for found in upstream.values():
            create_views(con, found.tables)
        yield con, upstream


def output_metadata(
    version: str, tables: dict[str, Path], publishable: bool = True, inputs: str | None = None
) -> dict:
    return {
        VERSION: dg.MetadataValue.text(version),
        INPUTS: dg.MetadataValue.text(inputs or version),
        TABLES: dg.MetadataValue.json({name: str(path) for name, path in tables.items()}),
        PUBLISHABLE: dg.MetadataValue.bool(publishable),
        REUSED: dg.MetadataValue.bool(False),
    }


def reused_metadata(previous: Latest, publishable: bool | None = None) -> dict:
    """The previous materialization's metadata, marked as reused: same inputs, same result."""
    metadata = dict(previous.metadata)
    metadata[REUSED] = dg.MetadataValue.bool(True)
    metadata[MADE_IN_RUN] = dg.MetadataValue.text(previous.made_in_run)
    if publishable is not None:
        metadata[PUBLISHABLE] = dg.MetadataValue.bool(publishable)
    return metadata


def content_version(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """A digest of a table's rows, in any order: equal content, equal version, so what
    depends on it is not recomputed when its inputs changed but it did not."""
    from union_pipeline.warehouse.versions import digest

    count, total = con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchall()[0]
    return digest(count, str(total))


def blocking_check_failures(
    context: dg.AssetExecutionContext, keys: Iterable[dg.AssetKey]
) -> list[str]:
    """Blocking checks of `keys` whose latest evaluation failed with severity ERROR."""
    graph = context.job_def.asset_layer.asset_graph
    check_keys = [
        c for key in keys for c in graph.get(key).check_keys if graph.get_check_spec(c).blocking
    ]
    if not check_keys:
        return []
    records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    failed = []
    for check_key, record in records.items():
        evaluation = None
        if record.event is not None and record.event.dagster_event is not None:
            evaluation = record.event.dagster_event.event_specific_data
        if (
            evaluation is not None
            and getattr(evaluation, "passed", True) is False
            and getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.ERROR
        ):
            failed.append(f"{check_key.asset_key.to_user_string()}:{check_key.name}")
    return sorted(failed)
