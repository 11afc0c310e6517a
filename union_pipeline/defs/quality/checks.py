"""Great Expectations suites (assets/expectations/*.yaml) as asset checks.

One multi-asset check per table runs that table's suites in one step: `gx_<check>` on
`staging/<source>` or `marts/<mart>`. severity error = blocking (what depends on the table
is not built, the warehouse is not published); warn = the analyst is alerted, the refresh
goes on. Each result carries the failed expectations with their observed values and the
rows behind them, and links the Data Docs site. Great Expectations is imported when a
check runs, not when Dagster loads these definitions.
"""

import re

import dagster as dg

from union_pipeline.assetkit.outputs import (
    DISTRICTS,
    INPUTS,
    REUSED,
    reading_latest,
    step_partition,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import package_digest
from union_pipeline.quality import Suite, load_suites
from union_pipeline.settings import load_settings
from union_pipeline.warehouse.versions import digest

ROW_COUNT = "dagster/row_count"
SUITE_CODE = package_digest("quality")
# a district refresh's last step: the swap of the district's file
PUBLISHED = dg.AssetKey(["warehouse", "district_duckdb"])
HISTORY = 25  # materializations looked at to find the previous successful refresh
EVIDENCE_TABLES = 5  # failed expectations whose rows are tabulated in the metadata


def check_name(check) -> str:
    return f"gx_{check.name}"


def data_docs_dir(district: str | None = None):
    """The Data Docs site of a district's checks (beside its reports)."""
    from union_pipeline.districts import default_district, district_export_dir

    settings = load_settings()
    return (
        district_export_dir(settings.export_dir, settings.raw_dir, district or default_district())
        / "data_docs"
    )


def _history(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    records_filter = dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition] if partition else None
    )
    return instance.fetch_materializations(records_filter, limit=HISTORY).records


def previous_refresh_rows(
    instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str, partition: str | None = None
) -> tuple[int, str] | None:
    """Row count of `key` at the previous successful refresh, and that refresh's run id.

    A refresh counts when its run published the warehouse (materialized PUBLISHED): a run
    that stopped before never replaced the live file, and one that failed after it (in the
    reports) did. When this run materialized the asset, the previous refresh is the latest
    other one; when the check runs alone (reading the live warehouse), the latest published
    materialization is the state being checked, so the one before it.
    """
    records = _history(instance, key, partition)
    ours = any(r.run_id == run_id for r in records)
    published = {r.run_id for r in _history(instance, PUBLISHED, partition)}
    refreshes = [
        r
        for r in records
        if r.run_id != run_id
        and r.run_id in published
        and ROW_COUNT in r.asset_materialization.metadata
    ]
    if not ours:
        refreshes = refreshes[1:]
    if not refreshes:
        return None
    previous = refreshes[0]
    return int(previous.asset_materialization.metadata[ROW_COUNT].value), previous.run_id


def _md_table(df) -> str:
    return df.to_markdown(index=False) if df is not None and len(df) else "(no rows)"


def result_metadata(outcome) -> dict:
    """The evidence of one check: what GX saw, each expectation's observed value, links."""
    lines = ["| | expectation | observed |", "|---|---|---|"]
    for e in outcome.expectations:
        observed = f"{e.observed} — {e.error}" if e.error else e.observed
        lines.append(f"| {'✔' if e.success else '✘'} | `{e.label}` | {observed} |")
    metadata = {
        "expectation_suite": dg.MetadataValue.text(outcome.gx_suite),
        "gx_frame": dg.MetadataValue.text(outcome.note),
        "expectations": dg.MetadataValue.md(
            "\n".join(lines) if outcome.expectations else f"(skipped: {outcome.skipped})"
        ),
        "failed_expectations": dg.MetadataValue.int(len(outcome.failures)),
        "seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
    }
    if outcome.failures:
        parts = []
        for i, e in enumerate(outcome.failures):
            parts.append(
                f"**{e.label}**\n\nobserved: {e.observed}"
                + (f"\n\nGX error: {e.error}" if e.error else "")
            )
            if e.evidence is not None and i < EVIDENCE_TABLES:
                parts.append(_md_table(e.evidence))
        metadata["evidence"] = dg.MetadataValue.md("\n\n".join(parts))
        metadata["observed"] = dg.MetadataValue.text(outcome.failures[0].observed)
        metadata["expectation"] = dg.MetadataValue.text(outcome.failures[0].label)
    if outcome.page is not None:
        metadata["data_docs"] = dg.MetadataValue.path(str(outcome.index))
        metadata["validation_result"] = dg.MetadataValue.url(outcome.page.resolve().as_uri())
    return metadata


