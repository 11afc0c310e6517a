"""One factory turns a source spec into its raw source asset, its staging asset and its
load checks."""

import dataclasses
import graphlib
import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from union_pipeline import districts
from union_pipeline.assetkit.io import IO_MANAGER, Tables, input_name, latest_tables, part_file_key
from union_pipeline.assetkit.metadata import (
    FAILED_ASSET,
    by_rule_labels,
    district_label,
    district_metadata,
    files_table,
    rules_label,
    table_metadata,
)
from union_pipeline.assetkit.outputs import (
    DATE_SENSITIVE,
    DISTRICTS,
    RAW_STATE,
    REUSED,
    Latest,
    latest,
    metadata_value,
    output_metadata,
    reused_metadata,
    stands,
    versions_of,
)
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.ingest.files import FileError, district_files
from union_pipeline.ingest.load import HELD, StagedFiles, load_source, recheck_references
from union_pipeline.ingest.specs import SourceSpec, load_specs
from union_pipeline.settings import load_settings
from union_pipeline.warehouse import create_views, scratch
from union_pipeline.warehouse.versions import digest, files_state, state_version

OWNER = "team:data-platform"
IDENTITY_CHECK = "rows_accounted_for"
THRESHOLD_CHECK = "quarantine_under_threshold"
LOAD = "union/load"
QUARANTINE_FILE = part_file_key("quarantine")  # recorded by the IO manager
HELD_FILE = part_file_key("held")  # the rows only a reference rule held back
# the digest of all a load reads but its referenced sources: when only those changed, the
# reference rules run again over the last output (`recheck_references`)
BASE = "union/base"
RULE_DATE = "union/rule_date"
PII_KEY_WARNING = "⚠ pii_key"
# rules whose outcome moves with the refresh date (an event "not after" it)
DATED_RULES = ("after_as_of", "future_date")
EAGER = dg.AutomationCondition.eager()


def package_digest(*packages: str) -> str:
    """The code version of a step: a digest of its packages' source, so any change to the
    code that makes a result makes it stale."""
    root = Path(__file__).resolve().parent.parent
    texts = [
        p.read_text(encoding="utf-8")
        for name in packages
        for p in sorted((root / name).glob("*.py"))
    ]
    return digest(*texts)


INGEST_CODE = package_digest("ingest", "warehouse")


def _descriptions(spec: SourceSpec) -> dict[str, str]:
    out = {c.name: f"{c.header} ({c.type})" for c in spec.columns if not c.is_pii}
    out.update(
        person_key="人员键: HMAC-SHA256 of the ID number (身份证号), the join key across sources",
        gender="性别, from the ID number",
        birth_year="出生年份, from the ID number",
        has_phone="是否登记手机号 (the number itself is never stored)",
        _source_file="source file, relative to the raw folder",
        _source_line="line in the source file (header = line 1)",
    )
    return out


def raw_files(spec: SourceSpec, raw_dir: Path) -> dict[str, Path]:
    """The files the loader would read in every district of the drop (and the city's own
    targets), by name relative to the raw folder."""
    if not districts.is_city_drop(raw_dir):
        return district_files(spec, raw_dir)
    out = {}
    for code in districts.district_codes(raw_dir):
        found = district_files(spec, raw_dir / code)
        out.update({f"{code}/{name}": path for name, path in found.items()})
    if spec.name == "targets":
        out.update(district_files(spec, raw_dir))
    return out


def _raw_spec(spec: SourceSpec) -> dg.AssetSpec:
    return dg.AssetSpec(
        dg.AssetKey(["raw", spec.name]),
        group_name=spec.group,
        kinds={"csv", "xlsx"},
        owners=[OWNER],
        description=(
            f"{spec.title_zh}原始导出文件 — the {spec.title_en.lower()} as exported by "
            f"the source system into `UNION_RAW_DIR/{spec.folder}/` (*.csv, *.xlsx, "
            f"*.xls; headers in assets/sources/{spec.name}.yaml). Its data version is the "
            "files' content."
        ),
        metadata={"folder": dg.MetadataValue.text(f"{spec.folder}/")},
    )


