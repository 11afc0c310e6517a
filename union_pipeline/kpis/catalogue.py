"""The KPI catalogue: `assets/kpis.yaml` loaded into typed, validated `Kpi` objects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from union_pipeline.settings import ASSETS_DIR

DEFAULT_CATALOGUE = ASSETS_DIR / "kpis.yaml"

KINDS = ("flow", "stock", "cumulative", "ratio")
COMPARATORS = (">=", "<=")

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS = {
    "code", "name_zh", "name_en", "unit", "kind", "definition", "street", "rows", "where",
    "value", "person", "numerator", "denominator", "reported", "target_comparator",
}  # fmt: skip


class CatalogueError(ValueError):
    """The KPI catalogue is malformed; the message names the KPI and the field."""


@dataclass(frozen=True)
class Kpi:
    code: str
    name_zh: str
    name_en: str
    unit: str
    kind: str
    definition_en: str
    definition_zh: str
    has_street: bool
    rows: str | None = None
    where: str | None = None
    value: str | None = None
    person: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    reported: bool = True
    target_comparator: str = ">="

    @property
    def is_ratio(self) -> bool:
        return self.kind == "ratio"


def load_catalogue(path: str | Path | None = None) -> list[Kpi]:
    """All KPIs of the catalogue, in file order (helper parts included: see `Kpi.reported`)."""
    path = Path(path) if path is not None else DEFAULT_CATALOGUE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read the KPI catalogue: {err}") from err
    return list(_load(str(path), mtime))


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> tuple[Kpi, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_YAML_LOADER)
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read the KPI catalogue: {err}") from err
    except yaml.YAMLError as err:
        raise CatalogueError(f"{path}: not valid YAML: {err}") from err
    return tuple(parse_catalogue(doc, source=path))


def parse_catalogue(doc: object, source: str = "kpis.yaml") -> list[Kpi]:
    """Validate a parsed catalogue document (`{kpis: [...]}`) into `Kpi` objects."""
    if not isinstance(doc, dict) or not isinstance(doc.get("kpis"), list):
        raise CatalogueError(f"{source}: expected a mapping with a list under 'kpis'")
    raw_entries = doc["kpis"]
    if not raw_entries:
        raise CatalogueError(f"{source}: 'kpis' is empty")

    seen: dict[str, int] = {}
    parsed: list[tuple[dict, Kpi]] = []
    for i, raw in enumerate(raw_entries, start=1):
        kpi = _parse_entry(raw, i, source)
        if kpi.code in seen:
            raise CatalogueError(
                f"{source}: KPI {kpi.code!r}: field 'code': duplicate "
                f"(entries #{seen[kpi.code]} and #{i})"
            )
        seen[kpi.code] = i
        parsed.append((raw, kpi))

    by_code = {k.code: k for _, k in parsed}
    result = []
    for raw, kpi in parsed:
        if kpi.is_ratio:
            kpi = _resolve_ratio(raw, kpi, by_code, source)
        result.append(kpi)
    return result


def _err(source: str, who: str, field: str, problem: str) -> CatalogueError:
    return CatalogueError(f"{source}: {who}: field {field!r}: {problem}")


def _parse_entry(raw: object, index: int, source: str) -> Kpi:
    who = f"entry #{index}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{source}: {who}: expected a mapping, got {type(raw).__name__}")
    code = raw.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise _err(source, who, "code", f"{code!r} is not a snake_case code")
    who = f"KPI {code!r}"

    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _err(source, who, unknown[0], f"unknown field (known: {sorted(_FIELDS)})")

    def text(field: str, value: object = None, required: bool = True) -> str | None:
        value = raw.get(field) if value is None else value
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _err(source, who, field, "required, a non-empty text")
        return value.strip()

    def flag(field: str, default: bool | None) -> bool | None:
        value = raw.get(field, default)
        if value is not None and not isinstance(value, bool):
            raise _err(source, who, field, f"{value!r} is not true/false")
        return value

    kind = text("kind")
    if kind not in KINDS:
        raise _err(source, who, "kind", f"{kind!r} is not one of {list(KINDS)}")
    definition = raw.get("definition")
    if not isinstance(definition, dict):
        raise _err(source, who, "definition", "required, a mapping {en: ..., zh: ...}")
    definition_en = text("definition.en", definition.get("en", ""))
    definition_zh = text("definition.zh", definition.get("zh", ""))
    comparator = raw.get("target_comparator", ">=")
    if comparator not in COMPARATORS:
        raise _err(source, who, "target_comparator", f"{comparator!r} is not '>=' or '<='")

    if kind == "ratio":
        for field in ("rows", "where", "value", "person"):
            if field in raw:
                raise _err(source, who, field, "a ratio is computed from its parts: not allowed")
        numerator, denominator = text("numerator"), text("denominator")
        rows = where = value = person = None
        has_street = flag("street", None)  # resolved from the parts later
    else:
        for field in ("numerator", "denominator"):
            if field in raw:
                raise _err(source, who, field, f"only a ratio has a {field}")
        rows, value = text("rows"), text("value")
        where, person = text("where", required=False), text("person", required=False)
        numerator = denominator = None
        has_street = flag("street", False)
        if "eval_points" not in rows:
            raise _err(source, who, "rows", "must select from the relation eval_points")

    return Kpi(
        code=code,
        name_zh=text("name_zh"),
        name_en=text("name_en"),
        unit=text("unit"),
        kind=kind,
        definition_en=definition_en,
        definition_zh=definition_zh,
        has_street=bool(has_street),
        rows=rows,
        where=where,
        value=value,
        person=person,
        numerator=numerator,
        denominator=denominator,
        reported=flag("reported", True),
        target_comparator=comparator,
    )


def _resolve_ratio(raw: dict, kpi: Kpi, by_code: dict[str, Kpi], source: str) -> Kpi:
    who = f"KPI {kpi.code!r}"
    parts = []
    for field in ("numerator", "denominator"):
        code = getattr(kpi, field)
        part = by_code.get(code)
        if part is None:
            raise _err(source, who, field, f"{code!r} is not a KPI of the catalogue")
        if part.is_ratio:
            raise _err(source, who, field, f"{code!r} is itself a ratio; use its parts")
        parts.append(part)
    both = all(p.has_street for p in parts)
    declared = raw.get("street")
    if declared is True and not both:
        raise _err(source, who, "street", "true, but a part has no street breakdown")
    has_street = both if declared is None else declared
    return Kpi(**{**kpi.__dict__, "has_street": has_street})
