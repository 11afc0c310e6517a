"""`python -m union_pipeline.demo --out DIR --scale N --seed S`: write a demo raw drop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from union_pipeline.demo.generator import DEFAULT_SEED, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m union_pipeline.demo",
        description="Write the demo district's raw drop (2017-01-01 .. 2020-09-30) in the "
        "folders of the data contract. At scale 1 it reproduces the published "
        "2019 figures; the source folders in --out are replaced.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the raw drop folder to write")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="population multiplier (1 = the real district, ~236k members)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    summary = generate(args.out, scale=args.scale, seed=args.seed)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(
        f"wrote {summary['out_dir']} (scale {summary['scale']}, seed {summary['seed']}, "
        f"as of {summary['as_of']}) in {summary['seconds']} s"
    )
    for f in summary["files"]:
        print(
            f"  {f['file']:<58} {f['format']:<16} {f['rows']:>10,} rows "
            f"({f['bad_rows']} bad, {f['repeated_rows']} repeated)"
        )
    print(f"  total rows: {sum(summary['rows'].values()):,}")
    for source, kinds in summary["bad_rows"].items():
        listed = ", ".join(f"{k}={v}" for k, v in kinds.items())
        print(f"  bad rows in {source}: {listed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
