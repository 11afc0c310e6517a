"""Static export (PNG, SVG, PDF) through kaleido 1.x and the system's Chromium, one browser.

kaleido drives a Chrome over the DevTools protocol. Here it must be the system's browser
(Debian: `apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei`): nothing may download
one. These traps decide the shape of this module (measured on the project machines):

- `fig.write_image` starts a browser per call (~2.6 s a chart). So one browser, started
  once per process (in the background: `start_browser()`) and kept (stopped at exit),
  renders every file, all of a step's files in one batch.
- kaleido reloads the page (and plotly.js) after every render, ~0.4 s, more than the render
  itself; here a tab is reloaded every RELOAD_EVERY renders only (`_kaleido_class`).
- A browser started on a missing path, or one that stopped answering, would hang the next
  export for ever. So the browser path is checked here first, every call to the browser
  has a time limit, and without a browser or CJK fonts nothing is started: the caller
  writes the HTML only and says once what to install.
- A chart is drawn by plotly once, as SVG (`render`); its PNG is that SVG drawn on a
  canvas (`rasterize`: what plotly.js itself does for a PNG, the same pixels, half the
  cost), and a PDF of many pages is one print of one HTML page (`print_pdf`: the SVGs as
  images, a page each), not a PDF per chart put together.
- With a CFF (OpenType/PostScript) CJK font such as Noto Sans CJK, Chromium embeds Type3
  fonts whose text extracts wrongly (工 as ⼯ U+2F2F, digits as NUL): the PDF cannot be
  searched or copied from. A TrueType CJK font (fonts-wqy-zenhei) is embedded as Type0 with
  a ToUnicode map, so theme.yaml names it first; `pdf_text_font()` says whether it is there.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import plotly

from union_pipeline.machine import (  # noqa: F401 (the export's names for them)
    BROWSER_NAMES,
    INSTALL_HINT,
    TEXT_FONT,
    find_browser,
    has_cjk_font,
    pdf_text_font,
    static_export_problem,
)

log = logging.getLogger(__name__)

# fonts-wqy-zenhei: TrueType, so the PDF text is real text (see above)
RENDER_TIMEOUT_SECONDS = 60
START_TIMEOUT_SECONDS = 120
# one tab: on the 2-core machines measured, a second tab (its own plotly.js to load) made
# the browser's start 1.5-3 s slower and the batch no faster (scale 1: 26 charts)
PARALLEL_TABS = 1
RELOAD_EVERY = 50  # renders of a tab between page reloads (see _kaleido_class)

_lock = threading.Lock()
_browser: _Browser | None = None
_atexit_registered = False
_broken: str | None = None  # a render timed out: the server's queue is stuck for good
_warned: set[str] = set()


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


def _kaleido_class():
    """kaleido.Kaleido without the page reload after every render.

    kaleido reloads a tab's page (and with it the 4 MB plotly.js) after each figure: ~0.4 s
    a render, more than the render itself. A PNG or SVG render leaves nothing behind
    (plotly.js draws in a scratch element it purges), so a tab is handed back as it is and
    reloaded only every RELOAD_EVERY renders (bounded memory in a long process). Should
    kaleido rename the hook, the override is simply not called: slower, never wrong.
    """
    import kaleido

    class Kaleido(kaleido.Kaleido):
        _renders = 0

        async def _return_kaleido_tab(self, tab) -> None:
            self._renders += 1
            queue = getattr(self, "tabs_ready", None)
            if queue is None or self._renders % RELOAD_EVERY == 0:
                await super()._return_kaleido_tab(tab)
            else:
                await queue.put(tab)

    return Kaleido


class _Browser:
    """One Chromium (through kaleido) for the process, on an event loop in its own thread.

    Renders and PDF prints are coroutines run on that loop; every call has a time limit,
    so a browser that died or stopped answering fails the export instead of hanging it.
    """

    def __init__(self, path: str):
        self.path = path
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.kaleido = None
        self.error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="export-browser", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # noqa: BLE001 - reported to the next caller
            self.error = err
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # plotly.js from the installed plotly, no MathJax: no request leaves the machine
        async with _kaleido_class()(
            n=PARALLEL_TABS,
            timeout=RENDER_TIMEOUT_SECONDS,
            plotlyjs=_plotlyjs(),
            mathjax=False,
            path=self.path,
        ) as k:
            self.kaleido = k
            self.ready.set()
            await self._stop.wait()

    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def call(self, make_coroutine, timeout: float):
        """Run `make_coroutine(kaleido)` on the browser's loop; its result."""
        global _broken
        if not self.ready.wait(START_TIMEOUT_SECONDS):
            _broken = f"the browser did not start within {START_TIMEOUT_SECONDS} s"
            raise TimeoutError(f"static export: {_broken}")
        if self.error is not None or self.kaleido is None:
            raise RuntimeError(f"static export: the browser did not start: {self.error!r}")
        future = asyncio.run_coroutine_threadsafe(make_coroutine(self.kaleido), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            _broken = f"no answer within {timeout:.0f} s"
            raise TimeoutError(
                f"static export: the browser gave no answer in {timeout:.0f} s"
            ) from None

    def stop(self, timeout: float = 20) -> None:
        if self.loop is not None and self._stop is not None and self.thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)


