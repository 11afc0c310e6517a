"""Suites: `assets/expectations/*.yaml` loaded into typed objects, validated once.

One file per warehouse table. Each check of a file is one Dagster asset check and one GX
expectation suite, run over one small frame that DuckDB computes from the table (`data:`).
The format is described in `assets/expectations/README.md`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from union_pipeline.settings import ASSETS_DIR
from union_pipeline.yamlfile import load_yaml

EXPECTATIONS_DIR = ASSETS_DIR / "expectations"
SEVERITIES = ("error", "warn")
# how DuckDB reduces the table before GX sees it (see frames.py)
FRAME_KINDS = ("duplicates_of", "distinct_of", "extremes_of", "sample_of", "volume", "sql")
DEFAULT_SAMPLE_ROWS = 100_000
DEFAULT_DUPLICATE_ROWS = 1_000
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TABLE = re.compile(r"^(staging|marts)\.[a-z][a-z0-9_]*$")


class QualityError(ValueError):
    """A suite in assets/expectations is malformed, or a frame cannot be computed."""


@dataclass(frozen=True)
class FrameSpec:
    """What DuckDB hands to GX: a reduction of `source` that decides the expectations."""

    kind: str
    source: str
    columns: tuple[str, ...] = ()
    sql: str | None = None
    rows: int | None = None

    def describe(self) -> str:
        cols = ", ".join(self.columns) or "every column"
        return {
            "duplicates_of": f"rows of {self.source} whose ({cols}) occurs more than once "
            f"(at most {self.rows})",
            "distinct_of": f"the distinct values of ({cols}) in {self.source}, with row counts",
            "extremes_of": f"the minimum and the maximum of {cols} in {self.source}",
            "sample_of": f"a reproducible sample of {self.rows} rows of {self.source} ({cols}; "
            "the whole table when smaller)",
            "volume": f"the row count of {self.source} now and at the previous successful refresh",
            "sql": "the query below",
        }[self.kind]


@dataclass(frozen=True)
class ExpectationDef:
    """One GX expectation: its snake_case type and keyword arguments, as written."""

    type: str
    kwargs: dict
    notes: str | None = None
    # (column, value): the expectation applies to the frame's rows where column == value
    where: tuple[str, str] | None = None

    def label(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        where = f" where {self.where[0]} = {self.where[1]}" if self.where else ""
        return f"{self.type}({args}){where}"


@dataclass(frozen=True)
class CheckDef:
    name: str
    severity: str
    description: str
    data: FrameSpec
    expectations: tuple[ExpectationDef, ...]

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class Suite:
    """The expectations on one warehouse table (`staging.members`, `marts.kpi_yearly`)."""

    table: str
    title: str
    path: Path
    checks: tuple[CheckDef, ...] = field(default_factory=tuple)

    @property
    def asset_key_path(self) -> list[str]:
        return self.table.split(".")

    def gx_suite_name(self, check: CheckDef) -> str:
        return f"{self.table}.{check.name}"


def _short(value) -> str:
    if isinstance(value, list | tuple) and len(value) > 6:
        return "[" + ", ".join(map(str, value[:6])) + ", …]"
    return str(value)


def reference_values(name: str) -> list:
    """Lists an expectation can name with `{ref: ...}` instead of spelling them out."""
    from union_pipeline.ingest.specs import reference_list
    from union_pipeline.kpis import load_catalogue

    if name == "street_kpis":
        return [k.code for k in load_catalogue() if k.reported and k.has_street]
    if name == "reported_kpis":
        return [k.code for k in load_catalogue() if k.reported]
    if name == "streets":
        # a suite serves every district: any district's street; that a union's street is
        # its own district's is the staging contract's rule (and `streets_covered`)
        from union_pipeline.districts import load_districts

        return sorted({s for d in load_districts().values() for s in d.street_names})
    try:
        return list(reference_list(name))
    except ValueError as err:
        raise QualityError(
            f"unknown reference list {name!r}: streets, kpi_codes, street_kpis, reported_kpis"
        ) from err


def _resolve(value):
    if isinstance(value, dict) and set(value) == {"ref"}:
        return reference_values(value["ref"])
    return value


def _frame(where: str, table: str, raw) -> FrameSpec:
    if not isinstance(raw, dict):
        raise QualityError(f"{where}: 'data' must be a mapping with one of {FRAME_KINDS}")
    kinds = [k for k in FRAME_KINDS if k in raw]
    extra = set(raw) - set(FRAME_KINDS) - {"from", "rows"}
    if len(kinds) != 1 or extra:
        raise QualityError(
            f"{where}: 'data' needs exactly one of {FRAME_KINDS} (and optionally 'from', "
            f"'rows'); got {sorted(raw)}"
        )
    kind = kinds[0]
    value = raw[kind]
    source = raw.get("from", table)
    if not TABLE.match(source):
        raise QualityError(f"{where}: 'from: {source}' is not a staging. or marts. table")
    if kind == "sql":
        if not isinstance(value, str) or not value.strip():
            raise QualityError(f"{where}: 'sql' must be a query")
        return FrameSpec(kind, source, sql=value.strip())
    if kind == "volume":
        return FrameSpec(kind, source)
    if kind == "sample_of":
        columns = () if value in ("*", None) else value
        rows = int(raw.get("rows", DEFAULT_SAMPLE_ROWS))
    else:
        columns = value
        rows = int(raw.get("rows", DEFAULT_DUPLICATE_ROWS)) if kind == "duplicates_of" else None
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, list | tuple) or not all(
        isinstance(c, str) and NAME.match(c) for c in columns
    ):
        raise QualityError(f"{where}: '{kind}' must list column names, got {value!r}")
    if kind != "sample_of" and not columns:
        raise QualityError(f"{where}: '{kind}' needs at least one column")
    return FrameSpec(kind, source, columns=tuple(columns), rows=rows)


def _bounds_by_kpi(where: str, raw) -> list[ExpectationDef]:
    """`bounds_by_kpi`: one expect_column_values_to_be_between per reported KPI."""
    if not isinstance(raw, dict) or "column" not in raw or "default" not in raw:
        raise QualityError(f"{where}: bounds_by_kpi needs 'column' and 'default: [min, max]'")
    codes = reference_values("reported_kpis")
    unknown = set(raw) - {"column", "default", "notes"} - set(codes)
    if unknown:
        raise QualityError(f"{where}: bounds_by_kpi: unknown KPI codes {sorted(unknown)}")
    out = []
    for code in codes:
        bounds = raw.get(code, raw["default"])
        if bounds is None:  # `code: null` leaves a KPI unbounded
            continue
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise QualityError(f"{where}: bounds_by_kpi: {code}: expected [min, max]")
        out.append(
            ExpectationDef(
                type="expect_column_values_to_be_between",
                kwargs={"column": raw["column"], "min_value": bounds[0], "max_value": bounds[1]},
                notes=raw.get("notes"),
                where=("kpi_code", code),
            )
        )
    return out


def _expectations(where: str, raw) -> tuple[ExpectationDef, ...]:
    if not isinstance(raw, list) or not raw:
        raise QualityError(f"{where}: 'expect' must be a non-empty list")
    out: list[ExpectationDef] = []
    for i, item in enumerate(raw, start=1):
        here = f"{where}: expect #{i}"
        if not isinstance(item, dict) or len(item) != 1:
            raise QualityError(f"{here}: write `- expect_xxx: {{column: ..., ...}}`")
        ((name, kwargs),) = item.items()
        if name == "bounds_by_kpi":
            out += _bounds_by_kpi(here, kwargs)
            continue
        if not NAME.match(name) or not name.startswith("expect_"):
            raise QualityError(f"{here}: {name!r} is not a GX expectation name (expect_...)")
        kwargs = dict(kwargs or {})
        notes = kwargs.pop("notes", None)
        out.append(ExpectationDef(name, {k: _resolve(v) for k, v in kwargs.items()}, notes))
    return tuple(out)


def load_suite(path: Path) -> Suite:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise QualityError(f"{path.name}: not valid YAML: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("checks"), dict):
        raise QualityError(f"{path.name}: expected 'table', 'title' and 'checks'")
    table = raw.get("table")
    if not isinstance(table, str) or not TABLE.match(table):
        raise QualityError(f"{path.name}: 'table' must be like staging.members or marts.x")
    checks = []
    for name, body in raw["checks"].items():
        where = f"{path.name}: check {name}"
        if not NAME.match(str(name)):
            raise QualityError(f"{where}: names are snake_case")
        if not isinstance(body, dict):
            raise QualityError(f"{where}: expected severity, description, data, expect")
        unknown = set(body) - {"severity", "description", "data", "expect"}
        if unknown:
            raise QualityError(f"{where}: unknown fields {sorted(unknown)}")
        severity = body.get("severity")
        if severity not in SEVERITIES:
            raise QualityError(f"{where}: severity must be one of {SEVERITIES}")
        checks.append(
            CheckDef(
                name=name,
                severity=severity,
                description=str(body.get("description") or "").strip(),
                data=_frame(where, table, body.get("data")),
                expectations=_expectations(where, body.get("expect")),
            )
        )
    return Suite(table=table, title=str(raw.get("title", table)), path=path, checks=tuple(checks))


@cache
def load_suites(directory: Path = EXPECTATIONS_DIR) -> tuple[Suite, ...]:
    """Every suite of the folder, one per table, in file-name order."""
    suites = [load_suite(p) for p in sorted(Path(directory).glob("*.yaml"))]
    tables = [s.table for s in suites]
    doubles = sorted({t for t in tables if tables.count(t) > 1})
    if doubles:
        raise QualityError(f"{directory}: more than one file for {doubles}")
    return tuple(suites)
