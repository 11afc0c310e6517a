"""KPI catalogue and marts (plain Python + DuckDB; no Dagster).

Typical refresh, on one DuckDB connection to the warehouse::

    resolve_refresh_context(con, settings.as_of, settings.first_year)
    build_kpi_yearly(con)
    build_kpi_by_street(con)
    build_report_reconciliation(con)
"""

from union_pipeline.kpis.catalogue import (
    COMPARATORS,
    DEFAULT_CATALOGUE,
    KINDS,
    CatalogueError,
    Kpi,
    load_catalogue,
    parse_catalogue,
)
from union_pipeline.kpis.context import (
    KpiError,
    RefreshContext,
    read_refresh_context,
    resolve_refresh_context,
)
from union_pipeline.kpis.engine import EvalPoint, evaluate, same_day_in
from union_pipeline.kpis.marts import (
    build_kpi_by_street,
    build_kpi_yearly,
    build_report_reconciliation,
)

__all__ = [
    "COMPARATORS",
    "DEFAULT_CATALOGUE",
    "KINDS",
    "CatalogueError",
    "EvalPoint",
    "Kpi",
    "KpiError",
    "RefreshContext",
    "build_kpi_by_street",
    "build_kpi_yearly",
    "build_report_reconciliation",
    "evaluate",
    "load_catalogue",
    "parse_catalogue",
    "read_refresh_context",
    "resolve_refresh_context",
    "same_day_in",
]