def raw_sources() -> dg.AssetsDefinition:
    """The raw folders the sources' exports are dropped in: where lineage begins, observed
    in one step. Each folder's data version is the content of its files (size and mtime
    first, a hash only when moved)."""
    specs = load_specs()

    @dg.multi_observable_source_asset(
        name="raw_files",
        specs=[_raw_spec(spec) for spec in specs.values()],
        can_subset=True,
    )
    def _raw(context):
        settings = load_settings()
        for spec in specs.values():
            key = dg.AssetKey(["raw", spec.name])
            if key not in context.selected_asset_keys:
                continue
            records = context.instance.fetch_observations(key, limit=1).records
            known = {}
            if records and records[0].asset_observation is not None:
                entry = records[0].asset_observation.metadata.get(RAW_STATE)
                known = entry.value if entry is not None else {}
            state = files_state(raw_files(spec, settings.raw_dir), known)
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(state_version(state)),
                metadata={
                    "files": dg.MetadataValue.int(len(state)),
                    "files_received": dg.MetadataValue.md(files_table(state)),
                    RAW_STATE: dg.MetadataValue.json(state),  # bookkeeping, read back: last
                },
            )

    return _raw


def _summary(result, threshold: float) -> dict:
    counts = {
        "rows_read": result.read,
        "rows_loaded": result.loaded,
        "rows_quarantined": result.quarantined,
        "repeats_collapsed": result.collapsed,
        "rows_superseded": result.superseded,
        "rows_skipped": result.skipped,
    }
    return {
        "counts": counts,
        "by_rule": result.quarantine_by_rule,
        "skipped_by_reason": result.skipped_by_reason,
        "identity_holds": result.identity_holds,
        "share": round(result.quarantine_share, 6),
        "threshold_message": result.threshold_message(threshold)
        if result.threshold_exceeded(threshold)
        else None,
        "pii_key_warning": result.pii_key_warning,
    }


def _check_results(
    key: dg.AssetKey,
    summary: dict,
    samples_md: str,
    threshold: float,
    district: str | None = None,
):
    counts = summary["counts"]
    evidence = {
        **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
        # the rule in Chinese first, its code beside it (the load's summary keeps the codes)
        "quarantined_by_rule": dg.MetadataValue.json(by_rule_labels(summary["by_rule"])),
        "skipped_by_reason": dg.MetadataValue.json(summary.get("skipped_by_reason", {})),
        "sample_quarantined_rows (masked)": dg.MetadataValue.md(samples_md),
    }
    identity = dg.AssetCheckResult(
        asset_key=key,
        check_name=IDENTITY_CHECK,
        passed=bool(summary["identity_holds"]),
        metadata={k: dg.MetadataValue.int(v) for k, v in counts.items()},
    )
    passed = summary["share"] <= threshold
    under = dg.AssetCheckResult(
        asset_key=key,
        check_name=THRESHOLD_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if passed
        else " ".join(filter(None, [district_label(district), summary.get("threshold_message")])),
        metadata={
            "quarantined_share": dg.MetadataValue.float(summary["share"]),
            "threshold": dg.MetadataValue.float(threshold),
            **evidence,
        },
    )
    return evidence, identity, under


def _can_reuse(previous: Latest | None, version: str, rule_date: str) -> bool:
    # a row was held back for a date after the refresh date: a later date may admit it
    return stands(
        previous,
        version,
        also=lambda found: not found.get(DATE_SENSITIVE, True) or found.get(RULE_DATE) == rule_date,
    )


def _can_recheck(previous: Latest | None, base: str, rule_date: str) -> bool:
    """Only referenced sources changed since `previous`, whose files are all there."""
    return (
        previous is not None
        and previous.get(BASE) == base
        and previous.get(HELD_FILE) is not None
        and _can_reuse(previous, previous.inputs, rule_date)
    )


