"""Is a refresh run needed at all? A district whose files, code and settings are as they
were at its last successful refresh is not run again: its results stand.

Inside a run, each step already keeps its result when its inputs did not change; but a
run still costs Dagster's per-step bookkeeping (a dozen steps), which is most of a district
that did not change. So the nightly schedule and the headless refresh ask first, cheaply,
and launch only what changed. The files are taken as the staging steps take them
(`files_state`, the one fingerprint of a raw file): by content, a file read only when its
size or time moved since the source last staged it. An export sent again with the same
content, or a file no source reads, launches nothing.

A run records what it was launched on in its tags (`union/inputs`, and the rule date in
`union/rule_date`). A district's run is skipped when the newest run of its partition
(whatever launched it: the UI, a sensor, a backfill) is a successful refresh with the same
inputs, its warehouse file is still the live one, and, if that refresh held a row back for
a date after its day, the day is the same.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import dagster as dg

from union_pipeline import districts
from union_pipeline.assetkit.outputs import DATE_SENSITIVE, RAW_STATE, is_district_asset, latest
from union_pipeline.ingest.files import district_files
from union_pipeline.ingest.specs import SourceSpec, load_specs
from union_pipeline.settings import ASSETS_DIR, PROJECT_ROOT, Settings
from union_pipeline.warehouse.versions import (
    LIVE_FILE,
    digest,
    files_state,
    live_stat,
    state_version,
)

INPUTS_TAG = "union/inputs"
RULE_DATE_TAG = "union/rule_date"
DISTRICT_JOBS = ("district_refresh", "refresh_all")
CITY_JOBS = ("city_refresh", "refresh_all")
DISTRICT_FILE = dg.AssetKey(["warehouse", "district_duckdb"])
CITY_FILE = dg.AssetKey(["warehouse", "union_duckdb"])


@functools.cache
def code_version() -> str:
    """The package's code and the declarative inputs it reads (assets/): any edit counts."""
    roots = [PROJECT_ROOT / "union_pipeline", ASSETS_DIR]
    files = sorted(
        p for root in roots for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    sha = hashlib.sha256()
    for path in files:
        sha.update(str(path.relative_to(PROJECT_ROOT)).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def _files_content(
    instance: dg.DagsterInstance, sources: dict[str, SourceSpec], folder: Path, district
) -> dict[str, str]:
    """The content version of each staging source's files in `folder` (source name ->
    spec), as its step takes them (`files_state`): the hashes it recorded are reused for
    files whose size and time did not move, so only a touched file is read."""
    out = {}
    for name, spec in sorted(sources.items()):
        found = latest(instance, dg.AssetKey(["staging", name]), district)
        known = found.get(RAW_STATE) if found else None
        out[name] = state_version(files_state(district_files(spec, folder), known))
    return out


def _settings_state(settings: Settings) -> dict:
    from union_pipeline.machine import static_export_problem

    return {
        # a browser or a Chinese font installed since: the PNGs and the briefing are owed
        "static_export": static_export_problem() is None,
        "raw_dir": str(settings.raw_dir),
        "warehouse": str(settings.warehouse),
        "export_dir": str(settings.export_dir),
        "as_of": str(settings.as_of),
        "first_year": settings.first_year,
        "pii_key": hashlib.sha256(settings.pii_key).hexdigest(),
        "threshold": settings.quarantine_threshold,
    }


def _date_sensitive(instance: dg.DagsterInstance, code: str) -> bool:
    """Did the district's last load hold a row back for a date after the refresh date?
    Then a later day may admit it, and the day counts among the inputs."""
    for source in load_specs():
        found = latest(instance, dg.AssetKey(["staging", source]), code)
        if found is not None and found.get(DATE_SENSITIVE, False):
            return True
    return False


def district_inputs(instance: dg.DagsterInstance, settings: Settings, code: str) -> str:
    """What a district's refresh is made from: its raw files, the code, the settings."""
    raw = districts.district_raw_dir(settings.raw_dir, code)
    state = {
        "code": code_version(),
        "district": code,
        "settings": _settings_state(settings),
        "files": _files_content(instance, load_specs(), raw, code),
    }
    if not districts.is_city_drop(settings.raw_dir):
        state["city"] = "single-district drop"  # refresh_all runs the city with it
    return digest(state)


def launch_tags(instance: dg.DagsterInstance, settings: Settings, code: str) -> dict[str, str]:
    """The tags a district's refresh run is launched with: what it is made from."""
    return {
        INPUTS_TAG: district_inputs(instance, settings, code),
        RULE_DATE_TAG: settings.rule_as_of.isoformat(),
    }


def city_inputs(instance: dg.DagsterInstance, settings: Settings, codes: list[str]) -> str:
    """What the city's refresh is made from: its own targets and its districts' latest
    published files (whichever runs made them)."""
    made = {}
    for code in codes:
        found = latest(instance, DISTRICT_FILE, code)
        made[code] = found.run_id if found else None
    targets = districts.city_targets_dir(settings.raw_dir)
    return digest(
        {
            "code": code_version(),
            "settings": _settings_state(settings),
            "targets": _files_content(
                instance, {"city_targets": load_specs()["targets"]}, settings.raw_dir, None
            )
            if targets
            else {},
            "districts": made,
        }
    )


def _published(found) -> bool:
    """The warehouse file of that materialization is still the live one."""
    path = found.get("path") if found else None
    return bool(path) and Path(path).exists() and found.get(LIVE_FILE) == live_stat(Path(path))


def _newest_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags=tags), limit=1)
    return runs[0] if runs else None


