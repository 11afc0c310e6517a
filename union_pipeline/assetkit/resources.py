"""The warehouse as a Dagster resource; paths come from the environment at run time."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from union_pipeline.settings import Settings, load_settings
from union_pipeline.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse (UNION_WAREHOUSE) and the outputs of every materialization."""

    path: str | None = None

    @property
    def settings(self) -> Settings:
        return load_settings()

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path) if self.path else self.settings.warehouse)
