"""Descriptions for people reading the warehouse: the KPI catalogue as a table and a
comment per staging column (the Dagster layer writes them with `COMMENT ON`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from union_pipeline.ingest.specs import SourceSpec, load_specs
from union_pipeline.kpis.catalogue import Kpi, load_catalogue

CATALOGUE_COLUMNS = [
    "code", "name_zh", "name_en", "unit", "kind", "definition", "definition_zh",
    "definition_en", "comparator", "reported", "numerator", "denominator", "street",
]  # fmt: skip

# what a staging table holds beyond its spec's columns (docs/staging-schema.md)
DERIVED_COLUMNS = {
    "person_key": "人员键 — person key: HMAC-SHA256 of the ID number, the join key across sources",
    "gender": "性别 — gender, from the ID number",
    "birth_year": "出生年份 — birth year, from the ID number",
    "has_phone": "是否登记手机号 — a phone was given (the number is never stored)",
    "_source_file": "来源文件 — source file, relative to the raw folder",
    "_source_line": "来源行号 — line in the source file (header = line 1)",
}
QUARANTINE_COLUMNS = {
    "source": "数据来源 — source",
    "file": "文件 — file, relative to the raw folder",
    "line": "行号 — line in the file (header = line 1)",
    "rule": "首个问题规则 — first rule broken (assets/quarantine_rules.yaml)",
    "column": "问题列 — column of that rule",
    "rules": "全部问题规则 — every rule broken, with its column",
    "values_masked": "行内容（已脱敏）— the row's values as JSON, PII masked",
}
TYPE_EN = {
    "text": "text", "int": "integer", "decimal": "amount", "date": "date", "bool": "yes/no",
}  # fmt: skip


def catalogue_frame(catalogue: Sequence[Kpi] | None = None) -> pd.DataFrame:
    """One row per KPI of the catalogue (helper parts too, `reported` false): the content of
    a `marts.kpi_catalogue` table. `definition` is "中文 — English"."""
    catalogue = list(catalogue) if catalogue is not None else load_catalogue()
    rows = [
        {
            "code": k.code,
            "name_zh": k.name_zh,
            "name_en": k.name_en,
            "unit": k.unit,
            "kind": k.kind,
            "definition": f"{k.definition_zh} — {k.definition_en}",
            "definition_zh": k.definition_zh,
            "definition_en": k.definition_en,
            "comparator": k.target_comparator,
            "reported": bool(k.reported),
            "numerator": k.numerator,
            "denominator": k.denominator,
            "street": bool(k.has_street),
        }
        for k in catalogue
    ]
    return pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)


def _english(name: str, kind: str) -> str:
    return f"{name.replace('_', ' ')} ({TYPE_EN.get(kind, kind)})"


def staging_columns(spec: SourceSpec) -> dict[str, str]:
    """Column -> "中文 — English" for staging.<source>: the spec's columns without the PII
    ones (dropped at load), and person_key etc. where the source has a person."""
    out = {c.name: f"{c.header} — {_english(c.name, c.type)}" for c in spec.columns if not c.is_pii}
    if spec.has_person:
        out.update({k: DERIVED_COLUMNS[k] for k in ("person_key", "gender", "birth_year")})
    if any(c.type == "phone" for c in spec.columns):
        out["has_phone"] = DERIVED_COLUMNS["has_phone"]
    out["_source_file"] = DERIVED_COLUMNS["_source_file"]
    out["_source_line"] = DERIVED_COLUMNS["_source_line"]
    return out


def column_comments(specs: dict[str, SourceSpec] | None = None) -> dict[tuple[str, str], str]:
    """{("staging.<source>", column): "中文 — English"} for every staging table and
    staging.quarantine, from assets/sources/*.yaml (the header is the Chinese name)."""
    specs = specs if specs is not None else load_specs()
    comments: dict[tuple[str, str], str] = {}
    for name, spec in sorted(specs.items()):
        for column, text in staging_columns(spec).items():
            comments[(f"staging.{name}", column)] = text
    for column, text in QUARANTINE_COLUMNS.items():
        comments[("staging.quarantine", column)] = text
    return comments


def table_comments(specs: dict[str, SourceSpec] | None = None) -> dict[str, str]:
    """{"staging.<source>": "中文名 — English title"} and the catalogue table."""
    specs = specs if specs is not None else load_specs()
    out = {f"staging.{n}": f"{s.title_zh} — {s.title_en}" for n, s in sorted(specs.items())}
    out["staging.quarantine"] = "隔离的问题数据行（已脱敏）— quarantined rows, PII masked"
    out["marts.kpi_catalogue"] = "工作指标目录 — the KPI catalogue (assets/kpis.yaml)"
    return out


def comment_sql(comments: dict[tuple[str, str], str]) -> list[str]:
    """`COMMENT ON COLUMN` statements (DuckDB) for `comments`, quotes escaped."""

    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    statements = []
    for (table, column), text in comments.items():
        schema, name = table.split(".", 1)
        statements.append(f'COMMENT ON COLUMN {schema}.{name}."{column}" IS {quote(text)}')
    return statements
