"""The DuckDB warehouse: a refresh builds a private copy and swaps it in when complete.

DuckDB lets one process write a file and, while it does, no other process open it. So a
refresh never writes the live file: its first writer copies the live file (or starts an
empty one) to a build file private to the run; the run's last asset `os.replace`s the
build file over the live one. Readers see the previous complete state, then the new
complete state, never a half-built table; a failed run leaves the live file untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

STALE_BUILD_SECONDS = 24 * 3600


def _config() -> dict:
    """DuckDB takes 80% of RAM by default; a refresh that spills to disk beyond a few GB
    leaves the machine to everything else (UNION_DUCKDB_MEMORY, default 3GB)."""
    return {"memory_limit": os.environ.get("UNION_DUCKDB_MEMORY") or "3GB"}


class Warehouse:
    def __init__(self, live: Path):
        self.live = Path(live)

    def build_path(self, run_id: str) -> Path:
        return self.live.with_name(f".{self.live.stem}.build-{run_id}{self.live.suffix}")

    def _prepare_build(self, run_id: str) -> Path:
        build = self.build_path(run_id)
        if build.exists():
            return build
        self.live.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_builds()
        if self.live.exists():
            # copy under a temporary name: a crash mid-copy must not look like a build
            partial = build.with_name(build.name + ".partial")
            shutil.copyfile(self.live, partial)
            os.replace(partial, build)
        return build

    def _remove_stale_builds(self) -> None:
        cutoff = time.time() - STALE_BUILD_SECONDS
        for path in self.live.parent.glob(f".{self.live.stem}.build-*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    @contextlib.contextmanager
    def building(self, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to this run's build file."""
        build = self._prepare_build(run_id)
        con = duckdb.connect(
            str(build), config={**_config(), "temp_directory": str(build) + ".tmp"}
        )
        try:
            yield con
        finally:
            con.close()

    def publish(self, run_id: str) -> Path:
        """Atomically make this run's build the live warehouse."""
        build = self.build_path(run_id)
        if not build.exists():
            raise FileNotFoundError(f"{build}: this run built no warehouse to publish")
        with contextlib.closing(duckdb.connect(str(build))) as con:
            con.execute("CHECKPOINT")
        os.replace(build, self.live)
        with contextlib.suppress(FileNotFoundError):
            Path(str(build) + ".wal").unlink()
        shutil.rmtree(str(build) + ".tmp", ignore_errors=True)
        return self.live

    @contextlib.contextmanager
    def reading(self, retry_seconds: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the live warehouse."""
        deadline = time.monotonic() + retry_seconds
        while True:
            try:
                con = duckdb.connect(str(self.live), read_only=True, config=_config())
                break
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            yield con
        finally:
            con.close()
