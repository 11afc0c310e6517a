"""`python -m union_pipeline.refresh`: the headless refresh, as the nightly schedule runs it.

Every district of the raw drop (its partitions registered first), one run each, then the
city's run; a single-district drop is one run of `refresh_all`. A district (or the city)
whose files, code and settings are as at its last successful refresh is not run again:
its results stand (`--force` runs it all the same). The runs are recorded in the Dagster
instance (DAGSTER_HOME) like any other, and each step whose inputs did not change keeps
its result. Exit status 1 when any run failed.

It prints a line per stage (counts and seconds), a line when a long step passes 30 s and
when it ends, then per run the rows read, loaded and quarantined of each source, the
warehouse written and, last, where the exports are; a failed run ends with its failed
steps, one line each (the file and what to do). Dagster's own event log goes to the
instance (the UI) and to `DAGSTER_HOME/logs/refresh-<time>.log`; `--verbose` prints it on
the terminal too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import dagster as dg

from union_pipeline.assetkit import unchanged
from union_pipeline.assetkit.metadata import failed_asset
from union_pipeline.assetkit.outputs import REUSED, latest
from union_pipeline.districts import district_codes, is_city_drop
from union_pipeline.settings import load_settings

Planned = tuple[str, str, dict[str, str], dg.DagsterRun | None]

STAGES = ("raw", "staging", "checks", "marts", "warehouse", "reports")
LONG_STEP_S = 30  # a step running longer gets a line, then one a minute
LOGS_KEPT = 30  # refresh logs kept in DAGSTER_HOME/logs, the newest
DASHBOARD = dg.AssetKey(["reports", "dashboard"])
CITY_DASHBOARD = dg.AssetKey(["reports", "city_dashboard"])
ET = dg.DagsterEventType


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


def _say(line: str = "") -> None:
    print(line, flush=True)


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {int(s % 60)} s"


def _step_name(step_key: str | None) -> str:
    # an asset's step is named after its key: staging__members is staging/members
    return (step_key or "?").replace("__", "/")


def _value(metadata, key, default=None):
    entry = metadata.get(key)
    return default if entry is None else getattr(entry, "value", entry)


def _stage_of_steps(job: dg.JobDefinition) -> dict[str, str]:
    """The stage of each step of the job: the layer of the assets it makes (the first part
    of their keys), `checks` for a step that only runs checks."""
    stages = {}
    for assets_def in job.asset_layer.asset_graph.assets_defs:
        keys = sorted(assets_def.keys)
        stages[assets_def.node_def.name] = keys[0].path[0] if keys else "checks"
    return {node.name: stages.get(node.name, "other") for node in job.graph.nodes}


class RunProgress:
    """Follows one run's events as the instance stores them (in this thread): every event
    to the log file, a line per stage once its last step is done, a line for a step past
    LONG_STEP_S (from a ticker thread) and when it ends."""

    def __init__(self, job: dg.JobDefinition, log):
        self.stage_of = _stage_of_steps(job)
        self.total = Counter(self.stage_of.values())
        self.log = log
        self.broken = False
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}  # running steps: step key -> monotonic start
        self.announced: dict[str, float] = {}  # running steps said to be long: last line at
        self.done: dict[str, list[str]] = defaultdict(list)
        self.failed: dict[str, list[str]] = defaultdict(list)
        self.seconds: Counter = Counter()
        self.made: Counter = Counter()
        self.reused: Counter = Counter()
        self.observed = 0
        self.loads = Counter()
        self.sources = 0
        self.checks = Counter()
        self.said: set[str] = set()
        self.warnings: dict[str, None] = {}  # distinct, in order
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self):
        self._ticker.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._ticker.join()

    def __call__(self, entry) -> None:
        try:
            self._follow(entry)
        except Exception as err:  # the run must not fail for its progress lines
            if not self.broken:
                self.broken = True
                _say(f"  (progress lines stopped: {err!r}; the run goes on)")

    def _follow(self, entry) -> None:
        self._write_log(entry)
        event = entry.dagster_event
        if event is None:
            if _level(entry) == "WARNING":  # said once at the end (the PII key, no browser)
                self.warnings.setdefault(entry.user_message.splitlines()[0], None)
            return
        step, kind = event.step_key, event.event_type
        stage = self.stage_of.get(step or "", "other")
        with self.lock:
            if kind == ET.STEP_START:
                self.started[step] = time.monotonic()
            elif kind == ET.ASSET_OBSERVATION:
                self.observed += 1
            elif kind == ET.ASSET_MATERIALIZATION:
                metadata = event.materialization.metadata
                if _value(metadata, REUSED, False):
                    self.reused[stage] += 1
                else:
                    self.made[stage] += 1
                if "rows_read" in metadata:
                    self.sources += 1
                    for key in ("rows_read", "rows_loaded", "rows_quarantined"):
                        self.loads[key] += int(_value(metadata, key, 0))
            elif kind == ET.ASSET_CHECK_EVALUATION:
                self.checks[event.asset_check_evaluation_data.passed] += 1
            elif kind in (ET.STEP_SUCCESS, ET.STEP_FAILURE, ET.STEP_SKIPPED):
                began = self.started.pop(step, None)
                took = time.monotonic() - began if began is not None else 0.0
                self.seconds[stage] += took
                self.done[stage].append(step)
                if kind == ET.STEP_FAILURE:
                    self.failed[stage].append(step)
                if self.announced.pop(step, None) is not None:
                    status = "FAILED" if kind == ET.STEP_FAILURE else "done"
                    _say(f"  … {_step_name(step)} {status} in {_seconds(took)}")
                if len(self.done[stage]) == self.total[stage]:
                    self._say_stage(stage)

    def _write_log(self, entry) -> None:
        event = entry.dagster_event
        when = dt.datetime.fromtimestamp(entry.timestamp).astimezone().isoformat(" ", "seconds")
        parts = [when, _level(entry), entry.job_name or "", entry.run_id[:8], entry.step_key or ""]
        parts += [event.event_type_value if event else "", entry.message]
        self.log.write(" - ".join(parts) + "\n")
        error = entry.error_info
        if event is not None and event.event_type == ET.STEP_FAILURE:
            error = event.step_failure_data.error
        elif event is not None and event.event_type == ET.RUN_FAILURE:
            error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            self.log.write(error.to_string() + "\n")
        self.log.flush()

    def _stage_line(self, stage: str) -> str:
        made, reused = self.made[stage], self.reused[stage]
        if stage == "raw":
            text = f"{self.observed} source folders observed"
        elif stage == "staging":
            n = self.loads
            text = (
                f"{self.sources} sources: {n['rows_read']:,} rows read, "
                f"{n['rows_loaded']:,} loaded, {n['rows_quarantined']:,} quarantined"
            )
        elif stage == "checks":
            text = f"{self.checks[True]} passed, {self.checks[False]} failed"
        elif stage == "warehouse":
            text = f"{made} files published"
        else:
            text = f"{made} made"
        if reused and stage != "checks":
            text += f" ({reused} unchanged)"
        failed = self.failed[stage]
        if failed:
            names = ", ".join(_step_name(s) for s in failed[:2]) + (", …" if failed[2:] else "")
            text += f"; {len(failed)} FAILED ({names})"
        missing = self.total[stage] - len(self.done[stage])
        if missing:
            text += f"; {missing} of {self.total[stage]} steps not run"
        return f"  {stage:<10}{_seconds(self.seconds[stage]):>9}  {text}"

    def _say_stage(self, stage: str) -> None:
        if stage not in self.said:
            self.said.add(stage)
            _say(self._stage_line(stage))

    def finish(self) -> None:
        """The stages not yet said (a failed run leaves some unfinished)."""
        with self.lock:
            extra = sorted(set(self.total) - set(STAGES))
            for stage in [*STAGES, *extra]:
                if self.total[stage] and stage not in self.said:
                    if self.done[stage]:
                        self._say_stage(stage)
                    else:
                        self.said.add(stage)
                        _say(f"  {stage:<10}{'':>9}  not run (an earlier step failed)")

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self.lock:
                for step, began in self.started.items():
                    running = now - began
                    last = self.announced.get(step)
                    if last is None and running >= LONG_STEP_S:
                        self.announced[step] = now
                        when = dt.datetime.now() - dt.timedelta(seconds=running)
                        _say(
                            f"  … {_step_name(step)} running since {when:%H:%M:%S} "
                            f"({_seconds(running)} so far)"
                        )
                    elif last is not None and now - last >= 60:
                        self.announced[step] = now
                        _say(f"  … {_step_name(step)} still running ({_seconds(running)})")


def _level(entry) -> str:
    level = entry.level
    return level if isinstance(level, str) else logging.getLevelName(level)


def _failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step: the asset and the first line of its error (a refused file:
    the file and what to do); the run's own error when no step failed."""
    steps: dict[str, list[str]] = defaultdict(list)  # first line -> the steps it failed
    for event in result.all_events:
        if event.event_type == ET.STEP_FAILURE:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                message = data.user_failure_data.description
            else:
                error = data.error
                while error is not None and error.cause is not None:
                    error = error.cause  # the user's error, not Dagster's wrapper
                message = error.message if error is not None else event.message or ""
                # "package.module.SomeError: text": the class name is enough
                kind, colon, text = message.partition(": ")
                if colon and " " not in kind:
                    message = f"{kind.rsplit('.', 1)[-1]}: {text}"
            first = (message.strip().splitlines() or ["(no message)"])[0]
            steps[first].append(failed_asset(event.step_key, data))
    lines = [f"{', '.join(names)}: {first}" for first, names in steps.items()]
    if not lines:
        for event in result.all_events:
            if event.event_type == ET.RUN_FAILURE:
                lines.append(f"run failed: {(event.message or '').strip().splitlines()[0]}")
    return lines


