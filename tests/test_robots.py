"""The briefing to DingTalk and WeCom group robots: a real HTTP server on 127.0.0.1 that
checks what the platforms check (DingTalk's signature, WeCom's key, payloads, the upload)."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.runs import materialize_charts_and_briefing, register_marts
from tests.test_delivery import free_port, smtp  # noqa: F401  (smtp: the SMTP fixture)
from tests.test_reports import build_test_warehouse, needs_browser
from union_pipeline.reports import load_theme, mail, read_report_data, robots
from union_pipeline.reports.robots import (
    briefing_markdown,
    dingtalk_url,
    send_dingtalk,
    send_wecom_file,
    send_wecom_markdown,
)
from union_pipeline.settings import load_settings

SECRET = "SECtest-robot-secret-0123456789abcdef"
TOKEN = "dt-access-token-42"
KEY = "wecom-key-693a91f6"
PDF = b"%PDF-1.7\n% a small test briefing\n"


class Robots:
    """What the two platforms receive. `fail` answers the next n requests with an error
    (DingTalk: errcode 130101 "send too fast"; WeCom: HTTP 503); `fail = -1` always."""

    def __init__(self, secret: str | None = SECRET):
        self.secret = secret
        self.dingtalk: list[dict] = []
        self.wecom: list[dict] = []  # markdown and file messages, in order
        self.uploads: list[dict] = []
        self.requests: list[str] = []  # every path that came, in order
        self.problems: list[str] = []  # what a real platform would have refused
        self.fail = 0
        self.lock = threading.Lock()

    def failing(self) -> bool:
        with self.lock:
            if self.fail == 0:
                return False
            if self.fail > 0:
                self.fail -= 1
            return True

    def check_dingtalk(self, query: dict, body: dict) -> str | None:
        if query.get("access_token") != [TOKEN]:
            return "no or wrong access_token"
        if self.secret:
            timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
            if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 3_600_000:
                return f"timestamp {timestamp!r} not within the hour"
            expected = base64.b64encode(
                hmac.new(
                    self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256
                ).digest()
            ).decode()
            if sign != expected:
                return "sign not match"
        markdown = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not markdown.get("title"):
            return f"not a markdown message with a title: {sorted(body)}"
        if not isinstance(markdown.get("text"), str) or not markdown["text"].strip():
            return "empty markdown text"
        return None

    def check_wecom(self, query: dict, body: dict, media_ids: set[str]) -> str | None:
        if query.get("key") != [KEY]:
            return "invalid webhook url"
        if body.get("msgtype") == "markdown":
            content = (body.get("markdown") or {}).get("content")
            if not isinstance(content, str) or len(content.encode()) > 4096:
                return "markdown content missing or over 4096 bytes"
            return None
        if body.get("msgtype") == "file":
            if (body.get("file") or {}).get("media_id") not in media_ids:
                return "invalid media_id"
            return None
        return f"unknown msgtype {body.get('msgtype')!r}"


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The form fields of a multipart/form-data body: name -> (filename, content)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.message_from_bytes(head + body, policy=policy.default)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


def _handler(robots_: Robots):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def answer(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            robots_.requests.append(url.path)
            if url.path == "/robot/send":
                if robots_.failing():
                    return self.answer(200, {"errcode": 130101, "errmsg": "send too fast"})
                message = json.loads(body)
                problem = robots_.check_dingtalk(query, message)
                if problem:
                    robots_.problems.append(problem)
                    return self.answer(200, {"errcode": 310000, "errmsg": problem})
                robots_.dingtalk.append(message)
                return self.answer(200, {"errcode": 0, "errmsg": "ok"})
            if robots_.failing():
                return self.answer(503, {"errcode": -1, "errmsg": "system busy"})
            media_ids = {u["media_id"] for u in robots_.uploads}
            if url.path == "/cgi-bin/webhook/upload_media":
                fields = _multipart(self.headers["Content-Type"], body)
                if query.get("key") != [KEY] or query.get("type") != ["file"]:
                    robots_.problems.append("upload without key or type=file")
                    return self.answer(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
                if "media" not in fields:
                    robots_.problems.append(f"upload without a media field: {sorted(fields)}")
                    return self.answer(200, {"errcode": 40004, "errmsg": "invalid media"})
                filename, content = fields["media"]
                media_id = f"media-{len(robots_.uploads) + 1}"
                robots_.uploads.append(
                    {"media_id": media_id, "filename": filename, "content": content}
                )
                return self.answer(
                    200, {"errcode": 0, "errmsg": "ok", "type": "file", "media_id": media_id}
                )
            if url.path == "/cgi-bin/webhook/send":
                message = json.loads(body)
                problem = robots_.check_wecom(query, message, media_ids)
                if problem:
                    robots_.problems.append(problem)
                    return self.answer(200, {"errcode": 93000, "errmsg": problem})
                robots_.wecom.append(message)
                return self.answer(200, {"errcode": 0, "errmsg": "ok"})
            return self.answer(404, {"errcode": 404, "errmsg": "no such path"})

    return Handler


@pytest.fixture
def robot_server():
    received = Robots()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield (
            received,
            {
                "dingtalk": f"{base}/robot/send?access_token={TOKEN}",
                "wecom": f"{base}/cgi-bin/webhook/send?key={KEY}",
            },
        )
    finally:
        server.shutdown()
        server.server_close()


def _no_credentials(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, TOKEN, KEY):
            assert secret not in text, f"a credential leaked into {text!r}"


# ---------------------------------------------------------------------------- channels


def test_dingtalk_message_is_signed_and_markdown(robot_server):
    received, urls = robot_server
    result = send_dingtalk(urls["dingtalk"], SECRET, "标题", "### 简报\n\n- 指标", sleep=None)
    assert result.sent and result.attempts == 1, result.summary
    assert received.problems == []
    [message] = received.dingtalk
    assert message == {
        "msgtype": "markdown",
        "markdown": {"title": "标题", "text": "### 简报\n\n- 指标"},
    }


def test_dingtalk_signature_is_the_documented_one():
    url = dingtalk_url(
        "https://oapi.dingtalk.com/robot/send?access_token=abc", "SECxyz", 1700000000000
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    digest = hmac.new(b"SECxyz", b"1700000000000\nSECxyz", hashlib.sha256).digest()
    assert query["timestamp"] == ["1700000000000"]
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert query["access_token"] == ["abc"]
    # a bare access token goes to DingTalk's own URL
    bare = dingtalk_url("abc", None)
    assert bare == "https://oapi.dingtalk.com/robot/send?access_token=abc"


def test_a_wrong_secret_is_refused_retried_and_reported_without_credentials(robot_server):
    received, urls = robot_server
    waits = []
    result = send_dingtalk(urls["dingtalk"], "SECwrong", "t", "x", attempts=3, sleep=waits.append)
    assert not result.sent and result.attempts == 3 and waits == [2.0, 4.0]
    assert result.error == "errcode 310000: sign not match"
    assert received.dingtalk == [] and received.problems == ["sign not match"] * 3
    _no_credentials(result.summary, *result.errors)


def test_wecom_markdown_then_the_pdf_uploaded_and_sent_as_a_file(robot_server, tmp_path):
    received, urls = robot_server
    pdf = tmp_path / "briefing-2020-09-30.pdf"
    pdf.write_bytes(PDF)
    text = send_wecom_markdown(urls["wecom"], "### 简报\n\n**2019年目标：达成9项**")
    sent = send_wecom_file(urls["wecom"], pdf)
    assert text.sent and sent.sent and received.problems == []
    assert received.requests == [
        "/cgi-bin/webhook/send",
        "/cgi-bin/webhook/upload_media",
        "/cgi-bin/webhook/send",
    ]
    [upload] = received.uploads
    assert upload["filename"] == pdf.name and upload["content"] == PDF
    markdown, file_message = received.wecom
    assert markdown == {
        "msgtype": "markdown",
        "markdown": {"content": "### 简报\n\n**2019年目标：达成9项**"},
    }
    assert file_message == {"msgtype": "file", "file": {"media_id": upload["media_id"]}}


def test_a_failed_first_attempt_is_retried(robot_server, tmp_path):
    received, urls = robot_server
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(PDF)
    waits = []
    received.fail = 1  # WeCom answers 503 once: the upload is retried, not the whole file
    result = send_wecom_file(urls["wecom"], pdf, backoff_seconds=0.5, sleep=waits.append)
    assert result.sent and result.attempts == 2 and waits == [0.5]
    assert result.errors == ["HTTP 503 Service Unavailable"]
    assert len(received.uploads) == 1 and len(received.wecom) == 1
    received.fail = 1  # DingTalk: errcode 130101 once
    result = send_dingtalk(urls["dingtalk"], SECRET, "t", "x", sleep=waits.append)
    assert result.sent and result.attempts == 2 and "130101" in result.errors[0]
    assert len(received.dingtalk) == 1


def test_a_file_over_the_limit_is_not_sent_and_not_a_failure(robot_server, tmp_path, monkeypatch):
    received, urls = robot_server
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(PDF)
    monkeypatch.setattr(robots, "WECOM_FILE_BYTES", len(PDF) - 1)
    result = send_wecom_file(urls["wecom"], pdf)
    assert result.skipped and not result.sent and received.requests == []
    assert result.summary.startswith("not sent: b.pdf is") and "20 MB" in result.summary


def test_an_unreachable_robot_fails_after_the_retries_without_raising():
    url = f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key={KEY}"  # nobody listens
    waits = []
    result = send_wecom_markdown(url, "x", attempts=2, backoff_seconds=0.1, sleep=waits.append)
    assert not result.sent and result.attempts == 2 and waits == [0.1]
    assert "ConnectionError" in result.error and "/cgi-bin/webhook/send" in result.error
    _no_credentials(result.summary, *result.errors)


def test_the_robots_are_configured_in_the_settings(monkeypatch):
    monkeypatch.setenv(
        "UNION_DINGTALK_WEBHOOK", f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
    )
    monkeypatch.setenv("UNION_DINGTALK_SECRET", f" {SECRET} ")
    monkeypatch.setenv("UNION_WECOM_WEBHOOK", KEY)
    settings = load_settings()
    assert settings.dingtalk_secret == SECRET and settings.wecom_webhook == KEY
    assert TOKEN in settings.dingtalk_webhook
    _no_credentials(repr(settings))
    monkeypatch.delenv("UNION_WECOM_WEBHOOK")
    assert load_settings().wecom_webhook is None


# ---------------------------------------------------------------------------- the text


def test_the_robot_text_is_the_headline_without_persons(tmp_path):
    warehouse = build_test_warehouse(tmp_path / "union.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = read_report_data(con)
    theme = load_theme(lang="zh")
    title, text = briefing_markdown(data, theme)
    assert title == f"{theme.organisation}工作指标简报（数据截至2020年9月30日）"
    assert text.startswith(f"### {theme.organisation}工作指标简报\n\n数据截至2020年9月30日\n\n")
    assert "2020年1–9月" in text and "目标 ≥" in text  # this year's figures against targets
    assert "预计未达成：" in text and "新发展会员" in text  # the targets at risk by name
    assert "2019年目标：达成" in text
    assert len(text.encode()) <= 4096
    assert not re.search(r"\d{17}[\dXx]|1[3-9]\d{9}", text), "an ID number or a phone"
    _, english = briefing_markdown(data, load_theme(lang="en"))
    assert "Data as of 30 Sep 2020" in english
    assert robots.fit_bytes("甲\n" * 3000, 4096).endswith("\n…")
    assert len(robots.fit_bytes("甲\n" * 3000, 4096).encode()) <= 4096


# ---------------------------------------------------------------------------- the refresh


@pytest.fixture
def refresh_env(tmp_path, monkeypatch, robot_server, smtp):  # noqa: F811
    received, urls = robot_server
    inbox, config = smtp
    warehouse = build_test_warehouse(tmp_path / "wh" / "union.duckdb")
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("UNION_SMTP_HOST", config.host)
    monkeypatch.setenv("UNION_SMTP_PORT", str(config.port))
    monkeypatch.setenv("UNION_BRIEFING_TO", "leader@example.org")
    monkeypatch.setenv("UNION_DINGTALK_WEBHOOK", urls["dingtalk"])
    monkeypatch.setenv("UNION_DINGTALK_SECRET", SECRET)
    monkeypatch.setenv("UNION_WECOM_WEBHOOK", urls["wecom"])
    monkeypatch.delenv("UNION_LANG", raising=False)
    monkeypatch.setattr(mail, "DEFAULT_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(robots, "DEFAULT_BACKOFF_SECONDS", 0.01)
    return warehouse, received, inbox


def _run(instance, warehouse: Path, only_mail: bool = False) -> dg.ExecuteInProcessResult:
    """The report assets on the marts of `warehouse`; a failed step does not raise."""
    if not only_mail:
        register_marts(instance, warehouse, warehouse.parent.parent / "mart_outputs")
    return materialize_charts_and_briefing(instance, warehouse, only_mail)


def _delivery(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "briefing_mail"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@needs_browser
def test_a_refresh_delivers_to_every_channel_once(refresh_env):
    warehouse, received, inbox = refresh_env
    received.fail = 1  # DingTalk's first answer is "send too fast": retried in the run
    with dg.instance_for_test() as instance:
        first = _run(instance, warehouse)
        again = _run(instance, warehouse, only_mail=True)
    assert first.success and again.success
    meta = _delivery(first)
    assert meta["failed_channels"] == []
    assert meta["mail"].startswith("sent to 1 recipient(s)")
    assert meta["dingtalk"] == "sent (attempt 2)"
    assert meta["wecom"].startswith("sent markdown and file briefing-2020-09-30.pdf")
    assert meta["delivery_attempts"] == {"mail": 1, "dingtalk": 2, "wecom": 1, "wecom_file": 1}
    assert received.problems == []
    [dingtalk] = received.dingtalk
    assert "数据截至2020年9月30日" in dingtalk["markdown"]["title"]
    assert "预计未达成：" in dingtalk["markdown"]["text"]
    markdown, file_message = received.wecom
    assert "简报见附件 briefing-2020-09-30.pdf" in markdown["markdown"]["content"]
    [upload] = received.uploads
    assert file_message["file"]["media_id"] == upload["media_id"]
    briefing = warehouse.parent.parent / "exports" / "2020-09-30" / "briefing-2020-09-30.pdf"
    assert upload["filename"] == briefing.name and upload["content"] == briefing.read_bytes()
    assert len(inbox.messages) == 1
    # the second run: the same briefing, nothing sent on any channel
    repeat = _delivery(again)
    for channel in ("mail", "dingtalk", "wecom"):
        assert repeat[channel].startswith("already sent: this briefing was sent in run")
    assert len(received.dingtalk) == 1 and len(received.wecom) == 2
    assert len(received.uploads) == 1 and len(inbox.messages) == 1
    _no_credentials(json.dumps(meta, ensure_ascii=False), json.dumps(repeat, ensure_ascii=False))


@needs_browser
def test_a_failing_channel_fails_the_step_not_the_others(refresh_env):
    warehouse, received, inbox = refresh_env
    with dg.instance_for_test() as instance:
        received.fail = -1  # both robots keep failing; the mail goes through
        first = _run(instance, warehouse)
        logs = instance.all_logs(first.run_id)
        received.fail = 0  # the robots are back: a re-run sends to them only
        second = _run(instance, warehouse, only_mail=True)
    assert not first.success and second.success
    meta = _delivery(first)  # recorded before the step failed
    assert meta["failed_channels"] == ["dingtalk", "wecom"]
    assert meta["mail"].startswith("sent to 1 recipient(s)")
    assert meta["dingtalk"] == "FAILED after 3 attempt(s): errcode 130101: send too fast"
    assert meta["wecom"] == "markdown FAILED after 3 attempt(s): HTTP 503 Service Unavailable"
    [failure] = [e for e in first.all_events if e.event_type_value == "STEP_FAILURE"]
    # the step that delivers the briefing (known by its asset, not by a step name)
    assert failure.step_key in {
        e.step_key
        for e in first.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["reports", "briefing_mail"])
    }
    assert "dingtalk: errcode 130101" in failure.event_specific_data.error.message
    errors = [e.user_message for e in logs if e.level >= 40 and e.user_message]
    assert any("briefing not delivered by dingtalk: errcode 130101" in m for m in errors), errors
    assert any("briefing not delivered by wecom: markdown: HTTP 503" in m for m in errors)
    _no_credentials(json.dumps(meta, ensure_ascii=False), *errors)
    # the re-run: the robots get it, the mail is not sent again
    repeat = _delivery(second)
    assert repeat["failed_channels"] == []
    assert repeat["mail"].startswith("already sent")
    assert repeat["dingtalk"] == "sent (attempt 1)" and repeat["wecom"].startswith("sent markdown")
    assert len(inbox.messages) == 1 and len(received.dingtalk) == 1 and len(received.wecom) == 2
