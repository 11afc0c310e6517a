"""Great Expectations suites (assets/expectations/*.yaml) as asset checks.

One multi-asset check per table runs that table's suites in one step: `gx_<check>` on
`staging/<source>` or `marts/<mart>`. severity error = blocking (what depends on the table
is not built, the warehouse is not published); warn = the analyst is alerted, the refresh
goes on. Each result carries the failed expectations with their observed values and the
rows behind them, and links the Data Docs site. Great Expectations is imported when a
check runs, not when Dagster loads these definitions.

Only what changed is validated: a check whose tables (the data versions of the latest
materializations it reads, in the district) and definition are those of its latest
completed evaluation in the same district reports that evaluation again, passed or failed
with its evidence and Data Docs page, marked `union/reused` with the run that computed it
(`union/made_in_run`); a failed blocking check stays failed and blocking.
"""

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from union_pipeline.assetkit.io import by_key, reading, table_ins
from union_pipeline.assetkit.metadata import in_export_folder
from union_pipeline.assetkit.outputs import (
    DISTRICTS,
    INPUTS,
    MADE_IN_RUN,
    REUSED,
    AllDistricts,
    Latest,
    latest_check_execution,
    step_partition,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.assetkit.staging import package_digest
from union_pipeline.quality import CheckDef, Suite, load_suites
from union_pipeline.quality.validate import DocsBatch
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
        # relative to the export folder, which the analyst opens on their own machine: a
        # server path or file:// link opens nothing there
        export_dir = load_settings().export_dir
        metadata["data_docs"] = dg.MetadataValue.path(in_export_folder(outcome.index, export_dir))
        metadata["validation_result"] = dg.MetadataValue.path(
            in_export_folder(outcome.page, export_dir)
        )
        metadata["data_docs_note"] = dg.MetadataValue.text(
            "数据质量报告在导出目录（UNION_EXPORT_DIR）中：用浏览器打开上面的 data_docs 文件，"
            "validation_result 为本次检查的页面。The Data Docs site is in the export folder: "
            "open data_docs in a browser; validation_result is this check's page."
        )
    return metadata


@dataclass(frozen=True)
class SuiteChecks:
    """One suite file's checks: their specs, and what runs the selected ones."""

    suite: Suite
    key: dg.AssetKey
    reads: set[dg.AssetKey]
    by_name: dict[str, CheckDef]

    @classmethod
    def of(cls, suite: Suite) -> "SuiteChecks":
        key = dg.AssetKey(suite.asset_key_path)
        # the tables the suite's SQL names: the latest output of each is what it validates
        reads = {key} | {
            dg.AssetKey([schema, table])
            for schema, table in re.findall(
                r"\b(staging|marts)\.(\w+)", suite.path.read_text("utf-8")
            )
        }
        return cls(suite, key, reads, {check_name(c): c for c in suite.checks})

    def specs(self) -> list[dg.AssetCheckSpec]:
        suite = self.suite
        return [
            dg.AssetCheckSpec(
                name,
                asset=self.key,
                additional_deps=sorted(self.reads - {self.key}, key=lambda k: k.path),
                blocking=c.blocking,
                partitions_def=DISTRICTS,
                description=f"[{c.severity}] {c.description} (Great Expectations suite "
                f"{suite.gx_suite_name(c)}, {suite.path.name})",
                metadata={
                    "severity": c.severity,
                    "suite_file": f"assets/expectations/{suite.path.name}",
                },
            )
            for name, c in self.by_name.items()
        ]

    def run(
        self,
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        stands: list[str],
        upstream: dict[dg.AssetKey, Latest | AllDistricts],
        batch: DocsBatch,
    ):
        """The selected checks of this suite: each computed again only when what it reads
        or says changed, else its last evaluation stands (named in `stands`). `upstream`:
        the latest of every table the step reads. Yields the results that stand, and for
        those computed again what makes their result once `batch` (their Data Docs
        pages) is published."""
        suite, key = self.suite, self.key
        selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
        checks = [c for name, c in self.by_name.items() if name in selected]
        if not checks:
            return
        reads = sorted(self.reads, key=lambda k: k.path)
        district = step_partition(context, key)
        # what each check was computed from: the versions of the tables it reads (the
        # latest materializations, of the district) and the check as written
        docs = data_docs_dir(district)
        inputs = {c.name: check_inputs(suite, c, upstream, district) for c in checks}
        todo = []
        for c in checks:
            prior = reusable_result(context.instance, key, c, inputs[c.name], district, docs)
            if prior is None:
                todo.append(c)
                continue
            stands.append(f"{suite.table}:{c.name}")
            yield prior
        if not todo:
            return
        previous = None
        if any(c.data.kind == "volume" for c in todo):
            previous = previous_refresh_rows(context.instance, key, context.run.run_id, district)
        from union_pipeline.quality.validate import compute_frames, validate

        with reading(warehouse.warehouse, [upstream[k] for k in reads]) as con:
            frames = compute_frames(con, suite, todo, previous[0] if previous else None, district)
        outcomes = validate(
            suite, frames, docs_dir=docs, run_name=context.run.run_id[:8], batch=batch
        )
        for outcome in outcomes:
            yield functools.partial(self._result, context, outcome, inputs, previous)

    def _result(self, context, outcome, inputs: dict, previous) -> dg.AssetCheckResult:
        """A check's result from its outcome (its Data Docs page published)."""
        metadata = result_metadata(outcome)
        if outcome.check.data.kind == "volume" and previous:
            metadata["previous_refresh_run"] = dg.MetadataValue.text(previous[1])
        failed = len(outcome.failures)
        context.log.info(
            f"{outcome.gx_suite}: {'passed' if outcome.passed else f'{failed} failed'} "
            f"({outcome.note})"
        )
        return dg.AssetCheckResult(
            asset_key=self.key,
            check_name=check_name(outcome.check),
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome.check.blocking
            else dg.AssetCheckSeverity.WARN,
            metadata={
                **metadata,
                INPUTS: dg.MetadataValue.text(inputs[outcome.check.name]),
                REUSED: dg.MetadataValue.bool(False),
                MADE_IN_RUN: dg.MetadataValue.text(context.run.run_id),
            },
            description=outcome.skipped,
        )


@dataclass(frozen=True)
class SqlCheck:
    """A check written as a function of a DuckDB connection with views of the tables it
    `reads`, returning its result (asset and name are filled in here)."""

    spec: dg.AssetCheckSpec
    fn: Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult]
    reads: tuple[dg.AssetKey, ...]

    @classmethod
    def of(
        cls,
        fn: Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult],
        asset: dg.AssetKey,
        also_reads: tuple[dg.AssetKey, ...],
        description: str,
        blocking: bool = True,
        partitions_def=None,
    ) -> "SqlCheck":
        """The check named after `fn`, on `asset`, reading it and `also_reads`."""
        spec = dg.AssetCheckSpec(
            fn.__name__,
            asset=asset,
            additional_deps=list(also_reads),
            partitions_def=partitions_def,
            blocking=blocking,
            description=description,
        )
        return cls(spec, fn, (asset, *also_reads))

    def run(self, context, warehouse: WarehouseResource, stands: list[str], upstream: dict, batch):
        # `batch`: as a suite's run takes it; a SQL check has no Data Docs page
        if self.spec.key not in context.selected_asset_check_keys:
            return
        with reading(warehouse.warehouse, [upstream[k] for k in self.reads]) as con:
            result = self.fn(con)
        yield dg.AssetCheckResult(
            asset_key=self.spec.asset_key,
            check_name=self.spec.name,
            passed=result.passed,
            severity=result.severity,
            metadata=result.metadata,
            description=result.description,
        )


