"""What this machine offers the static export (PNG, PDF): a Chromium and a Chinese font;
and whether a run's worker process still lives.

Apart from the rendering so that the refresh's launch check can ask cheaply, without
importing plotly: a browser or a font installed since the last refresh makes the PNGs and
the briefing owed (`assetkit/unchanged.py`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from union_pipeline.settings import browser_override

INSTALL_HINT = "apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei"
TEXT_FONT = "WenQuanYi Zen Hei"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The Chromium to use: BROWSER_PATH when set (and only it), else one on PATH."""
    override = browser_override()
    candidates = [override] if override else [shutil.which(n) for n in BROWSER_NAMES]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return str(Path(path))
    return None


@functools.lru_cache(maxsize=16)
def _fc_families(pattern: str) -> list[str]:
    """Families fontconfig lists for `pattern` (first name of each), [] without fc-list.

    Asked once per process (~20 ms a call, and every export step asks several times)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        found = subprocess.run(
            [fc_list, pattern, "family"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(",")[0].strip() for line in found.splitlines() if line.strip()]


def has_cjk_font() -> bool:
    """Whether fontconfig knows a font covering Chinese (fonts-wqy-zenhei, fonts-noto-cjk)."""
    return bool(_fc_families(":lang=zh"))


def pdf_text_font() -> str | None:
    """The TrueType Chinese family the PDFs' text extracts exactly with, None without one.

    TEXT_FONT (theme.yaml's first family) when installed, else any TrueType CJK family
    (the theme would then need it named); CFF fonts (Noto Sans CJK) do not count.
    """
    families = _fc_families(":lang=zh:fontformat=TrueType")
    if TEXT_FONT in families:
        return TEXT_FONT
    return families[0] if families else None


def static_export_problem() -> str | None:
    """None when PNG/PDF export can run, else what is missing and what to install."""
    browser = find_browser()
    if browser is None:
        where = (
            f"BROWSER_PATH={browser_override()!r} is not an executable"
            if browser_override()
            else "no chromium on PATH"
        )
        return (
            f"PNG/PDF export skipped: {where}; only the HTML dashboard was written. "
            f"Install the browser and Chinese fonts: `{INSTALL_HINT}`"
        )
    if not has_cjk_font():
        return (
            "PNG/PDF export skipped: no Chinese (CJK) font, labels would render as "
            f"empty boxes; only the HTML dashboard was written. Install: `{INSTALL_HINT}`"
        )
    # a CFF-only machine still exports (the pages look right), only the PDF text is garbled
    return None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def worker_alive(pid: int, started_at: float | None = None) -> bool:
    """Whether process `pid` still runs (not a zombie) and is the run's worker: a process
    that started after the worker recorded its pid is another program with a reused pid.
    (Its command line says nothing: the code server starts workers by multiprocessing.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()  # after "(command)": state is field 3
    if fields[0] in ("Z", "X"):
        return False
    if started_at is None:
        return True
    began = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22
    return began <= started_at + 5