def suite_checks(suite: Suite, name: str | None = None) -> dg.AssetChecksDefinition:
    """The asset checks of one table's suite file (`name`: of their op, if not the table's)."""
    key = dg.AssetKey(suite.asset_key_path)
    # the tables the suite's SQL names: the latest output of each is what it validates
    reads = {key} | {
        dg.AssetKey([schema, table])
        for schema, table in re.findall(r"\b(staging|marts)\.(\w+)", suite.path.read_text("utf-8"))
    }
    by_name = {check_name(c): c for c in suite.checks}
    specs = [
        dg.AssetCheckSpec(
            check_key,
            asset=key,
            blocking=c.blocking,
            partitions_def=DISTRICTS,
            description=f"[{c.severity}] {c.description} (Great Expectations suite "
            f"{suite.gx_suite_name(c)}, {suite.path.name})",
            metadata={
                "severity": c.severity,
                "suite_file": f"assets/expectations/{suite.path.name}",
            },
        )
        for check_key, c in by_name.items()
    ]

    @dg.multi_asset_check(
        specs=specs,
        name=name or f"gx_{suite.table.replace('.', '__')}",
        description=f"Great Expectations: {suite.title}",
        can_subset=True,
        compute_kind="great_expectations",
    )
    def _gx_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        from union_pipeline.quality.validate import compute_frames, validate

        selected = {k.name for k in context.selected_asset_check_keys}
        checks = [c for check_key, c in by_name.items() if check_key in selected]
        district = step_partition(context, key)
        previous = None
        if any(c.data.kind == "volume" for c in checks):
            previous = previous_refresh_rows(context.instance, key, context.run.run_id, district)
        with reading_latest(
            context, key, sorted(reads, key=lambda k: k.path), warehouse.warehouse
        ) as (con, upstream):
            inputs = digest(
                SUITE_CODE,
                suite.path.read_text("utf-8"),
                versions_of(upstream),
                previous[0] if previous else None,
            )
            prior = _prior_results(context.instance, key, selected, inputs, district)
            if len(prior) == len(checks):
                # the same tables, suite and baseline: GX would say the same again
                for result in prior:
                    if previous and "previous_refresh_run" in result.metadata:
                        result.metadata["previous_refresh_run"] = dg.MetadataValue.text(previous[1])
                    yield result
                return
            frames = compute_frames(con, suite, checks, previous[0] if previous else None, district)
        outcomes = validate(
            suite, frames, docs_dir=data_docs_dir(district), run_name=context.run.run_id[:8]
        )
        for outcome in outcomes:
            metadata = result_metadata(outcome)
            if outcome.check.data.kind == "volume" and previous:
                metadata["previous_refresh_run"] = dg.MetadataValue.text(previous[1])
            failed = len(outcome.failures)
            context.log.info(
                f"{outcome.gx_suite}: {'passed' if outcome.passed else f'{failed} failed'} "
                f"({outcome.note})"
            )
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=check_name(outcome.check),
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR
                if outcome.check.blocking
                else dg.AssetCheckSeverity.WARN,
                metadata={**metadata, INPUTS: dg.MetadataValue.text(inputs)},
                description=outcome.skipped,
            )

    return _gx_checks


def _prior_results(
    instance, key: dg.AssetKey, names: set[str], inputs: str, partition: str | None
) -> list:
    """The latest result of each named check (in the district), when it was computed from
    the same inputs."""
    from dagster._core.event_api import PartitionKeyFilter

    check_keys = [dg.AssetCheckKey(key, name) for name in sorted(names)]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=partition) if partition else None
    )
    results = []
    for check_key in check_keys:
        record = records.get(check_key)
        event = record.event.dagster_event if record and record.event else None
        evaluation = event.event_specific_data if event else None
        metadata = dict(getattr(evaluation, "metadata", None) or {})
        found = metadata.get(INPUTS)
        if found is None or getattr(found, "value", None) != inputs:
            return []
        metadata[REUSED] = dg.MetadataValue.bool(True)
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name=check_key.name,
                passed=evaluation.passed,
                severity=evaluation.severity,
                metadata=metadata,
                description=evaluation.description,
            )
        )
    return results


gx_checks = [suite_checks(s) for s in load_suites()]
