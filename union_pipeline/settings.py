"""Environment -> paths, dates and keys, read in one place, at call time (tests set env)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"

# Clearly labelled so nobody mistakes it for a production key. It is public (it is in
# this repository), so it may only key the generated demo drop: see require_pii_key.
DEV_PII_KEY = "DEVELOPMENT-ONLY-union-pipeline-pii-key"
# Keys that are public: the development key and the placeholder of deploy/*.env.example.
PUBLIC_PII_KEYS = {DEV_PII_KEY.encode(), b"change-me-to-a-long-random-secret", b""}
# Written by the demo generator into the root of the drop it generates, listing its files.
DEMO_MARKER = ".union-demo-drop"
DEMO_KEY_WARNING = "开发用公开密钥 / public development PII key in use: demo data only"
KEY_HOWTO = (
    "UNION_PII_KEY is not set (or is a public example value), and this drop is not the "
    "generated demo drop: person keys made with a public key can be reversed by anyone "
    "who tries ID numbers. Set a long random secret before refreshing, e.g. "
    "`export UNION_PII_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')` "
    "(or in deploy/union-pipeline.env). Keep it secret, and keep it stable: a new key "
    "gives every person a new person_key. / 未设置个人信息密钥 UNION_PII_KEY：请设置一个"
    "保密且长期不变的随机密钥后再刷新。"
)


class ConfigError(ValueError):
    """A setting in the environment is malformed."""


def _path(env: Mapping[str, str], var: str, default: str) -> Path:
    value = env.get(var) or default
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _date(env: Mapping[str, str], var: str) -> dt.date | None:
    value = env.get(var)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as err:
        raise ConfigError(f"{var}={value!r}: expected a date like 2020-09-30") from err


def _int(env: Mapping[str, str], var: str) -> int | None:
    value = env.get(var)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ConfigError(f"{var}={value!r}: expected a year like 2017") from err


def _text(env: Mapping[str, str], var: str) -> str | None:
    return (env.get(var) or "").strip() or None


@dataclass(frozen=True)
class Settings:
    raw_dir: Path
    warehouse: Path
    export_dir: Path
    as_of: dt.date | None
    first_year: int | None
    pii_key: bytes
    pii_key_is_default: bool
    quarantine_threshold: float
    # the briefing's group robots (reports/briefing_mail); a webhook URL carries its token
    # and the secret signs every message: neither is ever printed
    dingtalk_webhook: str | None = field(default=None, repr=False)
    dingtalk_secret: str | None = field(default=None, repr=False)
    wecom_webhook: str | None = field(default=None, repr=False)

    @property
    def rule_as_of(self) -> dt.date:
        """The date row rules compare against ("not after the as-of date").

        The reported as-of date comes from the loaded data, which these rules decide, so
        without UNION_AS_OF the rules use the refresh date: an event after today is a typo.
        """
        return self.as_of or dt.date.today()


def load_settings(overrides: Mapping[str, str | None] | None = None) -> Settings:
    """The settings from the environment; `overrides` (the Dagster resource's configured
    values, by variable name) win where given."""
    env = {**os.environ, **{k: v for k, v in (overrides or {}).items() if v}}
    key = env.get("UNION_PII_KEY")
    threshold = env.get("UNION_QUARANTINE_THRESHOLD") or "0.05"
    try:
        quarantine_threshold = float(threshold)
    except ValueError as err:
        raise ConfigError(f"UNION_QUARANTINE_THRESHOLD={threshold!r}: expected 0.05") from err
    return Settings(
        raw_dir=_path(env, "UNION_RAW_DIR", "data/raw"),
        warehouse=_path(env, "UNION_WAREHOUSE", "data/warehouse/union.duckdb"),
        export_dir=_path(env, "UNION_EXPORT_DIR", "data/exports"),
        as_of=_date(env, "UNION_AS_OF"),
        first_year=_int(env, "UNION_FIRST_YEAR"),
        pii_key=(key or DEV_PII_KEY).encode(),
        pii_key_is_default=not key,
        quarantine_threshold=quarantine_threshold,
        dingtalk_webhook=_text(env, "UNION_DINGTALK_WEBHOOK"),
        dingtalk_secret=_text(env, "UNION_DINGTALK_SECRET"),
        wecom_webhook=_text(env, "UNION_WECOM_WEBHOOK"),
    )


# ------------------------------------------------------------ one variable, one place
# Settings read where they are used, each at call time (a test or a run may change the
# environment between two calls); their names and defaults live here and nowhere else.

TRUE_WORDS = {"1", "true", "yes", "on", "y"}
LANG_ALIASES = {"zh-cn": "zh", "cn": "zh", "en-us": "en", "en-gb": "en"}


def duckdb_memory_limit() -> str:
    """UNION_DUCKDB_MEMORY: DuckDB's memory limit; beyond it, it spills to disk."""
    return _text(os.environ, "UNION_DUCKDB_MEMORY") or "2.5GB"


