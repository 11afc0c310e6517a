"""The district's programmes for its members: mutual-aid medical enrolments and claims,
"blue-collar" loans, training and skills contests; calibrated like the population."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from union_demo._common import (
    AS_OF,
    DATA_START,
    Calendar,
    day,
    scaled,
    spread_total,
    weighted_pick,
    yend,
    ystart,
)
from union_demo._population import Members

YEARS = (2017, 2018, 2019, 2020)
PLAN_TYPES = ["住院医疗互助", "特殊病种", "女职工安康"]
CLAIM_STATUS = ["已发放", "审核中", "不予补助"]
LOAN_STATUS = ["正常", "结清", "逾期"]
BANKS = [
    "宁波银行镇海支行",
    "宁波镇海农村商业银行",
    "中国工商银行宁波镇海支行",
    "中国邮政储蓄银行宁波市镇海区支行",
    "中国农业银行宁波镇海支行",
]
PROGRAMS = ["吾意乐学", "学历提升", "雄镇杯技能竞赛", "技能培训"]

PLAN = {
    "enrollments": {2017: 149620, 2018: 157260, 2019: 167169, 2020: 171830},
    "special_share": 0.055,
    "female_share": 0.065,
    "high_tier_share": {2017: 0.05, 2018: 0.07, 2020: 0.11},
    "premium_2019_yuan": 10_545_000,  # "1054余万元": 10,540,000 <= x < 10,550,000
    "claimants": {2017: 10820, 2018: 11640, 2019: 12496, 2020: 8350},
    "benefit_yuan": {2017: 6_520_000, 2018: 7_160_000, 2019: 7_874_800, 2020: 5_310_000},
    "second_claim_share": 0.14,
    "rejected_share": 0.055,
    "pending_2020": 1400,
    "loans_first": {2017: 830, 2018: 1240, 2019: 1618, 2020: 960},  # 3688 borrowers by 2019
    "loans_second": {2018: 20, 2019: 95, 2020: 80},
    "loan_amount_cum_2019_yuan": 681_320_000,
    "wylx_sessions": {2017: 72, 2018: 88, 2019: 105, 2020: 46},
    "wylx_records": {2017: 2950, 2018: 3620, 2019: 4260, 2020: 1830},
    "edu_persons": {2017: 48, 2018: 57, 2019: 66, 2020: 71},
    "contest_events": {2017: 22, 2018: 25, 2019: 28, 2020: 14},
    "skills_sessions": {2017: 140, 2018: 155, 2019: 170, 2020: 90},
    "outsiders": 12000,
}
PREMIUM_CENTS = {"main": 6000, "main_high": 10000, "special": 8000, "female": 4000}


def _active_rows(
    m: Members,
    dates: np.ndarray,
    rng: np.random.Generator,
    need: np.ndarray,
    min_tenure: int = 0,
    exclude_person: np.ndarray | None = None,
    age_range: tuple[float, float] | None = None,
    tries: int = 60,
) -> np.ndarray:
    """For each date a random member row active then (rejection sampling); -1 if none
    was found. Persons in `exclude_person` (bool per person) are skipped and the found
    ones are added to it, so every row gets a different person."""
    out = np.full(len(dates), -1, dtype=np.int64)
    todo = np.nonzero(need)[0]
    leave_eff = m.leave_eff
    for _ in range(tries):
        if not len(todo):
            break
        r = rng.integers(0, m.n, len(todo))
        d = dates[todo].astype(np.int64)
        ok = (m.join[r].astype(np.int64) + min_tenure <= d) & (leave_eff[r] > d)
        if age_range is not None:
            age = (d - m.birth[r]) / 365.25
            ok &= (age >= age_range[0]) & (age <= age_range[1])
        if exclude_person is not None:
            ok &= ~exclude_person[m.person[r]]
            # one person per batch: keep the first row of each person
            pos = np.nonzero(ok)[0]
            _, first = np.unique(m.person[r[pos]], return_index=True)
            keep = np.zeros(len(todo), dtype=bool)
            keep[pos[first]] = True
            ok = keep
            exclude_person[m.person[r[ok]]] = True
        out[todo[ok]] = r[ok]
        todo = todo[~ok]
    return out


# ------------------------------------------------------------------- mutual aid


@dataclass
class Enrollments:
    year: np.ndarray
    seq: np.ndarray
    row: np.ndarray  # member row
    person: np.ndarray
    union: np.ndarray
    date: np.ndarray
    premium: np.ndarray  # cents
    ptype: np.ndarray
    # rows the correction file updates, with the earlier export's values
    fixed: np.ndarray
    base_premium: np.ndarray
    base_date: np.ndarray
    base_union: np.ndarray

    @property
    def n(self) -> int:
        return len(self.year)

    def base(self, rows: np.ndarray):
        """(premium, date, union) of rows as the earlier export had them."""
        premium, date, union = self.premium[rows], self.date[rows], self.union[rows]
        hit = np.searchsorted(self.fixed, rows)
        hit = np.minimum(hit, max(len(self.fixed) - 1, 0))
        was = (self.fixed[hit] == rows) if len(self.fixed) else np.zeros(len(rows), bool)
        premium = np.where(was, self.base_premium[hit], premium) if was.any() else premium
        date = np.where(was, self.base_date[hit], date) if was.any() else date
        union = np.where(was, self.base_union[hit], union) if was.any() else union
        return premium, date, union


def _enrol_weights(cal: Calendar, y: int) -> np.ndarray:
    ym = {
        (y - 1, 12): 1.5,
        (y, 1): 5.0,
        (y, 2): 2.4,
        (y, 3): 4.2,
        (y, 4): 1.0,
        (y, 5): 0.6,
        (y, 6): 0.5,
        **{(y, mo): 0.35 for mo in range(7, 12)},
        (y, 12): 0.2,
    }
    if y == 2020:
        ym.update({(2020, 2): 1.2, (2020, 3): 3.5, (2020, 4): 2.0})
    return cal.weights(year_month=ym, default=0.0, weekend=0.1)


def _second_dates(rng, cal: Calendar, cum, first: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A second plan type: mostly on the same day as the first, else later."""
    same = rng.random(len(first)) < 0.7
    return np.where(same, first, cal.sample(rng, first, hi, cum))


