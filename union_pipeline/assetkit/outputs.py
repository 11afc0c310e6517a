"""Outputs per materialization, as Dagster sees them.

A materialization records in its metadata the version of its inputs and the Parquet files
the IO manager wrote (`union/tables`: `schema.table` -> file; see `assetkit/io.py`).
Downstream steps read the *latest* materialization of each upstream asset, whichever run
made it, so a retry, a re-execution from failure or one asset materialized from the UI
reads what the catalog shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.warehouse.versions import digest

# One partition per district (named by its code): a district refreshes on its own drop.
# Dynamic, so that a new district folder in the raw drop adds one (the raw-files sensor and
# the headless refresh add them); its name and streets come from assets/districts/.
DISTRICTS = dg.DynamicPartitionsDefinition(name="district")
# The city's own assets; every other asset with an output is a district's (partitioned).
CITY_ASSETS = {
    dg.AssetKey(["staging", "city_targets"]),
    dg.AssetKey(["marts", "city_kpi_yearly"]),
    dg.AssetKey(["marts", "kpi_catalogue"]),  # one catalogue for every district
    dg.AssetKey(["warehouse", "union_duckdb"]),
}


def is_district_asset(key: dg.AssetKey) -> bool:
    city_report = key.path[0] == "reports" and key.path[-1].startswith("city_")
    return key not in CITY_ASSETS and not city_report


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
# a source's raw files as its step last took them: {name: [size, mtime_ns, sha256]}
RAW_STATE = "union/raw_files"
MADE_IN_RUN = "union/made_in_run"
# a staging step held a row back for a date after the refresh date: a later day may admit it
DATE_SENSITIVE = "union/date_sensitive"


class UpstreamError(RuntimeError):
    """An upstream asset has no usable materialization; the message says what to do."""


def metadata_value(metadata: dict, key: str, default=None):
    entry = metadata.get(key)
    return default if entry is None else getattr(entry, "value", entry)


@dataclass(frozen=True)
class Latest:
    key: dg.AssetKey
    run_id: str
    metadata: dict
    partition: str | None = None

    @property
    def version(self) -> str | None:
        return metadata_value(self.metadata, VERSION)

    @property
    def inputs(self) -> str | None:
        return metadata_value(self.metadata, INPUTS) or self.version

    @property
    def tables(self) -> dict[str, str]:
        return dict(metadata_value(self.metadata, TABLES, {}) or {})

    @property
    def publishable(self) -> bool:
        return bool(metadata_value(self.metadata, PUBLISHABLE, True))

    @property
    def made_in_run(self) -> str:
        return metadata_value(self.metadata, MADE_IN_RUN, self.run_id)

    def get(self, key: str, default=None):
        return metadata_value(self.metadata, key, default)

    @property
    def files_exist(self) -> bool:
        return all(Path(p).exists() for p in self.tables.values())


@dataclass(frozen=True)
class AllDistricts:
    """The latest materialization of a district asset in every district: what a city step
    reads of it (its tables are the districts' files together)."""

    key: dg.AssetKey
    parts: dict[str, Latest]

    @property
    def version(self) -> str:
        return digest({d: p.version for d, p in sorted(self.parts.items())})

    inputs = version

    @property
    def tables(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for district, part in sorted(self.parts.items()):
            for name, path in part.tables.items():
                out.setdefault(name, {})[district] = path
        return out

    @property
    def publishable(self) -> bool:
        return all(p.publishable for p in self.parts.values())

    @property
    def files_exist(self) -> bool:
        return all(p.files_exist for p in self.parts.values())

    def get(self, key: str, default=None):
        # what the districts' materializations share (their column schema)
        return next(iter(self.parts.values())).get(key, default)


def latest(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> Latest | None:
    """The latest materialization of `key` (of its `partition`, for a district asset)."""
    if partition is None:
        event = instance.get_latest_materialization_event(key)
    else:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        event = records[0].event_log_entry if records else None
    if event is None or event.asset_materialization is None:
        return None
    return Latest(key, event.run_id, dict(event.asset_materialization.metadata), partition)


def stands(
    found: Latest | None,
    inputs: str,
    files: Iterable[Path | str] = (),
    also: Callable[[Latest], bool] | None = None,
) -> bool:
    """The one answer to "has this changed?", for every layer: a step's latest result
    stands when it was made from `inputs` (the step's code version, the data versions of
    what it read and the settings it uses), every file it recorded (its tables, its parts)
    and every file it wrote (`files`: exports, the live warehouse) is still there, and
    `also` (what else a layer knows of its result) holds."""
    if found is None or found.inputs != inputs or not found.files_exist:
        return False
    recorded = [
        v.value
        for k, v in found.metadata.items()
        if k.startswith("union/") and isinstance(v, dg.PathMetadataValue)
    ]
    written = [*recorded, *files]
    if not all(Path(str(f)).exists() for f in written if f):
        return False
    return also is None or also(found)


def reusable(
    instance: dg.DagsterInstance, key: dg.AssetKey, inputs: str, partition: str | None = None
) -> Latest | None:
    """The latest materialization when its result stands (`stands`): the work is not redone."""
    found = latest(instance, key, partition)
    return found if stands(found, inputs) else None


def require(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> Latest:
    """The latest materialization of an upstream asset, fit to build on."""
    return fit_to_build_on(latest(instance, key, partition), key, partition)


def fit_to_build_on(found: Latest | None, key: dg.AssetKey, partition: str | None) -> Latest:
    """`found` (the latest materialization of `key`) when it can be built on; else the
    error that says what to do."""
    name = key.to_user_string() + (f" [{partition}]" if partition else "")
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


def district_partitions(instance: dg.DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(DISTRICTS.name))


def require_all(instance: dg.DagsterInstance, key: dg.AssetKey) -> AllDistricts:
    """The latest materialization of a district asset in every district, each fit to build
    on: the city is built from complete districts only."""
    districts = district_partitions(instance)
    if not districts:
        raise UpstreamError(
            f"{key.to_user_string()}: no district has been added yet: refresh a district "
            "first. 尚无区县分区，请先刷新区县数据。"
        )
    return AllDistricts(key, {d: require(instance, key, d) for d in districts})


def _op(context):
    return getattr(context, "op_execution_context", context)


def step_partition(context, own_key: dg.AssetKey) -> str | None:
    """The district a step works for: the run's partition, when `own_key` is a district
    asset (a city asset in a district's run works for the city)."""
    op = _op(context)
    if not is_district_asset(own_key) or not op.has_partition_key:
        return None
    return op.partition_key


def versions_of(upstream: dict[dg.AssetKey, Latest | AllDistricts]) -> dict[str, str | None]:
    return {k.to_user_string(): v.version for k, v in sorted(upstream.items())}


def district_keys(table: str) -> tuple[str, ...]:
    """Columns of a staging table that are identifiers within one district only (a union
    code, a member number, a training session): a city view prefixes them with the
    district, so two districts' U001 neither join nor count as one. person_key is the same
    person in every district and stays as it is."""
    from union_pipeline.ingest.specs import load_specs

    schema, name = table.split(".")
    spec = load_specs().get(name) if schema == "staging" else None
    if spec is None:
        return ()
    local = {*spec.key, *(r.column for r in spec.references)}
    return tuple(
        c.name
        for c in spec.columns
        if c.type == "text" and (c.name in local or c.name.endswith("_id"))
    )


def output_metadata(
    version: str,
    tables: dict[str, Path] | None = None,
    publishable: bool = True,
    inputs: str | None = None,
) -> dict:
    """The bookkeeping of a new output (its files: `tables`, or the IO manager's record)."""
    return {
        VERSION: dg.MetadataValue.text(version),
        INPUTS: dg.MetadataValue.text(inputs or version),
        **(
            {TABLES: dg.MetadataValue.json({name: str(path) for name, path in tables.items()})}
            if tables is not None
            else {}
        ),
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


CHECK_HISTORY_PAGE = 100
COMPLETED = {"SUCCEEDED", "FAILED"}  # not PLANNED: a run's own evaluation, still to come


def latest_check_execution(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partition: str | None = None,
    completed: bool = False,
):
    """The newest execution record of a check (of `partition` when given; only completed
    ones when asked). Dagster's own partition and status filters are in private modules:
    its history is paged here, newest first, and filtered."""
    cursor = None
    while True:
        records = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=CHECK_HISTORY_PAGE, cursor=cursor
        )
        for record in records:
            if partition is not None and record.partition != partition:
                continue
            if completed and record.status.value not in COMPLETED:
                continue
            return record
        if len(records) < CHECK_HISTORY_PAGE:
            return None
        cursor = records[-1].id


def blocking_check_failures(
    context: dg.AssetExecutionContext, keys: Iterable[dg.AssetKey], partition: str | None = None
) -> list[str]:
    """Blocking checks of `keys` whose latest evaluation (in `partition`, for district
    assets) failed with severity ERROR."""
    graph = context.job_def.asset_layer.asset_graph
    check_keys = [
        c
        for key in keys
        if graph.has(key)
        for c in graph.get(key).check_keys
        if graph.get_check_spec(c).blocking
    ]
    if not check_keys:
        return []
    failed = []
    for check_key in check_keys:
        record = latest_check_execution(context.instance, check_key, partition)
        if record is None:
            continue
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
