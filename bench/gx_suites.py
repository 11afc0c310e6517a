"""Time the Great Expectations suites (assets/expectations) on a warehouse.

    .venv/bin/python bench/gx_suites.py [--warehouse PATH] [--scale 1] [--repeat 3]

Without --warehouse, generates the demo district at --scale (union_demo) and
refreshes it in process (every asset but the reports) into a temporary folder, twice,
printing the gx check steps' durations inside each refresh (in the second nothing changed:
every result is reused, Great Expectations is not even imported). Then, on the warehouse, times each
table's suites: DuckDB computing the frames, GX validating them and writing Data Docs
(best of --repeat; wall and CPU time, as a busy machine inflates the former), the largest
frame GX saw, the import of great_expectations (in a
fresh interpreter) and the peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from union_pipeline.assetkit.outputs import REUSED  # noqa: E402
from union_pipeline.quality import load_suites  # noqa: E402
from union_pipeline.quality.validate import compute_frames, validate  # noqa: E402


def build_warehouse(scale: float, workdir: Path) -> Path:
    """Demo drop at `scale`, refreshed in process; prints the gx steps of that refresh."""
    import dagster as dg

    from union_demo import generate

    raw, warehouse = workdir / "raw", workdir / "warehouse" / "union.duckdb"
    start = time.perf_counter()
    generate(raw, scale=scale, seed=20191231)
    print(f"demo drop, scale {scale}: {time.perf_counter() - start:.1f} s")
    os.environ.update(
        UNION_RAW_DIR=str(raw),
        UNION_WAREHOUSE=str(warehouse),
        UNION_EXPORT_DIR=str(workdir / "exports"),
    )
    from union_pipeline.definitions import defs
    from union_pipeline.defs.automation.jobs import add_districts
    from union_pipeline.districts import district_codes

    job = dg.define_asset_job(
        "bench", selection=dg.AssetSelection.all() - dg.AssetSelection.key_prefixes(["reports"])
    )
    merged = dg.Definitions.merge(defs(), dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        (district,) = district_codes(raw)[:1]
        add_districts(instance, [district])
        # the first refresh validates everything; the second (nothing changed) reuses it
        for label in ("refresh without reports", "the same refresh again, nothing changed"):
            start = time.perf_counter()
            result = merged.resolve_job_def("bench").execute_in_process(
                instance=instance, partition_key=district, raise_on_error=False
            )
            took = time.perf_counter() - start
            steps = {}
            for event in result.all_events:
                if event.is_step_success and event.step_key.startswith("gx_"):
                    steps[event.step_key] = event.event_specific_data.duration_ms / 1000
            checks = [
                e for e in result.get_asset_check_evaluations() if e.check_name.startswith("gx_")
            ]
            reused = sum(bool(getattr(e.metadata.get(REUSED), "value", False)) for e in checks)
            print(f"{label}: {took:.1f} s, success={result.success}")
            print(
                f"  gx check steps inside it: {sum(steps.values()):.2f} s, "
                f"{reused} of {len(checks)} results reused "
                "(the first step that validates includes importing great_expectations)"
            )
            for step, seconds in steps.items():
                print(f"    {step:<40} {seconds:6.2f} s")
            failed = [
                f"{e.asset_key.to_user_string()}:{e.check_name}" for e in checks if not e.passed
            ]
            print(f"  checks not passed: {failed or 'none'}")
    return warehouse


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import great_expectations; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    with tempfile.TemporaryDirectory(prefix="gx_bench_") as tmp:
        work = Path(tmp)
        warehouse = args.warehouse or build_warehouse(args.scale, work)
        print(f"\nimport great_expectations (fresh interpreter): {import_seconds():.2f} s")
        import great_expectations  # noqa: F401  (outside the timings below)

        print(f"suites on {warehouse}, best of {args.repeat}:")
        print(
            f"  {'table':<32}{'checks':>7}{'rows':>12}{'frame':>8}{'DuckDB s':>10}"
            f"{'GX+docs s':>11}{'GX cpu s':>10}"
        )
        totals = [0.0, 0.0, 0.0]
        con = duckdb.connect(str(warehouse), read_only=True)
        for suite in load_suites():
            best_frames = best_gx = best_cpu = float("inf")
            for i in range(args.repeat):
                start = time.perf_counter()
                frames = compute_frames(con, suite, previous_rows=None)
                best_frames = min(best_frames, time.perf_counter() - start)
                start, cpu = time.perf_counter(), time.process_time()
                outcomes = validate(
                    suite, frames, docs_dir=work / "data_docs", run_name=f"bench{i}"
                )
                best_gx = min(best_gx, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - cpu)
            rows = con.execute(f"SELECT count(*) FROM {suite.table}").fetchall()[0][0]
            largest = max(len(f.df) for f, _ in frames.values())
            failed = [o.check.name for o in outcomes if not o.passed]
            totals[0] += best_frames
            totals[1] += best_gx
            totals[2] += best_cpu
            print(
                f"  {suite.table:<32}{len(suite.checks):>7}{rows:>12,}{largest:>8,}"
                f"{best_frames:>10.3f}{best_gx:>11.3f}{best_cpu:>10.3f}"
                + (f"   not passed: {failed}" if failed else "")
            )
        con.close()
        print(
            f"  {'total':<32}{sum(len(s.checks) for s in load_suites()):>7}{'':>20}"
            f"{totals[0]:>10.3f}{totals[1]:>11.3f}{totals[2]:>10.3f}"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
