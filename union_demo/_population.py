"""The demo district's grassroots unions and members, calibrated so that the 2019 figures
of the annual report come out exactly at scale 1 (see `PLAN`).

Unions: active, new (2017-2020), dissolved (before and during the reported years).
Members: the stock active at 2019-12-31 (exactly members_total), those who left before,
those who joined in 2020; joins back to 1980, each in a union active at the join date.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from union_demo._common import (
    AS_OF,
    FAR,
    NA,
    NA64,
    Calendar,
    People,
    day,
    scaled,
    spread_total,
    trunc_exp,
    weighted_pick,
    year_of,
    yend,
    ystart,
)

STREETS = [
    "招宝山街道",
    "蛟川街道",
    "骆驼街道",
    "庄市街道",
    "贵驷街道",
    "澥浦镇",
    "九龙湖镇",
    "区直机关",
]
STREET_P = np.array([0.17, 0.16, 0.18, 0.15, 0.08, 0.10, 0.07, 0.09])
ORG_TYPES = ["企业", "机关事业单位", "社会组织", "联合工会"]
DISTRICT_ORG = 7  # 区直机关

# Calibration at scale 1 (the published 2019 figures, and plausible other years).
PLAN = {
    "unions_old_active": 1178,  # founded before 2017, active at 2019-12-31
    "unions_dissolved_2020": 6,  # of those, dissolved in 2020
    "unions_new": {2017: 41, 2018: 44, 2019: 37, 2020: 26},
    "unions_dissolved": {2017: 9, 2018: 11, 2019: 10},
    "unions_dissolved_before": 35,  # dissolved 2008-2016
    "unions_authorized_2019": 1255,
    "members_total_2019": 235545,  # within the report's bounds 235526..235565
    "members_new_2019": 4456,
    "members_new_2019_left_2019": 58,
    "stock_joins": {2017: 3700, 2018: 3900},  # joins of members still active at 2019 end
    "leavers": {
        **{y: 600 + 70 * (y - 2005) for y in range(2005, 2017)},
        2017: 1350,
        2018: 1420,
        2019: 1480,
    },
    "joins_2020": 3250,
    "leavers_2020": 1150,
    "movers": 300,  # persons who left one union and later joined another
    "members_collected_2019": 143141,
    "members_app_verified_2019": 16421,
    "membership_rate": 0.962,
}

COLLECT_START = day("2017-09-01")
APP_START = day("2019-05-01")

_BRAND = list(
    "恒昌华鑫宏达永盛泰丰远东明宇金海天成新源隆利信和嘉康力威凯瑞佳荣兴富德"
    "安顺中联博通润星博乐达海腾光正祥锦越甬港镇宁蛟骆庄贵澥浦龙湖宝山北仑杉"
)
_INDUSTRY = [
    "机械",
    "化工",
    "电子",
    "塑料",
    "模具",
    "石化",
    "物流",
    "建设",
    "纺织",
    "服饰",
    "电器",
    "汽车部件",
    "五金",
    "新材料",
    "能源",
    "科技",
    "食品",
    "印刷",
    "包装",
    "钢结构",
    "阀门",
    "轴承",
    "电力设备",
    "医药",
    "环保",
    "船舶",
    "贸易",
    "港务",
    "精密铸造",
    "橡塑",
    "智能装备",
    "光电",
    "建材",
    "家居",
    "液压",
    "不锈钢",
]
_INSTITUTIONS = [
    "中心学校",
    "中学",
    "幼儿园",
    "卫生院",
    "社区卫生服务中心",
    "派出所",
    "市场监管所",
    "财政所",
    "供电所",
    "中心小学",
    "文化站",
    "敬老院",
    "水利站",
    "司法所",
    "农业服务中心",
]
_DEPARTMENTS = [
    "镇海区教育局",
    "镇海区卫生健康局",
    "镇海区人民医院",
    "镇海区中医医院",
    "镇海区财政局",
    "镇海区交通运输局",
    "镇海区住房和城乡建设局",
    "镇海区人力资源和社会保障局",
    "镇海区民政局",
    "镇海区市场监督管理局",
    "镇海区税务局",
    "镇海区文化和广电旅游体育局",
    "镇海区农业农村局",
    "镇海区应急管理局",
    "镇海区商务局",
    "镇海区司法局",
    "镇海区统计局",
    "镇海区自然资源和规划局",
    "镇海区经济和信息化局",
    "镇海区科学技术局",
    "镇海中学",
    "镇海区职业教育中心学校",
    "镇海区图书馆",
    "镇海区档案馆",
    "镇海区疾病预防控制中心",
    "镇海区妇幼保健院",
    "镇海区龙赛医院",
    "镇海区城市管理局",
    "镇海区水利局",
    "镇海区审计局",
]
_ASSOC = [
    "物流",
    "建筑业",
    "餐饮",
    "家政服务",
    "律师",
    "会计",
    "电子商务",
    "汽车维修",
    "快递",
    "物业管理",
    "美容美发",
    "装饰装修",
    "货运",
    "网约车",
    "保安服务",
]


@dataclass(frozen=True)
class Place:
    """Where a district's unions are: its name, its streets (the last one its organs,
    区直机关 / 县直机关 / 市直机关) and how its unions and departments are named."""

    name: str  # 镇海区
    streets: tuple[str, ...]
    street_p: np.ndarray = field(compare=False)  # weights (normalised where used)
    prefix: str  # of the union IDs: ZH123456
    departments: tuple[str, ...]

    @property
    def short(self) -> str:  # 镇海区 -> 镇海, 宁海县 -> 宁海
        return self.name[:-1] if len(self.name) > 2 else self.name

    @property
    def district_org(self) -> int:
        return len(self.streets) - 1

    @property
    def assoc_prefix(self) -> str:
        """How an association names itself: 宁波市镇海区…, a county-level city 余姚市…"""
        return self.name if self.name.endswith("市") else f"宁波市{self.name}"


ZHENHAI = Place("镇海区", tuple(STREETS), STREET_P, "ZH", tuple(_DEPARTMENTS))


def place_for(name: str, streets, street_p, prefix: str) -> Place:
    """Another district: Zhenhai's departments under its own name."""
    own = {"镇海中学": f"{name[:-1]}中学", "镇海区龙赛医院": f"{name}第二人民医院"}
    departments = tuple(own.get(d, d.replace("镇海区", name)) for d in _DEPARTMENTS)
    return Place(name, tuple(streets), np.asarray(street_p, np.float64), prefix, departments)


