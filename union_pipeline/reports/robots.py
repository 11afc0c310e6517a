"""The briefing to DingTalk and WeCom group robots: signed webhooks, retried, never raising.

- DingTalk custom robot (自定义机器人, security setting 加签): POST a markdown message to its
  webhook with `timestamp` (ms) and `sign` = urlsafe-quoted base64 of HMAC-SHA256 over
  "{timestamp}\\n{secret}" keyed by the secret. A robot cannot send files: the markdown only.
- WeCom group robot (群机器人): the markdown to `.../webhook/send?key=KEY`, then the PDF
  uploaded to `.../webhook/upload_media?key=KEY&type=file` (multipart field `media`, up to
  20 MB) and sent as a file message by its `media_id`.

Both answer JSON with `errcode` (0 = ok). The webhooks come from the settings
(UNION_DINGTALK_WEBHOOK, UNION_DINGTALK_SECRET, UNION_WECOM_WEBHOOK: full URLs, so a test or
a proxy can point them elsewhere). The webhook's token, the key, the sign and the secret
never appear in a result, a log line or an error: only the host and path do.

The text is the district's headline figures from marts.kpi_yearly (aggregates, no person).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from union_pipeline.reports.data import ReportData
from union_pipeline.reports.data import number as _num
from union_pipeline.reports.figures import _target_text, status, target_summary
from union_pipeline.reports.theme import Theme

log = logging.getLogger(__name__)

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 2.0  # then 4 s: both platforms allow 20 messages a minute
TIMEOUT_SECONDS = 20.0
WECOM_MARKDOWN_BYTES = 4096  # WeCom refuses a longer markdown content (UTF-8 bytes)
WECOM_FILE_BYTES = 20 * 1024 * 1024
# query parameters that are credentials: masked wherever a URL could reach a message
_SECRET_PARAMS = re.compile(r"((?:access_token|key|sign|timestamp)=)[^&\s'\"]+", re.I)


class RobotError(Exception):
    """One attempt failed: the reason, already free of credentials."""


@dataclass
class RobotResult:
    channel: str
    sent: bool
    attempts: int
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    skipped: bool = False  # not sendable by this API (a file over 20 MB): not a failure

    @property
    def summary(self) -> str:
        if self.skipped:
            return f"not sent: {self.error}"
        if self.sent:
            return f"sent (attempt {self.attempts})"
        return f"FAILED after {self.attempts} attempt(s): {self.error}"


# ---------------------------------------------------------------------------- URLs


def _url(value: str, default: str, param: str) -> str:
    """A full webhook URL as configured, or a bare token/key on the platform's URL."""
    value = value.strip()
    if "://" not in value:
        return f"{default}?{urllib.parse.urlencode({param: value})}"
    return value


