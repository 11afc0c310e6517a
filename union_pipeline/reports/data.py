"""What the charts read from the warehouse: the marts and a few monthly aggregates.

Only aggregates leave the warehouse: no person_key, no row of detail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from union_pipeline.kpis import Kpi, load_catalogue


class ReportDataError(ValueError):
    """The warehouse lacks what every chart needs (the marts)."""


@dataclass(frozen=True)
class ReportData:
    as_of: dt.date
    first_year: int
    catalogue: list[Kpi]
    yearly: pd.DataFrame        # marts.kpi_yearly
    by_street: pd.DataFrame     # marts.kpi_by_street (persons: null when the mart has none)
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
        "SELECT schema_name || '.' || table_name FROM duckdb_tables()"
    ).fetchall()
    return {r[0] for r in rows}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0] for r in rows}


def read_report_data(
    con: duckdb.DuckDBPyConnection, catalogue: list[Kpi] | None = None
) -> ReportData:
    """Everything the charts show, read through one (read-only) connection."""
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
    notes = []
    first_month = dt.date(as_of.year - 1, 1, 1)

    enrolments = benefits = loans = training = None
    if "staging.mutual_aid_enrollments" in tables:
        # month 0: enrolled before the plan year began (paid in advance)
        enrolments = con.execute(
            """
            SELECT CAST(plan_year AS INTEGER) AS year,
                   CAST(CASE WHEN year(enrolled_date) < plan_year THEN 0
                             ELSE month(enrolled_date) END AS INTEGER) AS month,
                   CAST(count(*) AS DOUBLE) AS enrolments
            FROM staging.mutual_aid_enrollments
            WHERE plan_year BETWEEN ? AND ? AND enrolled_date <= ?
              AND year(enrolled_date) <= plan_year
            GROUP BY ALL ORDER BY ALL
            """,
            [as_of.year - 1, as_of.year, as_of],
        ).df()
    else:
        notes.append("staging.mutual_aid_enrollments missing: no enrolments by month")
    if "staging.mutual_aid_claims" in tables:
        benefits = con.execute(
            """
            SELECT CAST(year(claim_date) AS INTEGER) AS year,
                   CAST(month(claim_date) AS INTEGER) AS month,
                   CAST(sum(benefit_yuan) AS DOUBLE) AS benefit_yuan,
                   CAST(count(*) AS DOUBLE) AS claims
            FROM staging.mutual_aid_claims
            WHERE status = '已发放' AND claim_date BETWEEN ? AND ?
            GROUP BY ALL ORDER BY ALL
            """,
            [first_month, as_of],
        ).df()
    else:
        notes.append("staging.mutual_aid_claims missing: no benefits by month")
    if "staging.loans" in tables:
        # a borrower counts once, in the month of their first loan (as loan_borrowers_cum)
        loans = con.execute(
            """
            WITH l AS (
                SELECT person_key, disbursed_date, CAST(amount_yuan AS DOUBLE) AS amount
                FROM staging.loans WHERE disbursed_date <= ?
            ),
            firsts AS (
                SELECT date_trunc('month', min(disbursed_date)) AS month
                FROM l WHERE person_key IS NOT NULL GROUP BY person_key
            ),
            new_borrowers AS (
                SELECT month, CAST(count(*) AS DOUBLE) AS new_borrowers FROM firsts GROUP BY 1
            ),
            amounts AS (
                SELECT date_trunc('month', disbursed_date) AS month,
                       sum(amount) AS amount_yuan
                FROM l GROUP BY 1
            )
            SELECT CAST(month AS DATE) AS month,
                   coalesce(a.amount_yuan, 0) AS amount_yuan,
                   coalesce(b.new_borrowers, 0) AS new_borrowers
            FROM amounts AS a FULL JOIN new_borrowers AS b USING (month)
            ORDER BY month
            """,
            [as_of],
        ).df()
    else:
        notes.append("staging.loans missing: loans drawn from kpi_yearly's year ends")
    if "staging.training" in tables:
        training = con.execute(
            """
            SELECT CAST(year(session_date) AS INTEGER) AS year, program,
                   CAST(count(DISTINCT session_id) AS DOUBLE) AS sessions,
                   CAST(count(*) AS DOUBLE) AS participations,
                   CAST(count(DISTINCT person_key) AS DOUBLE) AS persons
            FROM staging.training
            WHERE session_date <= ? AND year(session_date) BETWEEN ? AND ?
            GROUP BY ALL ORDER BY ALL
            """,
            [as_of, first_year, as_of.year],
        ).df()
    else:
        notes.append("staging.training missing: no training by programme")
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
