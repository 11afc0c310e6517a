"""The one chart theme (assets/theme.yaml): colours, fonts, number formats, labels zh/en."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import yaml

from union_pipeline.settings import ASSETS_DIR, report_lang
from union_pipeline.yamlfile import load_yaml

DEFAULT_THEME = ASSETS_DIR / "theme.yaml"
LANGS = ("zh", "en")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ThemeError(ValueError):
    """assets/theme.yaml or UNION_LANG is malformed; the message names the field."""


def current_lang() -> str:
    """UNION_LANG: zh (default) or en, read at call time."""
    lang = report_lang()
    if lang not in LANGS:
        raise ThemeError(f"UNION_LANG={lang!r}: expected one of {list(LANGS)}")
    return lang


@dataclass(frozen=True)
class MoneyUnit:
    divisor: float
    decimals: int
    label: str


@dataclass(frozen=True)
class Theme:
    lang: str
    doc: dict

    # ------------------------------------------------------------------ raw sections
    @property
    def colors(self) -> dict[str, str]:
        return self.doc["colors"]

    @property
    def font(self) -> dict:
        return self.doc["font"]

    @property
    def page(self) -> dict:
        return self.doc["page"]

    @property
    def dashboard(self) -> dict:
        return self.doc["dashboard"]

    @property
    def min_persons(self) -> int:
        return int(self.doc["suppression"]["min_persons"])

    @property
    def sections(self) -> list[dict]:
        return self.doc["sections"]

    @property
    def organisation(self) -> str:
        """The federation the reports are of: the district's (or the city's), by name."""
        from union_pipeline import districts

        place = self.doc.get("_place")
        if place is None:
            found = districts.district(districts.default_district())
            place = {"name": found.name, "name_en": found.name_en}
        return self.doc["organisation"][self.lang].format(**place)

    def of(self, district: str | None) -> Theme:
        """This theme for the reports of `district` (None: the city's)."""
        from union_pipeline import districts

        found = districts.load_city() if district is None else districts.district(district)
        place = {"name": found.name, "name_en": found.name_en}
        return dataclasses.replace(self, doc={**self.doc, "_place": place})

    # ------------------------------------------------------------------ labels
    def t(self, key: str, **values) -> str:
        """The label `key` in the current language, with {placeholders} filled."""
        try:
            text = self.doc["labels"][self.lang][key]
        except KeyError as err:
            raise ThemeError(f"theme.yaml: labels.{self.lang}.{key} is missing") from err
        return text.format(**values) if values else text

    def kpi_name(self, kpi) -> str:
        return kpi.name_zh if self.lang == "zh" else kpi.name_en

    def section_name(self, section: dict) -> str:
        return section[self.lang]

    def programme(self, name: str) -> str:
        if self.lang == "zh":
            return name
        return self.doc.get("programmes", {}).get(name, name)

    @property
    def comma(self) -> str:
        return "，" if self.lang == "zh" else ", "

    def join(self, parts) -> str:
        """Clauses joined: 甲；乙 / a; b."""
        return ("；" if self.lang == "zh" else "; ").join(parts)

    def paren(self, text: str) -> str:
        return f"（{text}）" if self.lang == "zh" else f" ({text})"

    # ------------------------------------------------------------------ dates
    def _date_parts(self, d: dt.date) -> dict:
        return {"y": d.year, "m": d.month, "d": d.day, "mon": MONTHS_EN[d.month - 1]}

    def date(self, d: dt.date) -> str:
        return self.t("date", **self._date_parts(d))

    def month_day(self, d: dt.date) -> str:
        return self.t("month_day", **self._date_parts(d))

    def month(self, m: int) -> str:
        return self.t("month", m=m, mon=MONTHS_EN[m - 1])

    def year(self, y: int) -> str:
        return self.t("year", y=y)

    def period(self, year: int, as_of: dt.date, kind: str) -> str:
        """The label of `year` evaluated at as_of's month and day: 2020年1–9月, 2019年9月末."""
        at = _same_day(year, as_of)
        month_end = (at + dt.timedelta(days=1)).month != at.month
        parts = self._date_parts(at)
        if kind == "flow":
            return self.t("flow_period" if month_end else "flow_period_day", **parts)
        return self.t("stock_period" if month_end else "stock_period_day", **parts)

    # ------------------------------------------------------------------ numbers
    def money_unit(self, largest: float | None) -> MoneyUnit:
        """The money unit for figures up to `largest` yuan: 元, 万元 or 亿元."""
        largest = abs(largest or 0.0)
        scales = self.doc["money"][self.lang]
        entry = next((e for e in scales if largest >= float(e["at_least"])), scales[-1])
        return MoneyUnit(float(entry["divisor"]), int(entry["decimals"]), entry["label"])

    def unit_info(self, unit: str) -> dict:
        return self.doc["units"].get(
            unit, {"zh": unit, "en": "", "axis_zh": unit, "axis_en": unit, "persons": False}
        )

    def is_persons_unit(self, unit: str) -> bool:
        return bool(self.unit_info(unit).get("persons"))

    def axis_title(self, unit: str, money: MoneyUnit | None = None) -> str:
        if unit == "ratio":
            return "%"
        if unit == "元":
            return (money or self.money_unit(0)).label
        return self.unit_info(unit)[f"axis_{self.lang}"]

    def scale(self, value: float | None, unit: str, money: MoneyUnit | None = None):
        """The number plotted for value: yuan divided into the money unit, others as is."""
        if value is None or _isnan(value):
            return None
        if unit == "元":
            return value / (money or self.money_unit(value)).divisor
        return value

    def fmt(
        self,
        value: float | None,
        unit: str,
        money: MoneyUnit | None = None,
        decimals: int | None = None,
        with_unit: bool = True,
    ) -> str:
        """A value for people: 235,545人, 1,054.0万元, 60.77%."""
        if value is None or _isnan(value):
            return "—"
        if unit == "ratio":
            return f"{value * 100:.{2 if decimals is None else decimals}f}%"
        if unit == "元":
            money = money or self.money_unit(value)
            places = money.decimals if decimals is None else decimals
            sep = " " if self.lang == "en" else ""
            text = f"{value / money.divisor:,.{places}f}"
            return f"{text}{sep}{money.label}" if with_unit else text
        text = f"{value:,.{0 if decimals is None else decimals}f}"
        suffix = self.unit_info(unit)[self.lang]
        return f"{text}{suffix}" if with_unit else text

    def fmt_change(self, change: float | None, pct: float | None, unit: str) -> str:
        """Year-on-year: +5.2% (relative), or +1.3个百分点 for a rate."""
        if unit == "ratio":
            if change is None or _isnan(change):
                return "—"
            return f"{change * 100:+.1f}{self.t('pp')}"
        if pct is None or _isnan(pct):
            return "—"
        return f"{pct * 100:+.1f}%"

    def tickformat(self, unit: str) -> str:
        return ".0%" if unit == "ratio" else ",~f"

    # ------------------------------------------------------------------ plotly
    def template(self) -> go.layout.Template:
        c, f = self.colors, self.font
        axis = dict(
            gridcolor=c["grid"],
            linecolor=c["grid"],
            zerolinecolor=c["grid"],
            automargin=True,
            title=dict(standoff=8),
        )
        return go.layout.Template(
            layout=dict(
                font=dict(family=f["family"], size=f["size"], color=c["text"]),
                title=dict(
                    font=dict(size=f["title_size"]),
                    x=0.02,
                    xanchor="left",
                    subtitle=dict(font=dict(size=f["subtitle_size"], color=c["muted"])),
                ),
                paper_bgcolor=c["background"],
                plot_bgcolor=c["background"],
                colorway=c["series"],
                separators=".,",
                xaxis=axis,
                yaxis=axis,
                legend=dict(
                    orientation="h",
                    x=0,
                    xanchor="left",
                    y=-0.12,
                    yanchor="top",
                    font=dict(size=f["small_size"] + 1),
                ),
                hoverlabel=dict(font=dict(family=f["family"])),
                margin=dict(l=70, r=40, t=110, b=110),
                bargap=0.35,
            )
        )


def _isnan(value) -> bool:
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _same_day(year: int, as_of: dt.date) -> dt.date:
    """as_of's month and day in `year` (28 February for 29 February)."""
    try:
        return as_of.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def load_theme(path: str | Path | None = None, lang: str | None = None) -> Theme:
    """The theme in `lang` (default UNION_LANG, else zh), validated."""
    path = Path(path) if path is not None else DEFAULT_THEME
    try:
        with open(path, encoding="utf-8") as f:
            doc = load_yaml(f)
    except OSError as err:
        raise ThemeError(f"{path}: cannot read the theme: {err}") from err
    except yaml.YAMLError as err:
        raise ThemeError(f"{path}: not valid YAML: {err}") from err
    lang = lang or current_lang()
    if lang not in LANGS:
        raise ThemeError(f"lang={lang!r}: expected one of {list(LANGS)}")
    required = (
        "organisation",
        "font",
        "colors",
        "page",
        "dashboard",
        "suppression",
        "money",
        "units",
        "sections",
        "labels",
    )
    if not isinstance(doc, dict):
        raise ThemeError(f"{path}: expected a mapping")
    for key in required:
        if key not in doc:
            raise ThemeError(f"{path}: field {key!r} is missing")
    zh, en = doc["labels"].get("zh", {}), doc["labels"].get("en", {})
    if set(zh) != set(en):
        missing = sorted(set(zh) ^ set(en))
        raise ThemeError(f"{path}: labels zh and en differ in {missing}")
    return Theme(lang=lang, doc=doc)