def build_enrollments(
    rng: np.random.Generator, scale: float, cal: Calendar, m: Members, n_people: int
) -> Enrollments:
    prev_main = np.zeros(n_people, dtype=bool)
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("year", "row", "date", "premium", "ptype", "seq")
    }
    join = m.join.astype(np.int64)
    leave_eff = m.leave_eff.astype(np.int64)
    w_any = cal.weights(weekend=0.1)
    for y in YEARS:
        win_lo = max(DATA_START, day(f"{y - 1}-12-01"))
        win_hi = min(yend(y), AS_OF)
        lo = np.maximum(join, win_lo)
        hi = np.minimum(leave_eff - 1, win_hi)
        cand = np.nonzero(lo <= hi)[0]
        # one row per person (of a mover's two rows, the later)
        twice = np.bincount(m.person[cand], minlength=n_people)[m.person[cand]] > 1
        if twice.any():
            dup = cand[twice]
            order = dup[np.argsort(-join[dup], kind="stable")]
            _, first = np.unique(m.person[order], return_index=True)
            cand = np.sort(np.concatenate([cand[~twice], order[first]]))
        w = (1.0 + 5.0 * prev_main[m.person[cand]]) * np.where(m.frontline[cand] == 1, 1.2, 1.0)
        total = scaled(PLAN["enrollments"][y], scale, 10)
        n_sp = int(round(PLAN["special_share"] * total))
        n_f = int(round(PLAN["female_share"] * total))
        n_main = min(total - n_sp - n_f, len(cand))
        main = cand[weighted_pick(rng, w, n_main)]
        d_main = cal.sample(rng, lo[main], hi[main], _enrol_weights(cal, y))
        prev_main[:] = False
        prev_main[m.person[main]] = True

        n_sp = min(n_sp, len(main))
        sp = np.sort(rng.choice(len(main), n_sp, replace=False))
        fem = np.nonzero(~m.male[main])[0]
        n_f = min(n_f, len(fem))
        fe = np.sort(rng.choice(fem, n_f, replace=False))

        rows = np.concatenate([main, main[sp], main[fe]])
        dates = np.concatenate(
            [
                d_main,
                _second_dates(rng, cal, w_any, d_main[sp], hi[main[sp]]),
                _second_dates(rng, cal, w_any, d_main[fe], hi[main[fe]]),
            ]
        )
        ptype = np.concatenate(
            [np.zeros(len(main), np.int8), np.ones(n_sp, np.int8), np.full(n_f, 2, np.int8)]
        )
        premium = np.concatenate(
            [
                np.full(len(main), PREMIUM_CENTS["main"], np.int64),
                np.full(n_sp, PREMIUM_CENTS["special"], np.int64),
                np.full(n_f, PREMIUM_CENTS["female"], np.int64),
            ]
        )
        if y == 2019:
            target = int(round(PLAN["premium_2019_yuan"] * 100 * total / PLAN["enrollments"][2019]))
            step = PREMIUM_CENTS["main_high"] - PREMIUM_CENTS["main"]
            k = int(round((target - int(premium.sum())) / step))
        else:
            k = int(round(PLAN["high_tier_share"][y] * len(main)))
        k = max(0, min(k, len(main)))
        premium[np.sort(rng.choice(len(main), k, replace=False))] = PREMIUM_CENTS["main_high"]
        # in order of enrolment (sequence numbers follow it), compact types
        order = np.lexsort((rng.random(len(rows)), dates))
        cols["year"].append(np.full(len(rows), y, np.int16))
        cols["row"].append(rows[order].astype(np.int32))
        cols["date"].append(dates[order].astype(np.int32))
        cols["premium"].append(premium[order].astype(np.int32))
        cols["ptype"].append(ptype[order])
        cols["seq"].append(np.arange(1, len(rows) + 1, dtype=np.int32))
        del main, d_main, rows, dates, premium, ptype, order, cand, lo, hi, w

    year = np.concatenate(cols.pop("year"))
    row = np.concatenate(cols.pop("row"))
    date = np.concatenate(cols.pop("date"))
    premium = np.concatenate(cols.pop("premium"))
    ptype = np.concatenate(cols.pop("ptype"))
    seq = np.concatenate(cols.pop("seq"))
    union = m.union[row].astype(np.int32)
    n = len(year)
    # the correction file (补录更正): 2019 premiums topped up, 2020 dates and unions fixed
    high19 = np.nonzero((year == 2019) & (premium == PREMIUM_CENTS["main_high"]))[0]
    fix1 = rng.choice(high19, min(scaled(520, scale), len(high19)), replace=False)
    taken = np.zeros(n, dtype=bool)
    taken[fix1] = True
    r20 = np.nonzero((year == 2020) & ~taken)[0]
    fix2 = rng.choice(r20, min(scaled(400, scale), len(r20)), replace=False)
    taken[fix2] = True
    r20 = np.nonzero((year == 2020) & ~taken)[0]
    fix3 = rng.choice(r20, min(scaled(150, scale), len(r20)), replace=False)
    fixed = np.concatenate([fix1, fix2, fix3])
    base_premium = premium[fixed].copy()
    base_date = date[fixed].copy()
    base_union = union[fixed].copy()
    k1, k2 = len(fix1), len(fix2)
    base_premium[:k1] = PREMIUM_CENTS["main"]
    base_date[k1 : k1 + k2] = np.maximum(
        date[fix2].astype(np.int64) - rng.integers(1, 21, k2), day("2019-12-01")
    )
    base_union[k1 + k2 :] = (union[fix3] + 1 + rng.integers(0, 50, len(fix3))) % (
        int(union.max()) + 1
    )
    srt = np.argsort(fixed)
    return Enrollments(
        year=year,
        seq=seq,
        row=row,
        person=m.person[row].astype(np.int32),
        union=union,
        date=date,
        premium=premium,
        ptype=ptype,
        fixed=fixed[srt],
        base_premium=base_premium[srt].astype(np.int32),
        base_date=base_date[srt],
        base_union=base_union[srt].astype(np.int32),
    )


