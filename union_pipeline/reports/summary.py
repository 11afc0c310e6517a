"""The work summary draft (工作总结数据): the marts' figures in the annual report's own words.

For the last complete year and the current year to its as-of date, a paragraph per domain
(theme.yaml's sections), each sentence written by the KPI's `writing` in assets/kpis.yaml
(16.7169万人次, 1054余万元, 6.8132亿元, 60.77%, 较去年增加9909人次，同比增长6.3%), against
the year's target; then 数据研判: targets at risk with the pace they need, the streets,
unusual changes and the rows quarantined per source. Every figure comes from the marts
(staging.quarantine: counts only), and every sentence is a record of its text, KPI codes
and values, listed in the KPI workbook. Written as a 公文-style .docx with python-docx and
as the briefing's first text page. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd

from union_pipeline.ingest.specs import load_specs
from union_pipeline.kpis import Kpi
from union_pipeline.kpis.catalogue import Figure, writing_of
from union_pipeline.reports.data import ReportData
from union_pipeline.reports.data import flag as _bool
from union_pipeline.reports.data import number as _num
from union_pipeline.reports.figures import section_of
from union_pipeline.reports.privacy import street_values
from union_pipeline.reports.theme import Theme

ANALYSIS = "analysis"
SCALES = {"count": Decimal(1), "万": Decimal(10) ** 4, "亿": Decimal(10) ** 8}
MILLION = Decimal(10) ** 6
TOP_RULES = 3  # rules named per source in 数据研判
MAX_STREETS = 4  # lagging streets named in a sentence; more: "…等N个镇街"


# ---------------------------------------------------------------------------- numbers


def _decimal(value: float | int | Decimal) -> Decimal:
    """The float as its shortest decimal (10545020.0 -> 10545020): what was stored."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def _plain(number: Decimal, strip: bool) -> str:
    """Digits without exponent; trailing zeros after the point dropped when `strip`."""
    text = f"{number:f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def write_figure(value: float, figure: Figure, lang: str = "zh", money: bool = False) -> str:
    """A figure as the report writes it: 16.7169万人次, 1054余万元, 6.8132亿元, 60.77%, 4000余人次.

    Chinese: the figure over 1, 10^4 or 10^8 (`number`) at `decimals` places, rounded half
    up, or cut down to a multiple of `step` with 余 when something was cut (`down_yu`).
    English: counts with thousands separators, money in millions (2 places), no 余.
    """
    number = _decimal(value)
    if figure.number == "percent":
        quantum = Decimal(1).scaleb(-figure.decimals)
        shown = (number * 100).quantize(quantum, rounding=ROUND_HALF_UP)
        return f"{_plain(shown, False)}%"
    if lang == "en":
        unit = f" {figure.unit_en}" if figure.unit_en else ""
        if money:
            shown = (number / MILLION).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            return f"{shown:,.2f} million{unit}"
        places = figure.decimals if figure.number == "count" else 0
        shown = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return f"{shown:,f}{unit}"
    scaled = number / SCALES[figure.number]
    quantum = Decimal(1).scaleb(-figure.decimals)
    cut = False
    if figure.rounding == "down_yu":
        step = quantum * figure.step
        shown = (scaled / step).to_integral_value(rounding=ROUND_DOWN) * step
        cut = shown != scaled
        shown = shown.quantize(quantum)
    else:
        shown = scaled.quantize(quantum, rounding=ROUND_HALF_UP)
    word = "" if figure.number == "count" else figure.number
    text = _plain(shown, strip=figure.number != "count")
    return f"{text}{'余' if cut else ''}{word}{figure.unit_zh}"


def write_percent(value: float, decimals: int = 1) -> str:
    """A share as a percentage at `decimals` places, rounded half up, without the sign: 6.3."""
    quantum = Decimal(1).scaleb(-decimals)
    return _plain((abs(_decimal(value)) * 100).quantize(quantum, rounding=ROUND_HALF_UP), False)