def layer_checks(
    name: str, description: str, suites: list[Suite], sql_checks: tuple = ()
) -> dg.AssetChecksDefinition:
    """Every check of one layer in one step: the Great Expectations suites of its tables
    and its SQL checks. One step, not one per table: Dagster's per-step cost is more than
    most checks' work."""
    runs = [SuiteChecks.of(s) for s in suites]
    reads = {k for r in runs for k in r.reads} | {k for c in sql_checks for k in c.reads}
    ins = table_ins(sorted(reads, key=lambda k: k.path))

    @dg.multi_asset_check(
        specs=[spec for r in runs for spec in r.specs()] + [c.spec for c in sql_checks],
        name=name,
        description=description,
        can_subset=True,
        compute_kind="great_expectations",
        ins=ins,
    )
    def _checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, **inputs):
        upstream = by_key(ins, inputs)
        stands: list[str] = []
        # every suite validated first, then their Data Docs pages in one build (DocsBatch)
        batch = DocsBatch()
        made, failed = [], None
        try:
            for r in (*runs, *sql_checks):
                made.extend(r.run(context, warehouse, stands, upstream, batch))
        except Exception as err:  # the checks before it still report, with their pages
            failed = err
        batch.publish()
        for item in made:
            yield item() if callable(item) else item
        if failed is not None:
            raise failed
        if stands:  # one line: every log line is an event the instance stores
            context.log.info(
                f"tables and checks unchanged, Great Expectations not run again, the results "
                f"stand: {', '.join(stands)}"
            )

    return _checks