def start_browser() -> bool:
    """Start the shared browser in the background (no wait); False where export cannot run.

    Called early by the chart step, so Chromium starts while the figures are built.
    """
    global _browser
    browser = find_browser()
    if browser is None or _broken:
        return False
    with _lock:
        if _browser is not None and _browser.path == browser and _browser.alive():
            return True
    if static_export_problem():
        return False
    with _lock:
        if _browser is not None and _browser.path == browser and _browser.alive():
            return True
        if _browser is not None:  # the browser died (its thread ended): start a new one
            _browser.stop(timeout=5)
        _browser = _Browser(browser)
        if not _atexit_registered:
            _register_atexit()
    return True


def _register_atexit() -> None:
    global _atexit_registered
    atexit.register(stop_server)
    _atexit_registered = True


def _ensure_server() -> _Browser:
    """The shared browser, started on the checked path if it is not running."""
    browser = find_browser()
    if browser is None:  # never start it on a missing path: the next export would hang
        raise RuntimeError(static_export_problem() or "no browser")
    if _broken:
        raise RuntimeError(f"the export browser stopped answering earlier: {_broken}")
    start_browser()
    if _browser is None:
        raise RuntimeError(static_export_problem() or "no browser")
    return _browser


def stop_server() -> None:
    """Stop the shared browser (tests and benchmarks; else it stops at exit)."""
    global _browser
    with _lock:
        found, _browser = _browser, None
    if found is not None:
        found.stop()


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


def _figure_dict(figure) -> dict:
    return figure.to_plotly_json() if hasattr(figure, "to_plotly_json") else figure


