"""The demo drop generator: determinism, the mix of formats, and the calibration.

The calibration test reads the written raw files on its own (GBK / UTF-8 BOM CSV and
xlsx via openpyxl, not the pipeline's readers), applies the data contract's row rules,
repeats, later-file-wins and references with pandas, and computes the 2019 KPIs from
what is left: they must lie within the bounds of the published figures.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from union_demo import generate, generate_city
from union_demo.__main__ import main as demo_main
from union_demo._districts import PROFILES
from union_demo.generator import RATIO_KPIS, TARGETS
from union_pipeline.districts import load_districts
from union_pipeline.settings import ASSETS_DIR

AS_OF = pd.Timestamp("2020-09-30")
FOLDERS = [
    "unions",
    "members",
    "mutual_aid_enrollments",
    "mutual_aid_claims",
    "loans",
    "training",
    "targets",
    "published",
]

HEADERS = {
    "unions": {
        "工会编码": "union_id",
        "工会名称": "union_name",
        "所属镇街": "street",
        "单位类型": "org_type",
        "职工人数": "employee_count",
        "成立日期": "founded_date",
        "授权日期": "authorized_date",
        "星级": "star_rating",
        "撤销日期": "dissolved_date",
    },
    "members": {
        "会员编号": "member_id",
        "姓名": "name",
        "身份证号": "id_number",
        "手机号": "phone",
        "工会编码": "union_id",
        "入会日期": "join_date",
        "离会日期": "leave_date",
        "采集日期": "collected_date",
        "APP认证日期": "app_verified_date",
        "一线职工": "frontline",
    },
    "mutual_aid_enrollments": {
        "参保编号": "enrollment_id",
        "身份证号": "id_number",
        "工会编码": "union_id",
        "保障年度": "plan_year",
        "参保日期": "enrolled_date",
        "缴费金额": "premium_yuan",
        "保障类型": "plan_type",
    },
    "mutual_aid_claims": {
        "申领编号": "claim_id",
        "参保编号": "enrollment_id",
        "申领日期": "claim_date",
        "补助金额": "benefit_yuan",
        "状态": "status",
    },
    "loans": {
        "贷款编号": "loan_id",
        "身份证号": "id_number",
        "放款日期": "disbursed_date",
        "贷款金额": "amount_yuan",
        "期限月数": "term_months",
        "合作银行": "bank",
        "状态": "status",
    },
    "training": {
        "记录编号": "record_id",
        "身份证号": "id_number",
        "项目": "program",
        "场次编号": "session_id",
        "日期": "session_date",
        "学时": "hours",
        "结业": "completed",
    },
    "published": {
        "指标代码": "kpi_code",
        "年度": "year",
        "发布值": "published",
        "下限": "lower",
        "上限": "upper",
        "出处": "quote",
        "说明": "note",
    },
    "targets": {
        "指标代码": "kpi_code",
        "年度": "year",
        "目标值": "target_value",
        "比较": "comparator",
        "依据": "basis",
    },
}
KEYS = {
    "unions": "union_id",
    "members": "member_id",
    "mutual_aid_enrollments": "enrollment_id",
    "mutual_aid_claims": "claim_id",
    "loans": "loan_id",
    "training": "record_id",
}
STREETS = {
    "招宝山街道",
    "蛟川街道",
    "骆驼街道",
    "庄市街道",
    "贵驷街道",
    "澥浦镇",
    "九龙湖镇",
    "区直机关",
}
DATE_RE = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T][\d:.]+)?$"
BOOL_WORDS = {"是", "否", "y", "n", "yes", "no", "1", "0", "true", "false", "t", "f"}
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
KPI_CODES = {
    "members_total",
    "members_new",
    "members_collected",
    "members_collected_rate",
    "members_app_verified",
    "membership_rate",
    "unions_new",
    "unions_authorized",
    "mutual_aid_enrollments",
    "mutual_aid_premium_yuan",
    "mutual_aid_claimants",
    "mutual_aid_benefit_yuan",
    "loan_borrowers",
    "loan_amount_yuan",
    "loan_borrowers_cum",
    "loan_amount_cum_yuan",
    "training_sessions",
    "training_participations",
    "education_enrollees",
    "contest_events",
}


# ----------------------------------------------------------------- reading files


def csv_encoding(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        data.decode("gb18030")
        return "gb18030"


def _cell(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_file(path: Path) -> pd.DataFrame:
    """All values as stripped text, empty = None, headers as found (stripped)."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        rows = [[_cell(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
        header = [h.strip() for h in rows[0]]
        body = [r + [None] * (len(header) - len(r)) for r in rows[1:]]
        df = pd.DataFrame(body, columns=header, dtype=object)
    else:
        encoding = csv_encoding(path)
        with open(path, encoding=encoding) as f:
            first = f.readline()
        title = 0 if "," in first else 1  # a title line above the header (some districts)
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, skiprows=title)
        df.columns = [c.strip() for c in df.columns]
    for c in df.columns:
        s = df[c].astype(object).str.strip()
        df[c] = s.where(s.notna() & (s != ""), None)
    return df


