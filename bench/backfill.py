"""A backfill of every district of a demo city through Dagster's run queue, under the
daemon, with deploy/dagster.yaml: prints the wall time from submission to the last run's
end, the most runs seen at once, and the peak memory of the daemon's process tree.

    .venv/bin/python bench/backfill.py --districts 10 --scale 0.2 [--work /tmp/union-backfill]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ppid = int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(int(entry.name))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--districts", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/union-backfill"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from union_demo import generate_city
    from union_pipeline.districts import district_codes

    shutil.rmtree(args.work, ignore_errors=True)
    raw, home = args.work / "raw", args.work / "home"
    generate_city(raw, districts=args.districts, scale=args.scale)
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    codes = district_codes(raw)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "UNION_RAW_DIR": str(raw),
        "UNION_WAREHOUSE": str(args.work / "warehouse" / "union.duckdb"),
        "UNION_EXPORT_DIR": str(args.work / "exports"),
        "UNION_AUTOMATION": "off",
    }
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.add_dynamic_partitions("district", codes)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-m", "union_pipeline.definitions"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    peak, most, started = 0, 0, time.monotonic()
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dagster",
                "job",
                "backfill",
                "-m",
                "union_pipeline.definitions",
                "-j",
                "district_refresh",
                "--partitions",
                ",".join(codes),
                "--noprompt",
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            while True:
                runs = instance.get_runs(dg.RunsFilter(job_name="district_refresh"))
                peak = max(peak, tree_rss_kb(daemon.pid))
                most = max(most, sum(r.status == dg.DagsterRunStatus.STARTED for r in runs))
                if len(runs) == len(codes) and all(r.is_finished for r in runs):
                    break
                time.sleep(0.5)
            wall = time.monotonic() - started
            statuses = sorted({r.status.value for r in runs})
    finally:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    print(
        f"backfill of {len(codes)} districts (scale {args.scale}): {wall:.0f} s wall, "
        f"at most {most} runs at once, peak {peak / 1e6:.2f} GB (daemon tree), runs {statuses}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
