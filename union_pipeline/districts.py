"""The districts of a city: their names and streets (assets/districts/), and where each
district's files are in the raw drop.

A drop is either one district's (`UNION_RAW_DIR/<source>/...`, the layout of a district
federation) or a city's (`UNION_RAW_DIR/<district code>/<source>/...`, with the city's own
`targets/` beside the district folders). Each district is a Dagster partition.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from union_pipeline.settings import ASSETS_DIR, ConfigError, district_override
from union_pipeline.yamlfile import load_yaml

DISTRICTS_DIR = ASSETS_DIR / "districts"
# a district folder of a city drop is named by its administrative code (6 digits)
DISTRICT_CODE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class District:
    code: str
    name: str
    name_en: str
    streets: tuple[tuple[str, str], ...]  # (street, kind)
    default: bool = False

    @property
    def street_names(self) -> list[str]:
        return [street for street, _ in self.streets]


@dataclass(frozen=True)
class City:
    code: str
    name: str
    name_en: str


def _read(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return load_yaml(f) or {}


@functools.cache
def load_districts() -> dict[str, District]:
    """Every district with a reference file, by code."""
    out = {}
    for path in sorted(DISTRICTS_DIR.glob("*.yaml")):
        if path.stem == "city":
            continue
        doc = _read(path)
        code = str(doc.get("code", path.stem))
        if code != path.stem or not DISTRICT_CODE.match(code):
            raise ConfigError(f"{path.name}: code {code!r} must be the file's name, 6 digits")
        out[code] = District(
            code=code,
            name=doc["name"],
            name_en=doc.get("name_en", doc["name"]),
            streets=tuple((s["street"], s.get("kind", "")) for s in doc.get("streets", [])),
            default=bool(doc.get("default", False)),
        )
    return out


@functools.cache
def load_city() -> City:
    doc = _read(DISTRICTS_DIR / "city.yaml")
    return City(code=str(doc["code"]), name=doc["name"], name_en=doc.get("name_en", doc["name"]))


def default_district() -> str:
    """The district of a single-district drop: UNION_DISTRICT, else the one marked default."""
    code = district_override()
    if code:
        return code
    marked = [d.code for d in load_districts().values() if d.default]
    if len(marked) != 1:
        raise ConfigError("assets/districts/: exactly one district must say `default: true`")
    return marked[0]


def district(code: str) -> District:
    """A district's reference file, or an error saying how to add it."""
    found = load_districts().get(code)
    if found is None:
        raise ConfigError(
            f"district {code}: no reference file assets/districts/{code}.yaml (its name and "
            f"streets); add one like assets/districts/{default_district()}.yaml. "
            f"区县 {code} 缺少参考文件（名称与镇街）。"
        )
    return found


def is_city_drop(raw_dir: Path) -> bool:
    """A city drop has a folder per district, named by its code."""
    return raw_dir.is_dir() and any(
        p.is_dir() and DISTRICT_CODE.match(p.name) for p in raw_dir.iterdir()
    )


def district_codes(raw_dir: Path) -> list[str]:
    """The districts of a drop: its district folders, or the default district."""
    if is_city_drop(raw_dir):
        return sorted(
            p.name for p in raw_dir.iterdir() if p.is_dir() and DISTRICT_CODE.match(p.name)
        )
    return [default_district()] if raw_dir.is_dir() else []


def district_raw_dir(raw_dir: Path, code: str) -> Path:
    """Where a district's source folders are."""
    return raw_dir / code if is_city_drop(raw_dir) else raw_dir


def city_targets_dir(raw_dir: Path) -> Path | None:
    """The city's own targets (a city drop's root `targets/`), if any."""
    folder = raw_dir / "targets"
    return folder if is_city_drop(raw_dir) and folder.is_dir() else None


def district_export_dir(export_dir: Path, raw_dir: Path, code: str | None) -> Path:
    """Where a district's reports go: the export folder itself for a single-district drop
    (as a district federation has always had it), `<export folder>/<code>/` in a city drop;
    the city's own reports (code None) go to `<export folder>/city/`."""
    if code is None:
        return export_dir / "city"
    return export_dir / code if is_city_drop(raw_dir) else export_dir