def _stands(run: dg.DagsterRun | None, jobs: tuple[str, ...], inputs: str) -> bool:
    return (
        run is not None
        and run.status == dg.DagsterRunStatus.SUCCESS
        and run.job_name in jobs
        and run.tags.get(INPUTS_TAG) == inputs
    )


# what a report's materialization names of the files it wrote: its file, the draft beside
# the workbook, a chart's PNGs
REPORT_FILES = ("path", "summary_docx", "union/files")


def _reports(instance: dg.DagsterInstance) -> list[dg.AssetKey]:
    """Every district report the instance knows (the city's are the city's refresh's)."""
    return [k for k in instance.get_asset_keys(prefix=["reports"]) if is_district_asset(k)]


def _exports_present(instance: dg.DagsterInstance, settings: Settings, code: str) -> bool:
    """The district's export folder is there with every file its latest reports wrote (one
    deleted, a run writes it again)."""
    folder = districts.district_export_dir(settings.export_dir, settings.raw_dir, code)
    if not (folder.is_dir() and any(folder.iterdir())):
        return False
    for key in _reports(instance):
        found = latest(instance, key, code)
        for field in REPORT_FILES if found else ():
            value = found.get(field)
            paths = value if isinstance(value, list) else [value] if value else []
            if not all(Path(p).exists() for p in paths):
                return False
    return True


def standing_district_run(
    instance: dg.DagsterInstance, settings: Settings, code: str, tags: dict[str, str]
) -> dg.DagsterRun | None:
    """The district's last refresh when it was launched on the same `tags` (see
    `launch_tags`), its warehouse file and exports are there, and nothing ran in the
    district since: its results stand."""
    run = _newest_run(instance, {"dagster/partition": code})
    published = latest(instance, DISTRICT_FILE, code)
    if not (_stands(run, DISTRICT_JOBS, tags[INPUTS_TAG]) and _published(published)):
        return None
    if not _exports_present(instance, settings, code):
        return None
    # a row held back for a date after that day may be admitted on another day
    if run.tags.get(RULE_DATE_TAG) != tags[RULE_DATE_TAG] and _date_sensitive(instance, code):
        return None
    return run


def standing_city_run(instance: dg.DagsterInstance, inputs: str) -> dg.DagsterRun | None:
    """The city's last refresh when it was made from `inputs` and its file is the latest."""
    published = latest(instance, CITY_FILE)
    if not _published(published):
        return None
    run = instance.get_run_by_id(published.run_id)
    return run if _stands(run, CITY_JOBS, inputs) else None
