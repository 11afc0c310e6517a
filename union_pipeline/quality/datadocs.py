"""The Data Docs site: GX's pages, made readable offline, under an index of our own.

Layout of `<export dir>/data_docs/`:

    index.html        every suite, grouped by table: latest verdict, history, links
    validations/...   GX's page of each validation result (one per check and refresh)
    expectations/...  GX's page of each suite
    static/           GX's styles, plus offline.css
    gx/               each validation result as GX's JSON (the site's source), the
                      manifest of what the index shows

GX renders the pages through its public `context.build_data_docs` (one context per process,
`validate.gx_context`, with this folder as one of its docs sites), for the new results only.

GX's pages load jQuery, Bootstrap, fonts and a logo (tagged with the project's id) from
CDNs, and GX's index draws its table in JavaScript from them: offline it is empty. So the
pages are stripped of remote resources and scripts (their content is plain HTML), and the
index is written here as static HTML.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GX_DIR = "gx"
MANIFEST = "docs-manifest.json"
KEEP_RESULTS = 20  # validation results kept per suite; older ones and their pages go
SITE_NAME = "union_pipeline"

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S | re.I)
_REMOTE_LINK = re.compile(r"<link\b[^>]*href=\"https?://[^\"]*\"[^>]*>", re.I)
_REMOTE_IMG = re.compile(r"<img\b[^>]*src=\"https?://[^\"]*\"[^>]*>", re.I)
_REMOTE_URL = re.compile(r"url\(\s*['\"]?https?://[^)]*\)", re.I)  # in inline styles

OFFLINE_CSS = """\
/* union_pipeline: the pages without their CDN styles (offline) */
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 1.5em;
       color: #222; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .25em .6em; vertical-align: top; text-align: left; }
