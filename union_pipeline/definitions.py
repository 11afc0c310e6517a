"""union-pipeline's Dagster definitions: the defs/ folder plus project-wide policy."""

import os
import shlex
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.io import IO_MANAGER, TablesIOManager
from union_pipeline.assetkit.resources import WarehouseResource
from union_pipeline.settings import ConfigError

# The nightly refresh runs at 02:00 Asia/Shanghai; a mart or report not refreshed for 36
# hours has missed a night and a retry.
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)
SERVED_TO_READERS = dg.AssetSelection.key_prefixes(["marts"], ["reports"])


@dg.definitions
def defs() -> dg.Definitions:
    warehouse = WarehouseResource.from_env()
    merged = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources={"warehouse": warehouse, IO_MANAGER: TablesIOManager(warehouse=warehouse)},
            # A process per step costs ~2.5 s on 2 cores, more than a district's work, and
            # DuckDB already uses both cores within a step.
            executor=dg.in_process_executor,
        ),
    )
    # the documented way to apply a policy over a selection; it is marked "preview"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        resolved = merged.map_resolved_asset_specs(
            func=lambda spec: dg.apply_freshness_policy(spec, FRESHNESS),
            selection=SERVED_TO_READERS,
        )
    launch = _cli_launch(sys.argv)
    if launch is not None:
        _prepare_cli_launch(resolved, *launch)
    return resolved


# Dagster's CLI checks a run's partition against the instance's districts before any step
# runs, and a partitioned asset launched without a partition ends in a traceback. The CLI
# loads these definitions first: a launch from it registers the drop's districts (as the
# refresh does) and is told in one line the command that works.
CLI_LAUNCHES = {
    ("dg", "launch"),
    ("dagster", "asset", "materialize"),
    ("dagster", "job", "execute"),
    ("dagster", "job", "launch"),
}


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(f"{name}="):
                return arg[len(name) + 1 :]
    return None


def _cli_launch(argv: list[str]) -> tuple[str, list[str]] | None:
    """(program, arguments) when this process is a launch from Dagster's CLI, else None."""
    if not argv:
        return None
    path = Path(argv[0])
    program = path.parent.name if path.name == "__main__.py" else path.name
    program = {"dagster_dg_cli": "dg"}.get(program, program)
    args = list(argv[1:])
    words = tuple(a for a in args if not a.startswith("-"))[:2]
    for command in CLI_LAUNCHES:
        if program == command[0] and words[: len(command) - 1] == command[1:]:
            return program, args
    return None


def _target(definitions: dg.Definitions, args: list[str]) -> tuple[bool, bool] | None:
    """(partitioned, the job supplies the partition) for the launch's target; None when
    Dagster will say what is wrong with the target itself (an unknown job or selection)."""
    try:
        job = _option(args, "--job", "-j")
        if job:
            job_def = definitions.resolve_job_def(job)
            return job_def.partitions_def is not None, "dagster/partition" in job_def.tags
        select = _option(args, "--select", "--assets")
        if not select:
            return None
        graph = definitions.resolve_asset_graph()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)  # Dagster's own, on `*`
            keys = dg.AssetSelection.from_coercible(select.split(",")).resolve(graph)
        return any(graph.get(key).partitions_def is not None for key in keys), False
    except Exception:
        return None


def _prepare_cli_launch(definitions: dg.Definitions, program: str, args: list[str]) -> None:
    from union_pipeline.defs.automation.jobs import add_districts
    from union_pipeline.districts import district_codes, is_city_drop
    from union_pipeline.settings import load_settings

    target = _target(definitions, args)
    if target is None or not target[0]:
        return  # no district needed, or Dagster's own message
    try:
        raw_dir = load_settings().raw_dir
        codes = district_codes(raw_dir)
    except ConfigError as err:
        raise SystemExit(f"union-pipeline: {err}") from None
    if not codes:
        raise SystemExit(
            f"union-pipeline: no raw drop in {raw_dir} (UNION_RAW_DIR): put the source "
            "systems' files there (docs/使用说明.md), or run ./dev refresh for the demo drop"
        )
    partition = _option(args, "--partition")
    if partition is not None and partition not in codes:
        raise SystemExit(
            f"union-pipeline: district {partition} is not in the drop {raw_dir} (it has "
            f"{', '.join(codes)}); 区县 {partition} 不在本次数据中"
        )
    chosen = partition or target[1] or _option(args, "--partition-range")
    working = shlex.join([program, *args] if chosen else [program, *args, "--partition", codes[0]])
    if not os.environ.get("DAGSTER_HOME"):
        # a temporary instance would know no district
        raise SystemExit(
            "union-pipeline: DAGSTER_HOME is not set (the districts and runs are kept in the "
            "instance): export DAGSTER_HOME=$PWD/.dagster_home (./dev setup makes it), then "
            f"run: {working}"
        )
    with dg.DagsterInstance.get() as instance:
        add_districts(instance, codes)  # as the refresh and the raw-files sensor do
    if not chosen:
        everything = (
            ", or every district and the city: python -m union_pipeline.refresh"
            if is_city_drop(raw_dir)
            else ""
        )
        raise SystemExit(
            f"union-pipeline: the district assets are partitioned by district (this drop: "
            f"{', '.join(codes)}); run: {working}{everything}. 请用 --partition 指定区县。"
        )
