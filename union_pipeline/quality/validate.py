"""Run a table's checks: DuckDB computes each check's frame, GX validates it.

    frames = compute_frames(con, suite, previous_rows=...)    # needs the warehouse
    outcomes = validate(suite, frames, docs_dir=..., run_name=...)  # needs only the frames

An expectation GX cannot evaluate (a typo in a column, a type it cannot compare) counts
as failed, with GX's message as its evidence: a check that cannot judge has not passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from union_pipeline.quality.frames import Frame, compute_frame
from union_pipeline.quality.suites import CheckDef, ExpectationDef, QualityError, Suite
from union_pipeline.warehouse.versions import digest

DATASOURCE = "warehouse"
EVIDENCE_ROWS = 10
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


@dataclass
class ExpectationOutcome:
    label: str
    success: bool
    observed: str
    error: str | None = None
    evidence: pd.DataFrame | None = None


@dataclass
class CheckOutcome:
    suite: Suite
    check: CheckDef
    passed: bool
    note: str
    frame_rows: int
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    skipped: str | None = None
    page: Path | None = None
    index: Path | None = None
    seconds: float = 0.0

    @property
    def gx_suite(self) -> str:
        return self.suite.gx_suite_name(self.check)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]


def compute_frames(
    con: duckdb.DuckDBPyConnection,
    suite: Suite,
    checks: Sequence[CheckDef] | None = None,
    previous_rows: int | None = None,
    district: str | None = None,
) -> dict[str, tuple[Frame, float]]:
    """{check name: (frame, seconds)} for the given checks (default: all of the suite), of
    `district`'s tables (its reference lists)."""
    out = {}
    for check in checks if checks is not None else suite.checks:
        start = time.perf_counter()
        frame = compute_frame(con, check.data, previous_rows, district)
        out[check.name] = (frame, time.perf_counter() - start)
    return out


def _fmt(value) -> str:
    if isinstance(value, float):
        return "null" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, list | tuple):
        shown = ", ".join(_fmt(v) for v in value[:EVIDENCE_ROWS])
        return f"[{shown}{', …' if len(value) > EVIDENCE_ROWS else ''}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _observed(result: dict) -> str:
    """What GX saw, in words: the observed value, the unexpected and the missing values."""
    parts = []
    if result.get("observed_value") is not None:
        parts.append(f"observed {_fmt(result['observed_value'])}")
    unexpected = result.get("partial_unexpected_list") or []
    if "unexpected_count" in result:
        count = result["unexpected_count"]
        if "element_count" in result:  # a per-value expectation
            text = f"{count} of {result['element_count']} values unexpected"
        else:  # a set expectation: distinct values outside the set
            text = f"{count} unexpected value(s)"
        parts.append(f"{text}: {_fmt(unexpected)}" if count else text)
    if "element_count" not in result and result.get("missing_count"):
        parts.append(
            f"{result['missing_count']} expected value(s) missing: "
            f"{_fmt(result.get('partial_missing_list') or [])}"
        )
    return "; ".join(parts) or (_fmt(result) if result else "(no observed value)")


def _evidence(frame: pd.DataFrame, exp: ExpectationDef, result: dict) -> pd.DataFrame | None:
    """The frame's rows behind a failure: by GX's unexpected index, else by value."""
    index = result.get("partial_unexpected_index_list") or []
    if index and all(isinstance(i, int) for i in index):
        rows = frame.loc[[i for i in index if i in frame.index]]
    else:
        column = exp.kwargs.get("column")
        values = result.get("partial_unexpected_list") or []
        if not (column in frame.columns and values) or isinstance(values[0], dict | list):
            return None
        rows = frame[frame[column].isin(values)]
    rows = rows.drop_duplicates().head(EVIDENCE_ROWS)
    if "person_key" in rows.columns:  # a pseudonym, but a full hash invites copy-and-join
        rows = rows.assign(person_key=rows["person_key"].str.slice(0, 8) + "…")
    return rows


