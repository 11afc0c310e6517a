"""Building blocks of the demo generator: calendar, random streams, sampling, ID numbers,
names, and the `Table` that holds one file's rows until they are written.

Everything is vectorised (numpy / pyarrow); nothing loops over rows in Python.
Dates are int32 days since 1970-01-01, with `NA` for an empty cell.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NA = np.int32(np.iinfo(np.int32).min)  # an empty date / int cell
NA64 = np.int64(np.iinfo(np.int64).min)  # an empty amount / int cell
FAR = np.int32(np.iinfo(np.int32).max)  # "never" (e.g. no leave date) in comparisons


def day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    years = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    dom = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return years, month, dom


def year_of(days: np.ndarray) -> np.ndarray:
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def ystart(y):
    """1 January of year y (an int, or an array of years)."""
    if np.ndim(y):
        return (
            (np.asarray(y, np.int64) - 1970)
            .astype("datetime64[Y]")
            .astype("datetime64[D]")
            .astype(np.int64)
        )
    return day(f"{int(y)}-01-01")


def yend(y):
    """31 December of year y (an int, or an array of years)."""
    if np.ndim(y):
        return ystart(np.asarray(y, np.int64) + 1) - 1
    return day(f"{int(y)}-12-31")


AS_OF = day("2020-09-30")
BASE_EXPORT = day("2020-08-31")  # the earlier export that a later file updates
DATA_START = day("2017-01-01")
DAY0 = day("1940-01-01")  # calendar of the samplers and renderers
DAY1 = day("2031-12-31")
NDAYS = DAY1 - DAY0 + 1


def rng_for(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per (seed, purpose): one part never shifts another."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def scaled(n: float, scale: float, minimum: int = 0) -> int:
    return max(minimum, int(round(n * scale)))


# ---------------------------------------------------------------------------- calendar


class Calendar:
    """Daily weights over [DAY0, DAY1] and sampling of dates inside per-row intervals."""

    def __init__(self) -> None:
        self.days = np.arange(DAY0, DAY1 + 1, dtype=np.int64)
        self.year, self.month, _ = ymd(self.days)
        self.weekday = (self.days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday

    def weights(
        self, month_weights=None, weekend: float = 1.0, year_month=None, default: float = 1.0
    ) -> np.ndarray:
        """Cumulative weights (length NDAYS + 1) for `sample`.

        month_weights: 12 daily weights by calendar month; year_month: {(year, month):
        daily weight} overriding them; default: the weight of every other day.
        """
        w = np.full(NDAYS, default, dtype=np.float64)
        if month_weights is not None:
            w *= np.asarray(month_weights, dtype=np.float64)[self.month - 1]
        if year_month:
            key = self.year * 100 + self.month
            for (y, m), f in year_month.items():
                w[key == y * 100 + m] = f
        if weekend != 1.0:
            w[self.weekday >= 5] *= weekend
        cum = np.zeros(NDAYS + 1, dtype=np.float64)
        np.cumsum(w, out=cum[1:])
        return cum

    @staticmethod
    def sample(rng: np.random.Generator, lo, hi, cum: np.ndarray) -> np.ndarray:
        """One date per row in [lo, hi] (inclusive), drawn with the daily weights `cum`."""
        lo = np.asarray(lo, dtype=np.int64)
        hi = np.asarray(hi, dtype=np.int64)
        lo, hi = np.broadcast_arrays(lo, hi)
        n = lo.shape[0] if lo.ndim else 1
        lo = np.clip(lo, DAY0, DAY1) - DAY0
        hi = np.clip(np.maximum(hi, lo + DAY0), DAY0, DAY1) - DAY0
        a = cum[lo]
        b = cum[hi + 1]
        u = rng.random(n)
        target = a + u * (b - a)
        pos = np.searchsorted(cum, target, side="right") - 1
        pos = np.clip(pos, lo, hi)
        flat = b - a <= 0
        if flat.any():
            pos[flat] = lo[flat] + (u[flat] * (hi[flat] - lo[flat] + 1)).astype(np.int64)
        return (pos + DAY0).astype(np.int32)


def weighted_pick(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices drawn with probability proportional to weights (sorted)."""
    n = len(weights)
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(n)) / np.asarray(weights, dtype=np.float64)
    idx = np.argpartition(keys, n - k)[n - k :]
    return np.sort(idx)


def trunc_exp(rng: np.random.Generator, mean: float, limit: np.ndarray) -> np.ndarray:
    """Exponential(mean) values truncated to [0, limit] (per row), as float."""
    limit = np.maximum(np.asarray(limit, dtype=np.float64), 0.0)
    u = rng.random(len(limit))
    return -mean * np.log1p(-u * (1.0 - np.exp(-limit / mean)))