def suite_checks(suite: Suite, name: str | None = None) -> dg.AssetChecksDefinition:
    """The asset checks of one table's suite file in a step of their own (`name`: of their
    op, if not the table's)."""
    return layer_checks(
        name or f"gx_{suite.table.replace('.', '__')}",
        f"Great Expectations: {suite.title}",
        [suite],
    )


def check_reads(suite: Suite, check: CheckDef) -> set[dg.AssetKey]:
    """The tables one check's frame reads: its table (or `from:`) and those its SQL names."""
    named = re.findall(r"\b(staging|marts)\.(\w+)", check.data.sql or "")
    return {dg.AssetKey(check.data.source.split("."))} | {dg.AssetKey(list(n)) for n in named}


def check_inputs(
    suite: Suite,
    check: CheckDef,
    upstream: dict,
    district: str | None,
) -> str:
    """A digest of what one check's verdict depends on: the code and the check as written
    (its reference lists resolved), the data versions of the tables it reads, for a query
    the relations it may read besides.

    Not, for a volume, the previous refresh's row count: a volume judges a table's change
    when it changed (against the refresh before); while the table stays as it is, that
    verdict stands, a warning included, rather than turning into "+0 %" overnight."""
    versions = {k.to_user_string(): upstream[k].version for k in check_reads(suite, check)}
    references = None
    if check.data.kind == "sql":
        from union_pipeline.quality.frames import reference_relations

        references = {
            name: df.to_json(orient="split", force_ascii=False)
            for name, df in reference_relations(district).items()
        }
    return digest(
        SUITE_CODE,
        suite.table,
        repr(check),
        versions,
        references,
        district,
    )


def reusable_result(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    check: CheckDef,
    inputs: str,
    partition: str | None,
    docs: Path,
) -> dg.AssetCheckResult | None:
    """The latest completed evaluation of `check` in the district, as this run's result,
    when it was computed from the same inputs and the Data Docs page it links is still in
    the site: GX would say the same again. Marked reused, with the run that computed it."""
    check_key = dg.AssetCheckKey(key, check_name(check))
    # completed only: this run's own evaluation is already recorded, as planned
    record = latest_check_execution(instance, check_key, partition, completed=True)
    evaluation = record.evaluation if record else None
    if evaluation is None:
        return None
    metadata = dict(evaluation.metadata or {})
    if _value(metadata.get(INPUTS)) != inputs:
        return None
    page = _value(metadata.get("validation_result"))
    if page is not None:
        # relative to the export folder (earlier results: a file:// link)
        page = str(page)
        path = (
            Path(page.removeprefix("file://"))
            if page.startswith("file://")
            else load_settings().export_dir / page
        )
        if not (path.exists() and path.resolve().is_relative_to(Path(docs).resolve())):
            return None
    metadata[REUSED] = dg.MetadataValue.bool(True)
    metadata[MADE_IN_RUN] = dg.MetadataValue.text(
        _value(metadata.get(MADE_IN_RUN)) or record.run_id
    )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check_key.name,
        passed=evaluation.passed,
        severity=evaluation.severity,
        metadata=metadata,
        description=evaluation.description,
    )


def _value(entry):
    return None if entry is None else getattr(entry, "value", entry)


# the staging tables' suites in one step, after the staging step; blocking ones keep the
# marts from being built on a table that fails them
staging_checks = layer_checks(
    "staging_checks",
    "明细表检查 — Great Expectations suites on the staging tables",
    [s for s in load_suites() if s.table.startswith("staging.")],
)
