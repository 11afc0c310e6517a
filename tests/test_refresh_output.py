"""What a person reads after `python -m union_pipeline.refresh`: a line per stage, each
source's counts, the warehouse and, last, the exports; a refused file as one line naming
the source, the file and what is wrong, no traceback. Dagster's events go to the instance
and a log file, on the terminal only with --verbose. Real refreshes in subprocesses, as
`./dev refresh` runs them: one good, one with a refused file, that one again verbose."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest

from tests.drops import MEMBER_HEADER, write_csv
from union_pipeline.assetkit.outputs import latest

DISTRICT = "330211"
MAX_LINES = 60
BROKEN = "members/zz-broken.csv"


@pytest.fixture(scope="module")
def refreshes(district_state):
    """The three refreshes of one small demo drop, and their environment: the good one is
    the session's shared refresh (the same command, on a fresh instance)."""
    good = district_state.output
    raw = district_state.use() / "raw"
    # a members file without its join date column: the whole file is refused
    write_csv(raw / BROKEN, [h for h in MEMBER_HEADER if h != "入会日期"], [["M1"] * 9])
    bad = district_state.refresh()
    verbose = district_state.refresh("--verbose")
    return {"env": district_state.process_env(), "good": good, "bad": bad, "verbose": verbose}


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    return (done.stdout + done.stderr).splitlines()


def _no_dagster_events(lines: list[str]) -> None:
    for line in lines:
        assert "DEBUG" not in line and " - dagster - " not in line, line
        assert "STEP_START" not in line and "RUN_START" not in line, line


def _instance(env: dict, monkeypatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # dagster.yaml reads it
    return dg.DagsterInstance.get()


def test_a_refresh_prints_stages_counts_and_ends_with_the_exports(refreshes, monkeypatch):
    done, env = refreshes["good"], refreshes["env"]
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _lines(done)
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    _no_dagster_events(lines)
    for stage in ("raw", "staging", "checks", "marts", "warehouse", "reports"):
        assert any(line.split()[:1] == [stage] for line in lines), stage
    # each source with the counts its materialization recorded
    with _instance(env, monkeypatch) as instance:
        for source in ("members", "unions", "mutual_aid_enrollments", "loans", "training"):
            found = latest(instance, dg.AssetKey(["staging", source]), DISTRICT)
            counts = [found.metadata[k].value for k in ("rows_read", "rows_loaded")]
            counts.append(found.metadata["rows_quarantined"].value)
            assert counts[0] > 0
            expected = [source, *(f"{n:,}" for n in counts)]
            assert any(line.split() == expected for line in lines), (expected, lines)
    assert any(line.strip().startswith(f"warehouse: {env['UNION_WAREHOUSE']}") for line in lines)
    log = next(line for line in lines if line.startswith("log: ")).split()[1]
    assert Path(log).parent == Path(env["DAGSTER_HOME"]) / "logs"
    assert "STEP_SUCCESS" in Path(log).read_text(encoding="utf-8")  # Dagster's events, there
    assert lines[-1].startswith("exports: ")
    exports = Path(lines[-1].removeprefix("exports: "))
    assert exports.parent == Path(env["UNION_EXPORT_DIR"])
    assert list(exports.glob("dashboard-*.html"))


def test_a_refused_file_ends_the_output_with_one_line_and_no_traceback(refreshes, monkeypatch):
    done, env = refreshes["bad"], refreshes["env"]
    assert done.returncode == 1, done.stdout + done.stderr
    lines = _lines(done)
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert "Traceback" not in done.stdout + done.stderr
    _no_dagster_events(lines)
    # the step failed with the loader's message as a dg.Failure: no chained FileError
    with _instance(env, monkeypatch) as instance:
        run = instance.get_runs(limit=1)[0]
        failures = [
            r.event_log_entry.dagster_event.step_failure_data
            for r in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            ).records
        ]
    assert len(failures) == 1 and failures[0].error.cause is None
    message = failures[0].user_failure_data.description
    assert message.startswith(f"{BROKEN}: required column 入会日期 (join_date) is missing")
    last = lines[-1]
    assert last.startswith("FAILED refresh_all 330211: staging/members: ")
    assert last.endswith(message.splitlines()[0])
    assert any(line.startswith("log: ") for line in lines[-3:])


def test_verbose_prints_dagsters_events(refreshes):
    done = refreshes["verbose"]
    assert done.returncode == 1
    assert "DEBUG" in done.stderr and "STEP_FAILURE" in done.stderr
    assert done.stdout.splitlines()[-1].startswith("FAILED refresh_all 330211: staging/members")


def test_the_export_browsers_own_complaints_go_to_the_log_not_the_terminal(tmp_path, capsys):
    """choreographer logs a message cut short as Chromium closes at exit ("JSONError
    decoding message. Ignoring", with its traceback): Python would print it on the
    terminal, after the refresh's last line."""
    import logging

    from union_pipeline.refresh import _libraries_logged_to

    log_file = tmp_path / "refresh.log"
    with open(log_file, "a", encoding="utf-8") as log, _libraries_logged_to(log):
        try:
            raise RuntimeError("cut short")
        except RuntimeError:
            logging.getLogger("choreographer.channels.pipe").exception("JSONError decoding")
    out = capsys.readouterr()
    assert "JSONError" not in out.out + out.err
    assert "JSONError decoding" in log_file.read_text(encoding="utf-8")
    assert logging.getLogger("choreographer").propagate  # as it was, after the refresh
