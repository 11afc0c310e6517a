"""`generate`: a raw drop of the demo district, as its source systems export it.

The drop covers 2017-01-01 .. 2020-09-30 (the as-of date is the latest event in it) and
holds every folder of the data contract. At scale 1 the truth rows (valid rows, later
file wins) reproduce the figures the district published for 2019 (see `CALIBRATION`);
on top of them sit a few deliberately bad rows of every kind the contract names.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from union_demo import _bad
from union_demo._common import (
    AS_OF,
    BASE_EXPORT,
    NA,
    Calendar,
    People,
    Table,
    concat_tables,
    day,
    digits_text,
    place_rows,
    rng_for,
    scaled,
    take_text,
    to_arrow_text,
    yend,
    ystart,
)
from union_demo._districts import (
    ZHENHAI_CODE,
    Profile,
    city_order,
    place_of,
    profile_for,
)
from union_demo._population import (
    ORG_TYPES,
    PLAN,
    STREETS,
    Members,
    Unions,
    build_members,
    build_unions,
)
from union_demo._programs import (
    BANKS,
    CLAIM_STATUS,
    LOAN_STATUS,
    PLAN_TYPES,
    PROGRAMS,
    YEARS,
    Claims,
    Enrollments,
    Loans,
    Training,
    build_claims,
    build_enrollments,
    build_loans,
    build_training,
)
from union_demo._writers import Style, write_csv, write_xlsx
from union_pipeline.districts import load_city
from union_pipeline.kpis import load_catalogue
from union_pipeline.settings import DEMO_MARKER

DEFAULT_SEED = 20191231
FOLDERS = (
    "unions",
    "members",
    "mutual_aid_enrollments",
    "mutual_aid_claims",
    "loans",
    "training",
    "targets",
    "published",
)
TARGETS_FILE = "年度目标_2019-2020.xlsx"
MAX_CSV_ROWS = 1_900_000  # split larger files (at most ~2M rows each)
MAX_XLSX_ROWS = 200_000

HEADERS = {
    "unions": {
        "union_id": "工会编码",
        "union_name": "工会名称",
        "street": "所属镇街",
        "org_type": "单位类型",
        "employee_count": "职工人数",
        "founded_date": "成立日期",
        "authorized_date": "授权日期",
        "star_rating": "星级",
        "dissolved_date": "撤销日期",
    },
    "members": {
        "member_id": "会员编号",
        "name": "姓名",
        "id_number": "身份证号",
        "phone": "手机号",
        "union_id": "工会编码",
        "join_date": "入会日期",
        "leave_date": "离会日期",
        "collected_date": "采集日期",
        "app_verified_date": "APP认证日期",
        "frontline": "一线职工",
    },
    "mutual_aid_enrollments": {
        "enrollment_id": "参保编号",
        "id_number": "身份证号",
        "union_id": "工会编码",
        "plan_year": "保障年度",
        "enrolled_date": "参保日期",
        "premium_yuan": "缴费金额",
        "plan_type": "保障类型",
    },
    "mutual_aid_claims": {
        "claim_id": "申领编号",
        "enrollment_id": "参保编号",
        "claim_date": "申领日期",
        "benefit_yuan": "补助金额",
        "status": "状态",
    },
    "loans": {
        "loan_id": "贷款编号",
        "id_number": "身份证号",
        "disbursed_date": "放款日期",
        "amount_yuan": "贷款金额",
        "term_months": "期限月数",
        "bank": "合作银行",
        "status": "状态",
    },
    "training": {
        "record_id": "记录编号",
        "id_number": "身份证号",
        "program": "项目",
        "session_id": "场次编号",
        "session_date": "日期",
        "hours": "学时",
        "completed": "结业",
    },
}
TARGET_HEADER = ["指标代码", "年度", "目标值", "比较", "依据"]
PUBLISHED_HEADER = ["指标代码", "年度", "发布值", "下限", "上限", "出处", "说明"]

# The district's published 2019 figures (its 2019 report), as `published/`.
REPORT_2019 = """kpi_code,year,published,lower,upper,quote,note
members_new,2019,4456,4456,4456,全年新组建基层工会37家，发展会员4456人,
members_collected,2019,143141,143141,143141,会员采集人数143141人次,report counts as of end of October; the demo data treats it as the year-end figure
members_app_verified,2019,16421,16421,16421,APP会员实名认证16421人次,as above
members_collected_rate,2019,0.6077,0.60765,0.60775,会员采集比例达60.77%,as above
members_total,2019,235545,235526,235565,,derived: 143141 / 60.77%
unions_new,2019,37,37,37,全年新组建基层工会37家,
unions_authorized,2019,1255,1255,1255,全区已完成工会组织授权1255家,
mutual_aid_enrollments,2019,167169,167169,167169,全区职工医疗互助参保人数达16.7169万人次,
mutual_aid_enrollments,2018,157260,157260,157260,较去年增加9909人次，同比增长6.3%,derived: 167169 - 9909
mutual_aid_premium_yuan,2019,10540000,10540000,10550000,参保金额1054余万元,"余: at least 1054万, below 1055万"
mutual_aid_claimants,2019,12496,12496,12496,12496名职工申领医疗互助补助金787.48万元,
mutual_aid_benefit_yuan,2019,7874800,7874750,7874850,12496名职工申领医疗互助补助金787.48万元,rounded to 0.01万元
loan_borrowers_cum,2019,3688,3688,3688,"""  # noqa: E501
REPORT_2019 += '''"""蓝领贷""累计发放贷款3688人",cumulative since the scheme began
loan_amount_cum_yuan,2019,681320000,681315000,681325000,贷款金额6.8132亿元,rounded to 0.0001亿元
training_sessions,2019,100,100,110,"精心策划百场""吾意乐学""工公益培训",百场: about a hundred
training_participations,2019,4000,4000,4500,惠及职工4000余人次,余: more than 4000
education_enrollees,2019,66,66,66,区职工业余学校招录66名职工参加学历提升,
contest_events,2019,28,28,28,举办精英赛、群英赛和企业认证赛28场,
'''


def published_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(REPORT_2019)))


# (kpi_code, year, target at scale 1, comparator, basis, scales with the population)
TARGETS = [
    ("membership_rate", 2019, 0.95, ">=", "职工入会率动态保持95%以上", False),
    ("members_new", 2019, 4000, ">=", "2019年工作要点：发展会员4000人以上", True),
    ("members_collected_rate", 2019, 0.65, ">=", "实名制管理工作目标：会员采集比例65%", False),
    ("members_app_verified", 2019, 20000, ">=", "实名制管理工作目标：APP实名认证2万人", True),
    ("unions_new", 2019, 30, ">=", "2019年工作要点：新组建基层工会30家", True),
    ("unions_authorized", 2019, 1300, ">=", "基层工会组织授权全覆盖（1300家）", True),
    ("mutual_aid_enrollments", 2019, 160000, ">=", "医疗互助参保扩面：16万人次", True),
    ("mutual_aid_premium_yuan", 2019, 10000000, ">=", "医疗互助参保金额1000万元以上", True),
    ("mutual_aid_benefit_yuan", 2019, 8000000, "<=", "医疗互助补助资金年度预算上限800万元", True),
    ("loan_borrowers_cum", 2019, 4000, ">=", "蓝领贷累计发放4000人", True),
    ("training_sessions", 2019, 100, ">=", "百场吾意乐学公益培训", True),
    ("training_participations", 2019, 4000, ">=", "吾意乐学惠及职工4000人次", True),
    ("education_enrollees", 2019, 60, ">=", "职工学历提升招录60人", True),
    ("contest_events", 2019, 30, ">=", "雄镇杯技能竞赛30场", True),
    (
        "membership_rate",
        2020,
        0.95,
        ">=",
        "2020年工作思路：工会组建率和职工入会率动态保持95%以上",
        False,
    ),
    ("members_new", 2020, 4500, ">=", "2020年工作思路：推进新经济新业态新领域建会入会", True),
    (
        "members_collected_rate",
        2020,
        0.8,
        ">=",
        "2020年工作思路：完善实名制数据库，实现工会会员普遍实名登记",
        False,
    ),
    ("members_app_verified", 2020, 50000, ">=", "2020年工作思路：完善实名制数据库", True),
    ("unions_new", 2020, 35, ">=", "2020年工作思路：继续抓好工会组建", True),
    ("unions_authorized", 2020, 1320, ">=", "2020年工作思路：深入推进实名制管理", True),
    (
        "mutual_aid_enrollments",
        2020,
        175000,
        ">=",
        "2020年工作思路：推进职工医疗互助保障提质扩面",
        True,
    ),
    ("mutual_aid_benefit_yuan", 2020, 8500000, "<=", "医疗互助补助资金年度预算上限850万元", True),
    ("loan_borrowers_cum", 2020, 5000, ">=", "蓝领贷累计发放5000人", True),
    ("loan_amount_cum_yuan", 2020, 850000000, ">=", "蓝领贷累计放款8.5亿元", True),
    ("training_sessions", 2020, 100, ">=", "百场吾意乐学公益培训", True),
    ("training_participations", 2020, 4000, ">=", "吾意乐学惠及职工4000人次", True),
    ("education_enrollees", 2020, 70, ">=", "产业工人学历与技能提升计划", True),
    ("contest_events", 2020, 28, ">=", "完善雄镇杯职工职业技能大赛办赛机制", True),
]

# The figures that must come out at scale 1 (the published 2019 bounds).
CALIBRATION = {
    ("members_new", 2019): (4456, 4456),
    ("members_total", 2019): (235526, 235565),
    ("members_collected", 2019): (143141, 143141),
    ("members_app_verified", 2019): (16421, 16421),
    ("members_collected_rate", 2019): (0.60765, 0.60775),
    ("unions_new", 2019): (37, 37),
    ("unions_authorized", 2019): (1255, 1255),
    ("mutual_aid_enrollments", 2019): (167169, 167169),
    ("mutual_aid_enrollments", 2018): (157260, 157260),
    ("mutual_aid_premium_yuan", 2019): (10540000, 10549999.99),
    ("mutual_aid_claimants", 2019): (12496, 12496),
    ("mutual_aid_benefit_yuan", 2019): (7874750, 7874850),
    ("loan_borrowers_cum", 2019): (3688, 3688),
    ("loan_amount_cum_yuan", 2019): (681315000, 681325000),
    ("training_sessions", 2019): (100, 110),
    ("training_participations", 2019): (4000, 4500),
    ("education_enrollees", 2019): (66, 66),
    ("contest_events", 2019): (28, 28),
}

# File styles: Excel on Chinese Windows saves GBK with CRLF and 2019/3/5 dates; the
# web systems export UTF-8 with BOM and ISO dates; a hand-kept sheet mixes everything.
GBK = Style(encoding="gb18030", eol="\r\n", date_p=(0.2, 0.6, 0.1, 0.1), amount_p=(0.45, 0.4, 0.15))
BOM = Style(encoding="utf-8-sig", date_p=(0.7, 0.1, 0.1, 0.1), amount_p=(0.7, 0.15, 0.15))
PLAIN = Style(
    encoding="utf-8",
    date_p=(0.3, 0.2, 0.2, 0.3),
    amount_p=(0.5, 0.2, 0.3),
    bool_p=(0.3, 0.2, 0.2, 0.3),
    space_rate=0.006,
)


@dataclass
class FileSpec:
    name: str
    n_truth: int
    build: Callable[[], Table]  # the file's truth rows
    columns: list[str]
    fmt: str = "csv"  # csv | xlsx
    style: Style = BOM
    takes_bad: bool = True
    extra: tuple[str, Callable[[], pa.Array]] | None = None  # unknown column for truth rows


def _text(a) -> pa.Array:
    return to_arrow_text(a)


def _nullify(arr: pa.Array, null: np.ndarray) -> pa.Array:
    if not null.any():
        return arr
    return pc.if_else(pa.array(null), pa.scalar(None, pa.string()), arr)


def _split(n: int, size: int) -> list[tuple[int, int]]:
    parts = max(1, -(-n // size))
    edges = np.linspace(0, n, parts + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class Drop:
    """Writes the sources of one drop and keeps its summary.

    title: a district whose CSV exports carry a title line (its name) above the header;
    creator: the author of its xlsx files."""

    def __init__(
        self, out_dir: Path, seed: int, title: str | None = None, creator: str = "镇海区总工会"
    ):
        self.out, self.seed = out_dir, seed
        self.title, self.creator = title, creator
        self.files: list[dict] = []
        self.bad: dict[str, dict[str, int]] = {}
        self.rows: dict[str, int] = {}
        self.truth_rows: dict[str, int] = {}

    def emit(self, source: str, specs: list[FileSpec], bad: _bad.BadRows | None) -> None:
        rng = rng_for(self.seed, f"emit:{source}")
        takers = [i for i, s in enumerate(specs) if s.takes_bad]
        weights = np.array([max(specs[i].n_truth, 1) for i in takers], dtype=np.float64)
        weights /= weights.sum()
        n_units = int(bad.unit.max()) + 1 if bad is not None and len(bad.unit) else 0
        unit_file = (
            np.array(takers)[rng.choice(len(takers), n_units, p=weights)]
            if n_units
            else np.zeros(0, np.int64)
        )
        repeats = rng.multinomial(bad.repeats if bad else 0, weights)
        total = repeated = 0
        for i, spec in enumerate(specs):
            truth = spec.build()
            parts = [truth]
            n_bad = 0
            if n_units:
                rows = np.nonzero(unit_file[bad.unit] == i)[0]
                if len(rows):
                    parts.append(bad.table.take(rows))
                    n_bad = len(rows)
            table = concat_tables(parts) if n_bad else truth
            rep = np.zeros(0, np.int64)
            if spec.takes_bad:
                k = int(repeats[takers.index(i)])
                rep = np.sort(rng.choice(truth.n, min(k, truth.n), replace=False))
                repeated += len(rep)
            order = place_rows(rng, truth.n, n_bad, rep)
            extra = None
            if spec.extra:
                values = _text(spec.extra[1]())
                if n_bad:
                    values = pa.concat_arrays([values, pa.nulls(n_bad, pa.string())])
                extra = (spec.extra[0], values)
            columns = [(c, HEADERS[source][c]) for c in spec.columns]
            path = self.out / source / spec.name
            file_rng = rng_for(self.seed, f"file:{source}/{spec.name}")
            if spec.fmt == "xlsx":
                n = write_xlsx(
                    path, table, order, columns, file_rng, extra=extra, creator=self.creator
                )
                fmt = "xlsx"
            else:
                title = f"{self.title}总工会 {path.stem}" if self.title else None
                n = write_csv(
                    path, table, order, columns, spec.style, file_rng, extra=extra, title=title
                )
                fmt = f"csv/{spec.style.encoding}"
            self.files.append(
                {
                    "file": f"{source}/{spec.name}",
                    "format": fmt,
                    "rows": n,
                    "truth_rows": truth.n,
                    "bad_rows": n_bad,
                    "repeated_rows": len(rep),
                }
            )
            total += n
            self.truth_rows[source] = self.truth_rows.get(source, 0) + truth.n
            del table, truth, parts
        self.rows[source] = total
        if bad is not None:
            self.bad[source] = dict(bad.counts)
            if repeated or "identical_repeat" in bad.counts:
                self.bad[source]["identical_repeat"] = repeated


# ------------------------------------------------------------------ table builders


def union_table(u: Unions, idx: np.ndarray, streets=STREETS) -> Table:
    idx = np.asarray(idx, np.int64)
    return Table(
        kinds={
            "union_id": "text",
            "union_name": "text",
            "street": "text",
            "org_type": "text",
            "employee_count": "int",
            "founded_date": "date",
            "authorized_date": "date",
            "star_rating": "int",
            "dissolved_date": "date",
        },
        values={
            "union_id": pa.array([u.uid[i] for i in idx.tolist()], pa.string()),
            "union_name": pa.array([u.name[i] for i in idx.tolist()], pa.string()),
            "street": take_text(list(streets), u.street[idx]),
            "org_type": take_text(ORG_TYPES, u.org[idx]),
            "employee_count": u.employees[idx].astype(np.int64),
            "founded_date": u.founded[idx],
            "authorized_date": u.authorized[idx],
            "star_rating": u.star[idx],
            "dissolved_date": u.dissolved[idx],
        },
    )


def member_table(
    m: Members,
    people: People,
    uid: pa.Array,
    rows: np.ndarray,
    *,
    leave=None,
    collected=None,
    app=None,
    phone=None,
) -> Table:
    rows = np.asarray(rows, np.int64)
    person = m.person[rows]
    ph = _text(people.phone[person] if phone is None else phone)
    return Table(
        kinds={
            "member_id": "text",
            "name": "text",
            "id_number": "text",
            "phone": "text",
            "union_id": "text",
            "join_date": "date",
            "leave_date": "date",
            "collected_date": "date",
            "app_verified_date": "date",
            "frontline": "bool",
        },
        values={
            "member_id": _text(digits_text(m.number[rows], 9, "HY")),
            "name": people.name.take(pa.array(person)),
            "id_number": _text(people.id_text[person]),
            "phone": _nullify(ph, ~people.has_phone[person]),
            "union_id": uid.take(pa.array(m.union[rows])),
            "join_date": m.join[rows],
            "leave_date": (m.leave if leave is None else leave)[rows],
            "collected_date": (m.collected if collected is None else collected)[rows],
            "app_verified_date": (m.app if app is None else app)[rows],
            "frontline": m.frontline[rows],
        },
    )


def enrollment_ids(e: Enrollments, rows) -> pa.Array:
    rows = np.asarray(rows, np.int64)
    return _text(digits_text(e.year[rows].astype(np.int64) * 10**8 + e.seq[rows], 12, "HZ"))


def enrollment_table(e: Enrollments, people: People, uid: pa.Array, rows, base=False) -> Table:
    rows = np.asarray(rows, np.int64)
    premium, date, union = e.base(rows) if base else (e.premium[rows], e.date[rows], e.union[rows])
    return Table(
        kinds={
            "enrollment_id": "text",
            "id_number": "text",
            "union_id": "text",
            "plan_year": "int",
            "enrolled_date": "date",
            "premium_yuan": "amount",
            "plan_type": "text",
        },
        values={
            "enrollment_id": enrollment_ids(e, rows),
            "id_number": _text(people.id_text[e.person[rows]]),
            "union_id": uid.take(pa.array(union)),
            "plan_year": e.year[rows].astype(np.int64),
            "enrolled_date": date,
            "premium_yuan": premium.astype(np.int64),
            "plan_type": take_text(PLAN_TYPES, e.ptype[rows]),
        },
    )


def claim_table(c: Claims, e: Enrollments, rows, base=False) -> Table:
    rows = np.asarray(rows, np.int64)
    return Table(
        kinds={
            "claim_id": "text",
            "enrollment_id": "text",
            "claim_date": "date",
            "benefit_yuan": "amount",
            "status": "text",
        },
        values={
            "claim_id": _text(
                digits_text(c.year[rows].astype(np.int64) * 10**7 + c.seq[rows], 11, "SL")
            ),
            "enrollment_id": enrollment_ids(e, c.enrollment[rows]),
            "claim_date": c.date[rows],
            "benefit_yuan": c.benefit[rows],
            "status": take_text(CLAIM_STATUS, (c.base_status if base else c.status)[rows]),
        },
    )


def loan_table(ln: Loans, people: People, rows, banks=BANKS) -> Table:
    rows = np.asarray(rows, np.int64)
    return Table(
        kinds={
            "loan_id": "text",
            "id_number": "text",
            "disbursed_date": "date",
            "amount_yuan": "amount",
            "term_months": "int",
            "bank": "text",
            "status": "text",
        },
        values={
            "loan_id": _text(digits_text(ln.seq[rows], 8, "LD")),
            "id_number": _text(people.id_text[ln.person[rows]]),
            "disbursed_date": ln.date[rows],
            "amount_yuan": ln.amount[rows],
            "term_months": ln.term[rows],
            "bank": take_text(list(banks), ln.bank[rows]),
            "status": take_text(LOAN_STATUS, ln.status[rows]),
        },
    )


def training_table(t: Training, people: People, rows) -> Table:
    rows = np.asarray(rows, np.int64)
    return Table(
        kinds={
            "record_id": "text",
            "id_number": "text",
            "program": "text",
            "session_id": "text",
            "session_date": "date",
            "hours": "amount",
            "completed": "bool",
        },
        values={
            "record_id": _text(digits_text(t.seq[rows], 8, "PX")),
            "id_number": _text(people.id_text[t.person[rows]]),
            "program": take_text(PROGRAMS, t.program[rows]),
            "session_id": _text(t.session[rows]),
            "session_date": t.date[rows],
            "hours": t.hours[rows],
            "completed": t.completed[rows],
        },
    )


def _sample_rows(rng, n: int, k: int = 20000) -> np.ndarray:
    return np.sort(rng.choice(n, min(n, k), replace=False))


# -------------------------------------------------------------------- the drop


def generate(
    out_dir: Path | str,
    scale: float = 1,
    seed: int = DEFAULT_SEED,
    district: str | None = None,
) -> dict:
    """Write a raw drop of one demo district into out_dir (its source folders are
    replaced). Deterministic: the same (scale, seed, district) gives the same bytes.

    district: a code of assets/districts/; None or 330211 is Zhenhai, calibrated to its
    published 2019 figures at scale 1 (the only district with `published/`). Another
    district gets its own streets, size, programme uptake, targets and export quirks
    (see `_districts.PROFILES`).

    Returns a summary: files written (format, rows), rows per source, bad rows per source
    and kind, and the truth's KPI values (what a correct pipeline must compute).
    """
    return _generate(Path(out_dir), scale, seed, district or ZHENHAI_CODE)


def generate_city(
    out_dir: Path | str, districts: int = 10, scale: float = 1, seed: int = DEFAULT_SEED
) -> dict:
    """Write a city drop: `out/<code>/` for the first `districts` districts (Zhenhai first,
    exactly as `generate(out/330211, scale, seed)` writes it; then the others by code),
    and the city's own targets in `out/targets/`.

    Some members of every other district are Zhenhai members too (SHARED_SHARE of its
    member persons carry a Zhenhai member's ID number, name and phone); Zhenhai's files
    do not change for it. Existing district folders in out_dir are replaced.

    Returns a summary: per district its code, name, rows per source, seconds (and the
    persons it shares with Zhenhai), and the city's totals.
    """
    codes = city_order()
    if not 1 <= districts <= len(codes):
        raise ValueError(f"districts must be 1..{len(codes)}")
    if scale <= 0:
        raise ValueError("scale must be positive")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # a city drop has district folders, the city's targets/ and its marker, no more: a
    # single-district drop written here before, or a larger city, goes
    for p in out.iterdir():
        if p.is_dir() and (p.name in codes or p.name in FOLDERS):
            shutil.rmtree(p)
    shared = Shared()
    summaries = [_generate(out / code, scale, seed, code, shared) for code in codes[:districts]]
    city = load_city().name
    (out / "targets").mkdir()
    _write_target_file(out / "targets", city_target_rows(shared.targets, city), f"{city}总工会")
    _write_marker(out, folders=("targets",))
    return {
        "out_dir": str(out),
        "city": city,
        "scale": scale,
        "seed": seed,
        "as_of": "2020-09-30",
        "districts": [
            {
                "code": s["district"]["code"],
                "name": s["district"]["name"],
                "rows": s["rows"],
                "total_rows": sum(s["rows"].values()),
                "shared_persons": s.get("shared_persons", 0),
                "seconds": s["seconds"],
                "files": s["files"],
                "bad_rows": s["bad_rows"],
            }
            for s in summaries
        ],
        "targets": f"targets/{TARGETS_FILE}",
        "total_rows": sum(sum(s["rows"].values()) for s in summaries),
        "seconds": round(time.perf_counter() - started, 2),
    }


@dataclass
class Donors:
    """A district's member persons whose ID numbers (with name and phone) members of
    other districts may carry: people who moved, or work in two districts."""

    birth: np.ndarray
    male: np.ndarray
    id_text: np.ndarray
    name: pa.Array
    phone: np.ndarray
    has_phone: np.ndarray

    @classmethod
    def of(cls, people: People, members: Members) -> Donors:
        p = np.unique(members.person)
        return cls(
            people.birth[p],
            people.male[p],
            people.id_text[p],
            people.name.take(pa.array(p)),
            people.phone[p],
            people.has_phone[p],
        )


SHARED_SHARE = 0.008  # of another district's member persons: Zhenhai members as well


@dataclass
class Shared:
    """What the districts of a city drop share, filled in as they are generated."""

    donors: Donors | None = None  # Zhenhai's member persons
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ID keys, sorted
    targets: list[list[tuple]] = field(default_factory=list)  # each district's target rows


def _district_seed(seed: int, code: str) -> int:
    """Zhenhai keeps the seed (its calibrated bytes); another district gets its own
    streams, so that no two districts repeat each other's draws."""
    return seed if code == ZHENHAI_CODE else zlib.crc32(f"{seed}:{code}".encode())


def _generate(out: Path, scale: float, seed: int, code: str, city: Shared | None = None) -> dict:
    """One district's drop; in a city (`city`), its ID numbers are unique in the city but
    for the persons it shares with Zhenhai, and its targets go into the city's."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    clock = [started]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - clock[0], 2)
        clock[0] = now
        if os.environ.get("UNION_DEMO_PROGRESS"):
            import resource

            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(
                f"[demo] {code} {name}: {phases[name]} s, peak RSS {rss} MB",
                file=sys.stderr,
                flush=True,
            )

    if scale <= 0:
        raise ValueError("scale must be positive")
    profile, place = profile_for(code), place_of(code)
    zhenhai = code == ZHENHAI_CODE
    # the population scale, and the programmes' (uptake per member); all `scale` for Zhenhai
    pop = scale * profile.size
    seed_d = _district_seed(seed, code)
    out.mkdir(parents=True, exist_ok=True)
    for folder in FOLDERS:
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        if folder != "published":  # written at scale 1 only: other scales match no report
            (out / folder).mkdir()

    cal = Calendar()
    people = People(home=int(code))
    unions = build_unions(rng_for(seed_d, "unions"), pop, cal, place)
    plan = PLAN
    if not zhenhai:  # its own progress in real-name collection and app verification
        plan = {
            **PLAN,
            "members_collected_2019": PLAN["members_collected_2019"] * profile.collected,
            "members_app_verified_2019": PLAN["members_app_verified_2019"] * profile.app,
            "membership_rate": profile.membership_rate,
        }
    members = build_members(rng_for(seed_d, "members"), pop, cal, unions, people, plan)
    outsiders = people.fresh(rng_for(seed_d, "outsiders"), scaled(12000, pop, 50))
    bad_pool = people.fresh(
        rng_for(seed_d, "bad-persons"), int(members.n * profile.bad) // 150 + 400
    )
    used = city.used if city is not None and len(city.used) else None
    people.finalize(rng_for(seed_d, "people"), avoid=used)
    shared = 0
    if city is not None:
        if city.donors is None and zhenhai:
            city.donors = Donors.of(people, members)
        elif city.donors is not None:
            shared = _take_over(rng_for(seed_d, "shared-persons"), people, members, city.donors)
        city.used = np.union1d(city.used, people.key)
    phase("population")
    persons = _bad.Persons(people, bad_pool)
    uid = pa.array(unions.uid, pa.string())
    drop = Drop(
        out, seed_d, title=place.name if profile.title else None, creator=f"{place.name}总工会"
    )
    n_spare = len(unions.spare_ids)
    bad_union_ids = unions.spare_ids[: n_spare // 2]
    unknown_union_ids = unions.spare_ids[n_spare // 2 :]

    def n_bad(n: int) -> int:
        """Rows the bad-row rates apply to: the district's rates relative to Zhenhai's."""
        return max(1, int(round(n * profile.bad)))

    # unions/: one xlsx roster (some districts keep it as a GBK CSV)
    order = np.argsort(np.array(unions.uid), kind="stable")
    utab = union_table(unions, order, place.streets)
    bad = _bad.bad_unions(rng_for(seed_d, "bad:unions"), utab, bad_union_ids, n_bad(utab.n))
    roster = (
        FileSpec(
            "基层工会名册_2020-09-30.xlsx",
            unions.n,
            lambda: utab,
            list(HEADERS["unions"]),
            fmt="xlsx",
        )
        if profile.roster == "xlsx"
        else FileSpec(
            "基层工会名册_2020-09-30.csv",
            unions.n,
            lambda: utab,
            list(HEADERS["unions"]),
            style=GBK,
        )
    )
    drop.emit("unions", [roster], bad)
    phase("unions")

    # members/: the export of 2020-08-31 in CSV parts, and the update of 2020-09-30 (xlsx)
    _write_members(drop, members, people, uid, persons, unknown_union_ids, seed_d, profile, n_bad)
    phase("members")

    # mutual aid
    enr = build_enrollments(
        rng_for(seed_d, "enrollments"), pop * profile.enrol, cal, members, people.n
    )
    phase("enrollments (build)")
    _write_enrollments(drop, enr, people, uid, persons, unknown_union_ids, seed_d, n_bad)
    phase("enrollments (write)")
    claims = build_claims(rng_for(seed_d, "claims"), pop * profile.enrol, cal, enr)
    _write_claims(drop, claims, enr, seed_d, n_bad)
    phase("claims")

    # loans: one xlsx with a remark column the contract does not know
    loans = build_loans(rng_for(seed_d, "loans"), pop * profile.loans, cal, members, people.n)
    rng = rng_for(seed_d, "remarks:loans")
    remark = np.where(loans.second, 1, np.where(rng.random(loans.n) < 0.05, 2, 0))
    # the district's own branches of the partner banks
    banks = [b.replace("镇海区", place.name).replace("镇海", place.short) for b in BANKS]
    lt = loan_table(loans, people, np.arange(loans.n), banks)
    bad = _bad.bad_loans(
        rng_for(seed_d, "bad:loans"),
        lt,
        persons,
        _bad.Keys("LD", 8, 50_000_000),
        n_rows=n_bad(lt.n),
    )
    drop.emit(
        "loans",
        [
            FileSpec(
                "蓝领贷放款明细_截至2020-09-30.xlsx",
                loans.n,
                lambda: lt,
                list(HEADERS["loans"]),
                fmt="xlsx",
                extra=(
                    "备注",
                    lambda: _nullify(take_text(["", "续贷", "提前还款"], remark), remark == 0),
                ),
            )
        ],
        bad,
    )

    phase("loans")
    # training: three CSVs (UTF-8 without BOM, GBK, UTF-8 with BOM)
    training = build_training(
        rng_for(seed_d, "training"), pop * profile.training, cal, members, outsiders
    )
    _write_training(drop, training, people, seed_d, n_bad)
    phase("training")

    targets = _write_targets(out, scale, profile, place.name)
    if zhenhai and abs(scale - 1) < 1e-9:
        _write_published(out)

    _write_marker(out)
    kpis = truth_kpis(unions, members, enr, claims, loans, training)
    phase("targets, published, truth KPIs")
    calibration = {f"{k}:{y}": kpis[k][y] for (k, y) in CALIBRATION}
    if zhenhai and abs(scale - 1) < 1e-9:
        off = {
            f"{k}:{y}": (kpis[k][y], lo, hi)
            for (k, y), (lo, hi) in CALIBRATION.items()
            if not lo <= kpis[k][y] <= hi
        }
        if off:
            raise AssertionError(f"demo calibration is off: {off}")
    summary = {
        "out_dir": str(out),
        "scale": scale,
        "seed": seed,
        "as_of": "2020-09-30",
        "files": drop.files,
        "rows": drop.rows,
        "truth_rows": drop.truth_rows,
        "bad_rows": drop.bad,
        "kpis": {k: {str(y): v for y, v in by_year.items()} for k, by_year in kpis.items()},
        "calibration_2019": calibration,
        "seconds": round(time.perf_counter() - started, 2),
        "phases": phases,
    }
    summary["district"] = {"code": code, "name": place.name, "seed": seed_d}
    if city is not None:
        summary["shared_persons"] = shared  # members carrying a Zhenhai member's ID number
        city.targets.append(targets)
    return summary


def _take_over(rng: np.random.Generator, people: People, m: Members, donors: Donors) -> int:
    """Give ~SHARED_SHARE of the district's member persons the ID number, name and phone
    of another district's member: the same person in two districts' files.

    A donor has the member's gender and, as near as possible, the birth date (at most a
    year off, and within what the member's join and leave dates allow: 18 at joining, at
    most 60 while a member), so the ID number agrees with the rest of the row."""
    # the birth dates each person's member rows allow
    hi = np.full(people.n, np.iinfo(np.int64).max)
    lo = np.full(people.n, np.iinfo(np.int64).min)
    np.minimum.at(hi, m.person, m.join.astype(np.int64) - int(np.ceil(18.05 * 365.25)))
    ref = np.minimum(m.leave_eff.astype(np.int64), AS_OF)
    np.maximum.at(lo, m.person, ref - int(59.99 * 365.25))
    own = np.unique(m.person)
    k = int(round(SHARED_SHARE * len(own)))
    recv = np.sort(rng.choice(own, min(k, len(own)), replace=False))
    chosen_r, chosen_d = [], []
    for male in (False, True):
        r = recv[people.male[recv] == male]
        d = np.nonzero(donors.male == male)[0]
        if not len(r) or not len(d):
            continue
        d = d[np.argsort(donors.birth[d], kind="stable")]
        db = donors.birth[d].astype(np.int64)
        rb = people.birth[r].astype(np.int64)
        pos = np.minimum(np.searchsorted(db, rb), len(d) - 1)  # the nearest above or below
        left = np.maximum(pos - 1, 0)
        pick = np.where(np.abs(db[left] - rb) <= np.abs(db[pos] - rb), left, pos)
        b = db[pick]
        ok = (np.abs(b - rb) <= 365) & (b >= lo[r]) & (b <= hi[r])
        chosen_r.append(r[ok])
        chosen_d.append(d[pick[ok]])
    if not chosen_r:
        return 0
    r = np.concatenate(chosen_r)
    d = np.concatenate(chosen_d)
    _, first = np.unique(d, return_index=True)  # a donor once per district
    r, d = r[first], d[first]
    ids = donors.id_text[d]
    # an ID number the district already has (another person's) would merge two persons
    ok = ~np.isin(ids, people.id_text)
    r, d, ids = r[ok], d[ok], ids[ok]
    order = np.argsort(r)
    r, d, ids = r[order], d[order], ids[order]
    people.id_text[r] = ids
    people.phone[r] = donors.phone[d]
    people.has_phone[r] = donors.has_phone[d]
    mask = np.zeros(people.n, dtype=bool)
    mask[r] = True
    people.name = pc.replace_with_mask(people.name, pa.array(mask), donors.name.take(pa.array(d)))
    return len(r)


def _write_marker(out: Path, folders=FOLDERS) -> None:
    """Mark the drop as generated: only this drop may refresh with the public development
    PII key (settings.require_pii_key). The marker lists the files, so a real export
    added to the folder makes the drop real."""
    files = sorted(
        f"{folder}/{p.name}"
        for folder in folders
        if (out / folder).is_dir()
        for p in (out / folder).iterdir()
    )
    (out / DEMO_MARKER).write_text(
        "# Generated demo drop (python -m union_demo): invented people, no real\n"
        "# data. Its files are listed below; a drop with any other file is not the demo.\n"
        + "".join(f"{f}\n" for f in files),
        encoding="utf-8",
    )


def _write_members(
    drop: Drop,
    m: Members,
    people: People,
    uid: pa.Array,
    persons: _bad.Persons,
    unknown_union_ids: list[str],
    seed: int,
    profile: Profile,
    n_bad: Callable[[int], int],
) -> None:
    rng = rng_for(seed, "members:export")
    in_base = m.join <= BASE_EXPORT
    # the earlier export knew only what had happened by 2020-08-31 ...
    leave_b = np.where((m.leave != NA) & (m.leave <= BASE_EXPORT), m.leave, NA).astype(np.int32)
    coll_b = np.where((m.collected != NA) & (m.collected <= BASE_EXPORT), m.collected, NA)
    app_b = np.where((m.app != NA) & (m.app <= BASE_EXPORT), m.app, NA)
    # ... and missed some entered late (back-filled 2019 collections and leaves)
    late = (m.collected != NA) & (m.collected <= yend(2019)) & (rng.random(m.n) < 0.012)
    coll_b[late] = NA
    app_b[late] = NA
    late = (
        (m.leave != NA)
        & (m.leave >= ystart(2019))
        & (m.leave <= yend(2019))
        & (rng.random(m.n) < 0.15)
    )
    leave_b[late] = NA
    coll_b, app_b = coll_b.astype(np.int32), app_b.astype(np.int32)
    # some changed their phone
    new_phone = in_base & people.has_phone[m.person] & (rng.random(m.n) < 0.001)
    phone_b = people.phone[m.person]
    k = int(new_phone.sum())
    phone_b[new_phone] = digits_text(
        13_000_000_000 + rng.integers(0, 7, k) * 1_000_000_000 + rng.integers(0, 1_000_000_000, k),
        11,
    )
    changed = (leave_b != m.leave) | (coll_b != m.collected) | (app_b != m.app) | new_phone
    update = ~in_base | changed

    base_rows = np.nonzero(in_base)[0]
    base_rows = base_rows[np.argsort(m.number[base_rows], kind="stable")]
    upd_rows = np.nonzero(update)[0]
    upd_rows = upd_rows[np.argsort(m.number[upd_rows], kind="stable")]

    def _with_phone(rows):
        t = member_table(m, people, uid, rows, leave=leave_b, collected=coll_b, app=app_b)
        ph = _text(phone_b[rows])
        t.values["phone"] = _nullify(ph, ~people.has_phone[m.person[rows]])
        return t

    cols = list(HEADERS["members"])
    alt_cols = [
        "member_id",
        "union_id",
        "name",
        "id_number",
        "phone",
        "frontline",
        "join_date",
        "leave_date",
        "collected_date",
        "app_verified_date",
    ]
    upd_cols = [
        "member_id",
        "name",
        "id_number",
        "union_id",
        "join_date",
        "leave_date",
        "collected_date",
        "app_verified_date",
        "phone",
        "frontline",
    ]
    specs = []
    # the earlier export: CSV parts, GBK and UTF-8 BOM in turn (Zhenhai), or a district's
    # own habit: GBK parts only, or xlsx parts
    xlsx = profile.members == "xlsx"
    parts = _split(len(base_rows), MAX_XLSX_ROWS if xlsx else MAX_CSV_ROWS)
    if len(parts) == 1 and len(base_rows) > 1 and not xlsx:  # at least two parts
        half = len(base_rows) // 2
        parts = [(0, half), (half, len(base_rows))]
    for i, (a, b) in enumerate(parts):
        rows = base_rows[a:b]
        specs.append(
            FileSpec(
                f"2020-08-31_会员实名制名册_{i + 1:02d}.{'xlsx' if xlsx else 'csv'}",
                len(rows),
                (lambda rows=rows: _with_phone(rows)),
                cols if i % 2 == 0 else alt_cols,
                fmt="xlsx" if xlsx else "csv",
                style=GBK if i % 2 == 0 or profile.members == "gbk" else BOM,
            )
        )
    uparts = _split(len(upd_rows), MAX_XLSX_ROWS)
    for i, (a, b) in enumerate(uparts):
        rows = upd_rows[a:b]
        name = (
            "2020-09-30_会员信息更新.xlsx"
            if len(uparts) == 1
            else f"2020-09-30_会员信息更新_{i + 1:02d}.xlsx"
        )
        specs.append(
            FileSpec(
                name,
                len(rows),
                (lambda rows=rows: member_table(m, people, uid, rows)),
                upd_cols,
                fmt="xlsx",
                takes_bad=False,
            )
        )
    rng_s = rng_for(seed, "sample:members")
    sample = member_table(m, people, uid, _sample_rows(rng_s, m.n))
    bad = _bad.bad_members(
        rng_for(seed, "bad:members"),
        sample,
        people,
        persons,
        _bad.Keys("HY", 9, int(m.number.max()) + 10_000),
        unknown_union_ids,
        n_rows=n_bad(len(base_rows) + len(upd_rows)),
    )
    drop.emit("members", specs, bad)


def _write_enrollments(
    drop: Drop,
    e: Enrollments,
    people: People,
    uid: pa.Array,
    persons: _bad.Persons,
    unknown_union_ids: list[str],
    seed: int,
    n_bad: Callable[[int], int],
) -> None:
    specs = []
    cols = list(HEADERS["mutual_aid_enrollments"])
    alt = [
        "enrollment_id",
        "plan_year",
        "id_number",
        "union_id",
        "plan_type",
        "enrolled_date",
        "premium_yuan",
    ]
    for y in YEARS:
        rows = np.nonzero(e.year == y)[0]
        parts = _split(len(rows), MAX_CSV_ROWS)
        for i, (a, b) in enumerate(parts):
            r = rows[a:b]
            name = f"{y}年度参保明细.csv" if len(parts) == 1 else f"{y}年度参保明细_{i + 1:02d}.csv"
            specs.append(
                FileSpec(
                    name,
                    len(r),
                    (lambda r=r: enrollment_table(e, people, uid, r, base=True)),
                    cols if y % 2 else alt,
                    style=GBK if y % 2 else BOM,
                )
            )
    fix = e.fixed
    specs.append(
        FileSpec(
            "补录更正_2020-09-30.csv",
            len(fix),
            lambda: enrollment_table(e, people, uid, fix),
            cols,
            style=GBK,
            takes_bad=False,
        )
    )
    rng = rng_for(seed, "sample:enrollments")
    sample = enrollment_table(e, people, uid, _sample_rows(rng, e.n))
    bad = _bad.bad_enrollments(
        rng_for(seed, "bad:enrollments"),
        sample,
        persons,
        _bad.Keys("HZ2019", 8, 80_000_000),
        unknown_union_ids,
        n_rows=n_bad(e.n + len(fix)),
    )
    drop.emit("mutual_aid_enrollments", specs, bad)


def _write_claims(
    drop: Drop, c: Claims, e: Enrollments, seed: int, n_bad: Callable[[int], int]
) -> None:
    specs = []
    cols = list(HEADERS["mutual_aid_claims"])
    alt = ["claim_id", "claim_date", "enrollment_id", "status", "benefit_yuan"]
    upd = ["claim_id", "enrollment_id", "status", "claim_date", "benefit_yuan"]
    notes = ["材料齐全", "补交发票", "二次申领", "异地就医", "待补材料"]
    for y in YEARS:
        rows = np.nonzero((c.year == y) & c.in_base)[0]
        parts = _split(len(rows), MAX_CSV_ROWS)
        for i, (a, b) in enumerate(parts):
            r = rows[a:b]
            name = f"申领明细_{y}.csv" if len(parts) == 1 else f"申领明细_{y}_{i + 1:02d}.csv"
            extra = None
            if y == 2018:
                rr = rng_for(seed, f"remarks:claims:{name}")
                pick = rr.integers(0, len(notes), len(r))
                empty = rr.random(len(r)) < 0.85
                extra = (
                    "备注",
                    lambda pick=pick, empty=empty: _nullify(take_text(notes, pick), empty),
                )
            specs.append(
                FileSpec(
                    name,
                    len(r),
                    (lambda r=r: claim_table(c, e, r, base=True)),
                    alt if y == 2018 else cols,
                    style=BOM if y % 2 else GBK,
                    extra=extra,
                )
            )
    rows = np.nonzero(c.in_update)[0]
    rows = rows[np.lexsort((c.seq[rows], c.year[rows]))]
    specs.append(
        FileSpec(
            "申领状态更新_2020-09-30.csv",
            len(rows),
            lambda: claim_table(c, e, rows),
            upd,
            style=BOM,
            takes_bad=False,
        )
    )
    rng = rng_for(seed, "sample:claims")
    sample = claim_table(c, e, _sample_rows(rng, c.n))
    early = np.nonzero(e.date >= day("2017-03-01"))[0]
    early = early[rng.choice(len(early), min(len(early), 5000), replace=False)]
    unknown = [f"HZ2019{v:08d}" for v in range(90_000_000, 90_000_000 + max(10, c.n // 100))]
    bad = _bad.bad_claims(
        rng_for(seed, "bad:claims"),
        sample,
        _bad.Keys("SL2019", 7, 9_000_000),
        (enrollment_ids(e, early).to_pylist(), e.date[early]),
        unknown,
        n_rows=n_bad(c.n + int(c.in_update.sum())),
    )
    drop.emit("mutual_aid_claims", specs, bad)


def _write_training(
    drop: Drop, t: Training, people: People, seed: int, n_bad: Callable[[int], int]
) -> None:
    cols = list(HEADERS["training"])
    alt = ["record_id", "session_id", "program", "session_date", "id_number", "hours", "completed"]
    year = t.date.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    groups = [
        ("职工培训记录_2017-2018.csv", (year <= 2018), cols, PLAIN),
        ("职工培训记录_2019.csv", (year == 2019), alt, GBK),
        ("职工培训记录_2020.csv", (year == 2020), cols, BOM),
    ]
    specs = []
    for name, sel, c, style in groups:
        rows = np.nonzero(sel)[0]
        specs.append(
            FileSpec(
                name, len(rows), (lambda rows=rows: training_table(t, people, rows)), c, style=style
            )
        )
    rng = rng_for(seed, "sample:training")
    sample = training_table(t, people, _sample_rows(rng, t.n))
    bad = _bad.bad_training(
        rng_for(seed, "bad:training"),
        sample,
        _bad.Keys("PX", 8, 90_000_000),
        n_rows=n_bad(t.n),
    )
    drop.emit("training", specs, bad)


# The catalogue's ratio KPIs (assets/kpis.yaml, kind: ratio): a city's target for them is
# no sum of its districts' targets. Every other KPI with a target counts or sums rows.
RATIO_KPIS = {k.code for k in load_catalogue() if k.is_ratio}


def _target_factor(profile: Profile, kpi: str) -> float:
    """How a district's count target follows its size and programme uptake (all 1 for
    Zhenhai)."""
    if kpi.startswith("mutual_aid_"):
        return profile.size * profile.enrol
    if kpi.startswith("loan_"):
        return profile.size * profile.loans
    if kpi.startswith(("training_", "education_", "contest_")):
        return profile.size * profile.training
    if kpi == "members_app_verified":
        return profile.size * profile.app
    return profile.size


def target_rows(
    scale: float, profile: Profile | None = None, name: str = "镇海区"
) -> list[tuple[str, int, float, str, str]]:
    """A district's targets: Zhenhai's, scaled with the population (and for another
    district with its size and uptake; its basis is its own work plan)."""
    rows = []
    for code, year, value, comp, basis, scales in TARGETS:
        v = float(value)
        f = scale if profile is None else scale * _target_factor(profile, code)
        if scales and abs(f - 1) > 1e-9:
            v = float(max(1, round(value * f)))
        if profile is not None and profile.code != ZHENHAI_CODE:
            basis = f"{name}总工会{year}年工作要点"
        rows.append((code, year, v, comp, basis))
    return rows


def city_target_rows(districts: list[list[tuple]], city: str = "宁波市") -> list[tuple]:
    """The city's targets from its districts' (Zhenhai's first): the sum for a count or
    an amount, Zhenhai's value for a ratio (the city holds every district to it)."""
    rows = []
    for i, (code, year, value, comp, basis) in enumerate(districts[0]):
        if code in RATIO_KPIS:
            rows.append((code, year, value, comp, f"{city}统一目标：{basis}"))
        else:
            total = sum(d[i][2] for d in districts)
            rows.append((code, year, total, comp, f"{city}：各区（县、市）目标合计"))
    return rows


def _number(v: float) -> str:
    """A target as written: exact (an integer without a decimal point)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _write_targets(out: Path, scale: float, profile: Profile, name: str) -> list[tuple]:
    rows = target_rows(scale, profile, name)
    # Zhenhai's file as it always was (`:g`, six significant digits); the others exact
    fmt = (lambda v: f"{v:g}") if profile.code == ZHENHAI_CODE else _number
    _write_target_file(out / "targets", rows, f"{name}总工会", fmt)
    return [(c, y, float(fmt(v)), comp, basis) for c, y, v, comp, basis in rows]  # as written


def _write_target_file(folder: Path, rows: list[tuple], creator: str, fmt=_number) -> None:
    table = Table(
        kinds={
            "kpi_code": "text",
            "year": "int",
            "target_value": "text",
            "comparator": "text",
            "basis": "text",
        },
        values={
            "kpi_code": pa.array([r[0] for r in rows]),
            "year": np.array([r[1] for r in rows], np.int64),
            "target_value": pa.array([fmt(r[2]) for r in rows]),
            "comparator": pa.array([r[3] for r in rows]),
            "basis": pa.array([r[4] for r in rows]),
        },
    )
    table.kinds["target_value"] = "number"  # numeric text, written as a number cell
    columns = list(zip(table.values, TARGET_HEADER, strict=True))
    write_xlsx(
        folder / TARGETS_FILE,
        table,
        np.arange(len(rows)),
        columns,
        rng_for(0, "targets"),
        sheet="年度目标",
        creator=creator,
    )


def _write_published(out: Path) -> None:
    path = out / "published" / "2019年度工作总结_已发布数据.csv"
    path.parent.mkdir(exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(PUBLISHED_HEADER)
        for row in published_rows():
            w.writerow(
                [
                    row["kpi_code"],
                    row["year"],
                    row["published"],
                    row["lower"],
                    row["upper"],
                    row["quote"],
                    row["note"],
                ]
            )


# ------------------------------------------------------------- the truth's KPIs


def truth_kpis(
    u: Unions, m: Members, e: Enrollments, c: Claims, ln: Loans, t: Training
) -> dict[str, dict[int, float]]:
    """Every KPI of the catalogue for 2017..2020 (2020 to the as-of date), from the
    generator's truth: what the pipeline must compute from the drop."""
    out: dict[str, dict[int, float]] = {}

    def put(code, y, v):
        out.setdefault(code, {})[y] = float(v) if isinstance(v, float) else int(v)

    paid = c.status == 0
    cperson = e.person[c.enrollment]
    udis = np.where(u.dissolved == NA, np.iinfo(np.int32).max, u.dissolved)
    for y in YEARS:
        lo, ref = ystart(y), min(yend(y), AS_OF)
        act = m.active_at(ref)
        total = int(act.sum())
        put("members_total", y, total)
        put("members_new", y, int(((m.join >= lo) & (m.join <= ref)).sum()))
        coll = int((act & (m.collected != NA) & (m.collected <= ref)).sum())
        put("members_collected", y, coll)
        put("members_collected_rate", y, coll / total if total else 0.0)
        put("members_app_verified", y, int((act & (m.app != NA) & (m.app <= ref)).sum()))
        uact = (u.founded <= ref) & (udis > ref)
        emp = int(u.employees[uact].sum())
        put("membership_rate", y, total / emp if emp else 0.0)
        put("unions_new", y, int(((u.founded >= lo) & (u.founded <= ref)).sum()))
        put(
            "unions_authorized", y, int((uact & (u.authorized != NA) & (u.authorized <= ref)).sum())
        )
        ey = (e.year == y) & (e.date <= ref)
        put("mutual_aid_enrollments", y, int(ey.sum()))
        put("mutual_aid_premium_yuan", y, int(e.premium[ey].sum(dtype=np.int64)) / 100)
        cy = paid & (c.date >= lo) & (c.date <= ref)
        put("mutual_aid_claimants", y, len(np.unique(cperson[cy])))
        put("mutual_aid_benefit_yuan", y, int(c.benefit[cy].sum()) / 100)
        ly = (ln.date >= lo) & (ln.date <= ref)
        lc = ln.date <= ref
        put("loan_borrowers", y, len(np.unique(ln.person[ly])))
        put("loan_amount_yuan", y, int(ln.amount[ly].sum()) / 100)
        put("loan_borrowers_cum", y, len(np.unique(ln.person[lc])))
        put("loan_amount_cum_yuan", y, int(ln.amount[lc].sum()) / 100)
        ty = (t.date >= lo) & (t.date <= ref)
        put("training_sessions", y, len(np.unique(t.session[ty & (t.program == 0)])))
        put("training_participations", y, int((ty & (t.program == 0)).sum()))
        put("education_enrollees", y, len(np.unique(t.person[ty & (t.program == 1)])))
        put("contest_events", y, len(np.unique(t.session[ty & (t.program == 2)])))
    return out