def _check_specs(key: dg.AssetKey, partitions_def) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            IDENTITY_CHECK,
            asset=key,
            partitions_def=partitions_def,
            description="行数守恒 — every row read is accounted for: read = loaded + "
            "quarantined + collapsed + superseded + skipped (blank and totals rows)",
        ),
        dg.AssetCheckSpec(
            THRESHOLD_CHECK,
            asset=key,
            blocking=True,
            partitions_def=partitions_def,
            description="隔离比例不超过阈值 — at most UNION_QUARANTINE_THRESHOLD (5%) of "
            "rows quarantined",
        ),
    ]


def _references(spec: SourceSpec) -> list[dg.AssetKey]:
    return [dg.AssetKey(["staging", s]) for s in sorted({r.source for r in spec.references})]


def staging_order(specs: dict[str, SourceSpec]) -> list[str]:
    """The sources in an order where every source comes after those its rows reference
    (each round of ready sources by name, so the order is always the same)."""
    sorter = graphlib.TopologicalSorter(
        {
            name: {r.source for r in spec.references if r.source in specs}
            for name, spec in specs.items()
        }
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise ValueError(f"sources reference each other in a cycle: {err.args[1]}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order


def staging_description(spec: SourceSpec) -> str:
    return (
        f"{spec.title_zh} — {spec.title_en}, validated, typed and PII-free.\n\n"
        f"Rows of `{spec.folder}/` (*.csv, *.xlsx, *.xls) that pass the data contract's "
        "rules, per district; the others are in `staging/quarantine` with the broken "
        f"rule. {spec.title_zh}：经校验、去标识化后的明细，违规行见隔离表。"
    )


def staging_code_version(spec: SourceSpec) -> str:
    return digest(INGEST_CODE, repr(spec))


def staging_multi_asset(extra_outs: list[dg.AssetOut], extra_step) -> dg.AssetsDefinition:
    """Every district source's staging asset in one step (one partition per district):
    the sources in reference order, each only when selected, then `extra_step` (the
    quarantine) for the `extra_outs`. One step, not one per source: Dagster's per-step
    cost is most of a small source's work."""
    specs = load_specs()
    order = staging_order(specs)
    keys = {name: dg.AssetKey(["staging", name]) for name in order}
    outs = {
        input_name(keys[name]): dg.AssetOut(
            key=keys[name],
            group_name=specs[name].group,
            kinds={"duckdb", "parquet", "pandera"},
            owners=[OWNER],
            code_version=staging_code_version(specs[name]),
            automation_condition=EAGER,
            description=staging_description(specs[name]),
            # a source whose referenced source failed its blocking rule in this step is
            # not built on it: it keeps its last result
            is_required=False,
            io_manager_key=IO_MANAGER,
        )
        for name in order
    }
    extra_outs = {input_name(out.key): out for out in extra_outs}

    @dg.multi_asset(
        name="staging",
        outs={**outs, **extra_outs},
        deps=[dg.AssetKey(["raw", name]) for name in order],
        internal_asset_deps={
            **{
                input_name(keys[name]): {dg.AssetKey(["raw", name]), *_references(specs[name])}
                for name in order
            },
            **{name: set(keys.values()) for name in extra_outs},
        },
        check_specs=[c for name in order for c in _check_specs(keys[name], DISTRICTS)],
        partitions_def=DISTRICTS,
        can_subset=True,
    )
    def _staging(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        failed: set[dg.AssetKey] = set()
        stands: list[str] = []
        checks = context.selected_asset_check_keys
        for name in order:
            key = keys[name]
            if key not in context.selected_asset_keys:
                continue
            held = [k for k in _references(specs[name]) if k in failed]
            if held:
                context.log.warning(
                    f"{name}: not staged in this run: {', '.join(k.path[-1] for k in held)} "
                    "failed its blocking rule; its last result stands until they are fixed"
                )
                failed.add(key)
                continue
            for result in stage(context, warehouse, specs[name], key, partitioned=True):
                if isinstance(result, dg.MaterializeResult) and metadata_value(
                    result.metadata or {}, REUSED
                ):
                    stands.append(name)
                if isinstance(result, dg.AssetCheckResult):
                    check_key = dg.AssetCheckKey(key, result.check_name)
                    if result.check_name == THRESHOLD_CHECK and not result.passed:
                        failed.add(key)
                    if check_key not in checks:
                        continue
                yield result
        if stands:  # one line: every log line is an event the instance stores
            context.log.info(
                f"files and inputs unchanged, results stand (no file read): {', '.join(stands)}"
            )
        yield from extra_step(context, warehouse)

    return _staging


def city_targets_asset() -> dg.AssetsDefinition:
    """The city's own yearly targets: the `targets/` folder at the root of a city drop (of a
    single-district drop, the district's)."""
    spec = dataclasses.replace(load_specs()["targets"], required=False)
    key = dg.AssetKey(["staging", "city_targets"])

    @dg.asset(
        key=key,
        group_name="city",
        kinds={"duckdb", "parquet", "pandera"},
        owners=[OWNER],
        code_version=staging_code_version(spec),
        automation_condition=EAGER,
        deps=[dg.AssetKey(["raw", "targets"])],
        description=(
            "全市年度目标 — The city's yearly targets, validated: the `targets/` folder at the "
            "root of a city drop, beside the district folders (in a single-district drop, the "
            "district's own). The city roll-up measures the city against them. "
            "全市年度目标（城市数据包根目录下的 targets/）。"
        ),
        check_specs=_check_specs(key, None),
    )
    def _city_targets(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from stage(context, warehouse, spec, key, partitioned=False)

    return _city_targets


def stage(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    spec: SourceSpec,
    key: dg.AssetKey,
    partitioned: bool,
):
    """Stage one source: its materialization and its two checks' results. Its result stands
    (no file read) when its files, references, code and settings are as they were."""
    source = spec.name
    upstream = _references(spec)
    code_version = staging_code_version(spec)
    settings = warehouse.settings
    store = warehouse.warehouse
    district = context.partition_key if partitioned else None
    if district is None:
        raw_dir = settings.raw_dir
        step_spec = spec
    else:
        raw_dir = districts.district_raw_dir(settings.raw_dir, district)
        step_spec = spec.for_district(district)  # its streets
    # a referenced source made earlier in this step, or its latest
    references = {k: latest_tables(context.instance, k, district) for k in upstream}
    previous = latest(context.instance, key, district)
    state = files_state(
        district_files(spec, raw_dir), previous.get(RAW_STATE) if previous else None
    )
    rule_date = settings.rule_as_of.isoformat()
    base = digest(
        code_version,
        repr(step_spec),
        state_version(state),
        hashlib.sha256(settings.pii_key).hexdigest(),  # person_key depends on the key
        settings.as_of,
    )
    version = digest(base, versions_of(references))
    threshold = settings.quarantine_threshold
    if _can_reuse(previous, version, rule_date):
        context.log.debug(  # the step says it once for every source whose result stands
            f"{source}: files and inputs unchanged, result of run "
            f"{previous.made_in_run[:8]} stands (no file read)"
        )
        summary = json.loads(previous.get(LOAD))
        _, identity, under = _check_results(
            key,
            summary,
            previous.get("sample_quarantined_rows (masked)", ""),
            threshold,
            district,
        )
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(previous.version),  # its rows' (see the recheck)
            metadata=reused_metadata(previous, publishable=under.passed),
        )
        yield identity
        yield under
        return

    started = time.perf_counter()
    with scratch(store.spill_dir) as con:
        for found in references.values():
            create_views(con, found.tables)
        result = None
        if _can_recheck(previous, base, rule_date):
            result = recheck_references(
                con,
                step_spec,
                raw_dir,
                StagedFiles(
                    Path(previous.tables[f"staging.{source}"]),
                    Path(previous.get(HELD_FILE)),
                    Path(previous.get(QUARANTINE_FILE)),
                ),
                {**json.loads(previous.get(LOAD)), "files": previous.get("files", [])},
                settings.pii_key,
            )
            if result is None:
                context.log.info(
                    f"{source}: a row that passed its references before fails them now; "
                    "its quarantine row needs the masked values of its file: staged from "
                    "the files again"
                )
        rechecked = result is not None
        try:
            if result is None:
                result = load_source(con, step_spec, raw_dir, settings.rule_as_of, settings.pii_key)
        except FileError as err:
            # a refused file is expected: the step fails with the message (file, column,
            # what to do) and no traceback, and is not retried (it would fail the same)
            raise dg.Failure(
                description=str(err),
                metadata={
                    "source": source,
                    "folder": f"{spec.folder}/",
                    FAILED_ASSET: key.to_user_string(),
                },
                allow_retries=False,
            ) from None
        metadata = table_metadata(con, f"staging.{source}", _descriptions(spec))
        samples = con.execute(
            "SELECT file, line, rules, values_masked FROM staging.quarantine "
            "ORDER BY file, line LIMIT 5"
        ).df()
        dated = " OR ".join(f"rules LIKE '%{r}%'" for r in DATED_RULES)
        date_sensitive = con.execute(
            f"SELECT count(*) > 0 FROM staging.quarantine WHERE {dated}"
        ).fetchall()[0][0]
        summary = _summary(result, threshold)
        how = "references checked again over its last rows, files not read" if rechecked else ""
        context.log.info(
            f"{source}: staged in {time.perf_counter() - started:.2f} s"
            f"{f' ({how})' if how else ''}, {summary['counts']}"
        )
        if result.pii_key_warning:
            context.log.warning(result.pii_key_warning)
        for warning in result.file_warnings:
            context.log.warning(warning)
        samples["rules"] = [rules_label(r) for r in samples["rules"]]
        samples = samples.rename(columns={"rules": "规则 rules"})
        samples_md = samples.to_markdown(index=False) if len(samples) else "(none)"
        evidence, identity, under = _check_results(key, summary, samples_md, threshold, district)
        # no row moved: the same rows as the last output, so the same data version, and
        # what was built on them stands
        data_version = previous.version if rechecked and "data" in result.kept else version
        # the IO manager writes the rows and the quarantine while the scratch DuckDB is open
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(data_version),
            metadata={
                **district_metadata(district),
                **metadata,
                **evidence,
                "staged_from": dg.MetadataValue.text(
                    "its last output: only referenced sources changed (" + how + ")"
                    if rechecked
                    else "its files"
                ),
                "files": dg.MetadataValue.json(result.files),
                **(
                    {"warnings": dg.MetadataValue.json(result.file_warnings)}
                    if result.file_warnings
                    else {}
                ),
                **output_metadata(data_version, publishable=under.passed, inputs=version),
                RAW_STATE: dg.MetadataValue.json(state),
                BASE: dg.MetadataValue.text(base),
                LOAD: dg.MetadataValue.text(json.dumps(summary, ensure_ascii=False)),
                RULE_DATE: dg.MetadataValue.text(rule_date),
                DATE_SENSITIVE: dg.MetadataValue.bool(bool(date_sensitive)),
                **(
                    {PII_KEY_WARNING: dg.MetadataValue.text(result.pii_key_warning)}
                    if result.pii_key_warning
                    else {}
                ),
            },
            value=Tables(
                con,
                {
                    "data": f"SELECT * FROM staging.{source}",
                    "quarantine": "SELECT * FROM staging.quarantine",
                    # kept aside for `recheck_references`
                    **({"held": f"SELECT * FROM {HELD}"} if spec.references else {}),
                    **result.kept,  # unchanged: the last output's files
                },
                version,
            ),
        )
    yield identity
    yield under
