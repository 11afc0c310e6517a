"""The pipeline's configuration as a Dagster resource: what the UI shows of a run's settings.

Each field is its environment variable (`dg.EnvVar`, so the PII key shows masked); unset
fields fall back to `union_pipeline.settings`' defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from union_pipeline.settings import Settings, load_settings
from union_pipeline.warehouse import Warehouse

FIELDS = {
    "path": "UNION_WAREHOUSE",
    "raw_dir": "UNION_RAW_DIR",
    "export_dir": "UNION_EXPORT_DIR",
    "as_of": "UNION_AS_OF",
    "pii_key": "UNION_PII_KEY",
}


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (UNION_WAREHOUSE), the raw drop, the exports and the PII key."""

    path: str | None = None
    raw_dir: str | None = None
    export_dir: str | None = None
    as_of: str | None = None
    pii_key: str | None = None

    @classmethod
    def from_env(cls) -> WarehouseResource:
        """Every variable set in the environment, as an EnvVar the UI shows by name."""
        return cls(**{f: dg.EnvVar(var) for f, var in FIELDS.items() if os.environ.get(var)})

    @property
    def settings(self) -> Settings:
        return load_settings({var: getattr(self, f) for f, var in FIELDS.items()})

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path) if self.path else self.settings.warehouse)