def write_change(
    change: float | None,
    pct: float | None,
    figure: Figure,
    theme: Theme,
    *,
    ratio: bool = False,
    same_date: bool = False,
    money: bool = False,
) -> str | None:
    """较去年增加9909人次，同比增长6.3% / 较去年同期减少…，同比下降… / 较去年提高1.23个百分点."""
    if _num(change) is None:
        return None
    base = theme.t("sd_base_same_date" if same_date else "sd_base_year")
    if ratio:
        points = write_percent(change, 2)
        if Decimal(points) == 0:
            return theme.t("sd_yoy_flat", base=base)
        key = "sd_pp_up" if change > 0 else "sd_pp_down"
        return theme.t(key, base=base, pp=points)
    amount = write_figure(abs(change), figure, theme.lang, money)
    if not any(ch.isdigit() and ch != "0" for ch in amount):
        return theme.t("sd_yoy_flat", base=base)
    parts = [theme.t("sd_yoy_up" if change > 0 else "sd_yoy_down", base=base, change=amount)]
    if _num(pct) is not None:
        parts.append(theme.t("sd_pct_up" if pct >= 0 else "sd_pct_down", pct=write_percent(pct)))
    return theme.t("sd_clause").join(parts)


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Sentence:
    """One sentence of the draft and what it says: the KPI codes and the values behind it."""

    part: str  # the year's heading, or 数据研判
    section: str  # theme section key, or "analysis"
    text: str
    codes: tuple[str, ...]
    values: tuple[tuple[str, float], ...]  # ("mutual_aid_enrollments.actual", 167169.0)


@dataclass(frozen=True)
class Paragraph:
    heading: str
    sentences: list[Sentence]
    joiner: str = ""  # between sentences: nothing in Chinese, a space in English

    @property
    def text(self) -> str:
        return self.joiner.join(s.text for s in self.sentences)


@dataclass(frozen=True)
class Part:
    heading: str
    paragraphs: list[Paragraph]


@dataclass(frozen=True)
class Summary:
    title: str
    subtitle: str
    note: str
    as_of: dt.date
    lang: str
    parts: list[Part] = field(default_factory=list)

    @property
    def sentences(self) -> list[Sentence]:
        return [s for part in self.parts for p in part.paragraphs for s in p.sentences]

    @property
    def text(self) -> str:
        return "\n".join(p.text for part in self.parts for p in part.paragraphs)


class _Values:
    """The values a sentence is built from, recorded as they are used."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.values: list[tuple[str, float]] = []

    def code(self, code: str) -> None:
        if code not in self.codes:
            self.codes.append(code)

    def add(self, name: str, value: float | None) -> float | None:
        if value is not None:
            self.values.append((name, float(value)))
        return value


# ---------------------------------------------------------------------------- quarantine


def read_quarantine_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """Rows held back per source and rule (counts only, never a row's values); None without
    staging.quarantine."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'staging' AND table_name = 'quarantine'"
    ).fetchall()[0][0]
    if not found:
        return None
    return con.execute(
        "SELECT source, rule, count(*) AS rows FROM staging.quarantine GROUP BY ALL "
        "ORDER BY source, rows DESC, rule"
    ).df()


# ---------------------------------------------------------------------------- the builder