@dataclass
class Claims:
    year: np.ndarray
    seq: np.ndarray
    enrollment: np.ndarray  # index into Enrollments
    date: np.ndarray
    benefit: np.ndarray  # cents
    status: np.ndarray  # 0 paid, 1 pending, 2 rejected
    base_status: np.ndarray  # status in the year's file (earlier export)
    in_update: np.ndarray  # bool: (also) in the later status-update file
    in_base: np.ndarray  # bool: in the year's file

    @property
    def n(self) -> int:
        return len(self.year)


def build_claims(rng: np.random.Generator, scale: float, cal: Calendar, e: Enrollments) -> Claims:
    w_claim = cal.weights(
        [0.7, 0.45, 0.9, 1.0, 1.0, 1.0, 1.05, 1.05, 1.0, 1.0, 1.05, 1.1],
        weekend=0.1,
        year_month={(2020, 2): 0.15, (2020, 3): 0.5},
    )
    type_w = np.array([1.0, 1.6, 0.8])
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("year", "enr", "date", "benefit", "status")
    }
    for c in YEARS:
        pool = np.nonzero((e.year == c) | (e.year == c - 1))[0]
        cur = e.year[pool] == c
        paid_end = day("2020-09-25") if c == 2020 else yend(c)
        lo = np.where(cur, np.maximum(e.date[pool].astype(np.int64) + 1, ystart(c)), ystart(c))
        hi = np.where(cur, paid_end, min(day(f"{c}-03-31"), AS_OF))
        ok = lo <= hi
        pool, cur, lo, hi = pool[ok], cur[ok], lo[ok], hi[ok]
        w = np.where(cur, 1.0, 0.15) * type_w[e.ptype[pool]]
        keys = np.log(rng.random(len(pool))) / w
        # weighted choice of claimants: each person's best enrolment, then the best persons
        person = e.person[pool]
        best = np.full(int(person.max()) + 1 if len(person) else 0, -np.inf)
        np.maximum.at(best, person, keys)
        first = np.nonzero(keys == best[person])[0]
        _, once = np.unique(person[first], return_index=True)  # ties: one row per person
        first = first[np.sort(once)]
        k = min(scaled(PLAN["claimants"][c], scale, 3), len(first))
        top = first[np.argpartition(-keys[first], k - 1)[:k]] if k < len(first) else first
        chosen = np.sort(top)  # positions in pool, one per person
        second = rng.choice(chosen, int(round(PLAN["second_claim_share"] * k)), replace=False)
        paid = np.concatenate([chosen, second])
        d_paid = cal.sample(rng, lo[paid], hi[paid], w_claim)
        x = np.clip(np.exp(rng.normal(np.log(420.0), 0.95, len(paid))), 30, 60000)
        total = int(round(PLAN["benefit_yuan"][c] * 100 * k / PLAN["claimants"][c]))
        cents = spread_total(rng, x, total, minimum=3000)
        n_rej = int(round(PLAN["rejected_share"] * len(paid)))
        rej = rng.choice(len(pool), n_rej, replace=False)
        d_rej = cal.sample(rng, lo[rej], hi[rej], w_claim)
        enr = [pool[paid], pool[rej]]
        dates = [d_paid, d_rej]
        benefit = [cents, np.zeros(n_rej, np.int64)]
        status = [np.zeros(len(paid), np.int8), np.full(n_rej, 2, np.int8)]
        if c == 2020:
            cand = np.nonzero(cur)[0]
            plo = np.maximum(lo[cand], day("2020-08-01"))
            cand, plo = cand[plo <= AS_OF], plo[plo <= AS_OF]
            n_p = min(scaled(PLAN["pending_2020"], scale), len(cand))
            pick = rng.choice(len(cand), n_p, replace=False)
            enr.append(pool[cand[pick]])
            dates.append(cal.sample(rng, plo[pick], np.full(n_p, AS_OF), w_claim))
            asked = np.clip(np.exp(rng.normal(np.log(420.0), 0.95, n_p)), 30, 60000)
            benefit.append(np.round(asked * 100).astype(np.int64))
            status.append(np.ones(n_p, np.int8))
        n = sum(len(a) for a in enr)
        parts["year"].append(np.full(n, c, np.int16))
        parts["enr"].append(np.concatenate(enr))
        parts["date"].append(np.concatenate(dates).astype(np.int32))
        parts["benefit"].append(np.concatenate(benefit))
        parts["status"].append(np.concatenate(status))
    year = np.concatenate(parts["year"])
    enr = np.concatenate(parts["enr"])
    date = np.concatenate(parts["date"])
    benefit = np.concatenate(parts["benefit"])
    status = np.concatenate(parts["status"])
    order = np.lexsort((rng.random(len(year)), date, year))
    year, enr, date, benefit, status = (a[order] for a in (year, enr, date, benefit, status))
    seq = np.zeros(len(year), dtype=np.int64)
    for c in YEARS:
        sel = np.nonzero(year == c)[0]
        seq[sel] = np.arange(1, len(sel) + 1)
    # the earlier exports and the later status update
    base_status = status.copy()
    in_base = date <= day("2020-08-31")
    in_update = ~in_base
    dec19 = np.nonzero((date >= day("2019-12-01")) & (date <= yend(2019)) & (status == 0))[0]
    late = dec19[rng.random(len(dec19)) < 0.4]
    base_status[late] = 1
    in_update[late] = True
    summer = np.nonzero((date >= day("2020-07-01")) & in_base & (status != 1))[0]
    late = summer[rng.random(len(summer)) < 0.5]
    base_status[late] = 1
    in_update[late] = True
    return Claims(
        year=year,
        seq=seq,
        enrollment=enr,
        date=date,
        benefit=benefit,
        status=status,
        base_status=base_status,
        in_update=in_update,
        in_base=in_base,
    )