@dataclass
class Unions:
    uid: list[str]
    name: list[str]
    street: np.ndarray
    org: np.ndarray
    founded: np.ndarray
    dissolved: np.ndarray
    authorized: np.ndarray
    star: np.ndarray
    employees: np.ndarray
    group: np.ndarray  # 0 active at 2019 end, 1 dissolved before 2020, 2 founded in 2020
    size: np.ndarray  # planned members (stock / leavers / 2020 joiners)
    spare_ids: list[str]  # union IDs never used by a truth union (for bad rows)

    @property
    def n(self) -> int:
        return len(self.uid)

    def active_at(self, d: int) -> np.ndarray:
        dis = np.where(self.dissolved == NA, FAR, self.dissolved)
        return (self.founded <= d) & (dis > d)


def _union_names(
    rng: np.random.Generator, street: np.ndarray, org: np.ndarray, place: Place
) -> list[str]:
    """Plausible, distinct names; random draws made up front (one loop composes them)."""
    streets, departments, district_org = place.streets, place.departments, place.district_org
    prefixes = ("宁波", "宁波", f"宁波{place.short}", "浙江")
    assoc_prefix, district_name = place.assoc_prefix, place.name
    n = len(street)
    nb, ni = len(_BRAND), len(_INDUSTRY)
    draws = {k: rng.integers(0, 1 << 30, (n, 8)) for k in ("a",)}["a"]
    names: list[str] = []
    seen: set[str] = set()
    for i, (s, o) in enumerate(zip(street.tolist(), org.tolist(), strict=True)):
        d = draws[i].tolist()
        for attempt in range(60):
            if attempt:
                d = rng.integers(0, 1 << 30, 8).tolist()
            if o == 0:  # 企业
                prefix = prefixes[d[0] % 4]
                brand = _BRAND[d[1] % nb] + _BRAND[d[2] % nb]
                kind = "股份有限公司" if d[3] % 8 == 0 else "有限公司"
                name = f"{prefix}{brand}{_INDUSTRY[d[4] % ni]}{kind}工会"
            elif o == 1:  # 机关事业单位
                if s == district_org or d[0] % 10 < 3:
                    name = f"{departments[d[1] % len(departments)]}工会"
                else:
                    name = f"{streets[s]}{_INSTITUTIONS[d[1] % len(_INSTITUTIONS)]}工会"
            elif o == 2:  # 社会组织
                kind = ("协会", "商会", "促进会", "行业协会")[d[0] % 4]
                name = f"{assoc_prefix}{_ASSOC[d[1] % len(_ASSOC)]}{kind}工会"
            else:  # 联合工会
                spot = _BRAND[d[1] % nb] + _BRAND[d[2] % nb]
                where = streets[s] if s != district_org else district_name
                kind = ("社区", "村", "工业区", "商务楼宇")[d[0] % 4]
                name = f"{where}{spot}{kind}联合工会"
            if attempt >= 10:
                name = name.removesuffix("工会") + f"第{attempt - 8}分会工会"
            if name not in seen:
                break
        seen.add(name)
        names.append(name)
    return names


