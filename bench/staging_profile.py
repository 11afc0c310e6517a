"""Where staging's time goes: each source of a drop loaded as the staging step loads it
(a scratch DuckDB, its referenced sources as views over their Parquet outputs), phase by
phase, against the floor (the bare load of the same files into DuckDB tables of text, as
bench/run.py's FLOOR). A script that prints figures, not a test.

    UNION_PII_KEY=bench-key .venv/bin/python bench/staging_profile.py /tmp/stg/raw
    .venv/bin/python bench/staging_profile.py /tmp/stg/raw --cprofile members

Each source runs in a process of its own, so its peak RSS is its own (Python and the
imports included: the `baseline` line is that much for an empty load). Phases:
  read        reader time (decoding, splitting; in the read-ahead thread, so it overlaps
              landing's cleaning; not part of the sum)
  land        reading + cleaning every cell into the landing table
  skip        blank and totals rows out
  type        the typing pass (dates, amounts, ID numbers; the keyed hashes included);
              since typing runs batch by batch while landing, its time is not in land's
    hmac      of which the keyed hashes of the ID numbers (measured apart when typing
              hashed inline; not in the sum)
  shape       excel_number / oversized_cell on the raw text
  rules       pandera's row rules
  quarantine  the quarantine rows made (masked values), rule failures moved
  repeats     repeats collapsed, superseded, conflicting ones quarantined
  references  reference rules (unknown member, union, ...)
  write       the staging table built, quarantine rows committed, counts
  cpu         CPU seconds of the load, all threads (steadier than wall time on a busy
              machine)
  output      (not load_source) the table written to Parquet as the step does
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from staging_digest import ORDER  # noqa: E402 (the load order, said once for both scripts)

PHASES = ("land", "skip", "type", "shape", "rules", "quarantine", "repeats", "references")


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def floor(raw: Path, source: str) -> dict:
    """bench/run.py's FLOOR for the files of one source folder, in this process."""
    import duckdb
    import fastexcel
    import pyarrow as pa
    import pyarrow.csv as pacsv

    files = sorted(
        p
        for p in (raw / source).glob("*")
        if p.is_file() and p.suffix.lower() in (".csv", ".xlsx", ".xls")
    )
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with duckdb.connect(f"{tmp}/floor.duckdb") as con:
            for i, path in enumerate(files):
                table = f"t{i}"
                if path.suffix.lower() != ".csv":
                    sheet = fastexcel.read_excel(str(path)).load_sheet(0, dtypes="string")
                    arrow = sheet.to_arrow()  # noqa: F841 (DuckDB reads it by name)
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow")
                else:
                    try:
                        con.execute(
                            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', "
                            "all_varchar=true, header=true)"
                        )
                    except duckdb.Error:  # not UTF-8: GBK/GB18030
                        arrow = pacsv.read_csv(
                            path,
                            read_options=pacsv.ReadOptions(encoding="gb18030"),
                            convert_options=pacsv.ConvertOptions(
                                column_types={},
                                strings_can_be_null=False,
                                auto_dict_encode=False,
                            ),
                        )
                        text = pa.schema([(n, pa.string()) for n in arrow.column_names])
                        arrow = arrow.cast(text)
                        con.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow")
                rows += con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            con.execute("CHECKPOINT")
        seconds = time.perf_counter() - started
    return {"source": source, "rows": rows, "floor_s": round(seconds, 3), "peak_mb": _peak_mb()}