class _Builder:
    def __init__(self, data: ReportData, theme: Theme, quarantine: pd.DataFrame | None):
        self.data, self.theme, self.quarantine = data, theme, quarantine
        self.lang = theme.lang
        self.kpis = {k.code: k for k in data.reported}
        self.joiner = "" if self.lang == "zh" else " "

    # -------------------------------------------------------------- small helpers
    def row(self, code: str, year: int) -> pd.Series | None:
        rows = self.data.series(code)
        rows = rows[rows["year"] == year]
        return None if rows.empty else rows.iloc[0]

    def figure(self, kpi: Kpi, rounding_free: bool = False) -> Figure:
        figure = writing_of(kpi).figure
        if rounding_free and figure.rounding != "half_up":
            figure = Figure(**{**figure.__dict__, "rounding": "half_up", "step": 1})
        return figure

    def change_figure(self, kpi: Kpi) -> Figure:
        change = writing_of(kpi).change
        if self.lang == "en" and not change.unit_en:
            change = Figure(**{**change.__dict__, "unit_en": self.figure(kpi).unit_en})
        return change

    def write(self, kpi: Kpi, value: float, exact: bool = False) -> str:
        """The KPI's figure; `exact`: rounded half up even where the report writes 余."""
        return write_figure(value, self.figure(kpi, exact), self.lang, kpi.unit == "元")

    def name(self, kpi: Kpi) -> str:
        return self.theme.kpi_name(kpi)

    def period(self, year: int) -> str:
        if year == self.data.as_of_year and not self.data.is_complete:
            return self.theme.period(year, self.data.as_of, "flow")
        return self.theme.year(year)

    def sentence_end(self, text: str) -> str:
        text = text.strip()
        if self.lang == "en":
            text = text[:1].upper() + text[1:]
        return text + self.theme.t("sd_end")

    def join(self, items: Iterable[str]) -> str:
        return self.theme.t("sd_list_sep").join(items)

    # -------------------------------------------------------------- years
    def years(self) -> list[int]:
        year = self.data.as_of_year
        years = [year] if self.data.is_complete else [year - 1, year]
        return [y for y in years if y >= self.data.first_year]

    def year_part(self, year: int, number: int) -> Part:
        heading = self.theme.t(
            "sd_part",
            n=self.numeral(number),
            title=self.theme.t("sd_year_title", period=self.period(year)),
        )
        written = {c for k in self.kpis.values() for c in writing_of(k).others(self.lang)}
        paragraphs = []
        for section in self.theme.sections:
            codes = [
                k
                for k in self.kpis.values()
                if section_of(k.code, self.theme) == section["key"] and k.code not in written
            ]
            sentences = []
            for kpi in codes:
                sentence = self.kpi_sentence(kpi, year, heading, section["key"], not sentences)
                if sentence is not None:
                    sentences.append(sentence)
            if sentences:
                title = self.theme.t(
                    "sd_section",
                    n=self.numeral(len(paragraphs) + 1),
                    title=self.theme.section_name(section),
                )
                paragraphs.append(Paragraph(title, sentences, self.joiner))
        return Part(heading, paragraphs)

    def numeral(self, n: int) -> str:
        numerals = self.theme.t("sd_numerals")
        return numerals[n - 1] if n <= len(numerals) else str(n)

    def kpi_sentence(
        self, kpi: Kpi, year: int, part: str, section: str, first: bool
    ) -> Sentence | None:
        row = self.row(kpi.code, year)
        actual = None if row is None else _num(row["actual"])
        if actual is None:
            return None
        writing = writing_of(kpi)
        record = _Values()
        record.code(kpi.code)
        record.add(f"{kpi.code}.actual", actual)
        fields = {"value": self.write(kpi, actual), "yoy": ""}
        complete = bool(_bool(row["is_complete_year"]))
        change = write_change(
            _num(row["yoy_change"]),
            _num(row["yoy_pct"]),
            self.change_figure(kpi),
            self.theme,
            ratio=kpi.is_ratio,
            same_date=not complete,
            money=kpi.unit == "元",
        )
        if change and "yoy" in writing.placeholders(self.lang):
            record.add(f"{kpi.code}.prior_actual", _num(row["prior_actual"]))
            record.add(f"{kpi.code}.yoy_change", _num(row["yoy_change"]))
            record.add(f"{kpi.code}.yoy_pct", _num(row["yoy_pct"]))
            fields["yoy"] = self.theme.t("sd_clause") + change
        others = [self.kpis.get(code) for code in writing.others(self.lang)]
        for other in others:
            if other is None:
                continue
            other_row = self.row(other.code, year)
            value = None if other_row is None else _num(other_row["actual"])
            record.code(other.code)
            record.add(f"{other.code}.actual", value)
            fields[other.code] = "—" if value is None else self.write(other, value)
        for code in writing.others(self.lang):
            fields.setdefault(code, "—")
        template = writing.zh if self.lang == "zh" else writing.en
        text = template.format(**fields)
        clauses = [
            c.strip()
            for k in [kpi, *[o for o in others if o is not None]]
            if (c := self.target_clause(k, year, record, own=k is kpi))
        ]
        if clauses:
            text += self.theme.t("sd_clause") + self.theme.t("sd_clause").join(clauses)
        if first:
            text = self.theme.t("sd_lead", period=self.period(year)) + text
        return Sentence(
            part, section, self.sentence_end(text), tuple(record.codes), tuple(record.values)
        )

    # -------------------------------------------------------------- targets
    def target_text(self, kpi: Kpi, value: float) -> str:
        return self.write(kpi, value, exact=True)

    def target_clause(self, kpi: Kpi, year: int, record: _Values, own: bool) -> str | None:
        row = self.row(kpi.code, year)
        target = None if row is None else _num(row["target"])
        if target is None:
            return None
        record.add(f"{kpi.code}.target", target)
        name = "" if own else self.name(kpi)
        shown = self.target_text(kpi, target)
        if bool(_bool(row["is_complete_year"])):
            met = _bool(row["target_met"])
            if met is None:
                return self.theme.t("sd_target_set", name=name, target=shown)
            if met:
                return self.theme.t("sd_target_met", name=name, target=shown)
            actual = _num(row["actual"]) or 0.0
            gap = abs(target - actual)
            record.add(f"{kpi.code}.gap", gap)
            clause = self.theme.t(
                "sd_target_missed", name=name, target=shown, gap=self.gap_text(kpi, gap)
            )
            return self.with_lagging(clause, kpi, year, row, target, record)
        on_track = _bool(row["on_track"])
        if on_track is None:
            return self.theme.t("sd_target_set", name=name, target=shown)
        if on_track:
            return self.theme.t("sd_target_on_track", name=name, target=shown)
        projection = _num(row["projected_year_end"])
        record.add(f"{kpi.code}.projected_year_end", projection)
        clause = self.theme.t(
            "sd_target_off_track",
            name=name,
            target=shown,
            projection="—" if projection is None else self.target_text(kpi, projection),
        )
        return self.with_lagging(clause, kpi, year, row, target, record)

    def gap_text(self, kpi: Kpi, gap: float) -> str:
        if kpi.is_ratio:
            return write_percent(gap, 2) + self.theme.t("pp")
        return self.target_text(kpi, gap)

    def with_lagging(self, clause, kpi, year, row, target, record) -> str:
        streets, shown = self.lagging_streets(kpi, year, row, target)
        if not streets:
            return clause
        record.add(f"{kpi.code}.streets_lagging", len(streets))
        if len(streets) == shown:
            lagging = self.theme.t("sd_lagging_all")
        elif len(streets) > MAX_STREETS:
            named = self.join(streets[:MAX_STREETS])
            lagging = self.theme.t("sd_lagging_many", streets=named, n=len(streets))
        else:
            lagging = self.theme.t("sd_lagging", streets=self.join(streets))
        return clause + self.theme.t("sd_clause") + lagging

    def shown_streets(self, kpi: Kpi, year: int) -> pd.DataFrame:
        """street, value of the streets whose figure may be shown (not "<5")."""
        if not kpi.has_street:
            return pd.DataFrame(columns=["street", "value"])
        values = street_values(
            self.data.by_street,
            self.data.catalogue,
            kpi.code,
            year,
            self.theme.min_persons,
            self.theme.is_persons_unit,
        )
        return values[~values["suppressed"]][["street", "value"]].dropna()

    def lagging_streets(
        self, kpi: Kpi, year: int, row: pd.Series, target: float
    ) -> tuple[list[str], int]:
        """(streets behind the district's target, furthest first; streets shown): a rate
        below it; a count whose pace falls short of its share of the target (the target
        split by last year's street shares; this year's value scaled to the year end as the
        district's projection is). Streets shown as "<5" are never named."""
        shown = self.shown_streets(kpi, year)
        if shown.empty:
            return [], 0
        below = (lambda a, b: a < b) if row["comparator"] != "<=" else (lambda a, b: a > b)
        if kpi.is_ratio:
            lag = shown[[below(v, target) for v in shown["value"]]]
            ordered = lag.sort_values("value", ascending=row["comparator"] != "<=")
            return list(ordered["street"]), len(shown)
        by_street = self.data.by_street
        prior = by_street[(by_street["kpi_code"] == kpi.code) & (by_street["year"] == year - 1)]
        prior_total = float(prior["actual"].sum())
        if prior.empty or prior_total <= 0:
            return [], len(shown)
        scale = 1.0
        if not bool(_bool(row["is_complete_year"])):
            actual, projected = _num(row["actual"]), _num(row["projected_year_end"])
            if not actual or projected is None:
                return [], len(shown)
            scale = projected / actual
        shares = dict(zip(prior["street"], prior["actual"] / prior_total, strict=True))
        gaps = []
        for street, value in shown.itertuples(index=False):
            expected = target * shares.get(street, 0.0)
            if expected > 0 and below(value * scale, expected):
                gaps.append((value * scale / expected, street))
        return [street for _, street in sorted(gaps)], len(shown)

    # -------------------------------------------------------------- 数据研判
    def analysis_part(self, number: int) -> Part:
        heading = self.theme.t("sd_part", n=self.numeral(number), title=self.theme.t("sd_analysis"))
        groups = [
            ("sd_a_targets", [*self.targets_at_risk(heading), *self.targets_missed(heading)]),
            ("sd_a_streets", self.street_extremes(heading)),
            ("sd_a_changes", self.unusual_changes(heading)),
            ("sd_a_quality", self.quarantine_sentences(heading)),
        ]
        paragraphs = []
        for key, sentences in groups:
            if sentences:
                n = self.numeral(len(paragraphs) + 1)
                title = self.theme.t("sd_section", n=n, title=self.theme.t(key))
                paragraphs.append(Paragraph(title, sentences, self.joiner))
        if not paragraphs:
            nothing = Sentence(heading, ANALYSIS, self.theme.t("sd_nothing"), (), ())
            paragraphs.append(Paragraph("", [nothing], self.joiner))
        return Part(heading, paragraphs)

    def months(self) -> tuple[Decimal, Decimal]:
        """(months elapsed, months left) of the as-of year, by days within the month."""
        as_of = self.data.as_of
        next_month = (as_of.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        days_in_month = (next_month - as_of.replace(day=1)).days
        elapsed = Decimal(as_of.month - 1) + Decimal(as_of.day) / Decimal(days_in_month)
        elapsed = elapsed.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        return elapsed, Decimal(12) - elapsed

    def targets_at_risk(self, part: str) -> list[Sentence]:
        if self.data.is_complete:
            return []
        year = self.data.as_of_year
        elapsed, left = self.months()
        out = []
        for kpi in self.kpis.values():
            row = self.row(kpi.code, year)
            if row is None or _bool(row["on_track"]) is not False:
                continue
            target, actual = _num(row["target"]), _num(row["actual"])
            if target is None or actual is None or left <= 0 or elapsed <= 0:
                continue
            record = _Values()
            record.code(kpi.code)
            gap = abs(target - actual)
            pace = gap / float(left)
            start = 0.0
            if kpi.kind != "flow":  # a level: this year's progress is from last year's end
                previous = self.row(kpi.code, year - 1)
                start = (_num(previous["actual"]) if previous is not None else None) or 0.0
            current = (actual - start) / float(elapsed)
            for name, value in (
                ("target", target),
                ("actual", actual),
                ("gap", gap),
                ("months_left", float(left)),
                ("pace_needed", pace),
                ("pace_so_far", current),
            ):
                record.add(f"{kpi.code}.{name}", value)
            common = {
                "name": self.name(kpi),
                "target": self.target_text(kpi, target),
                "date": self.theme.date(self.data.as_of),
                "actual": self.target_text(kpi, actual),
                "months": _plain(left, True),
            }
            if kpi.is_ratio:
                text = self.theme.t(
                    "sd_at_risk_rate",
                    **common,
                    gap=write_percent(gap, 2),
                    pace=write_percent(pace, 2),
                    current=("-" if current < 0 else "") + write_percent(current, 2),
                )
            else:
                share = write_percent(actual / target, 1) if target else "—"
                text = self.theme.t(
                    "sd_at_risk",
                    **common,
                    share=share,
                    gap=self.target_text(kpi, gap),
                    pace=self.target_text(kpi, pace),
                    current=("-" if current < 0 else "") + self.target_text(kpi, abs(current)),
                )
            out.append(Sentence(part, ANALYSIS, text, tuple(record.codes), tuple(record.values)))
        return out

    def targets_missed(self, part: str) -> list[Sentence]:
        year = self.data.as_of_year if self.data.is_complete else self.data.as_of_year - 1
        out = []
        for kpi in self.kpis.values():
            row = self.row(kpi.code, year)
            if row is None or _bool(row["target_met"]) is not False:
                continue
            target, actual = _num(row["target"]), _num(row["actual"])
            if target is None or actual is None:
                continue
            record = _Values()
            record.code(kpi.code)
            gap = abs(target - actual)
            for name, value in (("target", target), ("actual", actual), ("gap", gap)):
                record.add(f"{kpi.code}.{name}", value)
            text = self.theme.t(
                "sd_missed_rate" if kpi.is_ratio else "sd_missed",
                period=self.period(year),
                name=self.name(kpi),
                target=self.target_text(kpi, target),
                actual=self.target_text(kpi, actual),
                gap=write_percent(gap, 2) if kpi.is_ratio else self.target_text(kpi, gap),
            )
            out.append(Sentence(part, ANALYSIS, text, tuple(record.codes), tuple(record.values)))
        return out

    def street_extremes(self, part: str) -> list[Sentence]:
        """The strongest and weakest street on each rate (comparable across street sizes)."""
        year = self.data.as_of_year
        out = []
        for kpi in self.kpis.values():
            if not kpi.is_ratio:
                continue
            shown = self.shown_streets(kpi, year).sort_values("value")
            if len(shown) < 2:
                continue
            worst, best = shown.iloc[0], shown.iloc[-1]
            record = _Values()
            record.code(kpi.code)
            record.add(f"{kpi.code}.{best['street']}", best["value"])
            record.add(f"{kpi.code}.{worst['street']}", worst["value"])
            text = self.theme.t(
                "sd_streets",
                period=self.period(year),
                name=self.name(kpi),
                best=best["street"],
                best_value=self.write(kpi, best["value"]),
                worst=worst["street"],
                worst_value=self.write(kpi, worst["value"]),
            )
            out.append(Sentence(part, ANALYSIS, text, tuple(record.codes), tuple(record.values)))
        return out

    def unusual_changes(self, part: str) -> list[Sentence]:
        """This year's changes on last year's (to the same date) beyond the KPI's
        `unusual_change`; a cumulative KPI only grows, so it is left out."""
        out = []
        for year in self.years()[-1:]:
            for kpi in self.kpis.values():
                row = self.row(kpi.code, year)
                if row is None or kpi.kind == "cumulative":
                    continue
                change, pct = _num(row["yoy_change"]), _num(row["yoy_pct"])
                measure = change if kpi.is_ratio else pct
                if measure is None or abs(measure) < writing_of(kpi).unusual_change:
                    continue
                record = _Values()
                record.code(kpi.code)
                record.add(f"{kpi.code}.actual", _num(row["actual"]))
                record.add(f"{kpi.code}.prior_actual", _num(row["prior_actual"]))
                record.add(f"{kpi.code}.yoy_change", change)
                record.add(f"{kpi.code}.yoy_pct", pct)
                written = write_change(
                    change,
                    pct,
                    self.change_figure(kpi),
                    self.theme,
                    ratio=kpi.is_ratio,
                    same_date=not bool(_bool(row["is_complete_year"])),
                    money=kpi.unit == "元",
                )
                text = self.theme.t(
                    "sd_unusual", period=self.period(year), name=self.name(kpi), change=written
                )
                out.append(
                    Sentence(part, ANALYSIS, text, tuple(record.codes), tuple(record.values))
                )
        return out

    def quarantine_sentences(self, part: str) -> list[Sentence]:
        if self.quarantine is None:
            return []
        counts = self.quarantine
        if counts.empty:
            return [Sentence(part, ANALYSIS, self.theme.t("sd_quarantine_none"), (), ())]
        from union_pipeline.reports.problems import load_rules  # it imports the workbook

        specs, rules = load_specs(), load_rules()
        out = []
        for source, rows in counts.groupby("source", sort=False):
            spec = specs.get(str(source))
            title = str(source)
            if spec is not None:
                title = spec.title_zh if self.lang == "zh" else spec.title_en
            total = int(rows["rows"].sum())
            top = rows.sort_values(["rows", "rule"], ascending=[False, True]).head(TOP_RULES)
            named = [
                self.theme.t(
                    "sd_quarantine_rule",
                    rule=rules.get(rule, {}).get(self.lang, rule),
                    rows=int(n),
                )
                for rule, n in top[["rule", "rows"]].itertuples(index=False)
            ]
            affected = self.affected(str(source))
            record = _Values()
            for kpi in affected:
                record.code(kpi.code)
            record.add(f"quarantine.{source}", total)
            for rule, n in top[["rule", "rows"]].itertuples(index=False):
                record.add(f"quarantine.{source}.{rule}", n)
            text = self.theme.t(
                "sd_quarantine",
                source=title,
                rows=total,
                rules=self.join(named),
                kpis=self.join(self.name(k) for k in affected[:3]) or "—",
            )
            out.append(Sentence(part, ANALYSIS, text, tuple(record.codes), tuple(record.values)))
        return out

    def affected(self, source: str) -> list[Kpi]:
        """The KPIs whose rows read the source's staging table (from their SQL)."""
        table = f"staging.{source}"
        direct = [k for k in self.data.catalogue if k.rows and table in k.rows]
        codes = {k.code for k in direct}
        ratios = [
            k for k in self.data.catalogue if k.is_ratio and ({k.numerator, k.denominator} & codes)
        ]
        codes |= {k.code for k in ratios}
        return [k for k in self.kpis.values() if k.code in codes]

    # -------------------------------------------------------------- all of it
    def build(self) -> Summary:
        years = self.years()
        parts = [self.year_part(year, i) for i, year in enumerate(years, start=1)]
        parts.append(self.analysis_part(len(parts) + 1))
        return Summary(
            title=self.theme.t("sd_title"),
            subtitle=self.theme.t(
                "sd_subtitle", org=self.theme.organisation, date=self.theme.date(self.data.as_of)
            ),
            note=self.theme.t("sd_note"),
            as_of=self.data.as_of,
            lang=self.lang,
            parts=parts,
        )


def build_summary(
    data: ReportData, theme: Theme, quarantine: pd.DataFrame | None = None
) -> Summary:
    """The draft from the marts (`read_report_data`) and the quarantine's counts
    (`read_quarantine_counts`; None: no data-quality sentences)."""
    return _Builder(data, theme, quarantine).build()


def sentence_rows(summary: Summary) -> list[dict]:
    """Each sentence as a row: part, section, text, KPI codes, values (name = value)."""
    return [
        {
            "part": s.part,
            "section": s.section,
            "text": s.text,
            "codes": list(s.codes),
            "values": {name: value for name, value in s.values},
        }
        for s in summary.sentences
    ]


# ---------------------------------------------------------------------------- the .docx


def summary_path(export_root: Path, as_of: dt.date, theme: Theme) -> Path:
    """`export_root`/工作总结数据-<as-of>.docx, beside the KPI workbook."""
    return Path(export_root) / f"{theme.t('sd_file')}-{as_of.isoformat()}.docx"


BODY_FONT = "仿宋"  # FangSong: 公文 body (GB/T 9704)
HEADING_FONT = "黑体"  # SimHei
BODY_PT = 16  # 三号
TITLE_PT = 22  # 二号
LINE_PT = 28  # fixed line spacing: 22 lines a page


def _fonts(element, name: str) -> None:
    """Every script of a run or style in one font: East Asian text too (w:eastAsia)."""
    from docx.oxml.ns import qn

    r_pr = element.get_or_add_rPr()
    fonts = r_pr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = r_pr.makeelement(qn("w:rFonts"), {})
        r_pr.insert(0, fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), name)