def spread_total(rng: np.random.Generator, raw: np.ndarray, total: int, minimum: int = 0):
    """Integers proportional to `raw`, each >= minimum, summing exactly to `total`."""
    raw = np.asarray(raw, dtype=np.float64)
    n = len(raw)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    free = total - minimum * n
    if free < 0:
        raise ValueError("total too small for the minimum")
    share = raw / raw.sum() * free
    base = np.floor(share).astype(np.int64)
    rest = free - int(base.sum())
    if rest:
        frac = share - base + rng.random(n) * 1e-9
        base[np.argsort(-frac, kind="stable")[:rest]] += 1
    return base + minimum


# ------------------------------------------------------------------------ strings


def digits_text(values: np.ndarray, width: int, prefix: str = "") -> np.ndarray:
    """Zero-padded decimal text of non-negative ints as a numpy bytes array (ASCII)."""
    values = np.asarray(values, dtype=np.int64)
    p = prefix.encode("ascii")
    out = np.empty((len(values), len(p) + width), dtype=np.uint8)
    if p:
        out[:, : len(p)] = np.frombuffer(p, dtype=np.uint8)
    v = values.copy()
    for i in range(width - 1, -1, -1):
        out[:, len(p) + i] = (v % 10) + 48
        v //= 10
    return out.view(f"S{len(p) + width}").ravel()


