"""Sending mail over SMTP: one reusable function, retried with backoff, never raising.

Configuration from the environment (read at call time):

| variable | meaning |
|---|---|
| UNION_SMTP_HOST | the SMTP server; unset = mail is off |
| UNION_SMTP_PORT | default 25 (465 means implicit TLS) |
| UNION_SMTP_USER, UNION_SMTP_PASSWORD | login, when the server wants one |
| UNION_SMTP_FROM | the sender (default UNION_SMTP_USER, else union-pipeline@localhost) |
| UNION_SMTP_STARTTLS | 1/true/yes: upgrade the connection with STARTTLS |
| UNION_BRIEFING_TO | comma-separated recipients of the briefing |

Used by the briefing delivery; failure alerts reuse `send_mail` with their own recipients.
"""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from union_pipeline.settings import ConfigError, SmtpConfig, recipients, smtp_config

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 2.0  # then 4 s, 8 s: a busy or restarting relay gets ~15 s


class MailConfigError(ValueError):
    """A UNION_SMTP_* variable is malformed."""


def smtp_config_from_env() -> SmtpConfig | None:
    """The SMTP settings (`union_pipeline.settings`), or None when mail is off."""
    try:
        return smtp_config()
    except ConfigError as err:
        raise MailConfigError(str(err)) from None


def recipients_from_env(var: str = "UNION_BRIEFING_TO") -> list[str]:
    return recipients(var)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str | None = None

    @classmethod
    def from_path(cls, path: Path, filename: str | None = None) -> Attachment:
        return cls(filename or path.name, Path(path).read_bytes())


@dataclass
class MailResult:
    sent: bool
    attempts: int
    recipients: list[str]
    error: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.sent:
            extra = f"; {self.error}" if self.error else ""
            return f"sent to {len(self.recipients)} recipient(s) (attempt {self.attempts}){extra}"
        return f"FAILED after {self.attempts} attempt(s): {self.error}"


def build_message(
    sender: str, to: Sequence[str], subject: str, body: str, attachments: Sequence[Attachment] = ()
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject  # non-ASCII becomes RFC 2047 UTF-8
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(body, charset="utf-8")
    for item in attachments:
        mime = (
            item.mime_type or mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
        )
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(
            item.content, maintype=maintype, subtype=subtype, filename=item.filename
        )
    return message


def _permanent(err: Exception) -> bool:
    """5xx answers (bad recipient, auth refused, ...) will not change on a retry."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in err.recipients.values())
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return True
    if isinstance(err, smtplib.SMTPResponseException):
        return err.smtp_code >= 500
    return False


def _describe(err: Exception) -> str:
    if isinstance(err, smtplib.SMTPResponseException):
        text = (
            err.smtp_error.decode(errors="replace")
            if isinstance(err.smtp_error, bytes)
            else str(err.smtp_error)
        )
        return f"{type(err).__name__} {err.smtp_code}: {text}"
    return f"{type(err).__name__}: {err}"


def _send_once(config: SmtpConfig, message: EmailMessage, to: Sequence[str]) -> dict:
    """Deliver once; the recipients the server refused (the others got it)."""
    context = ssl.create_default_context()
    if config.port == 465:
        client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with client:
        client.ehlo_or_helo_if_needed()
        if config.starttls and config.port != 465:
            client.starttls(context=context)
            client.ehlo()
        if config.user and config.password:
            client.login(config.user, config.password)
        return client.send_message(message, from_addr=config.sender, to_addrs=list(to))


def send_mail(
    subject: str,
    body: str,
    to: Sequence[str],
    attachments: Sequence[Attachment] = (),
    config: SmtpConfig | None = None,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
    logger: logging.Logger | None = None,
    sleep: Callable[[float], None] | None = None,
) -> MailResult:
    """Send one message, retrying transient failures (backoff 2 s, 4 s, 8 s); never raises.

    config: default from the environment (UNION_SMTP_*). A 5xx answer is not retried.
    The result says whether it was sent and, if not, why (for logs and metadata).
    """
    logger = logger or log
    attempts = attempts or DEFAULT_ATTEMPTS
    backoff_seconds = DEFAULT_BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
    sleep = sleep or time.sleep
    to = [a for a in to if a]
    try:
        config = config or smtp_config_from_env()
    except MailConfigError as err:
        return MailResult(False, 0, to, str(err), [str(err)])
    if config is None:
        return MailResult(False, 0, to, "UNION_SMTP_HOST is not set")
    if not to:
        return MailResult(False, 0, to, "no recipients")
    message = build_message(config.sender, to, subject, body, attachments)
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            refused = _send_once(config, message, to)
            logger.info(
                f"mail {subject!r} sent to {len(to) - len(refused)} recipient(s) via "
                f"{config.host}:{config.port} (attempt {attempt})"
            )
            if refused:
                # the others got it: no resend to everyone, but say who did not
                problem = "refused by the server: " + ", ".join(
                    f"{a} ({code})" for a, (code, _) in refused.items()
                )
                logger.warning(f"mail {subject!r}: {problem}")
                return MailResult(True, attempt, to, problem, errors)
            return MailResult(True, attempt, to, None, errors)
        except (TimeoutError, OSError, smtplib.SMTPException) as err:
            errors.append(_describe(err))
            permanent = _permanent(err)
            last = attempt == attempts or permanent
            wait = backoff_seconds * 2 ** (attempt - 1)
            logger.warning(
                f"mail {subject!r} via {config.host}:{config.port}, attempt "
                f"{attempt}/{attempts} failed: {_describe(err)}"
                + ("" if last else f"; retrying in {wait:g} s")
            )
            if last:
                return MailResult(False, attempt, to, errors[-1], errors)
            sleep(wait)
    return MailResult(False, attempts, to, errors[-1] if errors else "not sent", errors)
