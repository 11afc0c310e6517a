"""What an analyst reads in the Dagster UI: after a real refresh of a small demo drop, the
metadata recorded in the instance names districts and rules in Chinese, previews the figures
that matter, points to the problem lists, and keeps bookkeeping (hashes, file times, file://
links, server paths) and PII out of the analyst's way; a Materialize from the UI runs a
named job."""

from __future__ import annotations

import base64
import re
import struct

import dagster as dg
import duckdb
import pytest

from tests.runs import DISTRICT
from union_pipeline.definitions import defs
from union_pipeline.districts import load_districts

CJK = re.compile(r"[\u4e00-\u9fff]")
HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
NANOSECONDS = re.compile(r"(?<!\d)1\d{18}(?!\d)")  # a file time in ns since 1970 (2001-2286)
ID_NUMBER = re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])")
PHONE = re.compile(r"(?<![\dA-Za-z])1[3-9]\d{9}(?![\dA-Za-z])")
# bookkeeping the pipeline reads back (file states, outputs, versions): not the analyst's
BOOKKEEPING = "union/"


@pytest.fixture
def refreshed(refreshed_district):
    """One full refresh of the small demo drop, with its reports, in a real instance (the
    session's shared refresh, as `python -m union_pipeline.refresh` runs it)."""
    with refreshed_district.instance() as instance:
        yield instance, refreshed_district.run_id, refreshed_district.root


def _materializations(instance, run_id) -> dict[str, dict]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = entry.asset_materialization
        out[m.asset_key.to_user_string()] = {k: _value(v) for k, v in m.metadata.items()}
    return out


def _observations(instance, run_id) -> dict[str, dict]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION):
        o = entry.asset_observation
        out[o.asset_key.to_user_string()] = {k: _value(v) for k, v in o.metadata.items()}
    return out


def _check_evaluations(instance, run_id) -> dict[str, dict]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        e = entry.dagster_event.event_specific_data
        name = f"{e.asset_key.to_user_string()}:{e.check_name}"
        out[name] = {k: _value(v) for k, v in e.metadata.items()}
    return out


def _value(entry):
    return getattr(entry, "value", entry)


def _md_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in `markdown`, by header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def _label(code: str) -> str:
    return f"{code} {load_districts()[code].name}"


def test_the_district_is_named_beside_its_code(refreshed):
    instance, run_id, _ = refreshed
    found = _materializations(instance, run_id)
    assert _label(DISTRICT) == "330211 镇海区"
    for key in [
        "staging/members",
        "staging/quarantine",
        "marts/kpi_yearly",
        "marts/kpi_by_street",
        "reports/kpi_scorecard",
    ]:
        assert found[key]["district"] == _label(DISTRICT), key
    # the partition stays the code
    assert instance.get_dynamic_partitions("district") == [DISTRICT]


def test_kpi_yearly_preview_is_the_as_of_year_as_in_the_workbook(refreshed):
    instance, run_id, root = refreshed
    preview = _materializations(instance, run_id)["marts/kpi_yearly"]["preview"]
    with duckdb.connect(str(root / "warehouse" / "union.duckdb"), read_only=True) as con:
        as_of = con.execute("SELECT as_of FROM marts.refresh_context").fetchall()[0][0]
        yearly = con.execute(
            "SELECT kpi_code, actual, target FROM marts.kpi_yearly WHERE year = ?", [as_of.year]
        ).fetchall()
    assert f"{as_of.year}年各项指标" in preview
    rows = {r["指标代码"]: r for r in _md_rows(preview)}
    assert set(rows) <= {code for code, *_ in yearly} and len(rows) >= 15
    with_target = {code for code, _, target in yearly if target is not None} & set(rows)
    assert with_target, "the as-of year has targets"
    for code in with_target:
        assert re.fullmatch(r"[≥≤] [\d,.]+%?", rows[code][f"{as_of.year}年目标"]), rows[code]
        assert rows[code]["状态"] in {
            "达成",
            "未达成",
            "进行中·预计达成",
            "进行中·预计未达成",
        }
    # year on year in percent with one decimal (percentage points for a rate)
    assert all(re.fullmatch(r"[+-]?\d[\d,]*\.\d(%|个百分点)|—", r["同比"]) for r in rows.values())
    assert rows["members_total"]["同比"].endswith("%")
    assert rows["membership_rate"]["单位"] == "%" and rows["membership_rate"]["同比"].endswith(
        "个百分点"
    )
    # money in 万元 where the workbook uses it, counts with thousands separators
    actual = next(h for h in rows["members_total"] if h.startswith(f"{as_of.year}年实际"))
    members = next(a for code, a, _ in yearly if code == "members_total")
    assert rows["members_total"][actual] == f"{members:,.0f}"
    premium = rows["mutual_aid_premium_yuan"]
    assert premium["单位"] == "万元"
    premium_yuan = next(a for code, a, _ in yearly if code == "mutual_aid_premium_yuan")
    assert premium[actual] == f"{premium_yuan / 10_000:,.2f}"


def test_quarantine_preview_shows_every_source_and_names_the_problem_list(refreshed):
    instance, run_id, root = refreshed
    meta = _materializations(instance, run_id)["staging/quarantine"]
    with duckdb.connect(str(root / "warehouse" / "union.duckdb"), read_only=True) as con:
        sources = {
            s for (s,) in con.execute("SELECT DISTINCT source FROM staging.quarantine").fetchall()
        }
        as_of = con.execute("SELECT as_of FROM marts.refresh_context").fetchall()[0][0]
    assert len(sources) > 1
    rows = _md_rows(meta["preview"].split("\n\n", 1)[1])
    assert {r["source"] for r in rows} == sources
    assert all(
        CJK.match(r["规则 rule"]) and re.search(r"\([a-z_]+\)$", r["规则 rule"]) for r in rows
    )
    for text in (meta["preview"], meta["problem_list"]):
        assert "问题数据清单" in text and "导出目录" in text and "file://" not in text
    # the list it names is where it says: <as-of>/问题数据清单-<as-of>.xlsx in the export folder
    day = as_of.isoformat()
    assert (root / "exports" / day / f"问题数据清单-{day}.xlsx").is_file()