# ------------------------------------------------------------------------ loans


@dataclass
class Loans:
    seq: np.ndarray
    row: np.ndarray
    person: np.ndarray
    date: np.ndarray
    amount: np.ndarray  # cents
    term: np.ndarray
    bank: np.ndarray
    status: np.ndarray
    second: np.ndarray  # bool: a borrower's second loan

    @property
    def n(self) -> int:
        return len(self.seq)


def build_loans(
    rng: np.random.Generator, scale: float, cal: Calendar, m: Members, n_people: int
) -> Loans:
    w_loan = cal.weights(
        [0.8, 0.4, 1.2, 1.3, 1.2, 1.2, 1.0, 0.9, 1.0, 1.0, 1.0, 0.9],
        weekend=0.05,
        year_month={(2020, 2): 0.1, (2020, 3): 0.6},
    )
    used = np.zeros(n_people, dtype=bool)
    rows, dates, second = [], [], []
    first_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for y in YEARS:
        k = scaled(PLAN["loans_first"][y], scale, 2)
        d = cal.sample(rng, np.full(k, ystart(y)), np.full(k, min(yend(y), AS_OF)), w_loan)
        r = _active_rows(
            m, d, rng, np.ones(k, bool), min_tenure=180, exclude_person=used, age_range=(21.0, 55.0)
        )
        ok = r >= 0
        rows.append(r[ok])
        dates.append(d[ok])
        second.append(np.zeros(int(ok.sum()), bool))
        first_of[y] = (r[ok], d[ok])
    prior_r = np.concatenate([first_of[y][0] for y in YEARS])
    prior_d = np.concatenate([first_of[y][1] for y in YEARS]).astype(np.int64)
    has_second = np.zeros(len(prior_r), dtype=bool)
    for y, k in PLAN["loans_second"].items():
        k = scaled(k, scale)
        lo = np.maximum(prior_d + 365, ystart(y))
        hi = np.full(len(prior_r), min(yend(y), AS_OF))
        cand = np.nonzero((lo <= hi) & ~has_second)[0]
        d = cal.sample(rng, lo[cand], hi[cand], w_loan).astype(np.int64)
        still = (m.join[prior_r[cand]] <= d) & (m.leave_eff[prior_r[cand]] > d)
        cand, d = cand[still], d[still]
        pick = np.sort(rng.choice(len(cand), min(k, len(cand)), replace=False))
        has_second[cand[pick]] = True
        rows.append(prior_r[cand[pick]])
        dates.append(d[pick].astype(np.int32))
        second.append(np.ones(len(pick), bool))
    row = np.concatenate(rows)
    date = np.concatenate(dates).astype(np.int32)
    second = np.concatenate(second)
    order = np.lexsort((rng.random(len(row)), date))
    row, date, second = row[order], date[order], second[order]
    n = len(row)
    # amounts in steps of 5,000 yuan, about 180,000 on average; the total to 2019 end exact
    units = np.clip(np.round(np.exp(rng.normal(np.log(36.0), 0.45, n))), 3, 100).astype(np.int64)
    upto = date <= yend(2019)
    target = int(round(PLAN["loan_amount_cum_2019_yuan"] * scale / 5000))
    for _ in range(1000):
        diff = target - int(units[upto].sum())
        if diff == 0 or not upto.any():
            break
        room = np.nonzero(upto & ((units < 100) if diff > 0 else (units > 3)))[0]
        pick = rng.choice(room, min(abs(diff), len(room)), replace=False)
        units[pick] += 1 if diff > 0 else -1
    amount = units * 5000 * 100
    term = rng.choice(np.array([12, 24, 36, 60]), n, p=[0.15, 0.25, 0.45, 0.15]).astype(np.int64)
    bank = rng.choice(len(BANKS), n, p=[0.3, 0.3, 0.15, 0.15, 0.1]).astype(np.int8)
    ends = date.astype(np.int64) + np.round(term * 30.44).astype(np.int64)
    status = np.where(
        ends < AS_OF, np.where(rng.random(n) < 0.97, 1, 2), np.where(rng.random(n) < 0.965, 0, 2)
    ).astype(np.int8)
    return Loans(
        seq=np.arange(1, n + 1, dtype=np.int64),
        row=row,
        person=m.person[row],
        date=date,
        amount=amount,
        term=term,
        bank=bank,
        status=status,
        second=second,
    )