def read_source(raw: Path, source: str) -> pd.DataFrame:
    """Every file of a folder, lexical order, canonical columns, with file order and line."""
    frames = []
    files = sorted(p for p in (raw / source).iterdir() if p.suffix in (".csv", ".xlsx"))
    for order, path in enumerate(files):
        df = read_file(path)
        mapping = HEADERS[source]
        assert set(mapping) <= set(df.columns), (path.name, list(df.columns))
        df = df[list(mapping)].rename(columns=mapping)
        df["_file"] = order
        df["_line"] = np.arange(2, len(df) + 2)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------- the contract's rules


def _by_value(s: pd.Series, parse) -> pd.Series:
    """Parse each distinct value once (few distinct dates and amounts, many rows)."""
    codes, uniques = pd.factorize(s)
    parsed = parse(pd.Series(uniques, dtype=object))
    out = (
        parsed.to_numpy()[np.where(codes < 0, 0, codes)]
        if len(uniques)
        else np.full(len(s), np.nan)
    )
    out = pd.Series(out, index=s.index)
    return out.where(codes >= 0)


def _dates(u: pd.Series) -> pd.Series:
    parts = u.str.extract(DATE_RE).astype(float)
    parts.columns = ["year", "month", "day"]
    return pd.to_datetime(parts, errors="coerce")


def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed = pd.to_datetime(_by_value(s, _dates))
    return parsed, s.notna() & parsed.isna()