def _say_run_summary(result: dg.ExecuteInProcessResult, instance, code: str | None) -> Path | None:
    """Per source rows read, loaded and quarantined; the warehouse written; the exports
    folder (returned)."""
    made = {
        e.materialization.asset_key: dict(e.materialization.metadata)
        for e in result.get_asset_materialization_events()
    }
    rows = [
        (
            key.path[-1],
            *(int(_value(m, k, 0)) for k in ("rows_read", "rows_loaded", "rows_quarantined")),
        )
        for key, m in sorted(made.items(), key=lambda item: item[0].to_user_string())
        if key.path[0] == "staging" and "rows_read" in m
    ]
    if rows:
        _say(f"  {'source':<26} {'read':>10} {'loaded':>10} {'quarantined':>12}")
        for name, read, loaded, held in rows:
            _say(f"  {name:<26} {read:>10,} {loaded:>10,} {held:>12,}")
    files = [
        str(_value(m, "path"))
        for key, m in made.items()
        if key.path[0] == "warehouse" and _value(m, "path")
    ]
    if files:
        _say(f"  warehouse: {', '.join(sorted(files, key=len))}")
    else:
        _say("  warehouse: not published (the live file keeps its last complete state)")
    return _exports(instance, code, made)


def _exports(instance, code: str | None, made: dict | None = None) -> Path | None:
    """The export folder of a district's (or the city's) last dashboard."""
    key = DASHBOARD if code else CITY_DASHBOARD
    metadata = (made or {}).get(key)
    if metadata is None:
        found = latest(instance, key, code)
        metadata = found.metadata if found else {}
    path = _value(metadata, "path")
    return Path(path).parent if path else None