@contextmanager
def _timed(times: dict, name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        times[name] = times.get(name, 0.0) + time.perf_counter() - started


def _instrument(load, times: dict) -> None:
    """Wrap load.py's phase functions (module globals, called by name) with timers."""

    def wrap(function, phase):
        def timed(*args, **kwargs):
            with _timed(times, phase):
                return function(*args, **kwargs)

        return timed

    def reader(spec, raw_file):
        batches = original_read(spec, raw_file)
        while True:
            with _timed(times, "read"):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    def quarantine(con, spec, failures_sql, **options):
        # the phase that calls it decides where its time counts; shape and rule
        # failures are moved by load_source itself
        phase = "shape" if "excel_number" in failures_sql or "oversized" in failures_sql else None
        if phase is None and "FROM failures" in failures_sql:
            phase = "quarantine"
        if phase is None:
            return original_quarantine(con, spec, failures_sql, **options)
        with _timed(times, phase):
            return original_quarantine(con, spec, failures_sql, **options)

    def type_(con, spec, today, *rows):
        ids = [c.name for c in spec.columns if c.type == "id_number"]
        if ids and not rows:  # the loader before it typed all rows at once, the keyed
            # hash inline: that hash alone, on the same cells, so its share is known
            with _timed(times, "hmac"):
                con.execute(
                    "SELECT sum(hash(up_person_key(up_id_norm(" + ids[0] + ")))) FROM landing"
                ).fetchall()
        started = time.perf_counter()
        keys = original_type(con, spec, today, *rows)
        times["type"] = times.get("type", 0.0) + time.perf_counter() - started
        if rows:  # typed batch by batch while landing: not counted twice
            times["land"] = times.get("land", 0.0) - (time.perf_counter() - started)
        return keys

    original_read, original_quarantine, original_type = (
        load.read_batches,
        load._quarantine,
        load._type,
    )
    load.read_batches = reader
    load._quarantine = quarantine
    load._type = type_
    load._land = wrap(load._land, "land")
    load._skip = wrap(load._skip, "skip")
    load._apply_row_rules = wrap(load._apply_row_rules, "rules")
    load._resolve_repeats = wrap(load._resolve_repeats, "repeats")
    load._apply_references = wrap(load._apply_references, "references")
    if hasattr(load, "_write_quarantine"):  # not in the loader before it (git history)
        load._write_quarantine = wrap(load._write_quarantine, "quarantine")


class _Timed:
    """A connection whose statements that fill `person_keys` (the keyed hashes) are
    timed as `hmac`; anything else goes to the connection itself."""

    def __init__(self, con, times: dict):
        self._con, self._times = con, times

    def execute(self, sql, *args):
        if not sql.lstrip().startswith("INSERT INTO person_keys"):
            return self._con.execute(sql, *args)
        with _timed(self._times, "hmac"):
            return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def one(raw: Path, source: str, outputs: Path, as_of: dt.date, profile: bool) -> dict:
    """Load one source as the staging step does; its referenced sources' outputs as views."""
    from union_pipeline.ingest import load
    from union_pipeline.ingest.specs import load_specs
    from union_pipeline.warehouse import create_views, scratch

    spec = load_specs()[source]
    key = os.environ.get("UNION_PII_KEY", "bench-key").encode()
    baseline = _peak_mb()
    times: dict = {}
    _instrument(load, times)
    with scratch(outputs / "spill") as con:
        create_views(
            con, {f"staging.{r.source}": outputs / f"{r.source}.parquet" for r in spec.references}
        )
        profiler = cProfile.Profile() if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        result = load.load_source(
            _Timed(con, times), spec, raw, as_of, key, today=dt.date(2026, 12, 1)
        )
        if profiler:
            profiler.disable()
        total, cpu = time.perf_counter() - started, time.process_time() - cpu
        with _timed(times, "output"):
            con.execute(
                f"COPY staging.{source} TO '{outputs / source}.parquet' "
                "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
            )
    out = {
        "source": source,
        "rows": result.read,
        "total_s": round(total, 3),
        "cpu_s": round(cpu, 3),
        **{k: round(v, 3) for k, v in times.items()},
        "peak_mb": _peak_mb(),
        "baseline_mb": baseline,
    }
    out["write"] = round(total - sum(times.get(p, 0) for p in PHASES), 3)
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        out["cprofile"] = text.getvalue()
    return out


def _child(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--as-of", default="2020-09-30")
    parser.add_argument("--sources", default=",".join(ORDER), help="comma-separated")
    parser.add_argument("--cprofile", metavar="SOURCE", help="print cProfile's top for it")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--outputs", type=Path, help="(internal) the Parquet outputs folder")
    parser.add_argument("--one", help="(internal) load this source, print JSON")
    parser.add_argument("--floor-of", help="(internal) the floor of this source, print JSON")
    args = parser.parse_args()
    raw = args.raw.resolve()
    if args.one:
        as_of = dt.date.fromisoformat(args.as_of)
        print(json.dumps(one(raw, args.one, args.outputs, as_of, args.one == args.cprofile)))
        return
    if args.floor_of:
        print(json.dumps(floor(raw, args.floor_of)))
        return
    wanted = args.sources.split(",")
    header = (
        f"{'source':<24}{'rows':>10}{'floor':>7}{'total':>7}{'x':>6}{'cpu':>6} "
        + "".join(f"{p[:6]:>7}" for p in (*PHASES, "write"))
        + f"{'read':>7}{'hmac':>7}{'output':>7}{'peakMB':>8}{'flrMB':>7}"
    )
    print(header)
    sums = {"floor_s": 0.0, "total_s": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for source in ORDER:  # every source is loaded: later ones reference earlier ones
            run = _child([str(raw), "--one", source, "--outputs", tmp, "--as-of", args.as_of])
            if args.cprofile == source:  # a second run: the profiler slows the first
                extra = ["--cprofile", source]
                profiled = _child([str(raw), "--one", source, "--outputs", tmp, *extra])
                run["cprofile"] = profiled["cprofile"]
            if source not in wanted:
                continue
            base = {"floor_s": 0.0, "peak_mb": 0}
            if not args.no_floor:
                base = _child([str(raw), "--floor-of", source])
            ratio = run["total_s"] / base["floor_s"] if base["floor_s"] else 0
            sums["floor_s"] += base["floor_s"]
            sums["total_s"] += run["total_s"]
            print(
                f"{source:<24}{run['rows']:>10,}{base['floor_s']:>7.2f}{run['total_s']:>7.2f}"
                f"{ratio:>6.1f}{run['cpu_s']:>6.2f} "
                + "".join(f"{run.get(p, 0):>7.2f}" for p in (*PHASES, "write"))
                + f"{run.get('read', 0):>7.2f}{run.get('hmac', 0):>7.2f}"
                f"{run.get('output', 0):>7.2f}{run['peak_mb']:>8}{base['peak_mb']:>7}",
                flush=True,
            )
            if "cprofile" in run:
                print(run["cprofile"])
    ratio = sums["total_s"] / sums["floor_s"] if sums["floor_s"] else 0
    print(
        f"{'all':<24}{'':>10}{sums['floor_s']:>7.2f}{sums['total_s']:>7.2f}{ratio:>6.1f}"
        f"   (baseline of a process: {run['baseline_mb']} MB)"
    )


if __name__ == "__main__":
    main()
