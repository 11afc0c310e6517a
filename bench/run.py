"""Benchmark the refresh against the floor, per scale, in one run (figures, not a test).

    .venv/bin/python bench/run.py --scale 1 10 40
    .venv/bin/python bench/run.py --scale 1 --workdir /tmp/union-bench

Per scale: the demo drop is generated once and kept under --workdir (not timed). Then:
- floor: a plain load of the same raw files into DuckDB tables of text (DuckDB read_csv for
  UTF-8, pyarrow for GB18030, fastexcel for xlsx), nothing else;
- full refresh as the nightly job runs it (`python -m union_pipeline.refresh`: the district's
  run of `refresh_all`, on a fresh instance and warehouse): wall time, time per step, peak
  RSS of the whole process tree (the run and its browser, sampled), rows per second
  through staging;
- a second refresh with nothing changed (it finds that its results stand: no run);
- a refresh after one new members file (an update export of existing members).
Ratios are to the floor of the same run: the machines are shared and seconds drift.
Figures are printed and written as JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STEP = re.compile(
    r'Finished execution of step "([^"]+)" in (?:([0-9.]+)ms|(?:(\d+)m)?\s*(?:([0-9.]+)s)?)'
)
BENCH_KEY = "bench-only-key-not-for-production"


# the steps of a refresh, by layer (a district's layer is one step; the city's assets each
# have theirs)
LAYERS = {
    "staging": ("staging", "staging__city_targets"),
    "marts": ("marts", "marts__kpi_catalogue", "marts__city_kpi_yearly"),
    "checks": (
        "staging_checks",
        "mart_checks",
        "marts__city_kpi_yearly_city_total_is_sum_of_districts",
    ),
    "reports": ("reports", "city_reports"),
    "publish": ("warehouse__district_duckdb", "warehouse__union_duckdb"),
}
# what the staging step logs of each source it loads
STAGED = re.compile(r"(\w+): staged in ([0-9.]+) s")

FLOOR = r"""
import sys, time, duckdb, fastexcel, pyarrow.csv as pacsv
from pathlib import Path
raw, db = Path(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
rows = 0
with duckdb.connect(db) as con:
    for i, path in enumerate(sorted(p for p in raw.rglob("*") if p.is_file()
                                    and p.suffix.lower() in (".csv", ".xlsx", ".xls"))):
        table = f"t{i}"
        if path.suffix.lower() != ".csv":
            arrow = fastexcel.read_excel(str(path)).load_sheet(0, dtypes="string").to_arrow()
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow")
        else:
            try:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', "
                            "all_varchar=true, header=true)")
            except duckdb.Error:  # not UTF-8: GBK/GB18030
                arrow = pacsv.read_csv(path, read_options=pacsv.ReadOptions(
                    encoding="gb18030"), convert_options=pacsv.ConvertOptions(
                    column_types={}, strings_can_be_null=False, auto_dict_encode=False))
                arrow = arrow.cast(__import__("pyarrow").schema(
                    [(n, __import__("pyarrow").string()) for n in arrow.column_names]))
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow")
        rows += con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    con.execute("CHECKPOINT")