def _exception(info) -> str | None:
    """GX's message when evaluating raised: on the result, or per metric that failed."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _gx_expectation(exp: ExpectationDef, position: int, where: str):
    from great_expectations.expectations.registry import get_expectation_impl
    from great_expectations.expectations.row_conditions import Column

    try:
        cls = get_expectation_impl(exp.type)
    except Exception as err:
        raise QualityError(f"{where}: {exp.type} is not a GX expectation") from err
    kwargs = dict(exp.kwargs)
    if exp.where:
        kwargs["row_condition"] = Column(exp.where[0]) == exp.where[1]
    if exp.notes:
        kwargs["notes"] = exp.notes
    try:
        return cls(**kwargs, meta={"position": position, "label": exp.label()})
    except Exception as err:  # pydantic's message names the offending argument
        raise QualityError(f"{where}: {exp.label()}: {err}") from err


# The process's one GX context: building one costs more than a table's validations (GX
# reads its config, registers its stores), and steps run one after the other in a process.
_CONTEXT: list = []
_LOCK = threading.RLock()


def gx_context():
    """The process's GX context, created on first use: ephemeral (its stores in memory),
    no analytics, no progress bars. Data Docs sites are added to it as they are needed."""
    with _LOCK:
        if not _CONTEXT:
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False),
            )
            _CONTEXT.append(gx.get_context(mode="ephemeral", project_config=config))
        return _CONTEXT[0]


def _data_asset(context, name: str):
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    return (
        asset.batch_definitions[0]
        if asset.batch_definitions
        else (asset.add_batch_definition_whole_dataframe("frame"))
    )


# Each check's GX validation definition (with its suite and batch definition), made once
# per process while the check stays as written: GX saves them on every add_or_update, which
# costs as much as validating a small frame, and a city's refresh validates the same checks
# for each district in one process. Keyed by GX suite name: a changed check replaces its
# entry, as it replaces the suite in GX's store.
_DEFINITIONS: dict[str, tuple[CheckDef, object]] = {}


def _definition(context, suite: Suite, check: CheckDef):
    import great_expectations as gx

    name = suite.gx_suite_name(check)
    known = _DEFINITIONS.get(name)
    if known is not None and known[0] == check:
        return known[1]
    where = f"{suite.path.name}: check {check.name}"
    expectations = [_gx_expectation(e, i, where) for i, e in enumerate(check.expectations)]
    gx_suite = gx.ExpectationSuite(
        name=name,
        expectations=expectations,
        meta={
            "notes": {
                "format": "markdown",
                "content": [
                    f"**{check.severity}** — {check.description}",
                    f"GX validates: {check.data.describe()}.",
                    *([f"```sql\n{check.data.sql}\n```"] if check.data.sql else []),
                ],
            }
        },
    )
    # GX's add_or_update of a validation definition saves its suite too
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=_data_asset(context, name), suite=gx_suite)
    )
    _DEFINITIONS[name] = (check, definition)
    return definition


def _run_one(context, suite: Suite, check: CheckDef, frame: Frame, run_id) -> tuple:
    where = f"{suite.path.name}: check {check.name}"
    definition = _definition(context, suite, check)
    result = definition.run(
        batch_parameters={"dataframe": frame.df}, result_format=RESULT_FORMAT, run_id=run_id
    )
    outcomes: list[ExpectationOutcome | None] = [None] * len(check.expectations)
    for r in result.results:
        position = r.expectation_config.meta["position"]
        exp = check.expectations[position]
        message = _exception(r.exception_info)
        if message:
            outcomes[position] = ExpectationOutcome(
                exp.label(), False, "could not be evaluated", error=message
            )
            continue
        body = r.result or {}
        outcomes[position] = ExpectationOutcome(
            exp.label(),
            bool(r.success),
            _observed(body),
            evidence=None if r.success else _evidence(frame.df, exp, body),
        )
    missing = [check.expectations[i].label() for i, o in enumerate(outcomes) if o is None]
    if missing:  # GX dropped an expectation: that is not a pass
        raise QualityError(f"{where}: GX returned no result for {missing}")
    return result, outcomes


class DocsBatch:
    """Validation results whose Data Docs pages are published together: GX builds its pages
    in one call per site (each call sets up its renderers and templates again, which
    cost more than a page), the index and the manifest are written once. Until
    `publish`, the results stay in the GX context's store, which renders from it."""

    def __init__(self) -> None:
        self._sites: dict[Path, tuple[list[dict], dict[tuple, object], list[CheckOutcome]]] = {}

    def add(self, docs_dir: Path, entries, results, outcomes) -> None:
        site_entries, site_results, site_outcomes = self._sites.setdefault(
            Path(docs_dir), ([], {}, [])
        )
        site_entries += entries
        site_results.update(results)
        site_outcomes += outcomes

    def publish(self) -> None:
        """Render every added result's page; each outcome with a page gets its share of the
        time in `seconds`."""
        from union_pipeline.quality.datadocs import Site

        if not self._sites:  # every check stood: GX not even imported
            return
        with _LOCK:
            context = gx_context()
            for docs_dir, (entries, results, outcomes) in self._sites.items():
                try:
                    start = time.perf_counter()
                    Site(docs_dir).publish(context, entries, results)
                    share = (time.perf_counter() - start) / max(1, len(entries))
                    for outcome in outcomes:
                        if outcome.page is not None:
                            outcome.seconds += share
                finally:
                    _forget(context, results)
            self._sites.clear()


