"""Environment -> paths, dates and keys, read in one place, at call time (tests set env)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"

# Clearly labelled so nobody mistakes it for a production key.
DEV_PII_KEY = "DEVELOPMENT-ONLY-union-pipeline-pii-key"


class ConfigError(ValueError):
    """A setting in the environment is malformed."""


def _path(var: str, default: str) -> Path:
    value = os.environ.get(var) or default
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _date(var: str) -> dt.date | None:
    value = os.environ.get(var)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as err:
        raise ConfigError(f"{var}={value!r}: expected a date like 2020-09-30") from err


def _int(var: str) -> int | None:
    value = os.environ.get(var)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ConfigError(f"{var}={value!r}: expected a year like 2017") from err


@dataclass(frozen=True)
class Settings:
    raw_dir: Path
    warehouse: Path
    export_dir: Path
    as_of: dt.date | None
    first_year: int | None
    pii_key: bytes
    pii_key_is_default: bool
    quarantine_threshold: float

    @property
    def rule_as_of(self) -> dt.date:
        """The date row rules compare against ("not after the as-of date").

        The reported as-of date comes from the loaded data, which these rules decide, so
        without UNION_AS_OF the rules use the refresh date: an event after today is a typo.
        """
        return self.as_of or dt.date.today()


def load_settings() -> Settings:
    key = os.environ.get("UNION_PII_KEY")
    threshold = os.environ.get("UNION_QUARANTINE_THRESHOLD", "0.05")
    try:
        quarantine_threshold = float(threshold)
    except ValueError as err:
        raise ConfigError(f"UNION_QUARANTINE_THRESHOLD={threshold!r}: expected 0.05") from err
    return Settings(
        raw_dir=_path("UNION_RAW_DIR", "data/raw"),
        warehouse=_path("UNION_WAREHOUSE", "data/warehouse/union.duckdb"),
        export_dir=_path("UNION_EXPORT_DIR", "data/exports"),
        as_of=_date("UNION_AS_OF"),
        first_year=_int("UNION_FIRST_YEAR"),
        pii_key=(key or DEV_PII_KEY).encode(),
        pii_key_is_default=not key,
        quarantine_threshold=quarantine_threshold,
    )