CITY_DETAIL_ROWS = 20_000_000  # about twenty districts the size of the demo's


def city_detail_rows() -> int:
    """UNION_CITY_DETAIL_ROWS: the most detail (staging) rows the city's file copies from
    its districts; past it the city's file holds the marts and each district's summary, the
    detail stays in the district files (default 20,000,000)."""
    text = _text(os.environ, "UNION_CITY_DETAIL_ROWS") or str(CITY_DETAIL_ROWS)
    try:
        return int(text.replace("_", "").replace(",", ""))
    except ValueError as err:
        raise ConfigError(f"UNION_CITY_DETAIL_ROWS={text!r}: expected a row count") from err


def district_override() -> str | None:
    """UNION_DISTRICT: the district of a single-district drop, when not the default one."""
    return _text(os.environ, "UNION_DISTRICT")


def automation_on() -> bool:
    """UNION_AUTOMATION=off: the schedule and the automation sensors start stopped."""
    return (_text(os.environ, "UNION_AUTOMATION") or "on").lower() != "off"


def report_lang() -> str:
    """UNION_LANG: the labels' language, `zh` (default) or `en` (validated by the theme)."""
    lang = (_text(os.environ, "UNION_LANG") or "zh").lower()
    return LANG_ALIASES.get(lang, lang)


def browser_override() -> str | None:
    """BROWSER_PATH: the Chromium kaleido must use (also read by kaleido itself)."""
    return _text(os.environ, "BROWSER_PATH")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "union-pipeline@localhost"
    starttls: bool = False
    timeout: float = 30.0

    def __repr__(self) -> str:  # never print the password
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"sender={self.sender!r}, starttls={self.starttls})"
        )


def smtp_config() -> SmtpConfig | None:
    """UNION_SMTP_*: the mail server, or None when UNION_SMTP_HOST is not set (mail is off)."""
    env = os.environ
    host = _text(env, "UNION_SMTP_HOST")
    if not host:
        return None
    port_text = _text(env, "UNION_SMTP_PORT") or "25"
    try:
        port = int(port_text)
    except ValueError as err:
        raise ConfigError(f"UNION_SMTP_PORT={port_text!r}: expected a port like 25") from err
    user = env.get("UNION_SMTP_USER") or None
    return SmtpConfig(
        host=host,
        port=port,
        user=user,
        password=env.get("UNION_SMTP_PASSWORD") or None,
        sender=env.get("UNION_SMTP_FROM") or user or "union-pipeline@localhost",
        starttls=(_text(env, "UNION_SMTP_STARTTLS") or "").lower() in TRUE_WORDS,
    )


def recipients(var: str = "UNION_BRIEFING_TO") -> list[str]:
    """UNION_BRIEFING_TO or UNION_ALERT_TO: comma-separated addresses."""
    if var not in ("UNION_BRIEFING_TO", "UNION_ALERT_TO"):
        raise ValueError(f"{var} is not a recipients setting")
    return [a.strip() for a in (os.environ.get(var) or "").split(",") if a.strip()]


def is_demo_drop(raw_dir: Path) -> bool:
    """Is `raw_dir` the generated demo drop: its marker is there (a file, not a link) and
    lists every file of the drop's folders (a real export added to it makes it real)."""
    marker = raw_dir / DEMO_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    listed = {
        line.strip()
        for line in marker.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    present = {
        f"{folder.name}/{p.name}"
        for folder in raw_dir.iterdir()
        # a city drop's district folders carry markers of their own
        if folder.is_dir() and not folder.name.startswith(".") and not folder.name.isdigit()
        for p in folder.iterdir()
        if not p.name.startswith(".")
    }
    return present <= listed


def check_pii_key(pii_key: bytes, raw_dir: Path) -> str | None:
    """Refuse a public PII key for any drop but the generated demo drop.

    Returns the warning to show for the demo drop with the public key, None for a drop
    with a secret key; raises ConfigError (saying how to set the key) otherwise.
    """
    if pii_key not in PUBLIC_PII_KEYS:
        return None
    if is_demo_drop(raw_dir):
        return DEMO_KEY_WARNING
    raise ConfigError(f"{raw_dir}: {KEY_HOWTO}")


def require_pii_key(settings: Settings, raw_dir: Path | None = None) -> str | None:
    """`check_pii_key` for the configured key and raw folder (see there)."""
    return check_pii_key(settings.pii_key, raw_dir or settings.raw_dir)
