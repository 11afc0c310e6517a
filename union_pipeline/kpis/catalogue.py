"""The KPI catalogue: `assets/kpis.yaml` loaded into typed, validated `Kpi` objects."""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from union_pipeline.settings import ASSETS_DIR
from union_pipeline.yamlfile import load_yaml

DEFAULT_CATALOGUE = ASSETS_DIR / "kpis.yaml"

KINDS = ("flow", "stock", "cumulative", "ratio")
COMPARATORS = (">=", "<=")
# how the work summary writes a figure (see `writing` in assets/kpis.yaml)
NUMBER_STYLES = ("count", "万", "亿", "percent")
ROUNDINGS = ("half_up", "down_yu")

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS = {
    "code", "name_zh", "name_en", "unit", "kind", "definition", "street", "rows", "where",
    "value", "person", "numerator", "denominator", "reported", "target_comparator", "writing",
    "additive", "compare_streets",
}  # fmt: skip
_WRITING_FIELDS = {"number", "decimals", "rounding", "step", "unit_zh", "unit_en", "change",
                   "zh", "en", "unusual_change"}  # fmt: skip
_FIGURE_FIELDS = {"number", "decimals", "rounding", "step", "unit_zh", "unit_en"}
_OWN_PLACEHOLDERS = {"value", "yoy"}


class CatalogueError(ValueError):
    """The KPI catalogue is malformed; the message names the KPI and the field."""


@dataclass(frozen=True)
class Figure:
    """How one number is written in the work summary: 16.7169万人次, 1054余万元, 60.77%."""

    number: str  # count | 万 | 亿 | percent
    decimals: int
    rounding: str = "half_up"  # or down_yu: truncated, 余 when something was cut off
    step: int = 1  # down_yu: truncated to a multiple of this (in the shown unit)
    unit_zh: str = ""
    unit_en: str = ""


@dataclass(frozen=True)
class Writing:
    """The sentence of a KPI in the work summary (`writing` in assets/kpis.yaml)."""

    figure: Figure
    change: Figure  # the year-on-year change: 较去年增加9909人次
    zh: str  # template: {value}, {yoy}, {<other kpi code>}
    en: str
    unusual_change: float  # |yoy_pct| (a ratio: |yoy_change|) from which 数据研判 names it

    def placeholders(self, lang: str) -> list[str]:
        template = self.zh if lang == "zh" else self.en
        return [f for _, f, _, _ in string.Formatter().parse(template) if f]

    def others(self, lang: str = "zh") -> list[str]:
        """KPI codes whose figures this sentence also writes."""
        return [p for p in self.placeholders(lang) if p not in _OWN_PLACEHOLDERS]


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
    writing: Writing | None = dataclasses.field(default=None, compare=False)
    # its streets (and districts) add up to it: a count or a sum, not a ratio or a
    # distinct count (a person in two streets counts once)
    additive: bool = True
    # the street comparison chart shows it
    compare_streets: bool = False

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
            doc = load_yaml(f)
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
        _check_sentence(kpi, by_code, source)
        result.append(kpi)
    return result


def _check_sentence(kpi: Kpi, by_code: dict[str, Kpi], source: str) -> None:
    """The figures a sentence writes besides its own are KPIs of the catalogue."""
    for lang in ("zh", "en"):
        for code in kpi.writing.others(lang):
            if code not in by_code or code == kpi.code:
                raise _err(
                    source,
                    f"KPI {kpi.code!r}",
                    f"writing.{lang}",
                    f"{{{code}}} is not another KPI's code (use {{value}}, {{yoy}} or a code)",
                )


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

    additive = flag("additive", kind != "ratio")
    if kind == "ratio" and additive:
        raise _err(source, who, "additive", "a ratio does not add up across streets")
    if value and "distinct" in value.lower() and additive:
        raise _err(
            source,
            who,
            "additive",
            "a distinct count does not add up across streets: declare `additive: false`",
        )
    name_zh, name_en, unit = text("name_zh"), text("name_en"), text("unit")
    return Kpi(
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        unit=unit,
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
        additive=additive,
        compare_streets=flag("compare_streets", False),
        writing=_parse_writing(raw.get("writing"), who, source, name_zh, name_en, unit),
    )


