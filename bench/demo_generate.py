"""Time the demo drop generator at a scale: wall time, peak RSS, rows and bytes written.

    .venv/bin/python bench/demo_generate.py --scale 40            # writes to a temp dir
    .venv/bin/python bench/demo_generate.py --scale 1 --out /tmp/demo1 --keep

The output folder is deleted afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # union_demo: a tool beside
from union_demo import generate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=20191231)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="demo-bench-")) / "raw"
    started = time.perf_counter()
    summary = generate(out, scale=args.scale, seed=args.seed)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "scale": args.scale,
                "wall_seconds": round(wall, 1),
                "peak_rss_mb": round(peak_mb),
                "rows_written": sum(summary["rows"].values()),
                "rows_by_source": summary["rows"],
                "bytes_written": size,
                "files": len(summary["files"]),
                "phases_seconds": summary["phases"],
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    if not args.keep:
        shutil.rmtree(out if args.out else out.parent)


if __name__ == "__main__":
    main()
