"""Checks on the marts: shape, ranges, consistency, and the published report."""

import dagster as dg

from union_pipeline.assetkit.checks import rows_check_result
from union_pipeline.assetkit.outputs import DISTRICTS
from union_pipeline.defs.quality.checks import SqlCheck, layer_checks
from union_pipeline.kpis import load_catalogue
from union_pipeline.quality import load_suites

KPI_YEARLY = dg.AssetKey(["marts", "kpi_yearly"])
KPI_BY_STREET = dg.AssetKey(["marts", "kpi_by_street"])
RECONCILIATION = dg.AssetKey(["marts", "report_reconciliation"])
REFRESH_CONTEXT = dg.AssetKey(["marts", "refresh_context"])


def _codes(kpis) -> str:
    return ", ".join(f"'{k.code}'" for k in kpis) or "NULL"


def additive(kpi) -> bool:
    """Its streets and districts add up to it (`additive` in assets/kpis.yaml)."""
    return kpi.additive


def _additive(kpi) -> bool:
    return additive(kpi) and kpi.has_street


def one_row_per_kpi_and_year(con):
    reported = [k for k in load_catalogue() if k.reported]
    return rows_check_result(
        con,
        f"""WITH expected AS (
              SELECT code AS kpi_code, y.year::INTEGER AS year
              FROM unnest([{_codes(reported)}]) AS c(code),
                   marts.refresh_context r, range(r.first_year, year(r.as_of) + 1) y(year)),
            counted AS (SELECT kpi_code, year, count(*) AS n FROM marts.kpi_yearly
                        GROUP BY ALL)
            SELECT coalesce(e.kpi_code, c.kpi_code) AS kpi_code,
                   coalesce(e.year, c.year) AS year, coalesce(c.n, 0) AS rows_found
            FROM expected e FULL JOIN counted c USING (kpi_code, year)
            WHERE c.n IS DISTINCT FROM 1 OR e.kpi_code IS NULL""",
    )


def ratios_between_zero_and_one(con):
    ratios = [k for k in load_catalogue() if k.is_ratio]
    return rows_check_result(
        con,
        f"""SELECT kpi_code, year, actual, projected_year_end FROM marts.kpi_yearly
            WHERE kpi_code IN ({_codes(ratios)})
              AND (actual NOT BETWEEN 0 AND 1 OR projected_year_end NOT BETWEEN 0 AND 1)""",
    )


def required_values_present(con):
    return rows_check_result(
        con,
        """SELECT * FROM marts.kpi_yearly, marts.refresh_context r
           WHERE kpi_code IS NULL OR year IS NULL OR actual IS NULL
              OR is_complete_year IS NULL
              OR (prior_actual IS NULL AND year > r.first_year)
              OR (target IS NOT NULL AND comparator IS NULL)
              OR (target IS NOT NULL AND is_complete_year AND target_met IS NULL)
              OR (NOT is_complete_year AND projected_year_end IS NULL)""",
    )


def streets_sum_to_district(con):
    additive = [k for k in load_catalogue() if k.reported and _additive(k)]
    return rows_check_result(
        con,
        f"""SELECT y.kpi_code, y.year, y.actual AS district, s.streets_total
            FROM marts.kpi_yearly y
            LEFT JOIN (SELECT kpi_code, year, sum(actual) AS streets_total
                       FROM marts.kpi_by_street GROUP BY ALL) s USING (kpi_code, year)
            WHERE y.kpi_code IN ({_codes(additive)})
              AND abs(y.actual - coalesce(s.streets_total, 0))
                  > 1e-6 * greatest(1, y.actual)""",
        extra={"additive_kpis": dg.MetadataValue.json([k.code for k in additive])},
    )


def published_figures_matched(con):
    total = con.execute("SELECT count(*) FROM marts.report_reconciliation").fetchall()[0][0]
    result = rows_check_result(
        con,
        "SELECT * FROM marts.report_reconciliation WHERE NOT match",
        severity=dg.AssetCheckSeverity.WARN,
        extra={"published_rows": dg.MetadataValue.int(int(total))},
    )
    return result


SQL_CHECKS = (
    SqlCheck.of(
        one_row_per_kpi_and_year,
        KPI_YEARLY,
        (REFRESH_CONTEXT,),
        "每个指标每年一行 — exactly one row per (kpi_code, year): every KPI, every year.",
        blocking=True,
        partitions_def=DISTRICTS,
    ),
    SqlCheck.of(
        ratios_between_zero_and_one,
        KPI_YEARLY,
        (REFRESH_CONTEXT,),
        "比率在0到1之间 — ratios (and their projections) lie in [0, 1].",
        blocking=True,
        partitions_def=DISTRICTS,
    ),
    SqlCheck.of(
        required_values_present,
        KPI_YEARLY,
        (REFRESH_CONTEXT,),
        "必填值不为空 — no nulls where the marts contract allows none.",
        blocking=True,
        partitions_def=DISTRICTS,
    ),
    SqlCheck.of(
        streets_sum_to_district,
        KPI_BY_STREET,
        (
            KPI_YEARLY,
            REFRESH_CONTEXT,
        ),
        "各镇街合计等于全区 — for additive KPIs (counts, sums) the streets add "
        "up to the district figure.",
        blocking=True,
        partitions_def=DISTRICTS,
    ),
    SqlCheck.of(
        published_figures_matched,
        RECONCILIATION,
        (REFRESH_CONTEXT,),
        "与已发布数据一致 — every published figure lies within its bounds. A "
        "mismatch warns: it is a question for the analyst, not a reason to publish nothing.",
        blocking=False,
        partitions_def=DISTRICTS,
    ),
)

# the marts' checks in one step: the SQL checks above and the marts' Great Expectations
# suites (blocking ones keep the warehouse from being published)
mart_checks = layer_checks(
    "mart_checks",
    "指标表检查 — the marts' checks: shape, ranges, consistency, the published report, and "
    "their Great Expectations suites",
    [s for s in load_suites() if s.table.startswith("marts.")],
    SQL_CHECKS,
)