def to_arrow_text(values) -> pa.Array:
    """numpy bytes / list / arrow -> arrow string array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    if isinstance(values, np.ndarray) and values.dtype.kind == "S":
        values = np.ascontiguousarray(values)
        width = values.dtype.itemsize
        fixed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(values), [None, pa.py_buffer(values)]
        )
        out = fixed.cast(pa.binary())
        if width and len(values) and (values.view(np.uint8).reshape(-1, width)[:, -1] == 0).any():
            out = pc.replace_substring_regex(out, "\\x00+$", "")  # numpy pads with NULs
        return out.cast(pa.string())
    return pa.array(values, type=pa.string())


def take_text(choices: list[str], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(choices, type=pa.string()), pa.array(np.asarray(idx, np.int64)))


def join_text(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


# ------------------------------------------------------------- ID numbers and people

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)

# (region code, weight): Zhenhai first, then Ningbo, Zhejiang, and the provinces that send
# most migrant workers to Ningbo.
REGIONS = [
    (330211, 40),
    (330203, 3),
    (330205, 3),
    (330206, 4),
    (330212, 3),
    (330281, 3),
    (330282, 4),
    (330213, 2),
    (330226, 2),
    (330225, 1),
    (330102, 1),
    (330302, 2),
    (330381, 1),
    (331002, 1),
    (330602, 1),
    (330782, 1),
    (331081, 1),
    (341221, 3),
    (342101, 2),
    (340822, 2),
    (410221, 2),
    (411323, 2),
    (412702, 2),
    (510922, 2),
    (511321, 2),
    (522121, 2),
    (522422, 1),
    (362427, 2),
    (360121, 1),
    (430521, 2),
    (431021, 1),
    (450821, 1),
    (612324, 1),
    (420984, 1),
    (421181, 1),
    (370881, 1),
    (130984, 1),
    (532129, 1),
    (622421, 1),
    (352225, 1),
    (500235, 2),
]
REGION_CODES = np.array([r for r, _ in REGIONS], dtype=np.int64)
REGION_P = np.array([w for _, w in REGIONS], dtype=np.float64) / sum(w for _, w in REGIONS)

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤应竺虞俞楼柴岑裘胥乐"
)
GIVEN_MALE = "伟强军磊涛斌杰勇峰健超明辉刚鹏浩宇俊杰亮波飞龙海鑫林华东晨阳凯建国志宏文博"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲婷雪琳颖倩洁慧佳琴晶欣怡萍红梅兰凤菊英秀丹蓉莉薇"
GIVEN_ANY = "子思嘉雨晓一天新永春秋立清正安嘉振家浩德小宁"


def _given_lists():
    male = list(dict.fromkeys(GIVEN_MALE))
    female = list(dict.fromkeys(GIVEN_FEMALE))
    anyc = list(dict.fromkeys(GIVEN_ANY))
    return male, female, anyc


class People:
    """Every person of the demo district: members, training outsiders, bad-row persons.

    Rows are registered in stages (`add`); `finalize` draws unique, valid ID numbers
    (GB 11643: region, birth date, sequence with the gender in its parity, check digit),
    names and phones for everyone at once.
    """

    def __init__(self, home: int = 330211) -> None:
        self._birth: list[np.ndarray] = []
        self._male: list[np.ndarray] = []
        self._local: list[np.ndarray] = []
        self.n = 0
        # locals are mostly born in the district itself: it takes Zhenhai's weight (and
        # Zhenhai its); for Zhenhai the weights stay exactly as listed
        self.region_p = REGION_P
        if home != REGION_CODES[0]:
            at = [r for r, _ in REGIONS].index(home)
            self.region_p = REGION_P.copy()
            self.region_p[[0, at]] = REGION_P[[at, 0]]

    def add(self, birth: np.ndarray, male: np.ndarray, local_share: float | np.ndarray = 0.7):
        birth = np.asarray(birth, dtype=np.int32)
        n = len(birth)
        self._birth.append(birth)
        self._male.append(np.asarray(male, dtype=bool))
        self._local.append(np.broadcast_to(np.asarray(local_share, np.float32), (n,)).copy())
        idx = np.arange(self.n, self.n + n, dtype=np.int64)
        self.n += n
        return idx

    def fresh(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n persons aged 18..60 at the as-of date (outsiders, bad-row persons)."""
        age = rng.uniform(18.2, 59.8, n)
        birth = (AS_OF - age * 365.25).astype(np.int32)
        return self.add(birth, rng.random(n) < 0.55, 0.6)

    def finalize(self, rng: np.random.Generator, avoid: np.ndarray | None = None) -> None:
        """avoid: ID numbers (17-digit keys, sorted) other districts of a city have given:
        nobody here gets one by chance (the persons they share are chosen, see
        generator._take_over)."""
        self.birth = np.concatenate(self._birth) if self._birth else np.zeros(0, np.int32)
        self.male = np.concatenate(self._male) if self._male else np.zeros(0, bool)
        local = np.concatenate(self._local) if self._local else np.zeros(0)
        self._birth, self._male, self._local = [], [], []
        n = self.n
        # region: Zhejiang (33xxxx) for locals, the other provinces for migrant workers
        zj = REGION_CODES // 10000 == 33
        p_local = self.region_p[zj] / self.region_p[zj].sum()
        p_other = self.region_p[~zj] / self.region_p[~zj].sum()
        is_local = rng.random(n) < local
        region = np.where(
            is_local,
            REGION_CODES[zj][rng.choice(int(zj.sum()), n, p=p_local)],
            REGION_CODES[~zj][rng.choice(int((~zj).sum()), n, p=p_other)],
        )
        y, m, d = ymd(self.birth)
        birth8 = y * 10000 + m * 100 + d
        parity = self.male.astype(np.int64)
        seq = rng.integers(0, 500, n) * 2 + parity
        key = region * 10**11 + birth8 * 1000 + seq
        # unique ID numbers: redraw the sequence of clashing ones until none clash
        order = np.argsort(key, kind="stable")
        ks = key[order]
        clash = np.zeros(n, dtype=bool)
        clash[order[1:][ks[1:] == ks[:-1]]] = True
        taken = ks[np.concatenate([[True], ks[1:] != ks[:-1]])]  # sorted, distinct
        if avoid is not None and len(avoid):
            clash |= _in_sorted(key, avoid)
            taken = np.union1d(taken, avoid)
        todo = np.nonzero(clash)[0]
        extra = np.zeros(0, dtype=np.int64)  # accepted redraws, sorted
        for _ in range(200):
            if not len(todo):
                break
            seq[todo] = rng.integers(0, 500, len(todo)) * 2 + parity[todo]
            new = region[todo] * 10**11 + birth8[todo] * 1000 + seq[todo]
            hit = _in_sorted(new, taken) | _in_sorted(new, extra)
            _, first = np.unique(new, return_index=True)
            own = np.zeros(len(new), dtype=bool)
            own[first] = True
            ok = ~hit & own
            key[todo[ok]] = new[ok]
            extra = np.sort(np.concatenate([extra, new[ok]]))
            todo = todo[~ok]
        else:  # pragma: no cover - astronomically unlikely
            raise RuntimeError("could not draw unique ID numbers")
        self.id_text = id_numbers(key)
        self.key = key
        del order, ks, taken, extra
        # names
        male_c, female_c, any_c = _given_lists()
        s_idx = rng.zipf(1.35, n) - 1
        s_idx = np.where(s_idx < len(SURNAMES), s_idx, rng.integers(0, len(SURNAMES), n))
        surname = take_text(list(SURNAMES), s_idx)
        pool = [*male_c, *any_c]
        fpool = [*female_c, *any_c]
        g1m = take_text(pool, rng.integers(0, len(pool), n))
        g1f = take_text(fpool, rng.integers(0, len(fpool), n))
        g2m = take_text(male_c + [""] * 12, rng.integers(0, len(male_c) + 12, n))
        g2f = take_text(female_c + [""] * 12, rng.integers(0, len(female_c) + 12, n))
        male_arr = pa.array(self.male)
        given = pc.if_else(male_arr, join_text(g1m, g2m), join_text(g1f, g2f))
        self.name = join_text(surname, given)
        # phones: 1[3-9]xxxxxxxxx, 7% without one
        second = rng.choice(
            np.array([3, 5, 7, 8, 9, 6, 4]), n, p=[0.3, 0.25, 0.06, 0.3, 0.05, 0.02, 0.02]
        )
        num = 10_000_000_000 + second * 1_000_000_000 + rng.integers(0, 1_000_000_000, n)
        self.phone = digits_text(num, 11)
        self.has_phone = rng.random(n) >= 0.07


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def id_numbers(key17: np.ndarray) -> np.ndarray:
    """18-char ID numbers (numpy bytes) from 17-digit ints, with the MOD 11-2 check."""
    key17 = np.asarray(key17, dtype=np.int64)
    n = len(key17)
    out = np.empty((n, 18), dtype=np.uint8)
    v = key17.copy()
    total = np.zeros(n, dtype=np.int64)
    for i in range(16, -1, -1):
        d = v % 10
        out[:, i] = d + 48
        total += d * ID_WEIGHTS[i]
        v //= 10
    out[:, 17] = ID_CHECK[total % 11]
    return out.view("S18").ravel()


