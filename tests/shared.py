"""Work done once per session and shared: a refreshed district, restored before each use.

A refresh records absolute paths (output folders, the raw files, the exports) and the
identity of the published files in the instance, so a refreshed state is restored where it
was made, not copied elsewhere: the folder is saved once after the refresh and put back, as
it was, before each test that uses it. The published DuckDB files are hard links to the
saved ones (a publish replaces a live file, it never writes into one), so the identity the
pipeline recorded (inode, size, time) still holds; everything else is copied with its times.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _link_or_copy(source: str, target: str) -> None:
    if source.endswith(".duckdb"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)


class SavedState:
    """A folder saved once and put back, at the same path, before each use."""

    def __init__(self, root: Path):
        self.root = root
        self.saved = root.with_name(f"{root.name}.saved")
        self.in_use = False

    def save(self) -> None:
        shutil.copytree(self.root, self.saved, copy_function=_link_or_copy, symlinks=True)

    def use(self) -> Path:
        """The folder as it was saved; the caller may change it (the next use restores it)."""
        if self.in_use:
            shutil.rmtree(self.root)
            shutil.copytree(self.saved, self.root, copy_function=_link_or_copy, symlinks=True)
        self.in_use = True
        return self.root


class RefreshedDistrict(SavedState):
    """The small demo drop (`demo_source`) after `python -m union_pipeline.refresh`, as
    `./dev refresh` runs it: one run of `refresh_all` with every asset, reports included.
    root/raw, root/warehouse/union.duckdb, root/exports and root/home (DAGSTER_HOME)."""

    def __init__(self, root: Path, pii_key: str):
        super().__init__(root)
        self.raw = root / "raw"
        self.live = root / "warehouse" / "union.duckdb"
        self.exports = root / "exports"
        self.home = root / "home"
        self.pii_key = pii_key
        self.output: subprocess.CompletedProcess | None = None
        self.run_id: str | None = None

    def env(self) -> dict[str, str]:
        return {
            "UNION_RAW_DIR": str(self.raw),
            "UNION_WAREHOUSE": str(self.live),
            "UNION_EXPORT_DIR": str(self.exports),
            "DAGSTER_HOME": str(self.home),
            "UNION_PII_KEY": self.pii_key,
        }

    def process_env(self) -> dict[str, str]:
        """A refresh's environment: this state's settings and none of the caller's."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("UNION_")}
        return {**inherited, **self.env()}

    def refresh(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "union_pipeline.refresh", *args],
            env=self.process_env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The state's instance (its dagster.yaml reads DAGSTER_HOME)."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", str(self.home))
            with dg.DagsterInstance.get() as instance:
                yield instance

    def build(self, source: Path) -> None:
        shutil.copytree(source, self.raw)
        self.home.mkdir()
        shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", self.home)
        self.output = self.refresh()
        assert self.output.returncode == 0, self.output.stdout + self.output.stderr
        with self.instance() as instance:
            [run] = instance.get_runs()
            assert run.job_name == "refresh_all" and run.status == dg.DagsterRunStatus.SUCCESS
            self.run_id = run.run_id
        self.save()
