"""The warehouse as a Dagster resource; paths come from the environment at run time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from union_pipeline.settings import Settings, load_settings
from union_pipeline.warehouse import Warehouse

WRITER_POOL = "duckdb_writer"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse (UNION_WAREHOUSE); writers write the run's build file."""

    path: str | None = None

    @property
    def settings(self) -> Settings:
        return load_settings()

    @property
    def warehouse(self) -> Warehouse:
        from pathlib import Path

        return Warehouse(Path(self.path) if self.path else self.settings.warehouse)

    @contextlib.contextmanager
    def building(self, context) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.warehouse.building(context.run.run_id) as con:
            yield con

    def publish(self, context):
        return self.warehouse.publish(context.run.run_id)

    @contextlib.contextmanager
    def current(self, context) -> Iterator[duckdb.DuckDBPyConnection]:
        """What this run sees: its build file when it has written one, else the live file.

        For checks: run with their asset they read the run's build; run alone (from the UI)
        they read the live warehouse, read-only, and build nothing.
        """
        build = self.warehouse.build_path(context.run.run_id)
        if build.exists():
            with self.warehouse.building(context.run.run_id) as con:
                yield con
        else:
            with self.warehouse.reading() as con:
                yield con
