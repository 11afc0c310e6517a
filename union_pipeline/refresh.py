"""`python -m union_pipeline.refresh`: the headless refresh, as the nightly schedule runs it.

Every district of the raw drop (its partitions registered first), one run each, then the
city's run; a single-district drop is one run of `refresh_all`. The runs are recorded in
the Dagster instance (DAGSTER_HOME) like any other, and each step whose inputs did not
change keeps its result. Exit status 1 when any run failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from union_pipeline.defs.automation.jobs import add_districts
from union_pipeline.districts import district_codes, is_city_drop
from union_pipeline.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m union_pipeline.refresh", description=__doc__)
    parser.add_argument(
        "--district", action="append", help="only this district (repeatable); then the city"
    )
    args = parser.parse_args(argv)
    from union_pipeline.definitions import defs

    settings = load_settings()
    codes = district_codes(settings.raw_dir)
    if not codes:
        print(f"no raw drop in {settings.raw_dir}", file=sys.stderr)
        return 2
    if args.district:
        unknown = sorted(set(args.district) - set(codes))
        if unknown:
            print(f"not in the drop: {', '.join(unknown)} (it has {', '.join(codes)})")
            return 2
        codes = [c for c in codes if c in args.district]
    definitions = defs()
    failed = []
    with dg.DagsterInstance.get() as instance:
        add_districts(instance, codes)
        if is_city_drop(settings.raw_dir):
            runs = [("district_refresh", code) for code in codes] + [("city_refresh", None)]
        else:
            runs = [("refresh_all", codes[0])]
        for job_name, code in runs:
            started = time.monotonic()
            result = definitions.resolve_job_def(job_name).execute_in_process(
                instance=instance, partition_key=code, raise_on_error=False
            )
            status = "ok" if result.success else "FAILED"
            print(
                f"{job_name} {code or 'city'}: {status} in {time.monotonic() - started:.1f} s "
                f"(run {result.run_id[:8]})",
                flush=True,
            )
            if not result.success:
                failed.append(f"{job_name} {code or 'city'}")
    if failed:
        print(f"failed: {', '.join(failed)}; see the runs in the Dagster UI", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
