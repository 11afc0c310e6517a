"""Sensors: a dropped export refreshes what it touches; a failed run alerts someone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.staging import raw_files
from union_pipeline.defs.automation.jobs import REFRESH_TAGS, refresh_all
from union_pipeline.ingest.specs import load_specs
from union_pipeline.settings import load_settings
from union_pipeline.warehouse.versions import files_state


def snapshot(raw_dir: Path, previous: dict[str, list]) -> dict[str, list]:
    """{relative path: [size, mtime_ns, sha256]} of every file a source would read; a file
    whose size and mtime are unchanged is not read again."""
    files = {}
    for spec in load_specs().values():
        files.update(raw_files(spec, raw_dir))
    return files_state(files, previous)


def changed_sources(before: dict[str, list], after: dict[str, list]) -> list[str]:
    """Sources with a file added, removed or whose content changed."""
    folders = {spec.folder: spec.name for spec in load_specs().values()}
    touched = {
        path.split("/", 1)[0]
        for path in before.keys() | after.keys()
        if (before.get(path) or [None] * 3)[2] != (after.get(path) or [None] * 3)[2]
    }
    return sorted(folders[f] for f in touched if f in folders)


@dg.sensor(
    job=refresh_all,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed files in UNION_RAW_DIR refresh their sources and everything "
    "downstream. 原始数据目录有新文件或文件变化时，刷新相应数据源及下游。",
)
def raw_files_sensor(context: dg.SensorEvaluationContext):
    before = json.loads(context.cursor) if context.cursor else {}
    after = snapshot(load_settings().raw_dir, before)
    sources = changed_sources(before, after)
    if not sources:
        # keep the cursor current: a touched-but-identical file is not hashed again
        context.update_cursor(json.dumps(after))
        return dg.SkipReason("no new or changed raw files")
    staging = [dg.AssetKey(["staging", s]) for s in sources]
    selection = dg.AssetSelection.assets(*staging).downstream()
    keys = sorted(selection.resolve(context.repository_def.asset_graph))
    run_key = hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps(after))
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=keys,
        tags={**REFRESH_TAGS, "union/changed_sources": ",".join(sources)},
    )
