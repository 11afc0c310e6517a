"""`python -m union_pipeline.refresh`: the headless refresh, as the nightly schedule runs it.

Every district of the raw drop (its partitions registered first), one run each, then the
city's run; a single-district drop is one run of `refresh_all`. A district (or the city)
whose files, code and settings are as at its last successful refresh is not run again:
its results stand (`--force` runs it all the same). The runs are recorded in the Dagster
instance (DAGSTER_HOME) like any other, and each step whose inputs did not change keeps
its result. Exit status 1 when any run failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from union_pipeline.assetkit import unchanged
from union_pipeline.assetkit.outputs import latest
from union_pipeline.defs.automation.jobs import add_districts
from union_pipeline.districts import district_codes, is_city_drop
from union_pipeline.settings import load_settings

Planned = tuple[str, str, dict[str, str], dg.DagsterRun | None]


def _planned(instance, settings, codes: list[str], force: bool) -> list[Planned]:
    """(job, partition, launch tags, standing run) for each run the drop needs, in order."""
    if not is_city_drop(settings.raw_dir):
        code = codes[0]
        tags = unchanged.launch_tags(instance, settings, code)
        run = unchanged.standing_district_run(instance, settings, code, tags)
        city = latest(instance, unchanged.CITY_FILE)
        if run is not None and (city is None or city.run_id != run.run_id):
            run = None  # the city file was made elsewhere since
        return [("refresh_all", code, tags, None if force else run)]
    plan = []
    for code in codes:
        tags = unchanged.launch_tags(instance, settings, code)
        run = unchanged.standing_district_run(instance, settings, code, tags)
        plan.append(("district_refresh", code, tags, None if force else run))
    return plan


def _say_stands(job_name: str, code: str | None, run: dg.DagsterRun, started: float) -> None:
    print(
        f"{job_name} {code or 'city'}: unchanged since run {run.run_id[:8]}, its results "
        f"stand ({time.monotonic() - started:.1f} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m union_pipeline.refresh", description=__doc__)
    parser.add_argument(
        "--district", action="append", help="only this district (repeatable); then the city"
    )
    parser.add_argument(
        "--force", action="store_true", help="run even what did not change since its last run"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
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
    failed = []
    definitions = None
    with dg.DagsterInstance.get() as instance:
        add_districts(instance, codes)
        plan = _planned(instance, settings, codes, args.force)
        city_drop = is_city_drop(settings.raw_dir)
        for index in range(len(plan) + (1 if city_drop else 0)):
            if index < len(plan):
                job_name, code, tags, standing = plan[index]
            else:  # the city, after its districts: its inputs are their published files
                job_name, code = "city_refresh", None
                inputs = unchanged.city_inputs(instance, settings, district_codes(settings.raw_dir))
                tags = {unchanged.INPUTS_TAG: inputs}
                standing = None if args.force else unchanged.standing_city_run(instance, inputs)
            if standing is not None:
                _say_stands(job_name, code, standing, started)
                continue
            if definitions is None:  # loading every definition takes seconds: only to run
                from union_pipeline.definitions import defs

                definitions = defs()
            run_started = time.monotonic()
            result = definitions.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                partition_key=code,
                raise_on_error=False,
                tags=tags,
            )
            status = "ok" if result.success else "FAILED"
            print(
                f"{job_name} {code or 'city'}: {status} in {time.monotonic() - run_started:.1f}"
                f" s (run {result.run_id[:8]})",
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