def _say_stands(job_name: str, code: str | None, run: dg.DagsterRun, started: float) -> None:
    print(
        f"{job_name} {code or 'city'}: unchanged since run {run.run_id[:8]}, its results "
        f"stand ({time.monotonic() - started:.1f} s)",
        flush=True,
    )


# the export browser's libraries log troubles of their own, such as a message cut short as
# Chromium closes at exit ("JSONError decoding message. Ignoring"): the log file's, not
# the console's
BROWSER_LOGGERS = ("choreographer", "kaleido")


@contextlib.contextmanager
def _libraries_logged_to(log):
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in BROWSER_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        render = sys.modules.get("union_pipeline.reports.render")
        if render is not None:  # closed while its libraries still log to the file
            render.stop_server()
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True


def _open_log(instance) -> tuple[Path, object]:
    folder = Path(instance.root_directory) / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("refresh-*.log"))[: -LOGS_KEPT + 1]:
        old.unlink(missing_ok=True)
    path = folder / f"refresh-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    return path, path.open("a", encoding="utf-8")


# a headless run is executed by this process: if it dies (SIGKILL, out of memory), nobody
# else marks its run failed; the next refresh does, from these tags
PID_TAG, PID_SINCE_TAG = "union/pid", "union/pid_since"


def _mark_dead_runs_failed(instance) -> list[dg.DagsterRun]:
    """Runs of earlier headless refreshes still STARTED whose process is gone."""
    from union_pipeline.machine import worker_alive

    dead = []
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    for run in instance.get_runs(filters=started):
        pid, since = run.tags.get(PID_TAG), run.tags.get(PID_SINCE_TAG)
        if pid is None or worker_alive(int(pid), float(since) if since else None):
            continue
        instance.report_run_failed(run)
        dead.append(run)
    return dead