def validate(
    suite: Suite,
    frames: dict[str, tuple[Frame, float]],
    docs_dir: Path | None = None,
    run_name: str | None = None,
    batch: DocsBatch | None = None,
) -> list[CheckOutcome]:
    """Validate each computed frame with GX; with docs_dir, record it in the Data Docs site,
    at once or, given a `batch`, when the batch is published (the outcomes' `seconds`
    then get their pages' share there)."""
    from great_expectations.core.run_identifier import RunIdentifier

    from union_pipeline.quality.datadocs import PageRef, Site

    site = Site(docs_dir) if docs_dir is not None else None
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    outcomes: list[CheckOutcome] = []
    entries: list[dict] = []
    results: dict[tuple, object] = {}
    # without a batch of the caller's, the pages are published by one of this call's
    own = batch is None and site is not None
    batch = (DocsBatch() if own else batch) if site is not None else None
    handed = False  # the results to the batch, which forgets them once published
    with _LOCK:
        context = gx_context()
        try:
            for check in suite.checks:
                if check.name not in frames:
                    continue
                frame, seconds = frames[check.name]
                start = time.perf_counter()
                if frame.skipped:
                    outcomes.append(
                        CheckOutcome(
                            suite,
                            check,
                            True,
                            frame.note,
                            0,
                            skipped=frame.skipped,
                            seconds=seconds,
                        )
                    )
                    continue
                result, expectations = _run_one(context, suite, check, frame, run_id)
                outcome = CheckOutcome(
                    suite,
                    check,
                    passed=all(e.success for e in expectations),
                    note=frame.note,
                    frame_rows=len(frame.df),
                    expectations=expectations,
                )
                key = _result_key(outcome.gx_suite, run_id)
                results[key] = result
                if site is not None:
                    ref = PageRef(outcome.gx_suite, key)
                    outcome.page, outcome.index = site.root / ref.page, site.index
                    entries.append(
                        {
                            "suite": outcome.gx_suite,
                            "key": list(key),
                            "definition": digest(repr(check)),
                            "table": suite.table,
                            "check": check.name,
                            "severity": check.severity,
                            "description": check.description,
                            "success": outcome.passed,
                            "evaluated": len(expectations),
                            "failed": len(outcome.failures),
                            "run_name": run_name or "",
                            "note": frame.note,
                            "run_time": run_id.run_time.strftime("%Y-%m-%d %H:%M:%S UTC"),
                        }
                    )
                outcome.seconds = seconds + time.perf_counter() - start
                outcomes.append(outcome)
            if batch is not None:
                batch.add(site.root, entries, results, outcomes)
                handed = True
        finally:
            if not handed:
                _forget(context, results)
    if own:
        batch.publish()
    return outcomes


def _forget(context, results: dict[tuple, object]) -> None:
    """Drop this call's results from the context's in-memory store: they are on disk (with
    a site) or in the outcomes, and a long process would otherwise pile them up."""
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

    store = context.validation_results_store
    for key in results:
        with contextlib.suppress(Exception):
            store.remove_key(ValidationResultIdentifier.from_tuple(key))


def _result_key(suite_name: str, run_id) -> tuple[str, ...]:
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=run_id,
        batch_identifier=f"{DATASOURCE}-{suite_name}",
    ).to_tuple()
