"""Mailing the briefing: a real SMTP server on 127.0.0.1 (aiosmtpd), real messages."""

from __future__ import annotations

import email
import socket
from email import policy
from pathlib import Path

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from tests.runs import materialize_charts_and_briefing, register_marts
from tests.test_reports import build_test_warehouse, needs_browser
from union_pipeline.reports import mail
from union_pipeline.reports.mail import Attachment, SmtpConfig, send_mail, smtp_config_from_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps what it receives; refuses the first `fail` messages (451)."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []
        self.fail = 0
        self.fail_code = "451 4.3.0 try again later"

    async def handle_DATA(self, server, session, envelope):
        if self.fail > 0:
            self.fail -= 1
            return self.fail_code
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield (
            inbox,
            SmtpConfig(host="127.0.0.1", port=controller.port, sender="union-pipeline@example.org"),
        )
    finally:
        controller.stop()


def test_send_mail_delivers_subject_body_and_attachment(smtp):
    inbox, config = smtp
    result = send_mail(
        "【简报】数据截至2020年9月30日",
        "2019年目标：达成9项，未达成5项\n",
        ["leader@example.org", "office@example.org"],
        [Attachment("briefing-2020-09-30.pdf", b"%PDF-1.7 test")],
        config,
    )
    assert result.sent and result.attempts == 1 and result.error is None
    [message] = inbox.messages
    assert message["Subject"] == "【简报】数据截至2020年9月30日"
    assert inbox.envelopes[0].rcpt_tos == ["leader@example.org", "office@example.org"]
    assert "达成9项" in message.get_body(("plain",)).get_content()
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "briefing-2020-09-30.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == b"%PDF-1.7 test"


def test_a_transient_refusal_is_retried_with_backoff(smtp):
    inbox, config = smtp
    inbox.fail = 2
    waits = []
    result = send_mail(
        "s",
        "b",
        ["a@example.org"],
        config=config,
        attempts=4,
        backoff_seconds=1.5,
        sleep=waits.append,
    )
    assert result.sent and result.attempts == 3
    assert waits == [1.5, 3.0]
    assert len(inbox.messages) == 1 and len(result.errors) == 2 and "451" in result.errors[0]


def test_a_permanent_refusal_is_not_retried(smtp):
    inbox, config = smtp
    inbox.fail, inbox.fail_code = 5, "554 5.7.1 rejected"
    waits = []
    result = send_mail("s", "b", ["a@example.org"], config=config, sleep=waits.append)
    assert not result.sent and result.attempts == 1 and waits == []
    assert "554" in result.error and result.summary.startswith("FAILED")


def test_an_unreachable_server_fails_after_the_retries_without_raising():
    config = SmtpConfig(host="127.0.0.1", port=free_port(), timeout=2)  # nobody listens
    waits = []
    result = send_mail(
        "s",
        "b",
        ["a@example.org"],
        config=config,
        attempts=3,
        backoff_seconds=0.5,
        sleep=waits.append,
    )
    assert not result.sent and result.attempts == 3 and waits == [0.5, 1.0]
    assert "Connection" in result.error or "refused" in result.error.lower()


