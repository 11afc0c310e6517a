"""`python -m union_demo --out DIR [--districts N] --scale S --seed S [--verbose]`: write a
demo raw drop (one district's, or with --districts a city's)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from union_demo._districts import city_order
from union_demo.generator import DEFAULT_SEED, generate, generate_city


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m union_demo",
        description="Write the demo district's raw drop (2017-01-01 .. 2020-09-30) in the "
        "folders of the data contract. At scale 1 it reproduces the published "
        "2019 figures; the source folders in --out are replaced. With --districts N, a "
        "city drop instead: --out/<district code>/<source>/... for N districts (Zhenhai "
        "first, as without --districts) and the city's targets in --out/targets/.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the raw drop folder to write")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="population multiplier (1 = the real district, ~236k members)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    n_max = len(city_order())
    parser.add_argument(
        "--districts",
        type=int,
        help=f"write a city drop of this many districts (1..{n_max}); the district folders "
        "in --out are replaced",
    )
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")
    parser.add_argument(
        "--verbose", action="store_true", help="list every file written and its bad rows"
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.districts is not None:
        if not 1 <= args.districts <= n_max:
            parser.error(f"--districts must be 1..{n_max}")
        return _city(args)
    summary = generate(args.out, scale=args.scale, seed=args.seed)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    files = summary["files"]
    print(
        f"wrote {summary['out_dir']} (scale {summary['scale']}, seed {summary['seed']}, "
        f"as of {summary['as_of']}) in {summary['seconds']} s: {len(files)} files, "
        f"{sum(summary['rows'].values()):,} rows ({sum(f['bad_rows'] for f in files)} bad, "
        f"{sum(f['repeated_rows'] for f in files)} repeated)"
    )
    if not args.verbose:  # one line: ./dev refresh prints it before the refresh's own
        return 0
    for f in files:
        print(
            f"  {f['file']:<58} {f['format']:<16} {f['rows']:>10,} rows "
            f"({f['bad_rows']} bad, {f['repeated_rows']} repeated)"
        )
    print(f"  total rows: {sum(summary['rows'].values()):,}")
    for source, kinds in summary["bad_rows"].items():
        listed = ", ".join(f"{k}={v}" for k, v in kinds.items())
        print(f"  bad rows in {source}: {listed}")
    return 0


def _city(args) -> int:
    summary = generate_city(args.out, districts=args.districts, scale=args.scale, seed=args.seed)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(
        f"wrote {summary['out_dir']}: {summary['city']}, {len(summary['districts'])} districts "
        f"(scale {summary['scale']}, seed {summary['seed']}, as of {summary['as_of']}) "
        f"in {summary['seconds']} s"
    )
    for d in summary["districts"]:
        formats = sorted({f["format"] for f in d["files"]})
        print(
            f"  {d['code']} {d['name']}: {d['total_rows']:>10,} rows, "
            f"{d['rows']['members']:,} in members/, {d['shared_persons']} persons shared "
            f"with Zhenhai, {d['seconds']} s ({', '.join(formats)})"
        )
    print(f"  {summary['targets']}: the city's targets")
    print(f"  total rows: {summary['total_rows']:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