def build_unions(
    rng: np.random.Generator, scale: float, cal: Calendar, place: Place | None = None
) -> Unions:
    p = PLAN
    place = place or ZHENHAI
    n_old = scaled(p["unions_old_active"], scale, 3)
    n_dis20 = min(scaled(p["unions_dissolved_2020"], scale), n_old - 2)
    new = {y: scaled(n, scale, 1) for y, n in p["unions_new"].items()}
    dis = {y: scaled(n, scale) for y, n in p["unions_dissolved"].items()}
    n_hist = scaled(p["unions_dissolved_before"], scale)
    w_work = cal.weights(weekend=0.15)

    founded, dissolved, group, cohort = [], [], [], []
    # founded before 2017, active at 2019 end
    years = np.arange(1953, 2017)
    yw = np.where(years < 1980, 0.15, np.where(years < 2000, 0.6, np.where(years < 2013, 1.6, 2.4)))
    fy = rng.choice(years, n_old, p=yw / yw.sum())
    founded.append(cal.sample(rng, ystart(fy), yend(fy), w_work))
    d = np.full(n_old, NA, dtype=np.int32)
    d[:n_dis20] = cal.sample(
        rng, np.full(n_dis20, day("2020-01-15")), np.full(n_dis20, day("2020-09-20")), w_work
    )
    dissolved.append(d)
    group.append(np.zeros(n_old, np.int8))
    cohort.append(np.where(np.arange(n_old) < n_dis20, 1, 0))  # 1 = dissolves in 2020
    # new unions
    for y, k in new.items():
        hi = day("2020-09-10") if y == 2020 else day(f"{y}-12-28")
        founded.append(cal.sample(rng, np.full(k, day(f"{y}-01-05")), np.full(k, hi), w_work))
        dissolved.append(np.full(k, NA, dtype=np.int32))
        group.append(np.full(k, 2 if y == 2020 else 0, np.int8))
        cohort.append(np.full(k, 10 + y - 2017))
    # dissolved in 2017..2019 and before
    for y, k in dis.items():
        fy = rng.integers(1990, 2015, k)
        founded.append(cal.sample(rng, ystart(fy), yend(fy), w_work))
        dissolved.append(
            cal.sample(rng, np.full(k, day(f"{y}-01-10")), np.full(k, day(f"{y}-12-20")), w_work)
        )
        group.append(np.ones(k, np.int8))
        cohort.append(np.full(k, 20 + y - 2017))
    fy = rng.integers(1985, 2011, n_hist)
    f = cal.sample(rng, ystart(fy), yend(fy), w_work)
    founded.append(f)
    lo = np.maximum(f.astype(np.int64) + 3 * 365, day("2008-01-01"))
    dissolved.append(cal.sample(rng, lo, np.full(n_hist, day("2016-12-20")), w_work))
    group.append(np.ones(n_hist, np.int8))
    cohort.append(np.full(n_hist, 30))

    founded = np.concatenate(founded).astype(np.int32)
    dissolved = np.concatenate(dissolved).astype(np.int32)
    group = np.concatenate(group)
    cohort = np.concatenate(cohort)
    n = len(founded)

    street = rng.choice(len(place.streets), n, p=place.street_p / place.street_p.sum())
    org = np.where(
        street == place.district_org,
        rng.choice(4, n, p=[0.0, 0.82, 0.1, 0.08]),
        rng.choice(4, n, p=[0.79, 0.07, 0.05, 0.09]),
    ).astype(np.int8)

    # members per union: stock at 2019 end for active unions, leavers for dissolved ones,
    # joiners for 2020's new unions
    mu = np.array([4.45, 3.9, 3.2, 4.8])[org]
    size = np.exp(rng.normal(mu, 1.0)).astype(np.float64)
    active19 = group == 0
    fixed = np.zeros(n, dtype=bool)
    total = scaled(p["members_total_2019"], scale, 50)
    j19 = scaled(p["members_new_2019"], scale, 5) - scaled(p["members_new_2019_left_2019"], scale)
    for y, mean, cap, limit in (
        (2017, 3.8, 400, p["stock_joins"][2017]),
        (2018, 3.8, 400, p["stock_joins"][2018]),
        (2019, 3.5, 150, None),
    ):
        sel = cohort == 10 + y - 2017
        s = np.clip(np.exp(rng.normal(mean, 0.6, sel.sum())), 5, cap).round()
        allowed = 0.6 * (j19 if limit is None else scaled(limit, scale, 5))
        if s.sum() > allowed:
            s = np.maximum(1, np.floor(s * allowed / s.sum()))
        size[sel] = s
        fixed |= sel
    sel = cohort == 1
    size[sel] = rng.integers(6, 41, sel.sum())
    fixed |= sel
    free = active19 & ~fixed
    remaining = total - int(size[active19 & fixed].sum())
    size[free] = spread_total(rng, size[free], remaining, minimum=3)
    dissolved_before = group == 1
    size[dissolved_before] = np.clip(
        np.exp(rng.normal(3.0, 0.6, dissolved_before.sum())), 3, 120
    ).round()
    sel = group == 2
    s = np.clip(np.exp(rng.normal(3.3, 0.6, sel.sum())), 5, 120).round()
    cap = 0.5 * scaled(p["joins_2020"], scale, 5)
    if s.sum() > cap:
        s = np.maximum(1, np.floor(s * cap / s.sum()))
    size[sel] = s
    size = size.astype(np.int64)

    # authorisation (组织授权, from April 2018): exactly the planned number at 2019 end
    authorized = np.full(n, NA, dtype=np.int32)
    pool = np.nonzero(active19)[0]
    k = min(scaled(p["unions_authorized_2019"], scale, 1), len(pool) - 1)
    w = np.where(cohort[pool] == 12, 0.35, 1.0) * np.where(org[pool] == 1, 3.0, 1.0)
    chosen = pool[weighted_pick(rng, w, k)]
    w_auth = cal.weights(
        year_month={
            **{(2018, m): 0.6 for m in range(4, 13)},
            **{(2019, m): 1.0 for m in range(1, 13)},
        },
        default=0.0,
        weekend=0.1,
    )
    lo = np.maximum(founded[chosen], day("2018-04-01"))
    authorized[chosen] = cal.sample(rng, lo, np.full(len(chosen), yend(2019)), w_auth)
    is_chosen = np.zeros(n, dtype=bool)
    is_chosen[chosen] = True
    rest = pool[~is_chosen[pool]]
    later = rest[rng.random(len(rest)) < 0.55]
    authorized[later] = cal.sample(
        rng,
        np.full(len(later), day("2020-01-06")),
        np.full(len(later), day("2020-09-25")),
        cal.weights(),
    )
    d19 = np.nonzero(cohort == 22)[0]
    d19 = d19[rng.random(len(d19)) < 0.5]
    authorized[d19] = cal.sample(
        rng,
        np.maximum(founded[d19], day("2018-04-01")),
        dissolved[d19].astype(np.int64) - 1,
        cal.weights(),
    )
    n20 = np.nonzero(group == 2)[0]
    n20 = n20[rng.random(len(n20)) < 0.6]
    authorized[n20] = cal.sample(
        rng, founded[n20].astype(np.int64) + 5, np.full(len(n20), AS_OF), cal.weights()
    )

    # stars: the district's system unions all 4-5 stars; new unions start low
    star = rng.choice(6, n, p=[0.05, 0.1, 0.25, 0.3, 0.2, 0.1]).astype(np.int64)
    young = founded >= ystart(2017)
    star[young] = rng.choice(6, int(young.sum()), p=[0.4, 0.3, 0.2, 0.1, 0.0, 0.0])
    sys_u = street == place.district_org
    star[sys_u] = rng.choice([4, 5], int(sys_u.sum()), p=[0.6, 0.4])
    star[rng.random(n) < 0.12] = NA64

    # IDs and names; file order is by ID
    pool_ids = rng.choice(np.arange(100000, 1000000), n + max(200, n // 5), replace=False)
    uid = [f"{place.prefix}{v}" for v in pool_ids[:n].tolist()]
    spare = [f"{place.prefix}{v}" for v in pool_ids[n:].tolist()]
    names = _union_names(rng, street, org, place)
    return Unions(
        uid=uid,
        name=names,
        street=street.astype(np.int8),
        org=org,
        founded=founded,
        dissolved=dissolved,
        authorized=authorized,
        star=star,
        employees=np.zeros(n, np.int64),
        group=group,
        size=size,
        spare_ids=spare,
    )


@dataclass
class Members:
    union: np.ndarray  # index into Unions
    join: np.ndarray
    leave: np.ndarray  # NA = still a member
    collected: np.ndarray
    app: np.ndarray
    frontline: np.ndarray  # int8 1/0/-1
    person: np.ndarray  # index into People
    number: np.ndarray  # member_id number (HY + 9 digits)
    birth: np.ndarray
    male: np.ndarray
    kind: np.ndarray  # 0 stock 2019, 1 left before 2020, 2 joined in 2020

    @property
    def n(self) -> int:
        return len(self.join)

    @property
    def leave_eff(self) -> np.ndarray:
        return np.where(self.leave == NA, FAR, self.leave)

    def active_at(self, d) -> np.ndarray:
        return (self.join <= d) & (self.leave_eff > d)


def _ages_for(rng, ref, join, upper=60.0, a=1.4, b=2.2):
    """Birth dates so that age at join >= 18 and age at `ref` <= upper."""
    tenure = (np.asarray(ref, np.float64) - join) / 365.25
    lo = np.maximum(18.05 + tenure, 18.05)
    hi = np.maximum(np.full_like(lo, upper), lo + 0.05)
    age = lo + (hi - lo) * rng.beta(a, b, len(lo))
    return (np.asarray(ref, np.int64) - np.ceil(age * 365.25)).astype(np.int32)


def _pick_union(rng, unions: Unions, candidates: np.ndarray, latest_founded: np.ndarray):
    """For each row, a union of `candidates` founded on or before `latest_founded`
    (per row), weighted by size; -1 where none qualifies."""
    order = candidates[np.argsort(unions.founded[candidates], kind="stable")]
    f_sorted = unions.founded[order].astype(np.int64)
    cum = np.cumsum(unions.size[order].astype(np.float64) + 1.0)
    k = np.searchsorted(f_sorted, np.asarray(latest_founded, np.int64), side="right")
    out = np.full(len(k), -1, dtype=np.int64)
    ok = k > 0
    r = rng.random(int(ok.sum())) * cum[k[ok] - 1]
    out[ok] = order[np.minimum(np.searchsorted(cum, r, side="right"), k[ok] - 1)]
    return out


def build_members(
    rng: np.random.Generator,
    scale: float,
    cal: Calendar,
    unions: Unions,
    people: People,
    plan: dict | None = None,
) -> Members:
    """plan: PLAN, or a district's variant of it (its collection progress, ...)."""
    p = plan or PLAN
    w_join = cal.weights(
        [0.7, 0.5, 1.2, 1.1, 1.0, 1.0, 0.9, 0.8, 1.1, 1.1, 1.2, 1.0],
        weekend=0.2,
        year_month={(2020, 2): 0.15, (2020, 3): 0.5},
    )
    w_work = cal.weights(weekend=0.2)
    active19 = np.nonzero(unions.group == 0)[0]
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("union", "join", "leave", "kind", "birth")
    }

    def add(union, join, leave, kind, birth):
        parts["union"].append(np.asarray(union, np.int64))
        parts["join"].append(np.asarray(join, np.int32))
        parts["leave"].append(np.asarray(leave, np.int32))
        parts["kind"].append(np.full(len(union), kind, np.int8))
        parts["birth"].append(np.asarray(birth, np.int32))

    # --- the stock: members active at 2019-12-31, exactly members_total 2019
    mu = np.repeat(active19, unions.size[active19])
    n = len(mu)
    fd = unions.founded[mu].astype(np.int64)
    fy = year_of(fd)
    join = np.full(n, NA, dtype=np.int32)
    done = np.zeros(n, dtype=bool)
    for y in (2017, 2018, 2019):  # founding members of the new unions
        sel = np.nonzero(fy == y)[0]
        hi = np.full(len(sel), yend(y))
        founding = rng.random(len(sel)) < 0.55
        j = np.where(
            founding,
            np.minimum(fd[sel] + rng.integers(0, 21, len(sel)), hi),
            cal.sample(rng, fd[sel], hi, w_join),
        )
        join[sel] = j
        done[sel] = True
    j19 = scaled(p["members_new_2019"], scale, 5) - scaled(p["members_new_2019_left_2019"], scale)
    wanted = {2019: j19, **{y: scaled(v, scale, 5) for y, v in p["stock_joins"].items()}}
    for y in (2019, 2018, 2017):  # the others who joined in y, in older unions
        need = wanted[y] - int((fy == y).sum())
        cand = np.nonzero(~done & (fd < ystart(y)))[0]
        need = max(0, min(need, len(cand)))
        pick = np.sort(rng.choice(cand, need, replace=False))
        join[pick] = cal.sample(rng, np.full(need, ystart(y)), np.full(need, yend(y)), w_join)
        done[pick] = True
    # before 2017: spread over the union's life, most from the organising drives of
    # 2006-2012 (建会入会集中行动); founding members of the younger unions
    rest = np.nonzero(~done)[0]
    lo = np.maximum(fd[rest], day("1980-01-01"))
    hi = np.full(len(rest), yend(2016))
    j = cal.sample(rng, lo, hi, w_join).astype(np.int64)
    drive = (rng.random(len(rest)) < 0.6) & (lo <= day("2012-06-30"))
    j[drive] = cal.sample(
        rng, np.maximum(lo[drive], day("2006-01-01")), np.full(int(drive.sum()), yend(2012)), w_join
    )
    founding = (rng.random(len(rest)) < 0.5) & (lo >= day("2010-01-01"))
    j[founding] = np.minimum(lo[founding] + rng.integers(0, 21, int(founding.sum())), hi[founding])
    join[rest] = np.clip(j, lo, hi)
    leave = np.full(n, NA, dtype=np.int32)
    dis20 = unions.dissolved[mu] != NA
    leave[dis20] = unions.dissolved[mu][dis20]
    others = np.nonzero(~dis20)[0]
    k = min(scaled(p["leavers_2020"], scale), len(others))
    quit20 = np.sort(rng.choice(others, k, replace=False))
    leave[quit20] = cal.sample(rng, np.full(k, day("2020-01-02")), np.full(k, AS_OF), w_work)
    add(mu, join, leave, 0, _ages_for(rng, AS_OF, join))

    # --- left before 2020, from unions still active at 2019 end
    counts = {y: scaled(v, scale) for y, v in p["leavers"].items()}
    ly = np.repeat(np.array(list(counts), np.int64), list(counts.values()))
    lv = cal.sample(rng, ystart(ly), yend(ly), w_work).astype(np.int64)
    # joined by 2018 (2019's joiners are counted exactly), in a union founded by then
    u = _pick_union(rng, unions, active19, np.minimum(lv - 60, day("2018-12-01")))
    ok = u >= 0
    u, lv = u[ok], lv[ok]
    hi = np.minimum(lv - 30, yend(2018))
    lo = np.maximum.reduce(
        [unions.founded[u].astype(np.int64), lv - 35 * 365, np.full(len(u), day("1975-01-01"))]
    )
    lo = np.minimum(lo, hi)
    j = hi - trunc_exp(rng, 6 * 365.0, hi - lo).astype(np.int64)
    retire = rng.random(len(u)) < 0.2
    birth = _ages_for(rng, lv, j, upper=59.5)
    birth[retire] = (
        lv[retire] - np.round(rng.uniform(59.6, 59.99, int(retire.sum())) * 365.25)
    ).astype(np.int32)
    birth = np.minimum(birth, (j - np.ceil(18.05 * 365.25)).astype(np.int32))
    add(u, j, lv, 1, birth)

    # --- joined and left in 2019
    k = scaled(p["members_new_2019_left_2019"], scale)
    j = cal.sample(rng, np.full(k, day("2019-01-02")), np.full(k, day("2019-10-31")), w_join)
    u = _pick_union(rng, unions, active19, np.full(k, day("2018-06-30")))
    lv = cal.sample(rng, j.astype(np.int64) + 30, np.full(k, yend(2019)), w_work)
    add(u, j, lv, 1, _ages_for(rng, lv, j, upper=45))

    # --- members of the unions dissolved before 2020 (they leave with it)
    dis = np.nonzero(unions.group == 1)[0]
    u = np.repeat(dis, unions.size[dis])
    lv = unions.dissolved[u].astype(np.int64)
    hi = np.minimum(lv - 30, yend(2018))
    lo = np.minimum(unions.founded[u].astype(np.int64), hi)
    j = hi - trunc_exp(rng, 5 * 365.0, hi - lo).astype(np.int64)
    add(u, j, lv, 1, _ages_for(rng, lv, j))

    # --- joined in 2020 (founding members of 2020's new unions, and others)
    new20 = np.nonzero(unions.group == 2)[0]
    u1 = np.repeat(new20, unions.size[new20])
    f = unions.founded[u1].astype(np.int64)
    founding = rng.random(len(u1)) < 0.6
    j1 = np.where(
        founding,
        np.minimum(f + rng.integers(0, 15, len(u1)), AS_OF),
        cal.sample(rng, f, np.full(len(u1), AS_OF), w_join),
    )
    k = max(1, scaled(p["joins_2020"], scale, 5) - len(u1))
    open_unions = active19[unions.dissolved[active19] == NA]
    u2 = _pick_union(rng, unions, open_unions, np.full(k, yend(2019)))
    j2 = cal.sample(rng, np.full(k, day("2020-01-02")), np.full(k, AS_OF), w_join)
    j2[-1] = AS_OF  # the latest event of the drop: the as-of date
    u = np.concatenate([u1, u2])
    j = np.concatenate([j1, j2]).astype(np.int64)
    lv = np.full(len(u), NA, dtype=np.int32)
    quits = (rng.random(len(u)) < 0.025) & (j + 20 <= AS_OF)
    quits[-1] = False
    lv[quits] = cal.sample(rng, j[quits] + 20, np.full(int(quits.sum()), AS_OF), w_work)
    age = 18.3 + 31.0 * rng.beta(1.3, 2.6, len(u))
    add(u, j, lv, 2, (j - np.ceil(age * 365.25)).astype(np.int32))

    m_union = np.concatenate(parts["union"])
    m_join = np.concatenate(parts["join"])
    m_leave = np.concatenate(parts["leave"])
    m_kind = np.concatenate(parts["kind"])
    m_birth = np.concatenate(parts["birth"])
    n = len(m_join)
    org = unions.org[m_union]
    m_male = rng.random(n) < np.array([0.6, 0.48, 0.45, 0.55])[org]
    local = np.array([0.6, 0.92, 0.8, 0.55])[org]
    frontline = (rng.random(n) < np.array([0.72, 0.12, 0.4, 0.6])[org]).astype(np.int8)
    frontline[rng.random(n) < 0.08] = -1

    # --- movers: some who left later joined another union: same person, two member rows
    leave_eff = np.where(m_leave == NA, FAR, m_leave).astype(np.int64)
    k = scaled(p["movers"], scale)
    left = np.nonzero((m_kind == 1) & (m_leave >= day("2012-01-01")))[0]
    later = np.nonzero((m_join >= day("2013-01-01")) & (m_kind != 1))[0]
    person_of = np.full(n, -1, dtype=np.int64)  # row whose person this row takes
    if k and len(left) and len(later):
        a = rng.choice(left, min(len(left), 4 * k), replace=False)
        b = rng.choice(later, len(a), replace=len(later) < len(a))
        ok = (
            (m_join[b] > leave_eff[a] + 30)
            & (m_join[a] >= m_birth[b].astype(np.int64) + int(18.05 * 365.25) + 1)
            & (m_union[a] != m_union[b])
        )
        a, b = a[ok], b[ok]
        _, first = np.unique(b, return_index=True)
        keep = np.sort(first)[:k]
        a, b = a[keep], b[keep]
        person_of[a] = b
        m_birth[a] = m_birth[b]
        m_male[a] = m_male[b]
    own = person_of < 0
    person = np.full(n, -1, dtype=np.int64)
    person[own] = people.add(m_birth[own], m_male[own], local[own])
    person[~own] = person[person_of[~own]]

    members = Members(
        union=m_union.astype(np.int32),
        join=m_join,
        leave=m_leave,
        collected=np.full(n, NA, np.int32),
        app=np.full(n, NA, np.int32),
        frontline=frontline,
        person=person.astype(np.int32),
        number=np.zeros(n, np.int64),
        birth=m_birth,
        male=m_male,
        kind=m_kind,
    )
    _collect(rng, scale, cal, unions, members, p)
    # member numbers: issued in order of joining, with gaps
    order = np.lexsort((rng.random(n), members.join))
    numbers = 100_000_000 + np.cumsum(rng.integers(1, 4, n))
    members.number[order] = numbers
    _employee_counts(rng, unions, members, p["membership_rate"])
    return members


def _collect(rng, scale, cal: Calendar, unions: Unions, m: Members, p: dict) -> None:
    """Real-name collection (from Sep 2017) and app verification (from May 2019)."""
    ym = {}
    for y in range(2017, 2021):
        for mo in range(1, 13):
            if (y, mo) < (2017, 9):
                continue
            ym[(y, mo)] = {2017: 0.25, 2018: 0.8, 2019: 1.5, 2020: 1.0}[y]
    ym[(2020, 2)] = 0.1
    ym[(2020, 3)] = 0.4
    w_coll = cal.weights(year_month=ym, default=0.0, weekend=0.3)
    w_app = cal.weights(
        year_month={
            **{(2019, mo): 0.6 + 0.1 * mo for mo in range(5, 13)},
            **{(2020, mo): 1.0 for mo in range(1, 13)},
        },
        default=0.0,
        weekend=0.8,
    )
    n = m.n
    leave_eff = m.leave_eff.astype(np.int64)
    join = m.join.astype(np.int64)
    stock = np.nonzero(m.kind == 0)[0]
    # collected by 2019 end: exactly the report's figure, mostly in authorised unions
    auth = unions.authorized[m.union[stock]]
    w = np.where((auth != NA) & (auth <= yend(2019)), 1.0, 0.2)
    k = min(scaled(p["members_collected_2019"], scale), len(stock))
    chosen = stock[weighted_pick(rng, w, k)]
    m.collected[chosen] = cal.sample(
        rng, np.maximum(join[chosen], COLLECT_START), np.full(k, yend(2019)), w_coll
    )
    # app-verified by 2019 end: exactly the report's figure, among those collected by then
    k = min(scaled(p["members_app_verified_2019"], scale), len(chosen))
    app = np.sort(rng.choice(chosen, k, replace=False))
    m.app[app] = cal.sample(
        rng, np.maximum(m.collected[app].astype(np.int64), APP_START), np.full(k, yend(2019)), w_app
    )
    # collected later: the rest of the stock in 2020, joiners of 2020
    is_chosen = np.zeros(n, dtype=bool)
    is_chosen[chosen] = True
    later = np.nonzero(((m.kind == 0) | (m.kind == 2)) & ~is_chosen)[0]
    lo = np.maximum(join[later], ystart(2020))
    hi = np.minimum(leave_eff[later] - 1, AS_OF)
    share = np.where(m.kind[later] == 2, 0.55, 0.38)
    sel = (lo <= hi) & (rng.random(len(later)) < share)
    later = later[sel]
    m.collected[later] = cal.sample(rng, lo[sel], hi[sel], w_coll)
    # leavers who were collected before they left
    left = np.nonzero((m.kind == 1) & (leave_eff >= day("2017-10-15")))[0]
    lo = np.maximum(join[left], COLLECT_START)
    hi = leave_eff[left] - 1
    sel = (lo <= hi) & (rng.random(len(left)) < 0.35)
    left, lo, hi = left[sel], lo[sel], hi[sel]
    m.collected[left] = cal.sample(rng, lo, hi, w_coll)
    # app verification after collection: 2020 for the stock, before leaving for leavers
    cand = np.nonzero((m.collected != NA) & (m.app == NA) & (m.kind != 1))[0]
    lo = np.maximum(m.collected[cand].astype(np.int64), ystart(2020))
    hi = np.minimum(leave_eff[cand] - 1, AS_OF)
    sel = (lo <= hi) & (rng.random(len(cand)) < 0.22)
    m.app[cand[sel]] = cal.sample(rng, lo[sel], hi[sel], w_app)
    cand = np.nonzero(
        (m.collected != NA)
        & (m.kind == 1)
        & (leave_eff >= day("2019-06-01"))
        & (leave_eff <= yend(2019))
    )[0]
    lo = np.maximum(m.collected[cand].astype(np.int64), APP_START)
    hi = leave_eff[cand] - 1
    sel = (lo <= hi) & (rng.random(len(cand)) < 0.2)
    m.app[cand[sel]] = cal.sample(rng, lo[sel], hi[sel], w_app)


def _employee_counts(rng, unions: Unions, m: Members, membership_rate: float) -> None:
    """Employees per union so that the membership rate is about 96%: members at the
    union's reference date (2019 end, or before dissolving, or the as-of date) / rate."""
    ref = np.where(
        unions.group == 0,
        yend(2019),
        np.where(unions.group == 1, unions.dissolved.astype(np.int64) - 1, AS_OF),
    )
    active = m.active_at(ref[m.union])
    count = np.bincount(m.union[active], minlength=unions.n)
    rate = np.clip(rng.normal(membership_rate, 0.03, unions.n), 0.82, 1.0)
    rate[unions.org == 1] = np.clip(rate[unions.org == 1] + 0.03, 0, 1.0)
    emp = np.ceil(count / rate).astype(np.int64) + rng.integers(0, 2, unions.n)
    unions.employees[:] = np.maximum(emp, count)
