"""A failed refresh is mailed to the alert list, through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from tests.runs import with_district
from union_pipeline.definitions import defs
from union_pipeline.defs.automation.alerts import refresh_failure_alert


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(
            (
                envelope.rcpt_tos,
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"


@pytest.fixture
def inbox():
    handler = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def fail_and_alert() -> dg.ExecuteInProcessResult:
    """Run a refresh that fails, then evaluate the failure sensor on it."""
    job = defs().resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=with_district(instance), raise_on_error=False
        )
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name=refresh_failure_alert.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
        refresh_failure_alert(context)
    return result


def test_failed_refresh_is_mailed_with_the_asset_and_error(
    minimal_drop, tmp_path, monkeypatch, inbox
):
    handler, port = inbox
    shutil.rmtree(minimal_drop / "members")
    monkeypatch.setenv("UNION_RAW_DIR", str(minimal_drop))
    monkeypatch.setenv("UNION_WAREHOUSE", str(tmp_path / "union.duckdb"))
    monkeypatch.setenv("UNION_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("UNION_SMTP_PORT", str(port))
    monkeypatch.setenv("UNION_ALERT_TO", "ops@example.org, analyst@example.org")
    result = fail_and_alert()
    [(recipients, message)] = handler.messages
    assert recipients == ["ops@example.org", "analyst@example.org"]
    assert "数据刷新失败" in message["Subject"]
    body = message.get_content()
    assert result.dagster_run.run_id in body
    assert "staging/members" in body
    assert "members/ (会员实名制名册) is missing" in body
    assert "dagster._core" not in body and "Traceback" not in body  # the refusal, as said


def test_no_smtp_configured_only_logs(minimal_drop, tmp_path, monkeypatch, inbox, capfd):
    handler, port = inbox
    shutil.rmtree(minimal_drop / "members")
    monkeypatch.setenv("UNION_RAW_DIR", str(minimal_drop))
    monkeypatch.setenv("UNION_WAREHOUSE", str(tmp_path / "union.duckdb"))
    monkeypatch.delenv("UNION_SMTP_HOST", raising=False)
    # everything else set, the inbox listening: only the missing host keeps the mail back
    monkeypatch.setenv("UNION_SMTP_PORT", str(port))
    monkeypatch.setenv("UNION_ALERT_TO", "ops@example.org")
    capfd.readouterr()
    result = fail_and_alert()
    assert handler.messages == []
    logged = capfd.readouterr().err  # the sensor's log: the daemon's output
    said = logged[logged.index(f"run {result.dagster_run.run_id[:8]}") :]
    assert "staging/members" in said and "members/ (会员实名制名册) is missing" in said