# ---------------------------------------------------------------------- training


@dataclass
class Training:
    seq: np.ndarray
    person: np.ndarray
    program: np.ndarray
    session: list[str] | np.ndarray  # session id text (numpy bytes)
    date: np.ndarray
    hours: np.ndarray  # cents of an hour (2.5 h = 250)
    completed: np.ndarray  # int8 1/0/-1

    @property
    def n(self) -> int:
        return len(self.seq)


def build_training(
    rng: np.random.Generator, scale: float, cal: Calendar, m: Members, outsiders: np.ndarray
) -> Training:
    from union_demo._common import digits_text

    w_free = cal.weights(
        [1.0, 0.3, 1.0, 1.0, 1.0, 0.9, 0.8, 0.8, 1.0, 1.0, 1.0, 0.9],
        weekend=4.0,
        year_month={(2020, 2): 0.0, (2020, 3): 0.0, (2020, 4): 0.0, (2020, 5): 0.4},
    )
    w_contest = cal.weights(
        [0, 0, 0, 1, 1, 1, 0.6, 0.6, 1, 1, 1, 0.3],
        weekend=2.0,
        year_month={(2020, 4): 0.0, (2020, 5): 0.0},
    )
    w_skill = cal.weights(
        [0.8, 0.2, 1, 1, 1, 1, 0.8, 0.8, 1, 1, 1, 1],
        weekend=0.5,
        year_month={(2020, 2): 0.0, (2020, 3): 0.0},
    )
    recs = {k: [] for k in ("program", "session_no", "date", "member")}

    def sessions(
        program: int,
        y: int,
        n_sessions: int,
        sizes: np.ndarray,
        weights,
        member_share: float,
        start_no: int = 0,
    ):
        hi = min(yend(y), AS_OF)
        d = cal.sample(rng, np.full(n_sessions, ystart(y)), np.full(n_sessions, hi), weights)
        recs["program"].append(np.full(int(sizes.sum()), program, np.int8))
        recs["session_no"].append(np.repeat(np.arange(n_sessions) + start_no, sizes) + y * 10000)
        recs["date"].append(np.repeat(d, sizes))
        recs["member"].append(rng.random(int(sizes.sum())) < member_share)

    for y in YEARS:
        n = scaled(PLAN["wylx_sessions"][y], scale, 1)
        total = scaled(PLAN["wylx_records"][y], scale, n * 12)
        sizes = spread_total(rng, rng.poisson(total / n, n) + 1.0, total, minimum=12)
        sessions(0, y, n, sizes, w_free, 0.75)
        n = scaled(PLAN["contest_events"][y], scale, 1)
        sessions(2, y, n, rng.integers(12, 61, n), w_contest, 0.95)
        n = scaled(PLAN["skills_sessions"][y], scale, 1)
        sessions(3, y, n, rng.integers(15, 51, n), w_skill, 0.65)
    program = np.concatenate(recs["program"])
    session_no = np.concatenate(recs["session_no"])
    date = np.concatenate(recs["date"]).astype(np.int32)
    is_member = np.concatenate(recs["member"])
    person = np.full(len(program), -1, dtype=np.int64)
    r = _active_rows(m, date, rng, is_member)
    person[r >= 0] = m.person[r[r >= 0]]
    out = person < 0
    person[out] = outsiders[rng.integers(0, len(outsiders), int(out.sum()))]

    # 学历提升: distinct members a year; spring class, most go on in autumn
    e_prog, e_sess, e_date, e_person = [], [], [], []
    for y in YEARS:
        k = scaled(PLAN["edu_persons"][y], scale, 1)
        spring = cal.sample(
            rng, np.array([day(f"{y}-03-01")]), np.array([day(f"{y}-03-10")]), cal.weights()
        )[0]
        autumn = cal.sample(
            rng, np.array([day(f"{y}-09-01")]), np.array([day(f"{y}-09-12")]), cal.weights()
        )[0]
        taken = np.zeros(int(m.person.max()) + 1, dtype=bool)
        r = _active_rows(
            m,
            np.full(k, spring),
            rng,
            np.ones(k, bool),
            min_tenure=365,
            exclude_person=taken,
            age_range=(20.0, 45.0),
        )
        p = m.person[r[r >= 0]]
        k = len(p)
        cls = np.arange(k) // 40
        go_on = rng.random(k) < 0.75
        e_prog.append(np.ones(k + int(go_on.sum()), np.int8))
        e_sess.append(np.concatenate([y * 10000 + cls, y * 10000 + 5000 + cls[go_on]]))
        e_date.append(np.concatenate([np.full(k, spring), np.full(int(go_on.sum()), autumn)]))
        e_person.append(np.concatenate([p, p[go_on]]))
    program = np.concatenate([program, *e_prog])
    session_no = np.concatenate([session_no, *e_sess])
    date = np.concatenate([date, *e_date]).astype(np.int32)
    person = np.concatenate([person, *e_person])

    n = len(program)
    order = np.lexsort((rng.random(n), session_no, date))
    program, session_no, date, person = (a[order] for a in (program, session_no, date, person))
    prefixes = np.array([b"WYLX-", b"XLTS-", b"XZB--", b"JNPX-"])
    year = session_no // 10000
    session = np.char.add(
        np.char.add(prefixes[program], digits_text(year, 4)),
        np.char.add(b"-", digits_text(session_no % 10000 + 1, 4)),
    )
    session = np.char.replace(session, b"--", b"-")
    hours = np.select(
        [program == 0, program == 1, program == 2],
        [
            rng.choice(np.array([200, 250, 300]), n),
            rng.choice(np.array([6400, 9600]), n),
            np.full(n, 800),
        ],
        rng.choice(np.array([1600, 2400, 4000]), n),
    ).astype(np.int64)
    u = rng.random(n)
    completed = np.select(
        [program == 0, program == 1, program == 2],
        [
            np.where(u < 0.92, 1, np.where(u < 0.95, 0, -1)),
            np.where(u < 0.9, 1, 0),
            np.where(u < 0.6, -1, 1),
        ],
        np.where(u < 0.85, 1, np.where(u < 0.95, 0, -1)),
    ).astype(np.int8)
    return Training(
        seq=np.arange(1, n + 1, dtype=np.int64),
        person=person,
        program=program,
        session=session,
        date=date,
        hours=hours,
        completed=completed,
    )
