"""One factory turns a source spec into its staging asset and its load checks."""

import dagster as dg

from union_pipeline.assetkit.metadata import table_metadata
from union_pipeline.assetkit.resources import WRITER_POOL, WarehouseResource
from union_pipeline.ingest.load import load_source
from union_pipeline.ingest.specs import load_specs

OWNER = "team:data-platform"
IDENTITY_CHECK = "rows_accounted_for"
THRESHOLD_CHECK = "quarantine_under_threshold"


def _descriptions(spec) -> dict[str, str]:
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


def raw_source(source: str) -> dg.AssetSpec:
    """The raw folder a source's exports are dropped in: where lineage begins."""
    spec = load_specs()[source]
    return dg.AssetSpec(
        key=["raw", source],
        group_name=spec.group,
        kinds={"csv", "xlsx"},
        owners=[OWNER],
        description=(
            f"{spec.title_zh}原始导出文件 — the {spec.title_en.lower()} as exported by the source "
            f"system into `UNION_RAW_DIR/{spec.folder}/` (*.csv, *.xlsx; headers in "
            f"assets/sources/{source}.yaml)."
        ),
        metadata={"folder": dg.MetadataValue.text(f"{spec.folder}/")},
    )


def staging_asset(source: str) -> dg.AssetsDefinition:
    spec = load_specs()[source]
    key = dg.AssetKey(["staging", source])
    upstream = sorted({r.source for r in spec.references})

    @dg.asset(
        key=key,
        group_name=spec.group,
        kinds={"duckdb", "pandera"},
        owners=[OWNER],
        pool=WRITER_POOL,
        deps=[dg.AssetKey(["raw", source]), *(dg.AssetKey(["staging", s]) for s in upstream)],
        description=(
            f"{spec.title_zh} — {spec.title_en}, validated, typed and PII-free.\n\n"
            f"Rows of `{spec.folder}/` (*.csv, *.xlsx) that pass the data contract's rules; "
            "the others are in `staging.quarantine` with the broken rule. "
            f"{spec.title_zh}：经校验、去标识化后的明细，违规行见隔离表。"
        ),
        check_specs=[
            dg.AssetCheckSpec(
                IDENTITY_CHECK,
                asset=key,
                description="read = loaded + quarantined + collapsed + superseded",
            ),
            dg.AssetCheckSpec(
                THRESHOLD_CHECK,
                asset=key,
                blocking=True,
                description="at most UNION_QUARANTINE_THRESHOLD (5%) of rows quarantined",
            ),
        ],
    )
    def _staging(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        settings = warehouse.settings
        with warehouse.building(context) as con:
            result = load_source(
                con, spec, settings.raw_dir, settings.rule_as_of, settings.pii_key
            )
            metadata = table_metadata(con, f"staging.{source}", _descriptions(spec))
            samples = con.execute(
                "SELECT file, line, rules, values_masked FROM staging.quarantine "
                "WHERE source = ? ORDER BY file, line LIMIT 5",
                [source],
            ).df()
        counts = {
            "rows_read": result.read,
            "rows_loaded": result.loaded,
            "rows_quarantined": result.quarantined,
            "repeats_collapsed": result.collapsed,
            "rows_superseded": result.superseded,
        }
        context.log.info(f"{source}: {counts}")
        evidence = {
            **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            "quarantined_by_rule": dg.MetadataValue.json(result.quarantine_by_rule),
            "sample_quarantined_rows (masked)": dg.MetadataValue.md(
                samples.to_markdown(index=False) if len(samples) else "(none)"
            ),
        }
        yield dg.MaterializeResult(
            metadata={
                **metadata,
                **evidence,
                "files": dg.MetadataValue.json(result.files),
            }
        )
        yield dg.AssetCheckResult(
            check_name=IDENTITY_CHECK,
            passed=result.identity_holds,
            metadata={k: dg.MetadataValue.int(v) for k, v in counts.items()},
        )
        yield dg.AssetCheckResult(
            check_name=THRESHOLD_CHECK,
            passed=result.quarantine_share <= settings.quarantine_threshold,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "quarantined_share": dg.MetadataValue.float(round(result.quarantine_share, 5)),
                "threshold": dg.MetadataValue.float(settings.quarantine_threshold),
                **evidence,
            },
        )

    return _staging