print(rows, time.perf_counter() - started)
"""


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants (from /proc), in kB."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(x.split()[1]) for x in f if x.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def _peak_of(command: list, env: dict) -> tuple[float, int, str, int]:
    """(wall seconds, return code, output, peak RSS MB of the whole process tree), the
    tree sampled every 0.2 s (shared pages are counted in each process)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [str(c) for c in command], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        peak = 0
        while process.poll() is None:
            peak = max(peak, _tree_rss_kb(process.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    return wall, process.returncode, output, peak // 1024


def _steps(output: str) -> dict[str, float]:
    steps = {}
    for name, millis, minutes, secs in STEP.findall(output):
        steps[name] = float(millis or 0) / 1000 + 60 * int(minutes or 0) + float(secs or 0)
    return steps


def _refresh(label: str, work: Path, env: dict, *options: str) -> dict:
    # --verbose: Dagster's step events on the terminal, where the step times are read
    refresh = [sys.executable, "-m", "union_pipeline.refresh", "--verbose", *options]
    wall, code, output, peak = _peak_of(refresh, env)
    steps = _steps(output)
    reused = output.count("stands") + output.count("already holds")
    layer = {name: round(sum(steps.get(k, 0) for k in keys), 2) for name, keys in LAYERS.items()}
    result = {
        "label": label,
        "ok": code == 0,
        "wall_s": round(wall, 2),
        "peak_rss_mb": peak,
        "steps_s": {k: round(v, 3) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
        "staging_s": layer["staging"],
        "sources_s": {name: float(secs) for name, secs in STAGED.findall(output)},
        "marts_s": layer["marts"],
        "checks_s": layer["checks"],
        "reports_s": layer["reports"],
        "publish_s": layer["publish"],
        "steps": len(steps),
        "run_launched": bool(steps),
        "reused_steps": reused,
    }
    if code != 0:
        result["error"] = output[-3000:]
    return result


def _generate(raw: Path, scale: float) -> None:
    if (raw / ".union-demo-drop").exists():
        return
    shutil.rmtree(raw, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "union_demo", "--out", str(raw), "--scale", str(scale)],
        check=True,
        cwd=ROOT,
    )


def _update_file(raw: Path) -> Path:
    return raw / "members" / "zz-bench-update.csv"


def _new_members_file(raw: Path) -> Path:
    """An update export: the first rows of an existing members file, as a later file."""
    source = sorted((raw / "members").glob("*.csv"))[0]
    with open(source, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    target = _update_file(raw)
    target.write_bytes(b"".join(lines[: 1 + min(5000, len(lines) - 1)]))
    return target


def bench_scale(scale: float, workdir: Path) -> dict:
    work = workdir / f"scale-{scale:g}"
    raw = work / "raw"
    _generate(raw, scale)
    # the update file of a benchmark that was stopped: the refresh would take it as part
    # of the drop, and the same file written again later as no change (its content)
    _update_file(raw).unlink(missing_ok=True)
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    for leftover in ("warehouse", "home", "exports", "floor.duckdb"):
        path = work / leftover
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
    env = {
        **os.environ,
        "UNION_RAW_DIR": str(raw),
        "UNION_PII_KEY": BENCH_KEY,
        "UNION_WAREHOUSE": str(work / "warehouse" / "union.duckdb"),
        "UNION_EXPORT_DIR": str(work / "exports"),
        "DAGSTER_HOME": str(work / "home"),
        "VIRTUAL_ENV": str(BIN.parent),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    (work / "home").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", work / "home" / "dagster.yaml")

    wall, code, output, peak = _peak_of(
        [sys.executable, "-c", FLOOR, str(raw), str(work / "floor.duckdb")], env
    )
    if code != 0:
        raise SystemExit(output)
    rows, floor_s = re.search(r"^(\d+) ([0-9.]+)$", output, re.M).groups()
    floor = {
        "rows": int(rows),
        "load_s": round(float(floor_s), 2),
        "wall_s": round(wall, 2),
        "peak_rss_mb": peak,
    }
    full = _refresh("full refresh", work, env)
    unchanged = _refresh("nothing changed", work, env)
    # runs launched although nothing changed: every step finds its inputs unchanged
    forced = _refresh("--force, nothing changed", work, env, "--force")
    added = _new_members_file(raw)
    try:
        new_members = _refresh("one new members file", work, env)
    finally:
        added.unlink()
    members_staging = full["sources_s"].get("members", 0)
    # the members' chain: what depends on a members file (its staging, the others'
    # references, marts, checks, publish, reports), i.e. the full refresh less the staging
    # of the sources it does not change
    members_chain = full["wall_s"] - sum(
        s for name, s in full["sources_s"].items() if name != "members"
    )
    return {
        "scale": scale,
        "raw_mb": round(size / 1e6),
        "floor": floor,
        "runs": [full, unchanged, forced, new_members],
        "ratios": {
            "staging_to_floor": round(full["staging_s"] / floor["load_s"], 2),
            "full_refresh_to_floor": round(full["wall_s"] / floor["wall_s"], 2),
            "unchanged_to_full": round(unchanged["wall_s"] / full["wall_s"], 3),
            "forced_to_floor": round(forced["wall_s"] / floor["wall_s"], 2),
            "members_staging_share": round(members_staging / full["wall_s"], 3),
            "members_chain_share": round(members_chain / full["wall_s"], 3),
            "new_members_to_full": round(new_members["wall_s"] / full["wall_s"], 3),
            "new_members_to_chain": round(new_members["wall_s"] / members_chain, 3)
            if members_chain > 0
            else None,
            "checks_share": round(full["checks_s"] / full["wall_s"], 3),
        },
        "rows_per_s_staging": round(floor["rows"] / full["staging_s"])
        if full["staging_s"]
        else None,
        "members_chain_s": round(members_chain, 2),
        "members_staging_s": round(members_staging, 2),
    }


def _print(result: dict) -> None:
    floor = result["floor"]
    print(f"\n== scale {result['scale']:g}: {floor['rows']:,} rows, {result['raw_mb']} MB raw")
    print(
        f"floor (bare load into DuckDB): {floor['load_s']} s load, {floor['wall_s']} s "
        f"with start-up, peak {floor['peak_rss_mb']} MB"
    )
    for run in result["runs"]:
        print(
            f"{run['label']:>22}: {'ok' if run['ok'] else 'FAILED'} wall {run['wall_s']} s, "
            f"peak {run['peak_rss_mb']} MB; staging {run['staging_s']} s, checks "
            f"{run['checks_s']} s, publish {run['publish_s']} s, reports {run['reports_s']} s; "
            + (
                f"{run['steps']} steps, {run['reused_steps']} results reused"
                if run["run_launched"]
                else "no run: nothing changed, the results stand"
            )
        )
        for name, seconds in list(run["steps_s"].items())[:8]:
            print(f"{'':>24}{seconds:8.2f} s  {name}")
        for name, seconds in sorted(run["sources_s"].items(), key=lambda kv: -kv[1]):
            print(f"{'':>24}{seconds:8.2f} s  staging: {name}")
    for name, value in result["ratios"].items():
        print(f"  {name}: {value}")
    print(f"  rows/s through staging: {result['rows_per_s_staging']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/union-bench"))
    args = parser.parse_args()
    results = []
    for scale in args.scale:
        result = bench_scale(scale, args.workdir)
        _print(result)
        results.append(result)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = out / f"run-{stamp}.json"
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\nwritten: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