def parse_numbers(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    def numbers(u):
        return pd.to_numeric(u.str.replace(",", "", regex=False), errors="coerce")

    parsed = _by_value(s, numbers).astype(float)
    return parsed, s.notna() & parsed.isna()


def parse_ints(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed, bad = parse_numbers(s)
    bad |= parsed.notna() & (parsed != np.floor(parsed))
    return parsed, bad


def bool_ok(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype("string").str.lower().isin(BOOL_WORDS)


def id_valid(s: pd.Series) -> pd.Series:
    """18 chars, GB 11643 MOD 11-2 check digit, a real birth date up to today."""
    norm = s.astype(object).str.upper()
    ok = (norm.str.len() == 18).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(s), dtype=bool)
    if ok.any():
        try:
            codes = norm[ok].to_numpy(dtype="S18").view(np.uint8).reshape(-1, 18)
        except UnicodeEncodeError:  # some are not ASCII (so not valid): leave those out
            ok &= norm.map(lambda v: isinstance(v, str) and v.isascii()).to_numpy(dtype=bool)
            codes = norm[ok].to_numpy(dtype="S18").view(np.uint8).reshape(-1, 18)
        digits = codes[:, :17].astype(np.int64) - 48
        form = ((digits >= 0) & (digits <= 9)).all(axis=1) & (
            ((codes[:, 17] >= 48) & (codes[:, 17] <= 57)) | (codes[:, 17] == ord("X"))
        )
        check = np.frombuffer(b"10X98765432", dtype=np.uint8)[(digits * ID_WEIGHTS).sum(1) % 11]
        birth8 = pd.Series((digits[:, 6:14] * 10 ** np.arange(7, -1, -1)).sum(axis=1))
        birth = pd.to_datetime(
            _by_value(
                birth8.astype(str), lambda u: pd.to_datetime(u, format="%Y%m%d", errors="coerce")
            )
        )
        good_birth = (
            (birth >= pd.Timestamp("1900-01-01")) & (birth <= pd.Timestamp.today())
        ).to_numpy()
        if len(codes):
            out[ok] = form & (check == codes[:, 17]) & good_birth
    return pd.Series(out, index=s.index)


def check_rows(source: str, df: pd.DataFrame, streets=STREETS) -> pd.Series:
    """True where a row breaks a row rule of the contract (before references); streets:
    the district's."""
    bad = pd.Series(False, index=df.index)

    def required(*cols):
        nonlocal bad
        for c in cols:
            bad |= df[c].isna()

    def dates(*cols):
        nonlocal bad
        for c in cols:
            df[c], b = parse_dates(df[c])
            bad |= b

    def allowed(col, values):
        nonlocal bad
        bad |= df[col].notna() & ~df[col].isin(values)

    if source == "unions":
        required("union_id", "union_name", "street", "employee_count", "founded_date")
        allowed("street", streets)
        allowed("org_type", {"企业", "机关事业单位", "社会组织", "联合工会"})
        dates("founded_date", "authorized_date", "dissolved_date")
        df["employee_count"], b = parse_ints(df["employee_count"])
        bad |= b | (df["employee_count"] < 0)
        df["star_rating"], b = parse_ints(df["star_rating"])
        bad |= b | (df["star_rating"] < 0) | (df["star_rating"] > 5)
        bad |= df["authorized_date"] < df["founded_date"]
        bad |= df["dissolved_date"] < df["founded_date"]
    elif source == "members":
        required("member_id", "name", "id_number", "union_id", "join_date")
        bad |= df["id_number"].notna() & ~id_valid(df["id_number"])
        phone = df["phone"].astype("string").str.replace(r"[\s-]", "", regex=True)
        bad |= phone.notna() & ~phone.str.fullmatch(r"1\d{10}").fillna(False)
        dates("join_date", "leave_date", "collected_date", "app_verified_date")
        bad |= df["join_date"] > AS_OF
        bad |= df["leave_date"] < df["join_date"]
        bad |= ~bool_ok(df["frontline"])
    elif source == "mutual_aid_enrollments":
        required(
            "enrollment_id", "id_number", "union_id", "plan_year", "enrolled_date", "premium_yuan"
        )
        bad |= df["id_number"].notna() & ~id_valid(df["id_number"])
        df["plan_year"], b = parse_ints(df["plan_year"])
        bad |= b | (df["plan_year"] < 2000) | (df["plan_year"] > AS_OF.year + 1)
        dates("enrolled_date")
        df["premium_yuan"], b = parse_numbers(df["premium_yuan"])
        bad |= b | (df["premium_yuan"] < 0)
        allowed("plan_type", {"住院医疗互助", "特殊病种", "女职工安康"})
    elif source == "mutual_aid_claims":
        required("claim_id", "enrollment_id", "claim_date", "benefit_yuan")
        dates("claim_date")
        df["benefit_yuan"], b = parse_numbers(df["benefit_yuan"])
        bad |= b | (df["benefit_yuan"] < 0)
        allowed("status", {"已发放", "审核中", "不予补助"})
    elif source == "loans":
        required("loan_id", "id_number", "disbursed_date", "amount_yuan", "term_months", "bank")
        bad |= df["id_number"].notna() & ~id_valid(df["id_number"])
        dates("disbursed_date")
        df["amount_yuan"], b = parse_numbers(df["amount_yuan"])
        bad |= b | (df["amount_yuan"] <= 0)
        df["term_months"], b = parse_ints(df["term_months"])
        bad |= b | (df["term_months"] < 1) | (df["term_months"] > 120)
        allowed("status", {"正常", "结清", "逾期"})
    elif source == "training":
        required("record_id", "id_number", "session_id", "session_date")
        bad |= df["id_number"].notna() & ~id_valid(df["id_number"])
        allowed("program", {"吾意乐学", "学历提升", "雄镇杯技能竞赛", "技能培训"})
        dates("session_date")
        df["hours"], b = parse_numbers(df["hours"])
        bad |= b | (df["hours"] < 0)
        bad |= ~bool_ok(df["completed"])
    if "id_number" in df:
        df["person"] = df["id_number"].astype("string").str.upper()
    # a comparison with an empty value breaks no rule
    return bad.astype("boolean").fillna(False).astype(bool)


def load(raw: Path, source: str, streets=STREETS) -> tuple[pd.DataFrame, dict[str, int]]:
    """Row rules, repeats within a file, later file wins: the source's surviving rows."""
    df = read_source(raw, source)
    content = [c for c in HEADERS[source].values()]
    df["_hash"] = pd.util.hash_pandas_object(df[content].astype("string"), index=False)
    counts = {"read": len(df)}
    bad = check_rows(source, df, streets)
    counts["quarantined"] = int(bad.sum())
    df = df[~bad]
    key = KEYS[source]
    repeated = df.duplicated(["_file", key], keep=False)
    versions = df[repeated].groupby(["_file", key])["_hash"].transform("nunique")
    conflicting = pd.Series(False, index=df.index)
    conflicting[versions.index] = versions > 1
    counts["quarantined"] += int(conflicting.sum())
    df = df[~conflicting]
    before = len(df)
    df = df.drop_duplicates(["_file", key])
    counts["collapsed"] = before - len(df)
    before = len(df)
    df = df.sort_values(["_file", "_line"]).drop_duplicates(key, keep="last")
    counts["superseded"] = before - len(df)
    return df.reset_index(drop=True), counts


def load_drop(
    raw: Path, streets=STREETS
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    tables, counts = {}, {}
    for source in KEYS:
        tables[source], counts[source] = load(raw, source, streets)

    def drop_unknown(source, mask):
        counts[source]["quarantined"] += int((~mask).sum())
        tables[source] = tables[source][mask].reset_index(drop=True)

    unions, members = tables["unions"], tables["members"]
    drop_unknown("members", members["union_id"].isin(unions["union_id"]))
    persons = set(tables["members"]["person"])
    enr = tables["mutual_aid_enrollments"]
    drop_unknown(
        "mutual_aid_enrollments",
        enr["person"].isin(persons) & enr["union_id"].isin(unions["union_id"]),
    )
    claims = tables["mutual_aid_claims"].merge(
        tables["mutual_aid_enrollments"][["enrollment_id", "enrolled_date", "person"]],
        on="enrollment_id",
        how="left",
    )
    ok = claims["enrolled_date"].notna() & (claims["claim_date"] >= claims["enrolled_date"])
    tables["mutual_aid_claims"] = claims
    drop_unknown("mutual_aid_claims", ok)
    drop_unknown("loans", tables["loans"]["person"].isin(persons))
    return tables, counts


# ----------------------------------------------------------------------- KPIs


def kpis_for(t: dict[str, pd.DataFrame], year: int) -> dict[str, float]:
    start, end = pd.Timestamp(f"{year}-01-01"), min(pd.Timestamp(f"{year}-12-31"), AS_OF)
    m, u = t["members"], t["unions"]
    active = (m["join_date"] <= end) & (m["leave_date"].isna() | (m["leave_date"] > end))
    total = int(active.sum())
    collected = int((active & (m["collected_date"] <= end)).sum())
    uactive = (u["founded_date"] <= end) & (
        u["dissolved_date"].isna() | (u["dissolved_date"] > end)
    )
    e = t["mutual_aid_enrollments"]
    ey = (e["plan_year"] == year) & (e["enrolled_date"] <= end)
    c = t["mutual_aid_claims"]
    cy = (c["status"] == "已发放") & (c["claim_date"] >= start) & (c["claim_date"] <= end)
    ln = t["loans"]
    lc = ln["disbursed_date"] <= end
    tr = t["training"]
    ty = (tr["session_date"] >= start) & (tr["session_date"] <= end)
    free, contest = tr["program"] == "吾意乐学", tr["program"] == "雄镇杯技能竞赛"
    return {
        "members_total": total,
        "members_new": int(((m["join_date"] >= start) & (m["join_date"] <= end)).sum()),
        "members_collected": collected,
        "members_collected_rate": collected / total,
        "members_app_verified": int((active & (m["app_verified_date"] <= end)).sum()),
        "membership_rate": total / u.loc[uactive, "employee_count"].sum(),
        "unions_new": int(((u["founded_date"] >= start) & (u["founded_date"] <= end)).sum()),
        "unions_authorized": int((uactive & (u["authorized_date"] <= end)).sum()),
        "mutual_aid_enrollments": int(ey.sum()),
        "mutual_aid_premium_yuan": float(e.loc[ey, "premium_yuan"].sum()),
        "mutual_aid_claimants": int(c.loc[cy, "person"].nunique()),
        "mutual_aid_benefit_yuan": float(c.loc[cy, "benefit_yuan"].sum()),
        "loan_borrowers_cum": int(ln.loc[lc, "person"].nunique()),
        "loan_amount_cum_yuan": float(ln.loc[lc, "amount_yuan"].sum()),
        "training_sessions": int(tr.loc[ty & free, "session_id"].nunique()),
        "training_participations": int((ty & free).sum()),
        "education_enrollees": int(tr.loc[ty & (tr["program"] == "学历提升"), "person"].nunique()),
        "contest_events": int(tr.loc[ty & contest, "session_id"].nunique()),
    }


# ------------------------------------------------------------------------ tests


def _digest(raw: Path) -> dict[str, str]:
    return {
        str(p.relative_to(raw)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(raw.rglob("*"))
        if p.is_file()
    }


def test_small_drop_is_deterministic_and_mixes_formats(tmp_path):
    a = generate(tmp_path / "a", scale=0.02, seed=11)
    generate(tmp_path / "b", scale=0.02, seed=11)
    digest_a, digest_b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert digest_a == digest_b and len(digest_a) >= 15
    other = generate(tmp_path / "c", scale=0.02, seed=12)
    assert _digest(tmp_path / "c") != digest_a
    assert other["rows"] != a["rows"] or other["kpis"] != a["kpis"]

    raw = tmp_path / "a"
    # no published/; the demo marker (.union-demo-drop) aside
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == sorted(FOLDERS[:-1])
    assert (raw / ".union-demo-drop").is_file()
    kinds: dict[str, set[str]] = {}
    for folder in FOLDERS[:-1]:
        files = sorted((raw / folder).iterdir())
        assert files, folder
        for path in files:
            kind = "xlsx" if path.suffix == ".xlsx" else csv_encoding(path)
            kinds.setdefault(kind, set()).add(folder)
            assert set(read_file(path).columns) >= set(HEADERS[folder]), path  # Chinese headers
    # GBK that is not UTF-8, UTF-8 with BOM, and xlsx, each for several sources
    assert {"gb18030", "utf-8-sig", "xlsx"} <= set(kinds)
    assert all(len(kinds[k]) >= 2 for k in ("gb18030", "utf-8-sig", "xlsx")), kinds
    assert any(f["file"].startswith("members/") and f["format"] == "xlsx" for f in a["files"])


def test_raw_values_come_in_the_mixed_styles_of_real_exports(tmp_path):
    generate(tmp_path, scale=0.05, seed=3)
    text = "".join(
        p.read_bytes().decode(csv_encoding(p))
        for folder in ("members", "mutual_aid_claims", "training")
        for p in sorted((tmp_path / folder).glob("*.csv"))
    )
    for pattern in (
        r",\d{4}-\d{2}-\d{2},",
        r",\d{4}/\d{1,2}/\d{1,2},",
        r",\d{4}\.\d{1,2}\.\d{1,2},",
        r",\d{4}年\d{1,2}月\d{1,2}日,",
        r',"\d{1,3}(,\d{3})+\.\d{2}"',
        r",(是|否),",
        r",(Y|N),",
        r",(true|false)",
        r",[01],?\r?\n",
    ):
        assert re.search(pattern, text), pattern
    members = read_source(tmp_path, "members")
    assert members["_file"].nunique() >= 3  # two CSV parts and the later xlsx update
    loans_head = read_file(next((tmp_path / "loans").glob("*.xlsx"))).columns
    assert "备注" in loans_head  # an unknown extra column


@pytest.fixture(scope="module")
def drop1(tmp_path_factory):
    """The scale-1 drop, generated once, and what the contract's rules leave of it."""
    raw = tmp_path_factory.mktemp("demo1") / "raw"
    summary = generate(raw, scale=1, seed=20191231)
    tables, counts = load_drop(raw)
    return raw, summary, tables, counts


@pytest.mark.system  # the full district
def test_scale_1_reproduces_the_published_2019_figures(drop1):
    raw, summary, tables, _ = drop1

    published = read_source(raw, "published")
    assert len(published) == 18 and set(published["kpi_code"]) <= KPI_CODES

    computed = {2019: kpis_for(tables, 2019), 2018: kpis_for(tables, 2018)}
    off = {}
    for row in published.itertuples():
        value = computed[int(row.year)][row.kpi_code]
        if not float(row.lower) - 1e-9 <= value <= float(row.upper) + 1e-9:
            off[(row.kpi_code, row.year)] = (value, row.lower, row.upper)
    assert not off, off
    assert computed[2019]["mutual_aid_premium_yuan"] < 10_550_000  # "1054余万": below 1055万

    # plausible other years, and the as-of date is the latest event
    for year in (2017, 2018, 2020):
        k = kpis_for(tables, year)
        assert 0.9 < k["membership_rate"] <= 1.0, (year, k)
        assert 200_000 < k["members_total"] < 260_000
        assert k["mutual_aid_enrollments"] > 100_000 and k["contest_events"] > 0
    assert 0.95 <= computed[2019]["membership_rate"] <= 0.97
    latest = max(
        tables["members"]["join_date"].max(),
        tables["mutual_aid_enrollments"]["enrolled_date"].max(),
        tables["mutual_aid_claims"]["claim_date"].max(),
        tables["loans"]["disbursed_date"].max(),
        tables["training"]["session_date"].max(),
    )
    assert latest == AS_OF
    first = min(
        tables["mutual_aid_enrollments"]["plan_year"].min(),
        tables["mutual_aid_claims"]["claim_date"].min().year,
        tables["loans"]["disbursed_date"].min().year,
        tables["training"]["session_date"].min().year,
    )
    assert first == 2017

    # the generator's own view of its truth agrees with this independent one
    for name, value in summary["calibration_2019"].items():
        code, year = name.split(":")
        assert computed[int(year)][code] == pytest.approx(value), code


@pytest.mark.system  # the full district
def test_scale_1_bad_rows_are_recognised_by_the_rules_and_stay_small(drop1):
    _, summary, _, counts = drop1
    for source, c in counts.items():
        kinds = summary["bad_rows"][source]
        planted = sum(v for k, v in kinds.items() if k != "identical_repeat")
        assert c["quarantined"] == planted, (source, c, kinds)
        assert c["collapsed"] == kinds.get("identical_repeat", 0), (source, c)
        assert 0 < c["quarantined"] / c["read"] < 0.05, (source, c)
        # every kind of the contract's rules is planted at scale 1
        assert all(v > 0 for v in kinds.values()), kinds
    for source in ("members", "mutual_aid_enrollments", "mutual_aid_claims"):
        assert counts[source]["superseded"] > 0, source  # a later file updates an earlier
    assert {
        "unknown_union:union_id",
        "invalid_phone:phone",
        "after_as_of:join_date",
        "date_order:leave_date",
        "conflicting_duplicate",
    } <= set(summary["bad_rows"]["members"])
    assert {
        "unknown_member:id_number",
        "out_of_range:premium_yuan",
        "not_allowed:plan_type",
    } <= set(summary["bad_rows"]["mutual_aid_enrollments"])
    assert {"unknown_enrollment:enrollment_id", "claim_before_enrollment:claim_date"} <= set(
        summary["bad_rows"]["mutual_aid_claims"]
    )
    assert {"out_of_range:term_months", "unknown_member:id_number"} <= set(
        summary["bad_rows"]["loans"]
    )
    assert {"out_of_range:star_rating", "not_allowed:street"} <= set(summary["bad_rows"]["unions"])


@pytest.mark.system  # the full district
def test_scale_1_truth_is_consistent(drop1):
    _, _, t, _ = drop1
    m, u = t["members"], t["unions"]
    # each member's union was active when the member joined
    mu = m.merge(u, on="union_id", how="left", suffixes=("", "_u"))
    assert mu["founded_date"].notna().all()
    assert (mu["founded_date"] <= mu["join_date"]).all()
    assert (mu["dissolved_date"].isna() | (mu["dissolved_date"] > mu["join_date"])).all()
    # non-members train too; some persons hold two plan types, some borrowers two loans
    assert (~t["training"]["person"].isin(set(m["person"]))).any()
    e = t["mutual_aid_enrollments"]
    assert e[e["plan_year"] == 2019].groupby("person").size().max() >= 2
    assert t["loans"].groupby("person").size().max() == 2
    assert {"不予补助", "审核中"} <= set(t["mutual_aid_claims"]["status"])
    assert u["dissolved_date"].notna().sum() > 0
    # IDs end in X sometimes; both genders; ages 18..60 at the as-of date for active members
    ids = m["person"]
    assert ids.str.endswith("X").any()
    assert set(ids.str.slice(16, 17).astype(int) % 2) == {0, 1}
    birth = pd.to_datetime(ids.str.slice(6, 14), format="%Y%m%d")
    active = m["leave_date"].isna()
    age = (AS_OF - birth[active]).dt.days / 365.25
    assert age.min() >= 18 and age.max() <= 60.5
    # premiums about 60 yuan, loans about 180,000 yuan on average
    assert 55 < e["premium_yuan"].mean() < 70
    assert 150_000 < t["loans"]["amount_yuan"].mean() < 210_000


@pytest.mark.system  # the full district
def test_targets_cover_most_kpis_with_both_comparators(drop1):
    raw = drop1[0]
    targets = read_source(raw, "targets")
    assert set(targets["kpi_code"]) <= KPI_CODES
    assert set(targets["year"].astype(int)) == {2019, 2020}
    assert set(targets["comparator"]) == {">=", "<="}
    assert not targets.duplicated(["kpi_code", "year"]).any()
    assert targets["kpi_code"].nunique() >= 12
    rate = targets[(targets["kpi_code"] == "membership_rate") & (targets["year"] == "2020")]
    assert float(rate["target_value"].iloc[0]) == 0.95


# -------------------------------------------------------------------- the city drop

CITY_DISTRICTS = ["330211", "330203", "330205", "330206"]  # Zhenhai, then by code
# what the bad rows of kind not_allowed:street put there
BAD_STREETS = {"北仑区", "宁波市", "镇海新城", "江北区"}


def _listed(marker: Path) -> set[str]:
    lines = marker.read_text(encoding="utf-8").splitlines()
    return {line for line in lines if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A small city drop of four districts, and Zhenhai's drop alone (same scale, seed)."""
    root = tmp_path_factory.mktemp("city")
    summary = generate_city(root / "raw", districts=4, scale=0.02, seed=7)
    generate(root / "zhenhai", scale=0.02, seed=7)
    return root / "raw", root / "zhenhai", summary


def test_city_drop_has_a_folder_per_district_and_zhenhai_unchanged(city):
    raw, zhenhai, summary = city
    assert [d["code"] for d in summary["districts"]] == CITY_DISTRICTS
    assert sorted(p.name for p in raw.iterdir() if p.is_dir()) == sorted(
        [*CITY_DISTRICTS, "targets"]
    )
    # Zhenhai's folder is byte for byte its drop alone (published/ at scale 1 only)
    assert _digest(raw / "330211") == _digest(zhenhai)
    # the root marker lists the city's targets, each district's marker its own files
    assert _listed(raw / ".union-demo-drop") == {
        f"targets/{p.name}" for p in (raw / "targets").iterdir()
    }
    for code in CITY_DISTRICTS:
        folder = raw / code
        files = {
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        assert _listed(folder / ".union-demo-drop") == files
        assert not (folder / "published").exists()  # Zhenhai's report is its own


def test_city_districts_have_their_own_streets_sizes_and_exports(city):
    raw, _, summary = city
    districts = load_districts()
    for d in summary["districts"][1:]:
        ref, profile = districts[d["code"]], PROFILES[d["code"]]
        assert d["name"] == ref.name
        unions = read_source(raw / d["code"], "unions")
        streets = set(unions["street"].dropna())
        assert streets - set(ref.street_names) <= BAD_STREETS
        assert len(streets & set(ref.street_names)) >= 3
        assert unions["union_id"].str.startswith(profile.prefix).all()
        names = unions["union_name"].dropna()
        assert not names.str.contains("镇海区").any()
        own = "|".join([ref.name[:-1], *ref.street_names[:-1]])  # 江北, its streets
        assert names.str.contains(own).mean() > 0.2
    # sizes follow the profiles
    members = {d["code"]: d["rows"]["members"] for d in summary["districts"]}
    by_size = sorted(CITY_DISTRICTS, key=lambda c: PROFILES[c].size)
    assert [members[c] for c in by_size] == sorted(members.values())
    assert len(set(members.values())) == len(members)
    # export habits: Haishu's member export in xlsx, Jiangbei's GBK CSV with a title line,
    # Beilun's union roster a GBK CSV
    assert all(p.suffix == ".xlsx" for p in (raw / "330203" / "members").iterdir())
    for p in (raw / "330205" / "members").glob("*.csv"):
        assert csv_encoding(p) == "gb18030"
        assert p.read_bytes().decode("gb18030").startswith("江北区总工会")
    roster = next((raw / "330206" / "unions").iterdir())
    assert roster.suffix == ".csv" and csv_encoding(roster) == "gb18030"


def test_some_persons_are_members_in_two_districts(city):
    raw, _, summary = city
    frames = {c: read_source(raw / c, "members") for c in CITY_DISTRICTS}
    ids = {c: set(f["id_number"].dropna()) for c, f in frames.items()}
    zhenhai = frames["330211"].dropna(subset=["id_number"])
    zhenhai_name = dict(zip(zhenhai["id_number"], zhenhai["name"], strict=True))
    for d in summary["districts"][1:]:
        code = d["code"]
        both = ids[code] & ids["330211"]
        assert len(both) == d["shared_persons"]
        assert 0 < len(both) <= 0.02 * len(ids[code])
        # the same person: same name in both districts
        f = frames[code][frames[code]["id_number"].isin(both)]
        assert (f["name"] == f["id_number"].map(zhenhai_name)).all()
    # other districts meet only in Zhenhai's members (no ID number by chance twice)
    for i, a in enumerate(CITY_DISTRICTS[1:]):
        for b in CITY_DISTRICTS[i + 2 :]:
            assert ids[a] & ids[b] <= ids["330211"]


def test_city_targets_sum_the_districts_count_targets(city):
    raw, _, summary = city

    def targets(folder: Path) -> pd.Series:
        t = read_source(folder, "targets")
        return t.set_index(["kpi_code", "year"])["target_value"].astype(float)

    total = targets(raw)
    parts = [targets(raw / c) for c in CITY_DISTRICTS]
    assert list(total.index) == list(parts[0].index)
    for key in total.index:
        if key[0] in RATIO_KPIS:  # the city holds every district to Zhenhai's rate
            assert total[key] == parts[0][key]
        else:
            assert total[key] == pytest.approx(sum(p[key] for p in parts)), key
    assert len({p[("members_new", "2019")] for p in parts}) == len(parts)  # sized per district


def test_ratio_kpis_are_the_catalogues_ratios():
    import yaml

    doc = yaml.safe_load((ASSETS_DIR / "kpis.yaml").read_text(encoding="utf-8"))
    ratios = {k["code"] for k in doc["kpis"] if k["kind"] == "ratio"}
    assert ratios & {t[0] for t in TARGETS} == RATIO_KPIS


def test_zhenhai_streets_are_its_reference_file():
    from union_demo._population import STREETS as GENERATED

    assert load_districts()["330211"].street_names == GENERATED
    assert set(GENERATED) == STREETS


def test_another_district_alone_is_consistent_under_the_contract(tmp_path):
    """Jiangbei (title lines, GBK, more bad rows): the rules find exactly the planted bad
    rows and the truth's KPIs come out of its files."""
    summary = generate(tmp_path, scale=0.03, seed=5, district="330205")
    assert summary["district"]["name"] == "江北区"
    assert not (tmp_path / "published").exists()
    tables, counts = load_drop(tmp_path, set(load_districts()["330205"].street_names))
    for source, c in counts.items():
        kinds = summary["bad_rows"][source]
        planted = sum(v for k, v in kinds.items() if k != "identical_repeat")
        assert c["quarantined"] == planted, (source, c, kinds)
        assert c["collapsed"] == kinds.get("identical_repeat", 0), (source, c)
    for year in (2019, 2020):
        computed = kpis_for(tables, year)
        for code, value in computed.items():
            assert value == pytest.approx(summary["kpis"][code][str(year)]), (code, year)


def test_cli_writes_a_city_drop(tmp_path, capsys):
    assert demo_main(["--out", str(tmp_path / "a"), "--districts", "2", "--scale", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "330211 镇海区" in out and "330203 海曙区" in out and "total rows" in out
    generate_city(tmp_path / "b", districts=2, scale=0.01)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # deterministic
    # a smaller city written over a larger one leaves no stale district folder
    generate_city(tmp_path / "b", districts=1, scale=0.01)
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.is_dir()) == [
        "330211",
        "targets",
    ]
    with pytest.raises(SystemExit):
        demo_main(["--out", str(tmp_path / "c"), "--districts", "11"])
