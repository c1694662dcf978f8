"""Configuration, read once from the environment by ``Config.from_env``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import limits

from .domain.lifecycle import INCIDENT_TYPES
from .domain.moments import UnknownZone, zone
from .domain.recovery import PASSWORD, QUESTIONS, USERNAME, parse_questions
from .domain.roles import Role

DEV_SECRET_KEY = "dev-only-not-a-secret"  # noqa: S105 - refused outside development


class ConfigError(RuntimeError):
    """The environment does not describe a service that can start safely."""


def _database_uri(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError("is not true or false")
    return lowered in {"1", "true", "yes", "on"}


def _whole(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("is not a whole number") from None
    if number < 0:
        raise ValueError("is below 0")
    return number


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not 0 <= number < float("inf"):
        raise ValueError("is not a number of 0 or more")
    return number


def _limit(value: str) -> str:
    try:
        limits.parse_many(value)
    except ValueError:
        message = "is not a limit: write it like '5 per day' or '10 per hour; 30 per day'"
        raise ValueError(message) from None
    return value


def _intervals(value: str) -> str:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise ValueError("is not a list of seconds: write it like '30,120,600'")
    return value


def _zone(value: str) -> str:
    try:
        zone(value)
    except UnknownZone as error:
        raise ValueError(str(error).removeprefix(repr(value)).strip()) from None
    return value


def _retention(value: str) -> dict[str, float]:
    """ "30" or "30; access_revocation=365, parent_password_reset=60": days, per type."""
    default, _, rest = value.partition(";")
    periods = {"*": _number(default)}
    for part in (p.strip() for p in rest.split(",") if p.strip()):
        name, equals, days = part.partition("=")
        if not equals or name.strip() not in INCIDENT_TYPES:
            raise ValueError("is not a period like '30; access_revocation=365' (each type one "
                             "of " + ", ".join(INCIDENT_TYPES) + ")")  # fmt: skip
        periods[name.strip()] = _number(days)
    return periods


def _roles(value: str) -> frozenset[str]:
    """ "agent,admin", "employee, agent, admin" or "none"."""
    if value.strip().lower() == "none":
        return frozenset()
    named = {part.strip().lower() for part in value.replace(" ", ",").split(",") if part.strip()}
    unknown = named - {role.value for role in Role}
    if unknown or not named:
        raise ValueError("is not a list of roles (" + ", ".join(r.value for r in Role) +
                         ") or 'none'")  # fmt: skip
    return frozenset(named)


def _text(value: str) -> str:
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable: how it is read, its default, and what it means. The
    README's table of settings has one row per setting, written by ``readme_row``."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    meaning: str
    example: str  # a valid value other than the default (the settings test sets it)

    def read(self, environ: Mapping[str, str]) -> Any:
        raw = environ.get(self.name, "")
        if raw == "" and not isinstance(self.default, str):
            return self.default
        raw = raw or self.default  # a default written as text is read like the variable
        try:
            return self.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{self.name}={raw!r} {str(error).rstrip('.')}.") from None

    def readme_row(self) -> str:
        if self.default is None:
            default = "—"
        elif isinstance(self.default, bool):
            default = f"`{str(self.default).lower()}`"
        elif isinstance(self.default, float):
            default = f"`{self.default:g}`"
        else:
            default = f"`{self.default}`"
        return f"| `{self.name}` | {self.meaning} | {default} |"


# The settings read the same way: unset or empty means the default. Those that decide
# others (HELPDESK_ENV, DATABASE_URL, SECRET_KEY, PIN_PEPPER, REDIS_URL, MAIL_SERVER,
# MAIL_CAPTURE_DIR, RATELIMIT_STORAGE_URI) are read by ``Config.from_env`` itself.
SETTINGS: tuple[Setting, ...] = (
    Setting("MAIL_PORT", _whole, 25, "the mail server's port", "587"),
    Setting("MAIL_USE_TLS", _flag, False, "STARTTLS with the mail server", "true"),
    Setting("MAIL_USE_SSL", _flag, False, "TLS from the first byte (port 465)", "true"),
    Setting("MAIL_USERNAME", _text, None, "the mail server's user name", "helpdesk"),
    Setting("MAIL_PASSWORD", _text, None, "the mail server's password", "example-only"),
    Setting("MAIL_DEFAULT_SENDER", _text, "Portal support <portal-support@helpdesk.example>",
            "the From of every email", "ITS <its@school.example>"),
    Setting("MAIL_TIMEOUT", _number, 10.0,
            "seconds an SMTP server may take before a delivery counts as failed", "4"),
    Setting("MAIL_KEEPALIVE_SECONDS", _number, 30.0,
            "a worker keeps its SMTP connection for an email that follows within this many "
            "seconds (checked with NOOP first); `0`: one connection per email", "0"),
    Setting("PUBLIC_BASE_URL", _text, "http://127.0.0.1:5000",
            "the address links in emails point to (never a request's Host)",
            "https://helpdesk.school.example"),
    Setting("JOB_RETRY_INTERVALS", _intervals, "30,120,600",
            "backoff between a job's attempts, in seconds; a delivery is tried once more "
            "than listed", "10,60"),
    Setting("JOB_TIMEOUT_SECONDS", _whole, 120, "RQ's limit on one job", "60"),
    Setting("OUTBOX_RELAY_AFTER_SECONDS", _number, 120.0,
            "a promised job not finished by then is enqueued again", "300"),
    Setting("RESET_PAGE_RATE_LIMIT", _limit, "20 per minute; 200 per hour",
            "the reset-link page's limit per address", "5 per minute"),
    Setting("SESSION_HOURS", _number, 8.0, "how long a sign-in to the pages lasts", "2"),
    Setting("SIGN_IN_MAX_FAILURES", _whole, 5,
            "failed sign-ins in a row that lock an account", "3"),
    Setting("SIGN_IN_LOCKOUT_MINUTES", _number, 15.0,
            "how long a locked account stays locked", "30"),
    Setting("SIGN_IN_RATE_LIMIT", _limit, "10 per minute; 100 per hour",
            "sign-in attempts allowed per address", "3 per minute"),
    Setting("INVITE_DAYS", _number, 7.0, "how long an invitation link works", "2"),
    Setting("MFA_REQUIRED_ROLES", _roles, "agent,admin",
            "roles whose password sign-in needs a second step (a code from an authenticator "
            "app); `none`, or add `employee`", "employee,agent,admin"),
    Setting("OIDC_ISSUER", _text, None,
            "an OpenID Connect provider for staff single sign-on (its issuer URL, e.g. "
            "`https://login.microsoftonline.com/<tenant>/v2.0`); unset: passwords only",
            "https://accounts.google.com"),
    Setting("OIDC_CLIENT_ID", _text, None, "this service's client id at that provider",
            "helpdesk"),
    Setting("OIDC_CLIENT_SECRET", _text, None, "its client secret", "example-only"),
    Setting("OIDC_PROVIDER_NAME", _text, "your school account",
            "what the sign-in button calls the provider", "Microsoft"),
    Setting("API_TOKEN_DAYS", _number, 90.0, "how long a new API token works", "30"),
    Setting("VERIFY_LIMIT_PER_TARGET", _limit, "5 per day",
            "failed record checks allowed for one parent account, student or child; "
            "reaching it locks that record's checks and emails `its-identity`", "3 per day"),
    Setting("VERIFY_LIMIT_PER_EMPLOYEE", _limit, "10 per hour; 30 per day",
            "failed record checks allowed per filing employee (sliding windows in Redis)",
            "5 per hour"),
    Setting("VERIFY_LIMIT_PER_SCHOOL", _limit, "60 per hour",
            "failed record checks allowed per school", "30 per hour"),
    Setting("VERIFY_LOCK_MINUTES", _whole, 1440,
            "how long a record's checks stay locked once it reached its limit", "60"),
    Setting("VERIFY_DETAIL_TRIES", _whole, 3,
            "failed link checks for one child after which results stop saying which field "
            "differed", "1"),
    Setting("SELF_SERVICE_PASSWORD_QUESTIONS", partial(parse_questions, PASSWORD),
            "username, email, postcode",
            "what the public \"Forgot your password?\" page asks a parent (of: "
            + ", ".join(QUESTIONS) + "); every answer must match the records",
            "username, email, child_birth_date"),
    Setting("SELF_SERVICE_USERNAME_QUESTIONS", partial(parse_questions, USERNAME),
            "email, postcode, child_birth_date",
            "what the public \"Forgot your username?\" page asks a parent", "email, postcode"),
    Setting("SELF_SERVICE_LIMIT_PER_CLIENT", _limit, "10 per hour; 30 per day",
            "recovery attempts allowed from one client address (sliding windows in Redis)",
            "5 per hour"),
    Setting("SELF_SERVICE_LIMIT_PER_EMAIL", _limit, "5 per hour; 10 per day",
            "recovery attempts allowed per typed email address", "3 per hour"),
    Setting("SELF_SERVICE_LIMIT_PER_TARGET", _limit, "5 per day",
            "recovery attempts allowed per account typed (its username, or the email a "
            "username is asked for); reaching it stops self-service for it for "
            "`VERIFY_LOCK_MINUTES` and emails its holder", "3 per day"),
    Setting("SELF_SERVICE_ANSWER_MS", _whole, 400,
            "the least time, in milliseconds, any answer of the recovery pages takes, so a "
            "match cannot be told from a mismatch by its speed", "250"),
    Setting("RETENTION_DAYS", _retention, "30",
            "days after an incident ends (closed, rejected, cancelled) that what was typed "
            "about people is kept; then it is purged. A default, then per type: "
            "`30; access_revocation=365`", "14; access_revocation=365"),
    Setting("RESOLVED_QUIET_DAYS", _number, 7.0,
            "a resolved incident nobody reopens closes itself after this many days", "14"),
    Setting("RULES_CACHE_SECONDS", _number, 5.0,
            "how long a process trusts the rules, queues and calendars it loaded; a save is "
            "in force everywhere this long after it", "1"),
    Setting("DISPLAY_TIMEZONE", _zone, "Europe/London",
            "the zone pages and staff emails show times in (families' emails use their "
            "school's)", "Europe/Dublin"),
    Setting("LOG_LEVEL", _text, "INFO", "the lowest level logged", "WARNING"),
)  # fmt: skip

# Settings of the service and its libraries that are not read from the environment.
_FIXED: dict[str, Any] = {
    # Flask-Mail would silently drop mail under TESTING; the tests use a real SMTP server.
    "MAIL_SUPPRESS_SEND": False,
    "RATELIMIT_HEADERS_ENABLED": True,
    "API_TITLE": "portal-helpdesk",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "JSON_SORT_KEYS": False,
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
}


@dataclass
class Config:
    """Every setting the service reads: those that decide others, then ``SETTINGS``
    (read as attributes too: ``config.MAIL_PORT``)."""

    ENV: str
    SECRET_KEY: str
    PIN_PEPPER: str
    SQLALCHEMY_DATABASE_URI: str
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any]
    REDIS_URL: str | None
    MAIL_SERVER: str | None
    MAIL_CAPTURE_DIR: str | None
    RATELIMIT_STORAGE_URI: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings") or {}
        if name in settings:
            return settings[name]
        raise AttributeError(name)

    @property
    def embedded(self) -> bool:
        """True when running on the no-configuration default (SQLite, fake Redis, mail files)."""
        return self.SQLALCHEMY_DATABASE_URI.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], instance_path: str) -> Config:
        """Build the configuration from environment variables; refuse unsafe production set-ups."""
        database_url = environ.get("DATABASE_URL")
        env = environ.get("HELPDESK_ENV") or ("production" if database_url else "development")
        if env not in {"development", "production", "testing"}:
            raise ConfigError(
                f"HELPDESK_ENV={env!r} is not known: use development, production or testing."
            )
        secret_key = environ.get("SECRET_KEY")
        if not secret_key:
            if env != "development":
                raise ConfigError(
                    "SECRET_KEY is not set. Outside development the service needs a long random "
                    "value, e.g. SECRET_KEY=$(python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')."
                )
            secret_key = DEV_SECRET_KEY
        elif secret_key == DEV_SECRET_KEY and env != "development":
            raise ConfigError("SECRET_KEY is the development placeholder: set a real secret.")
        pin_pepper = environ.get("PIN_PEPPER")
        if not pin_pepper:
            if env == "production":
                raise ConfigError(
                    "PIN_PEPPER is not set. It keys the hashes of imported parent PINs and must "
                    "stay the same for the life of the database; set it to a long random value."
                )
            pin_pepper = DEV_SECRET_KEY

        if database_url:
            uri = _database_uri(database_url)
        else:
            Path(instance_path).mkdir(parents=True, exist_ok=True)
            uri = "sqlite:///" + os.path.join(instance_path, "helpdesk.sqlite3")

        engine_options: dict[str, Any] = {}
        if uri.startswith("postgresql"):
            # No pre-ping: under load it cost a fifth of filing throughput (bench/README.md).
            # A connection that died (database restart) fails one request with a 503
            # that says nothing was stored; SQLAlchemy then replaces the whole pool.
            engine_options = {"pool_size": 10, "max_overflow": 10, "pool_recycle": 1800}

        redis_url = environ.get("REDIS_URL") or None
        mail_server = environ.get("MAIL_SERVER") or None
        capture_dir = environ.get("MAIL_CAPTURE_DIR") or (
            None if mail_server else os.path.join(instance_path, "mail")
        )
        settings = {setting.name: setting.read(environ) for setting in SETTINGS}
        if settings["OIDC_ISSUER"] and not (
            settings["OIDC_CLIENT_ID"] and settings["OIDC_CLIENT_SECRET"]
        ):
            raise ConfigError("OIDC_ISSUER is set, so single sign-on needs OIDC_CLIENT_ID and "
                              "OIDC_CLIENT_SECRET too: the ones the provider gave this "
                              "service when it was registered there.")  # fmt: skip
        return cls(
            ENV=env,
            SECRET_KEY=secret_key,
            PIN_PEPPER=pin_pepper,
            SQLALCHEMY_DATABASE_URI=uri,
            SQLALCHEMY_ENGINE_OPTIONS=engine_options,
            REDIS_URL=redis_url,
            MAIL_SERVER=mail_server,
            MAIL_CAPTURE_DIR=capture_dir,
            RATELIMIT_STORAGE_URI=environ.get("RATELIMIT_STORAGE_URI") or redis_url or "memory://",
            settings=settings,
        )

    def as_flask_config(self) -> dict[str, Any]:
        """The settings as the upper-case mapping Flask and its extensions read."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "settings"}
        values.update(_FIXED, **self.settings, TESTING=self.ENV == "testing")
        values["EMBEDDED"] = self.embedded
        # Session cookies: HttpOnly, SameSite=Lax, Secure outside development and tests
        # (which speak plain HTTP on localhost); the CSRF token lives as long as the session.
        values["SESSION_COOKIE_SECURE"] = self.ENV == "production"
        values["SESSION_COOKIE_HTTPONLY"] = True
        values["SESSION_COOKIE_SAMESITE"] = "Lax"
        values["SESSION_COOKIE_NAME"] = "helpdesk_session"
        values["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=self.SESSION_HOURS)
        values["WTF_CSRF_TIME_LIMIT"] = None
        # While Redis is away the sign-in and reset-page limits count in this process's
        # memory (Flask-Limiter logs the switch), so a correct password still signs in.
        values["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
        return values
