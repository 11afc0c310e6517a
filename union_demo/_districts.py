"""The demo city: a profile per district (size, programme uptake, export quirks) and its
place (name, streets from assets/districts/<code>.yaml).

Zhenhai (330211) is the calibrated district: its profile is all ones and its place the
hard-coded lists of `_population`, so its drop stays exactly what it always was. The
others are invented variations around it, sized relative to Zhenhai.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from union_demo._population import ZHENHAI, Place, place_for
from union_pipeline.districts import district, load_districts

ZHENHAI_CODE = "330211"


@dataclass(frozen=True)
class Profile:
    code: str
    prefix: str  # of the union IDs (pinyin initials): ZH123456
    size: float = 1.0  # members (and unions), relative to Zhenhai
    enrol: float = 1.0  # mutual-aid enrolments and claims per member, relative
    loans: float = 1.0  # 蓝领贷 borrowers and amounts per member
    training: float = 1.0  # training sessions, records and contests per member
    collected: float = 1.0  # real-name collection by 2019 end (Zhenhai: 60.8% of members)
    app: float = 1.0  # app verification by 2019 end
    membership_rate: float = 0.962  # members / employees of the unions
    bad: float = 1.0  # rates of deliberately bad rows (<= 1.5: at most ~3.75% of a source,
    # under the refresh's 5% quarantine threshold)
    members: str = "mixed"  # the 2020-08-31 export: mixed (GBK + UTF-8 BOM parts) | gbk | xlsx
    roster: str = "xlsx"  # the union roster: xlsx | gbk (a GBK CSV)
    title: bool = False  # CSV exports carry a title line above the header


# Sizes sum to 6.0 Zhenhais for all ten (a ten-district city refreshes in minutes).
PROFILES = {
    p.code: p
    for p in (
        Profile(ZHENHAI_CODE, "ZH"),
        Profile(
            "330203", "HS", size=0.6, enrol=1.1, loans=0.6, training=1.3, collected=1.15,
            app=1.4, membership_rate=0.97, members="xlsx",
        ),
        Profile(
            "330205", "JB", size=0.4, enrol=0.8, loans=0.8, training=0.9, collected=0.9,
            app=0.8, membership_rate=0.945, bad=1.4, members="gbk", title=True,
        ),
        Profile(
            "330206", "BL", size=0.8, enrol=1.05, loans=1.5, training=0.8, collected=1.05,
            app=1.2, membership_rate=0.955, bad=0.6, roster="gbk",
        ),
        Profile(
            "330212", "YZ", size=1.3, enrol=1.0, loans=1.2, training=1.1, collected=1.2,
            app=1.6, membership_rate=0.965,
        ),
        Profile(
            "330213", "FH", size=0.3, enrol=0.9, loans=0.7, training=1.4, collected=0.85,
            app=0.7, membership_rate=0.95, members="gbk", title=True,
        ),
        Profile(
            "330225", "XS", size=0.3, enrol=1.2, loans=0.5, training=0.7, collected=0.8,
            app=0.6, membership_rate=0.935, bad=1.5, roster="gbk",
        ),
        Profile(
            "330226", "NH", size=0.35, enrol=1.15, loans=0.6, training=1.0, collected=0.95,
            app=0.9, membership_rate=0.958, title=True,
        ),
        Profile(
            "330281", "YY", size=0.45, enrol=0.95, loans=1.1, training=0.9, collected=1.1,
            app=1.1, membership_rate=0.96, bad=0.8, members="gbk",
        ),
        Profile(
            "330282", "CX", size=0.5, enrol=1.0, loans=1.3, training=0.8, collected=1.0,
            app=1.0, membership_rate=0.952, roster="gbk", title=True,
        ),
    )
}  # fmt: skip

# how many unions a street has, by its kind (the district's organs: about 9%)
KIND_WEIGHT = {"街道": 1.0, "镇": 0.75, "乡": 0.3}
ORGANS_SHARE = 0.09


def profile_for(code: str) -> Profile:
    """The district's profile; a district added to assets/districts/ later gets a
    middling one."""
    if code in PROFILES:
        return PROFILES[code]
    d = district(code)
    return Profile(code, (d.name_en[:2] or "QX").upper(), size=0.5)


def street_weights(streets) -> np.ndarray:
    """Union shares of a district's streets, (street, kind) in order, the last its organs:
    by kind, varied per street (a fixed pseudo-random factor from the name)."""
    w = np.array(
        [
            KIND_WEIGHT.get(kind, 0.6) * (0.6 + 0.8 * (zlib.crc32(s.encode("utf-8")) % 1000) / 1000)
            for s, kind in streets[:-1]
        ]
    )
    w = w / w.sum() * (1 - ORGANS_SHARE)
    return np.append(w, ORGANS_SHARE)


def place_of(code: str) -> Place:
    """Zhenhai: the calibrated hard-coded lists; another district: its reference file."""
    if code == ZHENHAI_CODE:
        return ZHENHAI
    d = district(code)
    return place_for(d.name, d.street_names, street_weights(d.streets), profile_for(code).prefix)


def city_order() -> list[str]:
    """The districts of a demo city: Zhenhai first, then the others by code."""
    return [ZHENHAI_CODE, *sorted(c for c in load_districts() if c != ZHENHAI_CODE)]
