"""Deliberately bad rows, one kind per rule of the data contract, added on top of the
calibrated truth: each uses its own key (and, where a person matters, its own person),
so quarantining it never removes a truth row or anything that depends on one.

Kinds are named `rule:column` after the contract's rules; `conflicting_duplicate` rows
come in pairs (both quarantined), `identical_repeat` rows repeat a truth row byte for
byte in the same file (they collapse to one, and are not quarantined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from union_demo._common import (
    AS_OF,
    NA,
    NA64,
    Table,
    check_char,
    concat_tables,
    day,
    digits_text,
)

BUDGET_SHARE = 0.025  # of a source's rows, at most, quarantined on purpose
FREE = "identical_repeat"
PAIR = "conflicting_duplicate"


def plan_counts(n_rows: int, rates: dict[str, float]) -> dict[str, int]:
    """Rows per kind: rate * rows (at least one), within the budget of quarantined rows
    (round robin when the source is too small for one of each)."""
    desired = {k: max(1, int(round(r * n_rows))) for k, r in rates.items()}

    def cost(k: str) -> int:
        return 0 if k == FREE else 2 if k == PAIR else 1

    budget = int(BUDGET_SHARE * n_rows)
    if sum(desired[k] * cost(k) for k in desired) <= budget:
        return desired
    out = {k: 0 for k in desired}
    left = budget
    progressed = True
    while progressed:
        progressed = False
        for k in desired:
            c = cost(k)
            if out[k] < desired[k] and c <= left:
                out[k] += 1
                left -= c
                progressed = True
    out[FREE] = min(desired.get(FREE, 0), max(1, budget)) if FREE in desired else 0
    return {k: v for k, v in out.items() if v > 0 or k == FREE}


@dataclass
class BadRows:
    table: Table | None  # the bad rows (pairs adjacent)
    unit: np.ndarray  # group per row: a pair shares its unit (kept in one file)
    counts: dict[str, int]  # rows per kind (pairs: 2 rows each; repeats: extra lines)
    repeats: int  # identical repeats wanted (drawn per file from its truth rows)


class Keys:
    """New keys beyond any truth key: prefix + zero-padded number."""

    def __init__(self, prefix: str, width: int, start: int):
        self.prefix, self.width, self.next = prefix, width, start

    def take(self, k: int) -> list[str]:
        out = digits_text(np.arange(self.next, self.next + k), self.width, self.prefix)
        self.next += k
        return [b.decode("ascii") for b in out.tolist()]


class Persons:
    """Fresh persons (never members, never elsewhere in the drop) for bad rows."""

    def __init__(self, people, pool: np.ndarray):
        self.people, self.pool, self.pos = people, pool, 0

    def take(self, k: int) -> np.ndarray:
        if self.pos + k > len(self.pool):
            raise RuntimeError("bad-row person pool exhausted")
        out = self.pool[self.pos : self.pos + k]
        self.pos += k
        return out

    def ids(self, k: int) -> list[str]:
        return [b.decode("ascii") for b in self.people.id_text[self.take(k)].tolist()]


def wrong_check(ids: list[str], rng) -> list[str]:
    out = []
    for s in ids:
        good = s[17]
        bad = "0123456789X"[rng.integers(0, 11)]
        while bad == good:
            bad = "0123456789X"[rng.integers(0, 11)]
        out.append(s[:17] + bad)
    return out


IMPOSSIBLE_BIRTHS = [
    "19900230",
    "19851331",
    "19920431",
    "20010229",
    "19780631",
    "19950011",
    "19880900",
    "21050101",
]


def impossible_birth_ids(k: int, rng) -> list[str]:
    out = []
    for _ in range(k):
        region = ["330211", "330206", "341221", "510922"][rng.integers(0, 4)]
        body = (
            region
            + IMPOSSIBLE_BIRTHS[rng.integers(0, len(IMPOSSIBLE_BIRTHS))]
            + f"{rng.integers(0, 1000):03d}"
        )
        out.append(body + check_char(body))
    return out


def _pick(rng, options: list[str], k: int) -> list[str]:
    return [options[i] for i in rng.integers(0, len(options), k).tolist()]


BAD_DATES = [
    "2019-02-30",
    "2019/13/5",
    "2018年2月30日",
    "不详",
    "2019.00.12",
    "20190315",
    "2019-6",
    "待补录",
]
# not amounts in any accepted style ("60元" and "¥60" are accepted)
BAD_AMOUNTS = ["六十元", "60美元", "—", "待定", "壹仟元", "1O00", "约200"]


class Builder:
    """Collects bad rows kind by kind from copies of truth rows."""

    def __init__(self, rng, truth: Table, counts: dict[str, int]):
        self.rng, self.truth, self.counts = rng, truth, counts
        self.parts: list[Table] = []
        self.units: list[np.ndarray] = []
        self.n_units = 0
        self.written: dict[str, int] = {}

    def k(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    def copies(self, k: int, rows: np.ndarray | None = None) -> Table:
        pick = (
            self.rng.integers(0, self.truth.n, k)
            if rows is None
            else self.rng.choice(rows, k, replace=len(rows) < k)
        )
        return self.truth.take(pick).copy_values()

    def add(self, kind: str, t: Table, pairs: bool = False) -> None:
        if t.n == 0:
            return
        self.parts.append(t)
        if pairs:
            unit = self.n_units + np.arange(t.n) // 2
            self.n_units += t.n // 2
        else:
            unit = self.n_units + np.arange(t.n)
            self.n_units += t.n
        self.units.append(unit)
        self.written[kind] = self.written.get(kind, 0) + t.n

    def pairs(self, key: str, keys: list[str], t: Table, change) -> Table:
        """Each row of t becomes a pair (rows 2i, 2i+1) under a new key;
        `change(table, rows)` alters the second of each pair."""
        k = t.n
        both = t.take(np.repeat(np.arange(k), 2)).copy_values()
        both.set_text(key, np.arange(2 * k), [x for x in keys for _ in range(2)])
        change(both, np.arange(1, 2 * k, 2))
        return both

    def done(self) -> BadRows:
        counts = dict(self.written)
        repeats = self.k(FREE)
        if repeats:
            counts[FREE] = repeats
        if not self.parts:
            return BadRows(None, np.zeros(0, np.int64), counts, repeats)
        return BadRows(concat_tables(self.parts), np.concatenate(self.units), counts, repeats)


def _shift_dates(t: Table, name: str, rows, days) -> None:
    v = np.asarray(t.values[name]).copy()
    v[rows] = np.where(v[rows] == NA, NA, np.clip(v[rows].astype(np.int64) + days, None, AS_OF))
    t.values[name] = v


def _set(t: Table, name: str, rows, value) -> None:
    v = np.asarray(t.values[name]).copy()
    v[rows] = value
    t.values[name] = v


# --------------------------------------------------------------------- per source

UNION_RATES = {
    "not_allowed:street": 0.0012,
    "not_allowed:org_type": 0.0012,
    "missing_required:union_name": 0.0008,
    "missing_required:employee_count": 0.0008,
    "unparseable:founded_date": 0.0012,
    "unparseable:employee_count": 0.0008,
    "out_of_range:employee_count": 0.0008,
    "out_of_range:star_rating": 0.0012,
    "date_order:authorized_date": 0.0008,
    "date_order:dissolved_date": 0.0008,
    PAIR: 0.0008,
    FREE: 0.0015,
}


def bad_unions(rng, truth: Table, spare_ids: list[str], n_rows: int = 0) -> BadRows:
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, UNION_RATES))
    ids = iter(spare_ids)

    def new(kind):
        t = b.copies(b.k(kind))
        t.set_text("union_id", np.arange(t.n), [next(ids) for _ in range(t.n)])
        return t

    t = new("not_allowed:street")
    t.set_text(
        "street", np.arange(t.n), _pick(rng, ["北仑区", "宁波市", "镇海新城", "江北区"], t.n)
    )
    b.add("not_allowed:street", t)
    t = new("not_allowed:org_type")
    t.set_text(
        "org_type", np.arange(t.n), _pick(rng, ["民营企业", "个体", "事业单位", "国企"], t.n)
    )
    b.add("not_allowed:org_type", t)
    t = new("missing_required:union_name")
    t.set_text("union_name", np.arange(t.n), [None] * t.n)
    b.add("missing_required:union_name", t)
    t = new("missing_required:employee_count")
    _set(t, "employee_count", np.arange(t.n), NA64)
    b.add("missing_required:employee_count", t)
    t = new("unparseable:founded_date")
    t.set_raw("founded_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add("unparseable:founded_date", t)
    t = new("unparseable:employee_count")
    t.set_raw("employee_count", np.arange(t.n), _pick(rng, ["约50人", "五十", "50+", "不详"], t.n))
    b.add("unparseable:employee_count", t)
    t = new("out_of_range:employee_count")
    _set(t, "employee_count", np.arange(t.n), -rng.integers(1, 60, t.n))
    b.add("out_of_range:employee_count", t)
    t = new("out_of_range:star_rating")
    _set(t, "star_rating", np.arange(t.n), rng.choice([6, 7, 9, 10], t.n))
    b.add("out_of_range:star_rating", t)
    t = new("date_order:authorized_date")
    f = np.asarray(t.values["founded_date"]).astype(np.int64)
    _set(t, "authorized_date", np.arange(t.n), f - rng.integers(30, 700, t.n))
    _set(t, "dissolved_date", np.arange(t.n), NA)
    b.add("date_order:authorized_date", t)
    t = new("date_order:dissolved_date")
    f = np.asarray(t.values["founded_date"]).astype(np.int64)
    _set(t, "dissolved_date", np.arange(t.n), f - rng.integers(30, 700, t.n))
    _set(t, "authorized_date", np.arange(t.n), NA)
    b.add("date_order:dissolved_date", t)
    k = b.k(PAIR)
    if k:
        t = b.copies(k)
        both = b.pairs(
            "union_id",
            [next(ids) for _ in range(k)],
            t,
            lambda tt, rows: _set(
                tt, "employee_count", rows, np.asarray(tt.values["employee_count"])[rows] + 7
            ),
        )
        _set(both, "dissolved_date", np.arange(both.n), NA)
        b.add(PAIR, both, pairs=True)
    return b.done()


MEMBER_RATES = {
    "invalid_id_number:check_digit": 0.0005,
    "invalid_id_number:birth_date": 0.0003,
    "missing_required:name": 0.0002,
    "missing_required:id_number": 0.00015,
    "missing_required:join_date": 0.0002,
    "unparseable:join_date": 0.00025,
    "unparseable:frontline": 0.0001,
    "date_order:leave_date": 0.0003,
    "after_as_of:join_date": 0.00015,
    "invalid_phone:phone": 0.0004,
    "unknown_union:union_id": 0.00035,
    PAIR: 0.0001,
    FREE: 0.0004,
}


def bad_members(
    rng,
    truth: Table,
    people,
    persons: Persons,
    keys: Keys,
    unknown_unions: list[str],
    n_rows: int = 0,
) -> BadRows:
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, MEMBER_RATES))

    def new(kind, k=None):
        k = b.k(kind) if k is None else k
        t = b.copies(k)
        p = persons.take(t.n)
        t.set_text("member_id", np.arange(t.n), keys.take(t.n))
        t.set_text(
            "id_number", np.arange(t.n), [x.decode("ascii") for x in people.id_text[p].tolist()]
        )
        t.set_text("name", np.arange(t.n), people.name.take(p).to_pylist())
        t.set_text("phone", np.arange(t.n), [x.decode("ascii") for x in people.phone[p].tolist()])
        return t

    kind = "invalid_id_number:check_digit"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), wrong_check(t.values["id_number"].to_pylist(), rng))
    b.add(kind, t)
    kind = "invalid_id_number:birth_date"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), impossible_birth_ids(t.n, rng))
    b.add(kind, t)
    kind = "missing_required:name"
    t = new(kind)
    t.set_text("name", np.arange(t.n), [None] * t.n)
    b.add(kind, t)
    kind = "missing_required:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), [None] * t.n)
    b.add(kind, t)
    kind = "missing_required:join_date"
    t = new(kind)
    _set(t, "join_date", np.arange(t.n), NA)
    b.add(kind, t)
    kind = "unparseable:join_date"
    t = new(kind)
    t.set_raw("join_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add(kind, t)
    kind = "unparseable:frontline"
    t = new(kind)
    t.set_raw("frontline", np.arange(t.n), _pick(rng, ["是的", "未知", "2", "一线"], t.n))
    b.add(kind, t)
    kind = "date_order:leave_date"
    t = new(kind)
    j = np.asarray(t.values["join_date"]).astype(np.int64)
    _set(t, "leave_date", np.arange(t.n), j - rng.integers(30, 900, t.n))
    b.add(kind, t)
    kind = "after_as_of:join_date"
    t = new(kind)
    _set(t, "join_date", np.arange(t.n), day("2030-01-01") + rng.integers(0, 360, t.n))
    for c in ("leave_date", "collected_date", "app_verified_date"):
        _set(t, c, np.arange(t.n), NA)
    b.add(kind, t)
    kind = "invalid_phone:phone"
    t = new(kind)
    bad_phones = []
    for _ in range(t.n):
        r = int(rng.integers(0, 4))
        tail = f"{int(rng.integers(0, 10**8)):08d}"
        bad_phones.append(
            ["138" + tail[:7], "2" + tail + "12", "0574-8" + tail[:7], "1" + tail + "123"][r]
        )
    t.set_text("phone", np.arange(t.n), bad_phones)
    b.add(kind, t)
    kind = "unknown_union:union_id"
    t = new(kind)
    t.set_text("union_id", np.arange(t.n), _pick(rng, unknown_unions, t.n))
    b.add(kind, t)
    k = b.k(PAIR)
    if k:
        t = new(PAIR, k)

        def change(tt, rows):
            tt.set_text(
                "phone", rows, [f"139{int(x):08d}" for x in rng.integers(0, 10**8, len(rows))]
            )

        both = b.pairs("member_id", keys.take(k), t, change)
        b.add(PAIR, both, pairs=True)
    return b.done()


ENROLL_RATES = {
    "invalid_id_number:id_number": 0.00018,
    "unknown_member:id_number": 0.00022,
    "unknown_union:union_id": 0.0001,
    "out_of_range:plan_year": 0.00008,
    "out_of_range:premium_yuan": 0.0001,
    "unparseable:premium_yuan": 0.00007,
    "not_allowed:plan_type": 0.0001,
    "unparseable:enrolled_date": 0.00008,
    "missing_required:premium_yuan": 0.0001,
    PAIR: 0.00006,
    FREE: 0.00025,
}


def bad_enrollments(
    rng, truth: Table, persons: Persons, keys: Keys, unknown_unions: list[str], n_rows: int = 0
) -> BadRows:
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, ENROLL_RATES))

    def new(kind, k=None):
        t = b.copies(b.k(kind) if k is None else k)
        t.set_text("enrollment_id", np.arange(t.n), keys.take(t.n))
        return t

    kind = "invalid_id_number:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), wrong_check(t.values["id_number"].to_pylist(), rng))
    b.add(kind, t)
    kind = "unknown_member:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), persons.ids(t.n))
    b.add(kind, t)
    kind = "unknown_union:union_id"
    t = new(kind)
    t.set_text("union_id", np.arange(t.n), _pick(rng, unknown_unions, t.n))
    b.add(kind, t)
    kind = "out_of_range:plan_year"
    t = new(kind)
    _set(t, "plan_year", np.arange(t.n), rng.choice([1999, 2099, 2109, 219], t.n))
    b.add(kind, t)
    kind = "out_of_range:premium_yuan"
    t = new(kind)
    _set(t, "premium_yuan", np.arange(t.n), -np.asarray(t.values["premium_yuan"]))
    b.add(kind, t)
    kind = "unparseable:premium_yuan"
    t = new(kind)
    t.set_raw("premium_yuan", np.arange(t.n), _pick(rng, BAD_AMOUNTS, t.n))
    b.add(kind, t)
    kind = "not_allowed:plan_type"
    t = new(kind)
    t.set_text("plan_type", np.arange(t.n), _pick(rng, ["大病保险", "住院互助", "意外伤害"], t.n))
    b.add(kind, t)
    kind = "unparseable:enrolled_date"
    t = new(kind)
    t.set_raw("enrolled_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add(kind, t)
    kind = "missing_required:premium_yuan"
    t = new(kind)
    _set(t, "premium_yuan", np.arange(t.n), NA64)
    b.add(kind, t)
    k = b.k(PAIR)
    if k:
        t = new(PAIR, k)
        both = b.pairs(
            "enrollment_id",
            keys.take(k),
            t,
            lambda tt, rows: _set(
                tt, "premium_yuan", rows, np.asarray(tt.values["premium_yuan"])[rows] + 4000
            ),
        )
        b.add(PAIR, both, pairs=True)
    return b.done()


CLAIM_RATES = {
    "unknown_enrollment:enrollment_id": 0.001,
    "claim_before_enrollment:claim_date": 0.0008,
    "not_allowed:status": 0.0006,
    "out_of_range:benefit_yuan": 0.0005,
    "unparseable:benefit_yuan": 0.0005,
    "unparseable:claim_date": 0.0005,
    "missing_required:enrollment_id": 0.0004,
    PAIR: 0.00025,
    FREE: 0.0006,
}


def bad_claims(
    rng,
    truth: Table,
    keys: Keys,
    enrollments_early: tuple[list[str], np.ndarray],
    unknown_enrollment_ids: list[str],
    n_rows: int = 0,
) -> BadRows:
    """enrollments_early: (enrollment ids, enrolled dates) of truth enrolments from which a
    claim dated before the enrolment can be made."""
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, CLAIM_RATES))

    def new(kind, k=None):
        t = b.copies(b.k(kind) if k is None else k)
        t.set_text("claim_id", np.arange(t.n), keys.take(t.n))
        return t

    kind = "unknown_enrollment:enrollment_id"
    t = new(kind)
    t.set_text("enrollment_id", np.arange(t.n), unknown_enrollment_ids[: t.n])
    b.add(kind, t)
    kind = "claim_before_enrollment:claim_date"
    t = new(kind)
    ids, dates = enrollments_early
    pick = rng.integers(0, len(ids), t.n)
    t.set_text("enrollment_id", np.arange(t.n), [ids[i] for i in pick.tolist()])
    _set(t, "claim_date", np.arange(t.n), dates[pick].astype(np.int64) - rng.integers(3, 60, t.n))
    b.add(kind, t)
    kind = "not_allowed:status"
    t = new(kind)
    t.set_text("status", np.arange(t.n), _pick(rng, ["已支付", "处理中", "撤回", "待审"], t.n))
    b.add(kind, t)
    kind = "out_of_range:benefit_yuan"
    t = new(kind)
    _set(t, "benefit_yuan", np.arange(t.n), -rng.integers(10000, 200000, t.n))
    b.add(kind, t)
    kind = "unparseable:benefit_yuan"
    t = new(kind)
    t.set_raw("benefit_yuan", np.arange(t.n), _pick(rng, BAD_AMOUNTS, t.n))
    b.add(kind, t)
    kind = "unparseable:claim_date"
    t = new(kind)
    t.set_raw("claim_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add(kind, t)
    kind = "missing_required:enrollment_id"
    t = new(kind)
    t.set_text("enrollment_id", np.arange(t.n), [None] * t.n)
    b.add(kind, t)
    k = b.k(PAIR)
    if k:
        t = new(PAIR, k)
        both = b.pairs(
            "claim_id",
            keys.take(k),
            t,
            lambda tt, rows: _set(
                tt, "benefit_yuan", rows, np.asarray(tt.values["benefit_yuan"])[rows] + 5000
            ),
        )
        b.add(PAIR, both, pairs=True)
    return b.done()


LOAN_RATES = {
    "invalid_id_number:id_number": 0.001,
    "unknown_member:id_number": 0.0016,
    "out_of_range:amount_yuan": 0.001,
    "out_of_range:term_months": 0.0012,
    "not_allowed:status": 0.0008,
    "unparseable:disbursed_date": 0.0008,
    "missing_required:bank": 0.0008,
    "unparseable:amount_yuan": 0.0006,
    PAIR: 0.0004,
    FREE: 0.001,
}


def bad_loans(rng, truth: Table, persons: Persons, keys: Keys, n_rows: int = 0) -> BadRows:
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, LOAN_RATES))

    def new(kind, k=None):
        t = b.copies(b.k(kind) if k is None else k)
        t.set_text("loan_id", np.arange(t.n), keys.take(t.n))
        return t

    kind = "invalid_id_number:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), wrong_check(t.values["id_number"].to_pylist(), rng))
    b.add(kind, t)
    kind = "unknown_member:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), persons.ids(t.n))
    b.add(kind, t)
    kind = "out_of_range:amount_yuan"
    t = new(kind)
    _set(t, "amount_yuan", np.arange(t.n), rng.choice([0, -5_000_000, -15_000_000], t.n))
    b.add(kind, t)
    kind = "out_of_range:term_months"
    t = new(kind)
    _set(t, "term_months", np.arange(t.n), rng.choice([0, 200, 360, -12], t.n))
    b.add(kind, t)
    kind = "not_allowed:status"
    t = new(kind)
    t.set_text("status", np.arange(t.n), _pick(rng, ["已核销", "展期", "放款中"], t.n))
    b.add(kind, t)
    kind = "unparseable:disbursed_date"
    t = new(kind)
    t.set_raw("disbursed_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add(kind, t)
    kind = "missing_required:bank"
    t = new(kind)
    t.set_text("bank", np.arange(t.n), [None] * t.n)
    b.add(kind, t)
    kind = "unparseable:amount_yuan"
    t = new(kind)
    t.set_raw("amount_yuan", np.arange(t.n), _pick(rng, ["15万", "拾伍万", "150000元", "—"], t.n))
    b.add(kind, t)
    k = b.k(PAIR)
    if k:
        t = new(PAIR, k)

        def change(tt, rows):
            _set(tt, "amount_yuan", rows, np.asarray(tt.values["amount_yuan"])[rows] + 1_000_000)

        both = b.pairs("loan_id", keys.take(k), t, change)
        b.add(PAIR, both, pairs=True)
    return b.done()


TRAINING_RATES = {
    "invalid_id_number:id_number": 0.001,
    "not_allowed:program": 0.0008,
    "missing_required:session_id": 0.0008,
    "unparseable:session_date": 0.0006,
    "out_of_range:hours": 0.0005,
    "unparseable:completed": 0.0004,
    PAIR: 0.00025,
    FREE: 0.0008,
}


def bad_training(rng, truth: Table, keys: Keys, n_rows: int = 0) -> BadRows:
    b = Builder(rng, truth, plan_counts(n_rows or truth.n, TRAINING_RATES))

    def new(kind, k=None):
        t = b.copies(b.k(kind) if k is None else k)
        t.set_text("record_id", np.arange(t.n), keys.take(t.n))
        return t

    kind = "invalid_id_number:id_number"
    t = new(kind)
    t.set_text("id_number", np.arange(t.n), wrong_check(t.values["id_number"].to_pylist(), rng))
    b.add(kind, t)
    kind = "not_allowed:program"
    t = new(kind)
    t.set_text("program", np.arange(t.n), _pick(rng, ["读书会", "职工书屋", "健步走"], t.n))
    b.add(kind, t)
    kind = "missing_required:session_id"
    t = new(kind)
    t.set_text("session_id", np.arange(t.n), [None] * t.n)
    b.add(kind, t)
    kind = "unparseable:session_date"
    t = new(kind)
    t.set_raw("session_date", np.arange(t.n), _pick(rng, BAD_DATES, t.n))
    b.add(kind, t)
    kind = "out_of_range:hours"
    t = new(kind)
    _set(t, "hours", np.arange(t.n), -np.abs(np.asarray(t.values["hours"])) - 100)
    b.add(kind, t)
    kind = "unparseable:completed"
    t = new(kind)
    t.set_raw("completed", np.arange(t.n), _pick(rng, ["部分", "未知", "2", "结业中"], t.n))
    b.add(kind, t)
    k = b.k(PAIR)
    if k:
        t = new(PAIR, k)
        both = b.pairs(
            "record_id",
            keys.take(k),
            t,
            lambda tt, rows: _set(tt, "hours", rows, np.asarray(tt.values["hours"])[rows] + 100),
        )
        b.add(PAIR, both, pairs=True)
    return b.done()
