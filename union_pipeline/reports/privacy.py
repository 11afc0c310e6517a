"""Small-cell suppression of street-level figures: fewer than 5 persons is shown as "<5".

A street figure is suppressed when any count of persons behind it is below the threshold:
its own `persons` (distinct persons, from marts.kpi_by_street), or — where the mart has no
persons — its value when the unit counts persons (人, 人次). A ratio is also suppressed
when its numerator or its denominator counts too few persons, or when the complement
(denominator - numerator: e.g. the members not collected) is 1 to 4 persons, since a rate
of 98.5% over 200 members would otherwise point at 3 of them. A suppressed value never
leaves this module: the figures get None and the label "<5".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from union_pipeline.kpis import Kpi

SUPPRESSED_LABEL = "<5"


def _counts(by_street: pd.DataFrame, kpi: Kpi | None, year: int, persons_unit) -> pd.Series:
    """Persons behind each street's value of `kpi` (NaN where unknown), indexed by street."""
    if kpi is None:
        return pd.Series(dtype=float)
    rows = by_street[(by_street["kpi_code"] == kpi.code) & (by_street["year"] == year)]
    rows = rows.set_index("street")
    counts = rows["persons"].astype(float)
    if not kpi.is_ratio and persons_unit(kpi.unit):
        counts = counts.fillna(rows["actual"].astype(float))
    return counts


def street_values(
    by_street: pd.DataFrame,
    catalogue: list[Kpi],
    code: str,
    year: int,
    min_persons: int,
    persons_unit,
) -> pd.DataFrame:
    """One KPI's street values in `year`: street, value (NaN when suppressed), suppressed.

    persons_unit(unit) -> bool says whether a KPI unit counts persons (theme.yaml units).
    """
    by_code = {k.code: k for k in catalogue}
    kpi = by_code.get(code)
    rows = by_street[(by_street["kpi_code"] == code) & (by_street["year"] == year)]
    out = pd.DataFrame(
        {
            "street": rows["street"].to_numpy(),
            "value": rows["actual"].astype(float).to_numpy(),
        }
    ).set_index("street")
    checks = [_counts(by_street, kpi, year, persons_unit)]
    if kpi is not None and kpi.is_ratio:
        num_kpi, den_kpi = by_code.get(kpi.numerator), by_code.get(kpi.denominator)
        num = _counts(by_street, num_kpi, year, persons_unit).reindex(out.index)
        den = _counts(by_street, den_kpi, year, persons_unit).reindex(out.index)
        if den_kpi is not None and persons_unit(den_kpi.unit):
            # a helper denominator (reported: false) is not in the mart: numerator / rate
            with np.errstate(divide="ignore", invalid="ignore"):
                derived = num / out["value"].where(out["value"] > 0)
            den = den.fillna(derived.round())
        else:
            den = pd.Series(np.nan, index=out.index)
        # the complement (e.g. members not collected) counts persons too; 0 or less (all
        # collected, or a rate above 100%) points at nobody
        complement = (den - num).where(lambda n: n >= 1)
        checks += [num, den, complement]
    small = pd.Series(False, index=out.index)
    for counts in checks:
        counts = counts.reindex(out.index)
        small |= counts.notna() & (counts < min_persons)
    out["suppressed"] = small
    out.loc[small, "value"] = np.nan
    return out.reset_index()