def check_char(body17: str) -> str:
    total = sum(int(c) * int(w) for c, w in zip(body17, ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


# -------------------------------------------------------------------------- tables

KINDS = ("text", "date", "amount", "int", "bool")


@dataclass
class Table:
    """One file's distinct rows: columns by canonical name, each (kind, values).

    text: arrow string array (null = empty); date: int32 days (NA); amount: int64 cents
    (NA64); int: int64 (NA64); bool: int8 (1, 0, -1 = empty). `raw` holds literal text
    that replaces a cell when written (bad rows: '2019-02-30', '六十元', ...).
    """

    kinds: dict[str, str]
    values: dict[str, object]
    raw: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        first = next(iter(self.values.values()))
        return len(first)

    def take(self, idx: np.ndarray) -> Table:
        idx = np.asarray(idx, dtype=np.int64)
        values = {}
        for name, v in self.values.items():
            if isinstance(v, pa.Array):
                values[name] = pc.take(v, pa.array(idx))
            else:
                values[name] = np.asarray(v)[idx]
        raw = {}
        for name, cells in self.raw.items():
            rows = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
            hit = np.nonzero(np.isin(idx, rows))[0]
            if len(hit):
                raw[name] = {int(new): cells[int(idx[new])] for new in hit}
        return Table(dict(self.kinds), values, raw)

    def copy_values(self) -> Table:
        values = {
            k: (v if isinstance(v, pa.Array) else np.array(v)) for k, v in self.values.items()
        }
        return Table(dict(self.kinds), values, {k: dict(v) for k, v in self.raw.items()})

    def set_text(self, name: str, rows, texts) -> None:
        """Set text cells of a (small) table; None = empty."""
        current = self.values[name].to_pylist()
        for r, t in zip(np.asarray(rows).tolist(), texts, strict=True):
            current[r] = t
        self.values[name] = pa.array(current, type=pa.string())

    def set_raw(self, name: str, rows, texts) -> None:
        cells = self.raw.setdefault(name, {})
        for r, t in zip(np.asarray(rows).tolist(), texts, strict=True):
            cells[int(r)] = t


def concat_tables(tables: list[Table]) -> Table:
    tables = [t for t in tables if t is not None and t.n > 0]
    first = tables[0]
    values = {}
    for name in first.values:
        parts = [t.values[name] for t in tables]
        if isinstance(parts[0], pa.Array):
            values[name] = pa.concat_arrays([to_arrow_text(p) for p in parts])
        else:
            values[name] = np.concatenate(parts)
    raw: dict[str, dict[int, str]] = {}
    offset = 0
    for t in tables:
        for name, cells in t.raw.items():
            raw.setdefault(name, {}).update({r + offset: s for r, s in cells.items()})
        offset += t.n
    return Table(dict(first.kinds), values, raw)


def place_rows(
    rng: np.random.Generator, n_truth: int, n_extra: int, repeat_rows: np.ndarray | None = None
) -> np.ndarray:
    """Write order: truth rows 0..n_truth-1 in order, the extra (bad) rows
    n_truth..n_truth+n_extra-1 and repeats of `repeat_rows` at random places."""
    repeat_rows = np.zeros(0, np.int64) if repeat_rows is None else np.asarray(repeat_rows)
    rows = np.concatenate(
        [np.arange(n_truth + n_extra, dtype=np.int64), repeat_rows.astype(np.int64)]
    )
    pos = np.concatenate(
        [
            np.arange(n_truth, dtype=np.float64),
            rng.uniform(0, max(n_truth, 1), n_extra),
            # a repeat right after, or a little after, its original: how double exports look
            repeat_rows.astype(np.float64) + rng.uniform(0.01, 3.0, len(repeat_rows)),
        ]
    )
    return rows[np.argsort(pos, kind="stable")]