def _run(definitions, instance, job_name, code, tags, log, verbose):
    """One run in this process, followed by a RunProgress."""
    tags = {**tags, PID_TAG: str(os.getpid()), PID_SINCE_TAG: str(time.time())}
    job = definitions.resolve_job_def(job_name)
    run_id = str(uuid.uuid4())  # known before the run: its events are followed as stored
    progress = RunProgress(job, log)
    instance.add_event_listener(run_id, progress)
    # Dagster's console logger prints every event (DEBUG) to stderr; the run's events still
    # go to the instance and the log file
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    _say(f"{job_name} {code or 'city'}: {len(progress.stage_of)} steps, run {run_id[:8]}")
    with progress:
        result = job.execute_in_process(
            run_config=None if verbose else quiet,
            instance=instance,
            partition_key=code,
            raise_on_error=False,
            tags=tags,
            run_id=run_id,
        )
    progress.finish()
    return result, progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m union_pipeline.refresh", description=__doc__)
    parser.add_argument(
        "--district", action="append", help="only this district (repeatable); then the city"
    )
    parser.add_argument(
        "--force", action="store_true", help="run even what did not change since its last run"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print Dagster's events on the terminal too"
    )
    args = parser.parse_args(argv)
    if not args.verbose:  # Dagster's notes on its own APIs are for developers
        for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
            warnings.filterwarnings("ignore", category=category)
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
    failures: list[str] = []
    definitions = None
    exports: Path | None = None
    notes: dict[str, None] = {}
    with dg.DagsterInstance.get() as instance:
        log_path, log = _open_log(instance)
        with log, _libraries_logged_to(log):
            # imported after the warnings filter: the jobs' module warns about Dagster's APIs
            from union_pipeline.defs.automation.jobs import add_districts

            add_districts(instance, codes)
            for run in _mark_dead_runs_failed(instance):
                _say(
                    f"run {run.run_id[:8]} ({run.job_name}) was left running by a process that "
                    "died: marked failed"
                )
            plan = _planned(instance, settings, codes, args.force)
            city_drop = is_city_drop(settings.raw_dir)
            for index in range(len(plan) + (1 if city_drop else 0)):
                if index < len(plan):
                    job_name, code, tags, standing = plan[index]
                else:  # the city, after its districts: its inputs are their published files
                    job_name, code = "city_refresh", None
                    inputs = unchanged.city_inputs(
                        instance, settings, district_codes(settings.raw_dir)
                    )
                    tags = {unchanged.INPUTS_TAG: inputs}
                    standing = None if args.force else unchanged.standing_city_run(instance, inputs)
                if standing is not None:
                    _say_stands(job_name, code, standing, started)
                    exports = _exports(instance, code) or exports
                    continue
                if definitions is None:  # loading every definition takes seconds: only to run
                    from union_pipeline.definitions import defs

                    definitions = defs()
                run_started = time.monotonic()
                result, progress = _run(
                    definitions, instance, job_name, code, tags, log, args.verbose
                )
                took = _seconds(time.monotonic() - run_started)
                label = f"{job_name} {code or 'city'}"
                if result.success:
                    _say(f"{label}: ok in {took} (run {result.run_id[:8]})")
                else:
                    lines = _failure_lines(result)
                    _say(f"{label}: FAILED in {took} (run {result.run_id[:8]})")
                    failures += [f"FAILED {label}: {line}" for line in lines]
                exports = _say_run_summary(result, instance, code) or exports
                notes.update(progress.warnings)
    for note in list(notes)[:3]:
        _say(f"note: {note}")
    _say(f"log: {log_path} (every Dagster event; the runs are also in the Dagster UI)")
    if failures:
        for line in failures:
            print(line, flush=True)
        return 1
    if exports is not None:
        _say(f"exports: {exports}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
