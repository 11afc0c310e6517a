"""Static export (PNG, PDF) through kaleido 1.x and the system's Chromium, one browser reused.

kaleido drives a Chrome over the DevTools protocol. Here it must be the system's browser
(Debian: `apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei`): nothing may download
one. Three traps decide the shape of this module (measured on the project machines):

- `fig.write_image` starts a browser per call (~2.6 s a chart); one sync server started
  once per process renders a chart in ~0.2 s. So one server, started on first use and kept
  for the process (kaleido stops it at exit).
- `kaleido.start_sync_server(path=<missing>)` returns normally and the next export hangs
  for ever. So the browser path is checked here first, and without a browser or CJK fonts
  nothing is started: the caller writes the HTML only and says once what to install.
- With a CFF (OpenType/PostScript) CJK font such as Noto Sans CJK, Chromium embeds Type3
  fonts whose text extracts wrongly (工 as ⼯ U+2F2F, digits as NUL): the PDF cannot be
  searched or copied from. A TrueType CJK font (fonts-wqy-zenhei) is embedded as Type0 with
  a ToUnicode map, so theme.yaml names it first; `pdf_text_font()` says whether it is there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import plotly

log = logging.getLogger(__name__)

# fonts-wqy-zenhei: TrueType, so the PDF text is real text (see above)
INSTALL_HINT = "apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei"
TEXT_FONT = "WenQuanYi Zen Hei"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RENDER_TIMEOUT_SECONDS = 60
PARALLEL_TABS = 2

_lock = threading.Lock()
_server_browser: str | None = None
_broken: str | None = None  # a render timed out: the server's queue is stuck for good
_warned: set[str] = set()


def find_browser() -> str | None:
    """The Chromium to use: BROWSER_PATH when set (and only it), else one on PATH."""
    override = os.environ.get("BROWSER_PATH")
    candidates = [override] if override else [shutil.which(n) for n in BROWSER_NAMES]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return str(Path(path))
    return None


def _fc_families(pattern: str) -> list[str]:
    """Families fontconfig lists for `pattern` (first name of each), [] without fc-list."""
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
            f"BROWSER_PATH={os.environ['BROWSER_PATH']!r} is not an executable"
            if os.environ.get("BROWSER_PATH")
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


def warn_once(message: str, logger=None) -> bool:
    """Log `message` once per process (the refresh says it once, not per chart)."""
    with _lock:
        if message in _warned:
            return False
        _warned.add(message)
    (logger or log).warning(message)
    return True


def _plotlyjs() -> str:
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: plotly's bundled plotly.js is missing")
    return str(path)


def _ensure_server() -> None:
    """Start kaleido's sync server once per process on the checked browser."""
    global _server_browser
    import kaleido
    import plotly.io as pio

    browser = find_browser()
    if browser is None:  # never start it on a missing path: the next export would hang
        raise RuntimeError(static_export_problem() or "no browser")
    if _broken:
        raise RuntimeError(f"the export browser stopped answering earlier: {_broken}")
    with _lock:
        server = kaleido._global_server
        if _server_browser is not None and server.is_running():
            if getattr(server, "_thread", None) is not None and server._thread.is_alive():
                return
            # the browser died (its thread ended): forget it and start a new one
            server._initialized = False
        with contextlib.suppress(AttributeError):
            pio.defaults.headers = None  # else a warning per call
        # plotly.js from the installed plotly, no MathJax: no request leaves the machine
        kaleido.start_sync_server(
            n=PARALLEL_TABS,
            timeout=RENDER_TIMEOUT_SECONDS,
            plotlyjs=_plotlyjs(),
            mathjax=False,
            path=browser,
            silence_warnings=True,
        )
        _server_browser = browser


def stop_server() -> None:
    """Stop the shared browser (tests and benchmarks; a refresh lets kaleido stop it at exit)."""
    global _server_browser
    import kaleido

    with _lock:
        kaleido.stop_sync_server(silence_warnings=True)
        _server_browser = None


@dataclass(frozen=True)
class Job:
    figure: object  # a plotly figure or its dict
    path: Path
    width: int
    height: int
    scale: float = 1.0

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".").lower()


def render(jobs: list[Job]) -> None:
    """Write every job's file with the shared browser (tabs work in parallel)."""
    if not jobs:
        return
    import kaleido

    _ensure_server()
    for job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    specs = [
        {
            "fig": job.figure,
            "path": str(job.path),
            "opts": {
                "format": job.format,
                "width": job.width,
                "height": job.height,
                "scale": job.scale,
            },
        }
        for job in jobs
    ]
    errors = _call(kaleido.write_fig_from_object_sync, specs, timeout=30 + 10 * len(specs))
    if errors:
        raise RuntimeError(f"static export failed for {len(errors)} file(s): {errors[0]!r}")
    missing = [
        str(job.path) for job in jobs if not job.path.is_file() or job.path.stat().st_size == 0
    ]
    if missing:
        raise RuntimeError(f"static export wrote nothing to {missing[:3]}")


def render_bytes(figure, width: int, height: int, scale: float = 1.0, fmt: str = "png") -> bytes:
    """One image in memory (the metadata thumbnail), with the shared browser."""
    import kaleido

    _ensure_server()
    opts = {"format": fmt, "width": width, "height": height, "scale": scale}
    return _call(kaleido.calc_fig_sync, figure, opts=opts, timeout=60)


def _call(function, *args, timeout: float, **kwargs):
    """Call the sync server, but give up after `timeout` seconds instead of hanging.

    kaleido's sync calls wait on a queue without a limit: a browser that died at start
    or stopped answering would hang the refresh for ever.
    """
    global _broken
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            outcome["error"] = err

    with _lock:
        worker = threading.Thread(target=run, name="kaleido-call", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _broken = f"no answer within {timeout:.0f} s"
            raise TimeoutError(f"static export: the browser gave no answer in {timeout:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
