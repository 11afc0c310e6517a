"""Source specs: `assets/sources/*.yaml` loaded into typed objects, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from union_pipeline.settings import ASSETS_DIR
from union_pipeline.yamlfile import load_yaml

COLUMN_TYPES = {"text", "int", "decimal", "date", "bool", "id_number", "name", "phone"}
PII_TYPES = {"id_number", "name", "phone"}


class SpecError(ValueError):
    """A source spec in assets/sources is malformed."""


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min: float | str | None = None
    max: float | str | None = None
    min_exclusive: float | None = None
    not_before: str | None = None
    scale: int = 2
    # the reference list `allowed` comes from (streets: the district's own)
    allowed_ref: str | None = None
    # other headers source systems give this column (身份证号码, 公民身份号码, ...)
    aliases: tuple[str, ...] = ()

    @property
    def headers(self) -> tuple[str, ...]:
        """Every header accepted for the column: its own, its aliases, its canonical name."""
        return (self.header, *self.aliases, self.name)

    @property
    def is_pii(self) -> bool:
        return self.type in PII_TYPES


@dataclass(frozen=True)
class Reference:
    column: str
    source: str
    key: str
    rule: str
    not_before: dict | None = None


@dataclass(frozen=True)
class SourceSpec:
    name: str
    folder: str
    title_zh: str
    title_en: str
    group: str
    required: bool
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    references: tuple[Reference, ...] = field(default_factory=tuple)

    def for_district(self, code: str) -> SourceSpec:
        """This spec with its reference lists (the streets) of district `code`."""
        columns = tuple(
            replace(c, allowed=reference_list(c.allowed_ref, code)) if c.allowed_ref else c
            for c in self.columns
        )
        return replace(self, columns=columns)

    def column_names_of(self, *types: str) -> set[str]:
        return {c.name for c in self.columns if c.type in types}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def has_person(self) -> bool:
        return any(c.type == "id_number" for c in self.columns)

    @property
    def join_columns(self) -> frozenset[str]:
        """Columns that join rows (the key, the references): PII-shaped values in them are
        hashed, not masked, so the joins still hold."""
        return frozenset(self.key) | {r.column for r in self.references}

    @property
    def header_map(self) -> dict[str, str]:
        """Accepted header (Chinese, an alias, or canonical) -> canonical column name."""
        return {header: c.name for c in self.columns for header in c.headers}


def reference_list(name: str, district: str | None = None) -> tuple[str, ...]:
    """A named reference list from assets/: a district's streets (assets/districts/; the
    default district's unless `district` is given), the KPI codes."""
    if name == "streets":
        from union_pipeline import districts

        return tuple(districts.district(district or districts.default_district()).street_names)
    if name == "kpi_codes":
        from union_pipeline.kpis import load_catalogue

        return tuple(k.code for k in load_catalogue())
    raise SpecError(f"unknown reference list {name!r}")


def _column(source: str, raw: dict) -> Column:
    try:
        col = Column(**raw)
    except TypeError as err:
        raise SpecError(f"assets/sources/{source}.yaml: column {raw}: {err}") from err
    if col.type not in COLUMN_TYPES:
        raise SpecError(
            f"assets/sources/{source}.yaml: column {col.name}: type {col.type!r} "
            f"is not one of {sorted(COLUMN_TYPES)}"
        )
    allowed = raw.get("allowed")
    ref = None
    if isinstance(allowed, dict):
        ref = allowed["ref"]
        allowed = reference_list(ref)
    return Column(
        **{
            **raw,
            "allowed": tuple(allowed) if allowed else None,
            "allowed_ref": ref,
            "aliases": tuple(raw.get("aliases", ())),
        }
    )


def _check_headers(file: str, columns: tuple[Column, ...]) -> None:
    """A header (after the reader's normalising) names one column of a source, never two."""
    from union_pipeline.ingest.files import normalise_header

    owner: dict[str, str] = {}
    for col in columns:
        for header in col.headers:
            key = normalise_header(header)
            if owner.setdefault(key, col.name) != col.name:
                raise SpecError(
                    f"assets/sources/{file}: header {header!r} is given to both "
                    f"{owner[key]} and {col.name}"
                )


def load_spec(path: Path) -> SourceSpec:
    raw = load_yaml(path.read_text(encoding="utf-8"))
    name = raw["name"]
    columns = tuple(_column(name, c) for c in raw["columns"])
    names = {c.name for c in columns}
    for key in raw["key"]:
        if key not in names:
            raise SpecError(f"{path.name}: key column {key!r} is not a column")
    _check_headers(path.name, columns)
    return SourceSpec(
        name=name,
        folder=raw["folder"],
        title_zh=raw["title_zh"],
        title_en=raw["title_en"],
        group=raw["group"],
        required=bool(raw["required"]),
        key=tuple(raw["key"]),
        columns=columns,
        references=tuple(Reference(**r) for r in raw.get("references", [])),
    )


@cache
def load_specs(directory: Path = ASSETS_DIR / "sources") -> dict[str, SourceSpec]:
    specs = [load_spec(p) for p in sorted(directory.glob("*.yaml"))]
    return {s.name: s for s in specs}