def render(jobs: list[Job]) -> None:
    """Write every job's file (PNG, SVG, ...) with the shared browser, all in one batch
    (over PARALLEL_TABS tabs). For a PDF of several pages, see `print_pdf`."""
    if not jobs:
        return
    browser = _ensure_server()
    for job in jobs:
        job.path.parent.mkdir(parents=True, exist_ok=True)
    figures: dict[int, dict] = {}  # a figure shared by several jobs is converted once
    specs = [
        {
            "fig": figures.setdefault(id(job.figure), _figure_dict(job.figure)),
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

    async def write(k):
        return await k.write_fig_from_object(specs)

    errors = browser.call(write, timeout=30 + 10 * len(specs))
    if errors:
        raise RuntimeError(f"static export failed for {len(errors)} file(s): {errors[0]!r}")
    missing = [
        str(job.path) for job in jobs if not job.path.is_file() or job.path.stat().st_size == 0
    ]
    if missing:
        raise RuntimeError(f"static export wrote nothing to {missing[:3]}")


def render_bytes(figure, width: int, height: int, scale: float = 1.0, fmt: str = "png") -> bytes:
    """One image in memory, with the shared browser."""
    browser = _ensure_server()
    opts = {"format": fmt, "width": width, "height": height, "scale": scale}

    async def calc(k):
        return await k.calc_fig(_figure_dict(figure), opts=opts)

    return browser.call(calc, timeout=60)


# An SVG drawn on a canvas at `scale`, as a PNG: what plotly.js's own toImage does after
# drawing the figure as SVG, so the pixels are the same as kaleido's PNG of the figure.
RASTER_JS = """async (svg, width, height, scale) => {
  const img = new Image();
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  canvas.getContext('2d').drawImage(img, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL('image/png').slice('data:image/png;base64,'.length);
}"""


@dataclass(frozen=True)
class Raster:
    svg: Path  # an SVG the browser rendered (`render` of a Job to a .svg path)
    png: Path | None  # where the PNG goes; None: only returned
    width: int
    height: int
    scale: float = 1.0


# A preview (a Raster without a file) is the chart as an analyst sees it in Dagster's UI:
# drawn at least PREVIEW_WIDTH px wide (the theme's thumbnail scale leaves its Chinese
# labels unreadable), within PREVIEW_BYTES, since the event log keeps every preview; a
# dense chart (the scorecard's table) is drawn smaller to fit.
PREVIEW_WIDTH = 800
PREVIEW_BYTES = 80_000


def rasterize(rasters: list[Raster]) -> list[bytes]:
    """PNGs of SVGs (in order), drawn by the shared browser over PARALLEL_TABS blank tabs.

    A chart drawn once as SVG (its briefing page) gives its PNG and its preview without
    plotly drawing it again: half the cost of a PNG render. Previews are drawn readable,
    within PREVIEW_BYTES (see there)."""
    rasters = [
        r
        if r.png is not None
        else dataclasses.replace(r, scale=max(r.scale, PREVIEW_WIDTH / r.width))
        for r in rasters
    ]
    images = _rasterize(rasters)
    over = [i for i, r in enumerate(rasters) if r.png is None and len(images[i]) > PREVIEW_BYTES]
    if over:
        # a PNG's size follows its area: the scale that fits, with a margin
        smaller = [
            dataclasses.replace(
                rasters[i], scale=rasters[i].scale * 0.9 * math.sqrt(PREVIEW_BYTES / len(images[i]))
            )
            for i in over
        ]
        for i, image in zip(over, _rasterize(smaller), strict=True):
            images[i] = image
    return images


def _rasterize(rasters: list[Raster]) -> list[bytes]:
    if not rasters:
        return []
    browser = _ensure_server()
    texts = [r.svg.read_text(encoding="utf-8") for r in rasters]

    async def draw(k) -> list[bytes]:
        out: list[bytes | None] = [None] * len(rasters)

        async def worker(indexes: list[int]) -> None:
            tab = await k.create_tab("about:blank")
            try:
                for i in indexes:
                    r = rasters[i]
                    args = json.dumps([texts[i], r.width, r.height, r.scale])
                    response = _checked(
                        await tab.send_command(
                            "Runtime.evaluate",
                            params={
                                "expression": f"({RASTER_JS})(...{args})",
                                "awaitPromise": True,
                                "returnByValue": True,
                            },
                        )
                    )
                    result = response["result"]
                    if "exceptionDetails" in result:
                        raise RuntimeError(
                            f"{r.svg.name}: {result['exceptionDetails'].get('text', 'failed')}"
                        )
                    out[i] = base64.b64decode(result["result"]["value"])
            finally:
                with contextlib.suppress(Exception):
                    await k.close_tab(tab.target_id)

        tabs = max(1, min(PARALLEL_TABS, len(rasters)))
        await asyncio.gather(*(worker(list(range(t, len(rasters), tabs))) for t in range(tabs)))
        return out

    images = browser.call(draw, timeout=30 + 5 * len(rasters))
    for r, image in zip(rasters, images, strict=True):
        if not image or not image.startswith(b"\x89PNG"):
            raise RuntimeError(f"static export: no PNG drawn from {r.svg.name}")
        if r.png is not None:
            r.png.parent.mkdir(parents=True, exist_ok=True)
            partial = r.png.with_name(r.png.name + ".partial")
            partial.write_bytes(image)
            partial.replace(r.png)
    return images


PDF_OPTIONS = {
    "printBackground": True,
    "preferCSSPageSize": True,  # the page size is the HTML's @page
    "marginTop": 0,
    "marginBottom": 0,
    "marginLeft": 0,
    "marginRight": 0,
}


def _checked(response: dict) -> dict:
    if "error" in response:
        raise RuntimeError(f"browser: {response['error']}")
    return response


def print_pdf(html: Path, path: Path, timeout: float = 120) -> Path:
    """Print a local HTML file to one PDF (every page in one go) with the shared browser.

    Images in the page (the charts as SVG) are loaded before the print: the page's load
    event waits for them. Text stays text (vector, copyable).
    """
    browser = _ensure_server()

    async def print_(k) -> bytes:
        tab = await k.create_tab("")
        try:
            loaded = tab.subscribe_once("Page.loadEventFired")
            _checked(await tab.send_command("Page.enable"))
            _checked(await tab.send_command("Page.navigate", params={"url": html.as_uri()}))
            await loaded
            result = _checked(await tab.send_command("Page.printToPDF", params=PDF_OPTIONS))
            return base64.b64decode(result["result"]["data"])
        finally:
            with contextlib.suppress(Exception):
                await k.close_tab(tab.target_id)

    data = browser.call(print_, timeout=timeout)
    if not data.startswith(b"%PDF"):
        raise RuntimeError(f"the browser printed no PDF for {html.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