def test_rules_are_chinese_first(refreshed):
    instance, run_id, _ = refreshed
    members = _materializations(instance, run_id)["staging/members"]
    by_rule = members["quarantined_by_rule"]
    assert by_rule and all(re.fullmatch(r"[^\x00-\x7f].* \([a-z_]+\)", k) for k in by_rule)
    assert "身份证号校验位错误或格式不对 (invalid_id_number)" in by_rule
    sample = _md_rows(members["sample_quarantined_rows (masked)"])
    assert sample and all(CJK.match(r["规则 rules"]) for r in sample)
    check = _check_evaluations(instance, run_id)["staging/members:quarantine_under_threshold"]
    assert check["quarantined_by_rule"] == by_rule
    legend = _md_rows(_materializations(instance, run_id)["staging/quarantine"]["rules"])
    assert all(CJK.match(r["规则 rule"]) for r in legend)


def _analyst_facing(found: dict[str, dict]):
    for name, metadata in found.items():
        for key, value in metadata.items():
            if not key.startswith(BOOKKEEPING):
                yield name, key, str(value)


def test_no_bookkeeping_links_or_pii_in_what_the_analyst_reads(refreshed):
    instance, run_id, root = refreshed
    found = {
        **{f"{k} (observed)": v for k, v in _observations(instance, run_id).items()},
        **_materializations(instance, run_id),
        **_check_evaluations(instance, run_id),
    }
    assert "修改时间" in found["raw/members (observed)"]["files_received"]
    for name, key, text in _analyst_facing(found):
        where = f"{name} {key}"
        assert "file://" not in text, where
        assert not HASH.search(text), where
        assert not NANOSECONDS.search(text), where
    # the steps that record files give them relative to the export folder
    mine = [n for n in found if n.split("/")[0] in ("staging", "marts") or ":gx_" in n] + [
        "reports/kpi_scorecard",
        "reports/kpi_trends",
    ]
    for name in mine:
        for key, value in found[name].items():
            if not key.startswith(BOOKKEEPING):
                assert str(root) not in str(value), f"{name} {key}: {value}"
    gx = found["staging/members:gx_keys_unique"]
    assert (root / "exports" / gx["data_docs"]).is_file()
    assert (root / "exports" / gx["validation_result"]).is_file()
    assert "导出目录" in gx["data_docs_note"]
    scorecard = found["reports/kpi_scorecard"]
    assert (root / "exports" / scorecard["png"]).is_file()
    # no ID number or phone in clear anywhere, bookkeeping included
    for name, metadata in found.items():
        for key, value in metadata.items():
            text = str(value)
            assert not ID_NUMBER.search(text), f"{name} {key}"
            assert not PHONE.search(text), f"{name} {key}"


def _png_width(markdown: str) -> int:
    data = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", markdown).group(1))
    return struct.unpack(">I", data[16:20])[0]


def test_chart_previews_are_readable(refreshed):
    from union_pipeline.reports import static_export_problem

    if static_export_problem():
        pytest.skip(static_export_problem())
    instance, run_id, _ = refreshed
    found = _materializations(instance, run_id)
    assert _png_width(found["reports/kpi_trends"]["preview"]) >= 800  # not a 337 px thumbnail
    scorecard = found["reports/kpi_scorecard"]["preview"]
    assert len(scorecard) < 120_000
    # the scorecard's figures as text under its picture: readable at any size
    rows = _md_rows(scorecard.split("\n\n", 1)[1])
    assert any(r["指标"] == "会员总数" for r in rows) and len(rows) >= 15


def _ui_job(snaps: dict, keys: list[dg.AssetKey]) -> str | None:
    """The job the UI's Materialize launches for `keys`: the first job, by name, that
    holds every one (getCommonJob in dagster-ui's LaunchAssetExecutionButton)."""
    common = [j for j in snaps[keys[0]].job_names if all(j in snaps[k].job_names for k in keys)]
    return common[0] if common else None


def test_materialize_from_the_ui_runs_a_named_job(refreshed):
    from dagster._core.remote_representation.external_data import asset_node_snaps_from_repo

    instance, _, _ = refreshed
    snaps = {s.asset_key: s for s in asset_node_snaps_from_repo(defs().get_repository_def())}
    expected = {"raw": "Sources", "staging": "Staging", "marts": "Marts"}
    expected |= {"warehouse": "Warehouse", "reports": "Reports"}
    city = {"staging/city_targets", "marts/city_kpi_yearly", "warehouse/union_duckdb"}
    for key in snaps:
        name = key.to_user_string()
        want = "City" if name in city or name.startswith("reports/city_") else None
        assert _ui_job(snaps, [key]) == (want or expected[key.path[0]]), name
    layer = [k for k in snaps if k.path[0] == "staging" and k.path[-1] != "city_targets"]
    assert _ui_job(snaps, layer) == "Staging"
    # a materialization through it is a run of that job, and the refresh jobs are there
    job = defs().resolve_job_def("Staging")
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(["staging", "members"])],
        partition_key=DISTRICT,
    )
    assert result.success
    assert instance.get_run_by_id(result.run_id).job_name == "Staging"
    for name in ("refresh_all", "district_refresh", "city_refresh"):
        assert defs().resolve_job_def(name).name == name