def writing_of(kpi: Kpi) -> Writing:
    """The KPI's `writing`, or the plain default for a `Kpi` made without one."""
    if kpi.writing is not None:
        return kpi.writing
    return _parse_writing(None, f"KPI {kpi.code!r}", "kpis", kpi.name_zh, kpi.name_en, kpi.unit)


def _default_figure(unit: str) -> dict:
    if unit == "ratio":
        return {"number": "percent", "decimals": 2}
    if unit == "元":
        return {"number": "万", "decimals": 2, "unit_zh": "元", "unit_en": "yuan"}
    return {"number": "count", "decimals": 0, "unit_zh": unit}


def _parse_figure(raw: object, base: dict, who: str, field: str, source: str) -> Figure:
    if not isinstance(raw, dict):
        raise _err(source, who, field, "expected a mapping")
    unknown = sorted(set(raw) - _FIGURE_FIELDS)
    if unknown:
        raise _err(
            source, who, f"{field}.{unknown[0]}", f"unknown (known: {sorted(_FIGURE_FIELDS)})"
        )
    values = {**base, **raw}
    number = values.get("number")
    if number not in NUMBER_STYLES:
        raise _err(
            source, who, f"{field}.number", f"{number!r} is not one of {list(NUMBER_STYLES)}"
        )
    if "decimals" not in raw and "number" in raw and raw["number"] != base.get("number"):
        values["decimals"] = {"count": 0, "万": 2, "亿": 4, "percent": 2}[number]
    decimals, step = values.get("decimals", 0), values.get("step", 1)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 8:
        raise _err(source, who, f"{field}.decimals", f"{decimals!r} is not a whole number 0-8")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise _err(source, who, f"{field}.step", f"{step!r} is not a whole number >= 1")
    rounding = values.get("rounding", "half_up")
    if rounding not in ROUNDINGS:
        raise _err(
            source, who, f"{field}.rounding", f"{rounding!r} is not one of {list(ROUNDINGS)}"
        )
    units = {}
    for key in ("unit_zh", "unit_en"):
        unit = values.get(key, "")
        if not isinstance(unit, str):
            raise _err(source, who, f"{field}.{key}", f"{unit!r} is not a text")
        units[key] = unit
    return Figure(number, decimals, rounding, step, **units)


def _parse_writing(
    raw: object, who: str, source: str, name_zh: str, name_en: str, unit: str
) -> Writing:
    """`writing`, or the plain default for a KPI without one (会员总数235545人)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise _err(source, who, "writing", "expected a mapping (see the header of kpis.yaml)")
    unknown = sorted(set(raw) - _WRITING_FIELDS)
    if unknown:
        raise _err(
            source, who, f"writing.{unknown[0]}", f"unknown (known: {sorted(_WRITING_FIELDS)})"
        )
    figure = _parse_figure(
        {k: v for k, v in raw.items() if k in _FIGURE_FIELDS},
        _default_figure(unit),
        who,
        "writing",
        source,
    )
    change_base = {**figure.__dict__, "rounding": "half_up", "step": 1}
    change = _parse_figure(raw.get("change", {}), change_base, who, "writing.change", source)
    templates = {}
    for lang, default in (("zh", f"{name_zh}{{value}}"), ("en", f"{name_en}: {{value}}")):
        template = raw.get(lang, default)
        if not isinstance(template, str) or "{value}" not in template:
            raise _err(source, who, f"writing.{lang}", "a text holding {value}")
        try:
            list(string.Formatter().parse(template))
        except ValueError as err:
            raise _err(source, who, f"writing.{lang}", f"not a valid template: {err}") from err
        templates[lang] = template.strip()
    default_unusual = 0.05 if unit == "ratio" else 0.2
    unusual = raw.get("unusual_change", default_unusual)
    if isinstance(unusual, bool) or not isinstance(unusual, int | float) or unusual <= 0:
        raise _err(source, who, "writing.unusual_change", f"{unusual!r} is not a number > 0")
    return Writing(figure, change, templates["zh"], templates["en"], float(unusual))


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