footer { display: none; }
nav { margin-bottom: 1em; }
.fas, .fa { font-style: normal; }
.fa-check-circle::before, .fa-check::before { content: "✔"; color: #1a7f37; }
.fa-times::before, .fa-times-circle::before, .fa-exclamation-triangle::before {
  content: "✘"; color: #cf222e; }
.fa-info-circle::before { content: "ⓘ"; }
.ok { color: #1a7f37; } .fail { color: #cf222e; } .muted { color: #777; font-size: .9em; }
"""


@dataclass
class PageRef:
    """Where a validation result's page is, relative to the site root."""

    suite: str
    key: tuple[str, ...]

    @property
    def page(self) -> str:
        *head, last = self.key
        return "/".join(["validations", *head, f"{last}.html"])

    @property
    def stored(self) -> str:
        return "/".join(["validations", *self.key]) + ".json"


def suite_page(suite: str) -> str:
    *head, last = suite.split(".")
    return "/".join(["expectations", *head, f"{last}.html"])


def make_offline(page: Path, root: Path) -> None:
    """Drop scripts and remote resources from a GX page; add the local stylesheet."""
    text = page.read_text(encoding="utf-8")
    text = _SCRIPT.sub("", text)
    text = _REMOTE_LINK.sub("", text)
    text = _REMOTE_IMG.sub("", text)
    text = _REMOTE_URL.sub("none", text)
    prefix = "../" * (len(page.relative_to(root).parts) - 1)
    link = f'<link rel="stylesheet" href="{prefix}static/styles/offline.css">'
    if "offline.css" not in text:
        text = text.replace("</head>", f"{link}\n</head>", 1)
    page.write_text(text, encoding="utf-8")


class Site:
    """The Data Docs site in `root`, built by the process's GX context (`gx_context`).

    GX renders the pages (`build_data_docs`, one call per check step: `validate.DocsBatch`);
    the results are kept as JSON under gx/ (the site's source, bounded by KEEP_RESULTS per
    suite), the index is ours.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.gx_root = self.root / GX_DIR
        # one GX context serves every site of the process: each site is a docs site of it
        self.name = f"{SITE_NAME}_{hashlib.sha256(str(self.root).encode()).hexdigest()[:12]}"

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    @property
    def config(self) -> dict:
        return {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(self.root),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The site to oneself: two runs (processes) may publish to it at once."""
        self.gx_root.mkdir(parents=True, exist_ok=True)
        with open(self.gx_root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def publish(self, context, entries: list[dict], results: dict[tuple, object]) -> None:
        """Render the new results' pages, make them offline, keep the results, record them,
        rewrite the index.

        `context`: the GX context whose validation results store holds `results`.
        `entries`: one dict per validation: suite, key (the result's identifier tuple),
        definition (a digest of the suite), table, check, severity, description, success,
        evaluated, failed, run_name, run_time, note. `results`: key -> GX's result.
        """
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        if not entries:
            return
        with self.locked():
            known = self._manifest().get("suites", {})
            identifiers: list = [
                ValidationResultIdentifier.from_tuple(tuple(e["key"])) for e in entries
            ]
            # a suite's own page only when it is new or its definition changed
            identifiers += [
                ExpectationSuiteIdentifier(name=e["suite"])
                for e in entries
                if known.get(e["suite"], {}).get("definition") != e.get("definition")
                or not (self.root / suite_page(e["suite"])).exists()
            ]
            if self.name not in context.list_data_docs_sites():
                context.add_data_docs_site(self.name, self.config)
            # GX's own index draws its table with JavaScript from CDNs: ours replaces it
            context.build_data_docs(
                site_names=[self.name], resource_identifiers=identifiers, build_index=False
            )
            self._write_css()
            for e in entries:
                for relative in (PageRef(e["suite"], tuple(e["key"])).page, suite_page(e["suite"])):
                    page = self.root / relative
                    if page.exists():
                        make_offline(page, self.root)
                ref = PageRef(e["suite"], tuple(e["key"]))
                stored = self.gx_root / ref.stored
                stored.parent.mkdir(parents=True, exist_ok=True)
                stored.write_text(
                    json.dumps(results[tuple(e["key"])].to_json_dict(), ensure_ascii=False),
                    encoding="utf-8",
                )
            manifest = self._record(entries)
            self.index.write_text(render_index(manifest), encoding="utf-8")

    def _manifest(self) -> dict:
        path = self.gx_root / MANIFEST
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def _write_css(self) -> None:
        css = self.root / "static" / "styles" / "offline.css"
        css.parent.mkdir(parents=True, exist_ok=True)
        if not css.exists() or css.read_text(encoding="utf-8") != OFFLINE_CSS:
            css.write_text(OFFLINE_CSS, encoding="utf-8")

    def _record(self, entries: list[dict]) -> dict:
        path = self.gx_root / MANIFEST
        manifest = self._manifest()
        suites = manifest.setdefault("suites", {})
        for e in entries:
            info = suites.setdefault(e["suite"], {})
            info.update({k: e[k] for k in ("table", "check", "severity", "description")})
            info["definition"] = e.get("definition")
            result = {
                k: e[k] for k in ("success", "evaluated", "failed", "run_name", "run_time", "note")
            }
            result["key"] = list(e["key"])
            result["page"] = PageRef(e["suite"], tuple(e["key"])).page
            results = [result, *info.get("results", [])]
            for old in results[KEEP_RESULTS:]:  # forget the oldest: page and stored result
                ref = PageRef(e["suite"], tuple(old["key"]))
                (self.root / ref.page).unlink(missing_ok=True)
                (self.gx_root / ref.stored).unlink(missing_ok=True)
            info["results"] = results[:KEEP_RESULTS]
        manifest["updated"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        return manifest


def _mark(success: bool) -> str:
    return '<span class="ok">✔</span>' if success else '<span class="fail">✘</span>'


def render_index(manifest: dict) -> str:
    """The site's front page: static HTML, every suite with its latest verdict and history."""
    e = html.escape
    by_table: dict[str, list[tuple[str, dict]]] = {}
    for name, info in sorted(manifest.get("suites", {}).items()):
        by_table.setdefault(info["table"], []).append((name, info))
    failing = sum(
        1
        for info in manifest.get("suites", {}).values()
        if info["results"] and not info["results"][0]["success"]
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        "<title>数据质量 Data Docs — union-pipeline</title>",
        '<link rel="stylesheet" href="static/styles/offline.css"></head><body>',
        "<h1>数据质量检查 Data quality — Great Expectations</h1>",
        f'<p class="muted">Updated {e(manifest.get("updated", ""))}. '
        f"{len(manifest.get('suites', {}))} suites, {failing} failing at their latest run. "
        "error = blocks what depends on the table; warn = alerts the analyst.</p>",
    ]
    for table, suites in sorted(by_table.items()):
        out.append(f'<h2 id="{e(table)}">{e(table)}</h2>')
        out.append(
            "<table><thead><tr><th>status</th><th>suite</th><th>severity</th>"
            "<th>what it guards</th><th>latest run</th><th>evidence</th><th>history</th>"
            "</tr></thead><tbody>"
        )
        for name, info in suites:
            results = info["results"]
            latest = results[0]
            history = " ".join(
                f'<a href="{e(r["page"])}" title="{e(r["run_time"])}">'
                f"{'✔' if r['success'] else '✘'}</a>"
                for r in results[1:]
            )
            verdict = (
                f"{latest['evaluated'] - latest['failed']}/{latest['evaluated']} expectations met"
            )
            out.append(
                f'<tr class="suite" data-suite="{e(name)}">'
                f"<td>{_mark(latest['success'])}</td>"
                f'<td><a href="{e(suite_page(name))}">{e(name)}</a></td>'
                f"<td>{e(info['severity'])}</td>"
                f"<td>{e(info['description'])}</td>"
                f'<td><a href="{e(latest["page"])}">{e(latest["run_time"])}</a><br>'
                f'<span class="muted">run {e(latest["run_name"])}</span></td>'
                f'<td>{e(verdict)}<br><span class="muted">{e(latest.get("note") or "")}'
                f"</span></td>"
                f"<td>{history}</td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
