"""Time the leadership exports: figures, a PNG per chart (and its SVG, the briefing's page),
dashboard, briefing (one print of every page), and the problem-data lists.

    .venv/bin/python bench/export_charts.py                      # demo scale 1, built here
    .venv/bin/python bench/export_charts.py --warehouse /tmp/x/warehouse/union.duckdb
    .venv/bin/python bench/export_charts.py --scale 40 --workdir /tmp/bench40 --repeat 3

Without --warehouse it generates the demo drop and refreshes everything but the reports
(the headless CLI, as ./dev refresh does), then times the exports in this process, the way
the report assets run them: one browser for all charts. The first round includes starting
Chromium; later rounds reuse it. The problem lists are timed twice: all written, then
again with nothing changed (every file kept).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from union_pipeline.reports import (  # noqa: E402
    build_charts,
    export_paths,
    export_static,
    load_theme,
    read_report_data,
    static_export_problem,
    write_briefing,
    write_dashboard,
)
from union_pipeline.reports.problems import write_problem_lists  # noqa: E402
from union_pipeline.reports.render import start_browser, stop_server  # noqa: E402


def build_warehouse(work: Path, scale: float, seed: int) -> Path:
    raw, warehouse = work / "raw", work / "warehouse" / "union.duckdb"
    if not raw.exists():
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "union_demo",
                "--out",
                str(raw),
                "--scale",
                str(scale),
                "--seed",
                str(seed),
            ],
            check=True,
            cwd=ROOT,
        )
        print(f"demo drop, scale {scale}: {time.perf_counter() - started:.1f} s")
    if not warehouse.exists():
        env = {
            **os.environ,
            "UNION_RAW_DIR": str(raw),
            "UNION_WAREHOUSE": str(warehouse),
            "UNION_EXPORT_DIR": str(work / "exports"),
            "DAGSTER_HOME": str(work / "home"),
        }
        Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run(
            [
                Path(sys.executable).parent / "dagster",
                "asset",
                "materialize",
                "-m",
                "union_pipeline.definitions",
                "--select",
                "not group:reports",
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        print(f"refresh without the reports: {time.perf_counter() - started:.1f} s")
    return warehouse


def _warehouse_file(warehouse: Path) -> Path:
    """The file holding the district's tables: the city's roll-up file holds none."""
    districts = sorted((warehouse.parent / "districts").glob("*.duckdb"))
    return districts[0] if districts else warehouse


def one_round(warehouse: Path, out: Path, lang: str) -> dict[str, float]:
    seconds = {}
    theme = load_theme(lang=lang)
    started = time.perf_counter()
    start_browser()  # as the chart step: Chromium starts while the figures are built
    with duckdb.connect(str(_warehouse_file(warehouse)), read_only=True) as con:
        data = read_report_data(con)
        quarantine = con.execute("SELECT * FROM staging.quarantine").df()
        unions = con.execute("SELECT union_id, union_name, street FROM staging.unions").df()
    seconds["read marts"] = time.perf_counter() - started
    started = time.perf_counter()
    charts = build_charts(data, theme)
    seconds["build figures"] = time.perf_counter() - started
    paths = export_paths(out, data.as_of)
    pages = out / "pages"
    svgs = {c.slug: pages / f"{c.slug}.svg" for c in charts}
    started = time.perf_counter()
    static = export_static(charts, paths, theme, svgs=svgs, previews=[charts[0].slug])
    seconds[f"PNG+SVG ({len(static.files)} PNG)"] = time.perf_counter() - started
    started = time.perf_counter()
    write_dashboard(charts, paths.dashboard, data, theme, paths.briefing.name)
    seconds["dashboard HTML"] = time.perf_counter() - started
    started = time.perf_counter()
    briefing = write_briefing(charts, svgs, paths.briefing, data, theme)
    seconds[f"briefing ({briefing.pages} pages)"] = time.perf_counter() - started
    shutil.rmtree(pages, ignore_errors=True)
    started = time.perf_counter()
    lists = write_problem_lists(quarantine, unions, paths.root, data.as_of, lang)
    seconds[f"problem lists ({lists['written']} files)"] = time.perf_counter() - started
    seconds["total"] = sum(seconds.values())
    started = time.perf_counter()
    write_problem_lists(quarantine, unions, paths.root, data.as_of, lang, previous=lists["digests"])
    seconds["problem lists unchanged"] = time.perf_counter() - started
    seconds["charts"] = len(charts)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", type=Path, help="a refreshed warehouse to read")
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--seed", type=int, default=20191231)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lang", default="zh")
    args = parser.parse_args()
    problem = static_export_problem()
    if problem:
        sys.exit(problem)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="union-export-bench-"))
    warehouse = args.warehouse or build_warehouse(work, args.scale, args.seed)
    rounds = [one_round(warehouse, work / f"exports-{i}", args.lang) for i in range(args.repeat)]
    stop_server()
    print(
        f"warehouse {_warehouse_file(warehouse)} "
        f"({_warehouse_file(warehouse).stat().st_size / 1e6:.0f} MB), "
        f"{int(rounds[0]['charts'])} charts, lang {args.lang}, {os.cpu_count()} cores"
    )
    print(f"{'step':32} {'first (browser start)':>22} {'median of later':>16}")
    for step in rounds[0]:
        if step == "charts":
            continue
        later = [r[step] for r in rounds[1:]]
        median = f"{statistics.median(later):.2f} s" if later else "-"
        print(f"{step:32} {rounds[0][step]:20.2f} s {median:>16}")
    print(f"exports in {work}")


if __name__ == "__main__":
    main()
