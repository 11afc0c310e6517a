"""Sensors: a dropped export refreshes what it touches; a failed run alerts someone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.outputs import DISTRICTS, latest
from union_pipeline.assetkit.staging import raw_files
from union_pipeline.defs.automation.jobs import (
    CITY_TAGS,
    REFRESH_TAGS,
    SENSOR_STATUS,
    city_refresh,
    district_refresh,
)
from union_pipeline.districts import DISTRICT_CODE, district_codes, is_city_drop
from union_pipeline.ingest.specs import load_specs
from union_pipeline.machine import worker_alive
from union_pipeline.settings import load_settings
from union_pipeline.warehouse.versions import files_state

DISTRICT_FILE = dg.AssetKey(["warehouse", "district_duckdb"])


def snapshot(raw_dir: Path, previous: dict[str, list]) -> dict[str, list]:
    """{relative path: [size, mtime_ns, sha256]} of every file a source would read; a file
    whose size and mtime are unchanged is not read again."""
    files = {}
    for spec in load_specs().values():
        files.update(raw_files(spec, raw_dir))
    return files_state(files, previous)


def changed_sources(before: dict[str, list], after: dict[str, list]) -> list[str]:
    """Sources with a file added, removed or whose content changed (in any district)."""
    return sorted({source for _, source in changed(before, after)})


def changed(before: dict[str, list], after: dict[str, list]) -> set[tuple[str | None, str]]:
    """(district, source) with a file added, removed or changed; district None: the city's
    own targets (or, in a single-district drop, the district's files)."""
    folders = {spec.folder: spec.name for spec in load_specs().values()}
    out = set()
    for path in before.keys() | after.keys():
        if (before.get(path) or [None] * 3)[2] == (after.get(path) or [None] * 3)[2]:
            continue
        parts = path.split("/")
        district = parts[0] if DISTRICT_CODE.match(parts[0]) and len(parts) > 2 else None
        folder = parts[1] if district else parts[0]
        if folder in folders:
            out.add((district, folders[folder]))
    return out


@dg.sensor(
    jobs=[district_refresh, city_refresh],
    minimum_interval_seconds=60,
    default_status=SENSOR_STATUS,
    description="New or changed files in UNION_RAW_DIR refresh their district's sources and "
    "everything downstream (a new district folder adds the district); the city follows. "
    "原始数据目录有新文件或文件变化时，刷新相应区县的数据源及下游。",
)
def raw_files_sensor(context: dg.SensorEvaluationContext):
    raw_dir = load_settings().raw_dir
    before = json.loads(context.cursor) if context.cursor else {}
    after = snapshot(raw_dir, before)
    touched = changed(before, after)
    # keep the cursor current: a touched-but-identical file is not hashed again
    context.update_cursor(json.dumps(after))
    codes = district_codes(raw_dir)
    known = set(context.instance.get_dynamic_partitions(DISTRICTS.name))
    new_districts = [c for c in codes if c not in known]
    if not touched:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new or changed raw files"),
            dynamic_partitions_requests=[DISTRICTS.build_add_request(new_districts)]
            if new_districts
            else [],
        )
    graph = context.repository_def.asset_graph
    requests = []
    city_drop = is_city_drop(raw_dir)
    by_district: dict[str, list[str]] = {}
    for district, source in sorted(touched, key=str):
        if district is None and city_drop:
            continue  # the city's own targets: the city roll-up follows by automation
        by_district.setdefault(district or codes[0], []).append(source)
    run_key = hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:16]
    for code, sources in sorted(by_district.items()):
        keys = None  # a district never published: its whole refresh, from nothing
        if latest(context.instance, DISTRICT_FILE, code) is not None:
            staging = [dg.AssetKey(["staging", s]) for s in sources]
            selection = dg.AssetSelection.assets(*staging).downstream()
            keys = sorted(
                k for k in selection.resolve(graph) if graph.get(k).partitions_def is not None
            )
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key}-{code}",
                job_name=district_refresh.name,
                partition_key=code,
                asset_selection=keys,
                tags={**REFRESH_TAGS, "union/changed_sources": ",".join(sources)},
            )
        )
    # the city's targets: the root targets/ of a city drop, the district's own in a
    # single-district drop (both the district's and the city's). Not before every district
    # was published once: the automation makes the city after its districts' first refresh
    published = all(latest(context.instance, DISTRICT_FILE, c) is not None for c in codes)
    if published and any(d is None and source == "targets" for d, source in touched):
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key}-city",
                job_name=city_refresh.name,
                tags={**CITY_TAGS, "union/changed_sources": "city_targets"},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[DISTRICTS.build_add_request(new_districts)]
        if new_districts
        else [],
    )


def worker_started(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid the run's worker process recorded when it started, and when."""
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
    ).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        data = event.engine_event_data if event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None:
            return int(getattr(pid, "value", pid)), entry.timestamp
    return None


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    found = worker_started(instance, run_id)
    return found[0] if found else None


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A run whose worker process died (killed, out of memory) is marked failed, so "
    "the one-refresh-at-a-time queue moves on and the retry starts. Dagster's code server "
    "does this when it sees its child die; this sensor covers a code server that died too "
    "(run monitoring cannot check workers of the default local launcher). "
    "运行进程意外终止时将该运行标记为失败，队列中的下一次刷新随即开始。",
)
def dead_run_worker(context: dg.SensorEvaluationContext):
    instance = context.instance
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    failed = []
    for record in records:
        run = record.dagster_run
        started = worker_started(instance, run.run_id)
        if started is None or worker_alive(*started):
            continue
        pid = started[0]
        instance.report_run_failed(
            run,
            f"The run worker (pid {pid}) is gone: killed or out of memory. "
            "运行进程已终止。The warehouse keeps its last published state.",
        )
        failed.append(run.run_id)
    if not failed:
        return dg.SkipReason("every started run has a live worker")
    context.log.error(f"marked failed, worker gone: {failed}")
    return dg.SkipReason(f"marked {len(failed)} run(s) with a dead worker as failed")