def _where(url: str) -> str:
    """host and path of a URL: what a message may say of it."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _scrub(text: str, *secrets: str | None) -> str:
    text = _SECRET_PARAMS.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _with_query(url: str, **params: str) -> str:
    """`url` with `params` (already quoted where needed) appended to its query."""
    parts = urllib.parse.urlsplit(url)
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 HMAC-SHA256 of "{timestamp}\\n{secret}", URL-quoted."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def dingtalk_url(webhook: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    """The webhook signed now (a signature is valid for an hour: each attempt signs anew)."""
    url = _url(webhook, DINGTALK_URL, "access_token")
    if not secret:
        return url  # a robot secured by keywords or IP addresses only
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return _with_query(url, timestamp=str(timestamp_ms), sign=dingtalk_sign(secret, timestamp_ms))


def wecom_urls(webhook: str) -> tuple[str, str]:
    """(send, upload) URLs of a WeCom group robot: upload_media beside send, same key."""
    send = _url(webhook, WECOM_URL, "key")
    parts = urllib.parse.urlsplit(send)
    head, _, _ = parts.path.rpartition("/")
    upload = urllib.parse.urlunsplit(parts._replace(path=f"{head}/upload_media"))
    return send, _with_query(upload, type="file")


# ---------------------------------------------------------------------------- HTTP


def _answer(response: requests.Response) -> dict:
    """The JSON answer of a robot API, or RobotError saying what went wrong."""
    if response.status_code >= 400:
        raise RobotError(f"HTTP {response.status_code} {response.reason or ''}".strip())
    try:
        answer = response.json()
    except ValueError as err:
        raise RobotError(f"HTTP {response.status_code}: the answer is not JSON") from err
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code != 0:
        message = answer.get("errmsg", "") if isinstance(answer, dict) else ""
        raise RobotError(f"errcode {code}: {message}".strip())
    return answer


def _request(method: Callable[..., requests.Response], url: str, **kwargs) -> dict:
    try:
        response = method(url, timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.Timeout as err:
        raise RobotError(f"no answer within {TIMEOUT_SECONDS:g} s ({type(err).__name__})") from err
    except requests.RequestException as err:
        # requests' messages repeat the URL with its token: say the kind of failure only
        raise RobotError(f"{type(err).__name__}: could not reach {_where(url)}") from err
    return _answer(response)


def _post_json(url: str, payload: dict) -> dict:
    return _request(requests.post, url, json=payload)


def _retried(
    channel: str,
    where: str,
    attempt_once: Callable[[], object],
    attempts: int | None,
    backoff_seconds: float | None,
    logger: logging.Logger,
    sleep: Callable[[float], None] | None,
    secrets: tuple[str | None, ...] = (),
) -> tuple[RobotResult, object]:
    """Run `attempt_once` until it succeeds or the attempts are spent (backoff doubling)."""
    attempts = attempts or DEFAULT_ATTEMPTS
    backoff_seconds = DEFAULT_BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
    sleep = sleep or time.sleep
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            value = attempt_once()
            logger.info(f"{channel}: sent via {where} (attempt {attempt})")
            return RobotResult(channel, True, attempt, None, errors), value
        except RobotError as err:
            reason = _scrub(str(err), *secrets)
            errors.append(reason)
            last = attempt == attempts
            wait = backoff_seconds * 2 ** (attempt - 1)
            logger.warning(
                f"{channel} via {where}, attempt {attempt}/{attempts} failed: {reason}"
                + ("" if last else f"; retrying in {wait:g} s")
            )
            if not last:
                sleep(wait)
    return RobotResult(channel, False, attempts, errors[-1], errors), None


# ---------------------------------------------------------------------------- channels


def send_dingtalk(
    webhook: str,
    secret: str | None,
    title: str,
    text: str,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
    logger: logging.Logger | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RobotResult:
    """Post a markdown message to a DingTalk custom robot, retried; never raises."""
    payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    where = _where(_url(webhook, DINGTALK_URL, "access_token"))
    result, _ = _retried(
        "dingtalk",
        where,
        lambda: _post_json(dingtalk_url(webhook, secret), payload),
        attempts,
        backoff_seconds,
        logger or log,
        sleep,
        (webhook, secret),
    )
    return result


def send_wecom_markdown(
    webhook: str,
    content: str,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
    logger: logging.Logger | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RobotResult:
    """Post a markdown message to a WeCom group robot, retried; never raises."""
    send, _ = wecom_urls(webhook)
    payload = {"msgtype": "markdown", "markdown": {"content": fit_bytes(content)}}
    result, _ = _retried(
        "wecom",
        _where(send),
        lambda: _post_json(send, payload),
        attempts,
        backoff_seconds,
        logger or log,
        sleep,
        (webhook,),
    )
    return result


def send_wecom_file(
    webhook: str,
    path: Path,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
    logger: logging.Logger | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RobotResult:
    """Upload `path` to a WeCom group robot and send it as a file message; never raises.

    The upload is retried until it gives a media_id (valid three days), then the message
    is retried with that media_id: a failed send does not upload the file again.
    """
    logger = logger or log
    path = Path(path)
    size = path.stat().st_size
    if size > WECOM_FILE_BYTES:
        reason = f"{path.name} is {size / 1e6:.1f} MB: WeCom robots take files up to 20 MB"
        logger.warning(f"wecom_file: {reason}")
        return RobotResult("wecom_file", False, 0, reason, [], skipped=True)
    send, upload = wecom_urls(webhook)
    content = path.read_bytes()

    def upload_once() -> str:
        files = {"media": (path.name, content, "application/pdf")}
        media_id = _request(requests.post, upload, files=files).get("media_id")
        if not media_id:
            raise RobotError("the upload answered no media_id")
        return media_id

    uploaded, media_id = _retried(
        "wecom_file upload",
        _where(upload),
        upload_once,
        attempts,
        backoff_seconds,
        logger,
        sleep,
        (webhook,),
    )
    if not uploaded.sent:
        uploaded.channel = "wecom_file"
        uploaded.error = f"upload: {uploaded.error}"
        return uploaded
    payload = {"msgtype": "file", "file": {"media_id": media_id}}
    result, _ = _retried(
        "wecom_file",
        _where(send),
        lambda: _post_json(send, payload),
        attempts,
        backoff_seconds,
        logger,
        sleep,
        (webhook,),
    )
    result.attempts += uploaded.attempts - 1
    result.errors = uploaded.errors + result.errors
    return result


# ---------------------------------------------------------------------------- the text


def fit_bytes(text: str, limit: int = WECOM_MARKDOWN_BYTES) -> str:
    """`text` cut at a line boundary to at most `limit` UTF-8 bytes (WeCom's markdown limit)."""
    if len(text.encode()) <= limit:
        return text
    lines = text.splitlines()
    while lines and len(("\n".join(lines) + "\n…").encode()) > limit:
        lines.pop()
    return "\n".join(lines) + "\n…"


def briefing_markdown(
    data: ReportData, theme: Theme, file_line: str | None = None
) -> tuple[str, str]:
    """(title, markdown): the district and as-of date, this year's KPIs against their
    targets (from marts.kpi_yearly), then the targets missed or at risk. Aggregates only."""
    date = theme.date(data.as_of)
    name = theme.t("briefing_title")
    title = theme.t("mail_subject", org=theme.organisation, title=name, date=date)
    year = data.as_of_year
    rows = []
    for kpi in data.reported:
        found = data.series(kpi.code)
        found = found[found["year"] == year]
        if found.empty or _num(found.iloc[0]["target"]) is None:
            continue  # the headline is the targets; the briefing has every KPI
        row = found.iloc[0]
        rows.append(
            f"- **{theme.kpi_name(kpi)}**{theme.comma}"
            f"{theme.period(year, data.as_of, kpi.kind)} {theme.fmt(_num(row['actual']), kpi.unit)}"
            f"{theme.comma}{theme.t('legend_target')} {_target_text(row, kpi, theme)}"
            f"{theme.comma}{status(row, theme)[0]}"
        )
    summary = target_summary(data, theme)
    sep = "、" if theme.lang == "zh" else ", "
    risks = [f"**{line}**" for line in summary.lines]
    if summary.missed:
        risks.append(theme.t("missed_list", items=sep.join(summary.missed)))
    if summary.off_track:
        risks.append(theme.t("off_track_list", items=sep.join(summary.off_track)))
    # paragraphs apart by a blank line (both robots join single newlines in a paragraph);
    # the list items one a line
    blocks = [f"### {theme.organisation}{name}", theme.t("as_of", date=date)]
    if rows:
        blocks.append("\n".join(rows))
    blocks += risks
    if file_line:
        blocks.append(file_line)
    return title, "\n\n".join(blocks) + "\n"
