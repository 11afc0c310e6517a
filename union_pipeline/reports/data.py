"""What the charts read: the marts, and nothing else (no staging table, no detail row)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from union_pipeline.kpis import Kpi, load_catalogue


def number(value) -> float | None:
    """A mart cell as a float; None for a missing one (None, NaN, pd.NA) or no number."""
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def flag(value) -> bool | None:
    """A mart cell as a bool; None for a missing one."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


class ReportDataError(ValueError):
    """The warehouse lacks what every chart needs (the marts)."""


@dataclass(frozen=True)
class ReportData:
    as_of: dt.date
    first_year: int
    catalogue: list[Kpi]
    yearly: pd.DataFrame  # marts.kpi_yearly
    by_street: pd.DataFrame  # marts.kpi_by_street (persons: null when the mart has none)
    # year, month (0 = enrolled before the plan year began), enrolments
    enrolments_monthly: pd.DataFrame | None = None
    # year, month, benefit_yuan, claims (paid claims)
    benefits_monthly: pd.DataFrame | None = None
    # month (first day), amount_yuan, new_borrowers; None without staging.loans
    loans_monthly: pd.DataFrame | None = None
    # year, program, sessions, participations, persons
    training: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def as_of_year(self) -> int:
        return self.as_of.year

    @property
    def is_complete(self) -> bool:
        return (self.as_of.month, self.as_of.day) == (12, 31)

    @property
    def reported(self) -> list[Kpi]:
        """KPIs of the catalogue that have rows in kpi_yearly, in catalogue order."""
        present = set(self.yearly["kpi_code"])
        return [k for k in self.catalogue if k.reported and k.code in present]

    def kpi(self, code: str) -> Kpi | None:
        return next((k for k in self.catalogue if k.code == code), None)

    def series(self, code: str) -> pd.DataFrame:
        """kpi_yearly rows of one KPI, by year."""
        return self.yearly[self.yearly["kpi_code"] == code].sort_values("year")

    def latest(self, code: str) -> pd.Series | None:
        rows = self.series(code)
        return None if rows.empty else rows.iloc[-1]


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0] for r in rows}


def _mart(con, tables: set[str], table: str, sql: str, params, notes: list[str], missing: str):
    if table in tables:
        return con.execute(sql, params).df()
    notes.append(f"{table} missing: {missing}")
    return None


def read_report_data(
    con: duckdb.DuckDBPyConnection, catalogue: list[Kpi] | None = None
) -> ReportData:
    """Everything the charts show, from the marts only, through one connection."""
    tables = _tables(con)
    needed = {"marts.refresh_context", "marts.kpi_yearly", "marts.kpi_by_street"}
    if missing := sorted(needed - tables):
        raise ReportDataError(f"the warehouse has no {', '.join(missing)}: refresh the marts")
    as_of, first_year = con.execute(
        "SELECT as_of, first_year FROM marts.refresh_context"
    ).fetchall()[0]
    catalogue = list(catalogue) if catalogue is not None else load_catalogue()
    yearly = con.execute(
        "SELECT * FROM marts.kpi_yearly WHERE year BETWEEN ? AND ? ORDER BY kpi_code, year",
        [first_year, as_of.year],
    ).df()
    persons = "persons" if "persons" in _columns(con, "marts.kpi_by_street") else "NULL"
    by_street = con.execute(
        f"SELECT kpi_code, year, street, actual, CAST({persons} AS DOUBLE) AS persons "
        "FROM marts.kpi_by_street WHERE year BETWEEN ? AND ? ORDER BY kpi_code, year, street",
        [first_year, as_of.year],
    ).df()
    notes: list[str] = []
    # this year and the last: month 0 is enrolled before the plan year began (in advance)
    enrolments = _mart(
        con,
        tables,
        "marts.mutual_aid_monthly",
        "SELECT year, month, enrolments FROM marts.mutual_aid_monthly "
        "WHERE enrolments IS NOT NULL AND year BETWEEN ? AND ? ORDER BY ALL",
        [as_of.year - 1, as_of.year],
        notes,
        "no enrolments by month",
    )
    benefits = _mart(
        con,
        tables,
        "marts.mutual_aid_monthly",
        "SELECT year, month, benefit_yuan, claims_paid AS claims FROM marts.mutual_aid_monthly "
        "WHERE claims_paid IS NOT NULL AND year BETWEEN ? AND ? ORDER BY ALL",
        [as_of.year - 1, as_of.year],
        notes,
        "no benefits by month",
    )
    loans = _mart(
        con,
        tables,
        "marts.loans_monthly",
        "SELECT month, amount_yuan, new_borrowers FROM marts.loans_monthly ORDER BY month",
        [],
        notes,
        "loans drawn from kpi_yearly's year ends",
    )
    training = _mart(
        con,
        tables,
        "marts.training_by_programme",
        "SELECT * FROM marts.training_by_programme ORDER BY ALL",
        [],
        notes,
        "no training by programme",
    )
    return ReportData(
        as_of=as_of,
        first_year=int(first_year),
        catalogue=catalogue,
        yearly=yearly,
        by_street=by_street,
        enrolments_monthly=enrolments,
        benefits_monthly=benefits,
        loans_monthly=loans,
        training=training,
        notes=notes,
    )