def test_configuration_from_the_environment(monkeypatch):
    for var in (
        "UNION_SMTP_HOST",
        "UNION_SMTP_PORT",
        "UNION_SMTP_USER",
        "UNION_SMTP_PASSWORD",
        "UNION_SMTP_FROM",
        "UNION_SMTP_STARTTLS",
    ):
        monkeypatch.delenv(var, raising=False)
    assert smtp_config_from_env() is None
    assert not send_mail("s", "b", ["a@example.org"]).sent
    monkeypatch.setenv("UNION_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("UNION_SMTP_PORT", "587")
    monkeypatch.setenv("UNION_SMTP_USER", "bot@example.org")
    monkeypatch.setenv("UNION_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("UNION_SMTP_STARTTLS", "yes")
    config = smtp_config_from_env()
    assert (config.host, config.port, config.sender, config.starttls) == (
        "mail.example.org",
        587,
        "bot@example.org",
        True,
    )
    assert "s3cret" not in repr(config)
    monkeypatch.setenv("UNION_SMTP_PORT", "smtp")
    result = send_mail("s", "b", ["a@example.org"])
    assert not result.sent and "UNION_SMTP_PORT" in result.error


# ---------------------------------------------------------------------------- the refresh


@pytest.fixture
def refresh_env(tmp_path, monkeypatch, smtp):
    inbox, config = smtp
    warehouse = build_test_warehouse(tmp_path / "wh" / "union.duckdb")
    monkeypatch.setenv("UNION_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("UNION_SMTP_HOST", config.host)
    monkeypatch.setenv("UNION_SMTP_PORT", str(config.port))
    monkeypatch.setenv("UNION_SMTP_FROM", "union-pipeline@example.org")
    monkeypatch.setenv("UNION_BRIEFING_TO", "leader@example.org, office@example.org")
    monkeypatch.delenv("UNION_LANG", raising=False)
    for var in ("UNION_DINGTALK_WEBHOOK", "UNION_DINGTALK_SECRET", "UNION_WECOM_WEBHOOK"):
        monkeypatch.delenv(var, raising=False)  # the robots: tests/test_robots.py
    monkeypatch.setattr(mail, "DEFAULT_BACKOFF_SECONDS", 0.01)
    return warehouse, inbox


def _materialize_briefing(warehouse: Path, instance) -> dg.ExecuteInProcessResult:
    """The report assets on the marts of `warehouse`; a failed step does not raise."""
    register_marts(instance, warehouse, warehouse.parent.parent / "mart_outputs")
    return materialize_charts_and_briefing(instance, warehouse)


def _mail_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    """The step that materialized reports/briefing_mail (by its asset, not a step name)."""
    return {
        e.step_key
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["reports", "briefing_mail"])
    }


def _mail_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "briefing_mail"
    ]
    return event.materialization.metadata


@needs_browser
def test_a_refresh_mails_the_briefing_to_leadership(refresh_env):
    warehouse, inbox = refresh_env
    with dg.instance_for_test() as instance:
        result = _materialize_briefing(warehouse, instance)
        again = _materialize_briefing(warehouse, instance)  # a retry, or nothing new
    assert result.success and again.success
    meta = _mail_metadata(result)
    assert meta["mail"].value.startswith("sent to 2 recipient(s)")
    assert meta["delivery"].value == f"mail: {meta['mail'].value}"  # the only channel set
    assert meta["dingtalk"].value == meta["wecom"].value == "not configured"
    assert _mail_metadata(again)["mail"].value.startswith("already sent")
    [message] = inbox.messages
    assert "2020年9月30日" in message["Subject"] and "简报" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "2019年目标：达成" in body and "未达成" in body
    assert "预计未达成：" in body and "新发展会员" in body  # the off-track KPIs by name
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "briefing-2020-09-30.pdf"
    assert part.get_content()[:5] == b"%PDF-"
    briefing = Path(warehouse.parent.parent / "exports" / "2020-09-30" / part.get_filename())
    assert part.get_content() == briefing.read_bytes()


@needs_browser
def test_a_failed_send_is_reported_and_fails_the_step(refresh_env):
    warehouse, inbox = refresh_env
    inbox.fail = 99  # the relay keeps saying "try again later"
    with dg.instance_for_test() as instance:
        result = _materialize_briefing(warehouse, instance)
        logs = instance.all_logs(result.run_id)
        inbox.fail = 0  # the relay is back: a re-run mails it, once
        retried = _materialize_briefing(warehouse, instance)
    # the analyst sees it red; the briefing itself was made and published
    assert not result.success, "an undelivered briefing must show in the run"
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failed == _mail_steps(result), failed  # that step only, whatever its name
    meta = _mail_metadata(result)
    assert meta["mail"].value.startswith("FAILED after 4 attempt(s)")
    assert "451" in meta["mail"].value and meta["delivery_attempts"].value == {"mail": 4}
    assert meta["failed_channels"].value == ["mail"]
    errors = [e.user_message for e in logs if e.level >= 40 and e.user_message]
    assert any("briefing not delivered by mail" in m for m in errors), errors
    assert retried.success and _mail_metadata(retried)["mail"].value.startswith("sent to 2")
    assert len(inbox.messages) == 1
