"""Benchmark: generate a demo drop at a scale, run the headless full refresh, print the cost
of each step, the wall time and the peak memory.

    .venv/bin/python bench/refresh.py --scale 1
    .venv/bin/python bench/refresh.py --scale 40 --workdir /tmp/bench40 --keep
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(
    r'Finished execution of step "([^"]+)" in (?:([0-9.]+)ms|(?:(\d+)m)?\s*(?:([0-9.]+)s)?)'
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--seed", type=int, default=20191231)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated drop")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="union-bench-"))
    raw = work / "raw"
    bin_dir = Path(sys.executable).parent
    if not raw.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "union_pipeline.demo", "--out", str(raw),
                        "--scale", str(args.scale), "--seed", str(args.seed)], check=True)
        print(f"generate --scale {args.scale}: {time.perf_counter() - started:.1f} s")
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    print(f"raw drop: {size / 1e6:.0f} MB")
    env = {**os.environ, "UNION_RAW_DIR": str(raw),
           "UNION_WAREHOUSE": str(work / "warehouse" / "union.duckdb"),
           "UNION_EXPORT_DIR": str(work / "exports"), "DAGSTER_HOME": str(work / "home")}
    Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
    started = time.perf_counter()
    run = subprocess.run(
        [bin_dir / "dagster", "asset", "materialize", "-m", "union_pipeline.definitions",
         "--select", "*"], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    steps = []
    for name, millis, minutes, secs in STEP.findall(run.stderr + run.stdout):
        seconds = float(millis or 0) / 1000 + 60 * int(minutes or 0) + float(secs or 0)
        steps.append((seconds, name))
    for seconds, name in sorted(steps, reverse=True):
        print(f"  {seconds:7.2f} s  {name}")
    print(f"refresh: {'ok' if run.returncode == 0 else 'FAILED'}, wall {wall:.1f} s, "
          f"peak RSS {peak:.0f} MB, warehouse "
          f"{(work / 'warehouse' / 'union.duckdb').stat().st_size / 1e6:.0f} MB"
          if run.returncode == 0 else run.stderr[-3000:])
    if not args.keep and not args.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