def _page_field(paragraph) -> None:
    """The page number as a PAGE field, between dashes: — 1 —."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    paragraph.add_run("— ")
    run = paragraph.add_run()
    for kind, text in (("begin", None), (None, " PAGE "), ("separate", None), (None, "1")):
        if kind is not None:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), kind)
        elif text.strip() == "PAGE":
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = text
        else:
            element = OxmlElement("w:t")
            element.text = text
        run._r.append(element)
    end = OxmlElement("w:fldChar")
    end.set(qn("w:fldCharType"), "end")
    run._r.append(end)
    paragraph.add_run(" —")


def write_summary_docx(summary: Summary, path: Path) -> Path:
    """The draft as a .docx in 公文 layout: A4, 仿宋 三号 body, 黑体 headings, page numbers."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
    from docx.shared import Mm, Pt

    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)

    normal = document.styles["Normal"]
    normal.font.size = Pt(BODY_PT)
    _fonts(normal.element, BODY_FONT)
    normal.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    normal.paragraph_format.line_spacing = Pt(LINE_PT)
    normal.paragraph_format.space_after = Pt(0)
    for level in (1, 2):
        style = document.styles[f"Heading {level}"]
        style.font.size = Pt(BODY_PT)
        style.font.bold = False
        style.font.color.rgb = None
        _fonts(style.element, HEADING_FONT)
        style.paragraph_format.space_before = Pt(0)
        style.paragraph_format.space_after = Pt(0)
        style.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        style.paragraph_format.line_spacing = Pt(LINE_PT)
        style.paragraph_format.first_line_indent = Pt(2 * BODY_PT)
    title_style = document.styles["Title"]
    title_style.font.size = Pt(TITLE_PT)
    title_style.font.color.rgb = None
    _fonts(title_style.element, HEADING_FONT)

    title = document.add_paragraph(summary.title, style="Title")
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    subtitle = document.add_paragraph(summary.subtitle)
    subtitle.alignment = WD_ALIGN_PARAGRAPH.CENTER
    note = document.add_paragraph(summary.note)
    note.paragraph_format.first_line_indent = Pt(2 * BODY_PT)
    for part in summary.parts:
        document.add_heading(part.heading, level=1)
        for paragraph in part.paragraphs:
            if paragraph.heading:
                document.add_heading(paragraph.heading, level=2)
            body = document.add_paragraph(paragraph.text)
            body.paragraph_format.first_line_indent = Pt(2 * BODY_PT)
            body.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY

    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _page_field(footer)
    for run in footer.runs:
        run.font.size = Pt(14)  # 四号
        _fonts(run._r, "宋体")

    document.core_properties.title = f"{summary.title} {summary.as_of.isoformat()}"
    document.core_properties.language = "zh-CN" if summary.lang == "zh" else "en"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    document.save(str(partial))
    partial.replace(path)
    return path


# ---------------------------------------------------------------------------- briefing page


def summary_html(summary: Summary, font_family: str) -> str:
    """The draft as the briefing's text page(s): HTML that the print paginates."""
    from html import escape

    blocks = [
        f"<h1>{escape(summary.title)}</h1>",
        f'<p class="sub">{escape(summary.subtitle)}</p>',
    ]
    for part in summary.parts:
        blocks.append(f"<h2>{escape(part.heading)}</h2>")
        for paragraph in part.paragraphs:
            heading = f"<b>{escape(paragraph.heading)}</b>" if paragraph.heading else ""
            blocks.append(f"<p>{heading}{escape(paragraph.text)}</p>")
    return (
        f'<div class="text" style="font-family: {escape(font_family)}">'
        + "".join(blocks)
        + "</div>"
    )
