"""Configuration, read once from the environment by ``Config.from_env``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import limits

from .domain.moments import UnknownZone, zone

DEV_SECRET_KEY = "dev-only-not-a-secret"  # noqa: S105 - refused outside development


class ConfigError(RuntimeError):
    """The environment does not describe a service that can start safely."""


def _database_uri(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Config:
    """Every setting the service reads, with the embedded default when unset."""

    ENV: str = "development"
    SECRET_KEY: str = DEV_SECRET_KEY
    PIN_PEPPER: str = DEV_SECRET_KEY
    SQLALCHEMY_DATABASE_URI: str = ""
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = field(default_factory=dict)
    REDIS_URL: str | None = None
    MAIL_SERVER: str | None = None
    MAIL_PORT: int = 25
    MAIL_USE_TLS: bool = False
    MAIL_USE_SSL: bool = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_DEFAULT_SENDER: str = "Portal support <portal-support@helpdesk.example>"
    MAIL_CAPTURE_DIR: str | None = None
    # Flask-Mail would silently drop mail under TESTING; the tests use a real SMTP server.
    MAIL_SUPPRESS_SEND: bool = False
    # Seconds an SMTP server may take to answer before the delivery counts as failed.
    MAIL_TIMEOUT: float = 10.0
    # A worker keeps its SMTP connection for the next email if it comes within this many
    # seconds (a NOOP checks it first); 0 opens and closes one per email.
    MAIL_KEEPALIVE_SECONDS: float = 30.0
    # Links in emails are built from this, never from a request's Host header.
    PUBLIC_BASE_URL: str = "http://127.0.0.1:5000"
    # Backoff between a job's attempts (seconds); a delivery is tried once more than listed.
    JOB_RETRY_INTERVALS: str = "30,120,600"
    JOB_TIMEOUT_SECONDS: int = 120
    # A promised job not finished by then is enqueued again by the outbox relay.
    OUTBOX_RELAY_AFTER_SECONDS: float = 120.0
    # Flask-Limiter's storage: Redis in production, process memory on the embedded default.
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_HEADERS_ENABLED: bool = True
    RESET_PAGE_RATE_LIMIT: str = "20 per minute; 200 per hour"
    # Staff sign-in (the web pages): cookie session, lockout after repeated failures.
    SESSION_HOURS: float = 8.0
    SIGN_IN_MAX_FAILURES: int = 5
    SIGN_IN_LOCKOUT_MINUTES: float = 15.0
    SIGN_IN_RATE_LIMIT: str = "10 per minute; 100 per hour"
    INVITE_DAYS: float = 7.0
    # Failed record checks allowed in sliding windows (SPEC §3; docs/security.md): per
    # filing employee, per school, and per record aimed at. A record that reaches its
    # limit has its checks locked for VERIFY_LOCK_MINUTES and the identity queue is told.
    VERIFY_LIMIT_PER_EMPLOYEE: str = "10 per hour; 30 per day"
    VERIFY_LIMIT_PER_SCHOOL: str = "60 per hour"
    VERIFY_LIMIT_PER_TARGET: str = "5 per day"
    VERIFY_LOCK_MINUTES: int = 1440
    # After this many failed link checks for one child, results stop saying which field
    # differed (the employee is told to contact the parent).
    VERIFY_DETAIL_TRIES: int = 3
    # Run jobs in a thread of the web process (the embedded default's `helpdesk run`).
    EMBEDDED_WORKER: bool = False
    # A resolved incident nobody reopens closes itself after this many days.
    RESOLVED_QUIET_DAYS: float = 7.0
    # How long the routing rules in force are trusted before their version is checked.
    RULES_CACHE_SECONDS: float = 5.0
    # Where the people reading pages and staff emails are; families get their school's.
    DISPLAY_TIMEZONE: str = "Europe/London"
    LOG_LEVEL: str = "INFO"
    TESTING: bool = False
    # flask-smorest / OpenAPI
    API_TITLE: str = "portal-helpdesk"
    API_VERSION: str = "v1"
    OPENAPI_VERSION: str = "3.0.3"
    OPENAPI_URL_PREFIX: str = "/api/v1"
    OPENAPI_JSON_PATH: str = "openapi.json"
    JSON_SORT_KEYS: bool = False
    SQLALCHEMY_TRACK_MODIFICATIONS: bool = False
    MAX_CONTENT_LENGTH: int = 64 * 1024 * 1024

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

        display_zone = environ.get("DISPLAY_TIMEZONE") or cls.DISPLAY_TIMEZONE
        try:
            zone(display_zone)
        except UnknownZone as error:
            raise ConfigError(f"DISPLAY_TIMEZONE={error}") from None

        verify_limits: dict[str, str] = {
            name: environ.get(name) or getattr(cls, name)
            for name in (
                "VERIFY_LIMIT_PER_EMPLOYEE", "VERIFY_LIMIT_PER_SCHOOL", "VERIFY_LIMIT_PER_TARGET"
            )
        }  # fmt: skip
        for name, value in verify_limits.items():
            try:
                limits.parse_many(value)
            except ValueError:
                raise ConfigError(
                    f"{name}={value!r} is not a limit: write it like '5 per day' or "
                    "'10 per hour; 30 per day'."
                ) from None

        mail_server = environ.get("MAIL_SERVER") or None
        capture_dir = environ.get("MAIL_CAPTURE_DIR") or (
            None if mail_server else os.path.join(instance_path, "mail")
        )
        return cls(
            ENV=env,
            SECRET_KEY=secret_key,
            PIN_PEPPER=pin_pepper,
            SQLALCHEMY_DATABASE_URI=uri,
            SQLALCHEMY_ENGINE_OPTIONS=engine_options,
            REDIS_URL=environ.get("REDIS_URL") or None,
            MAIL_SERVER=mail_server,
            MAIL_PORT=int(environ.get("MAIL_PORT", "25")),
            MAIL_USE_TLS=_flag(environ.get("MAIL_USE_TLS"), False),
            MAIL_USE_SSL=_flag(environ.get("MAIL_USE_SSL"), False),
            MAIL_USERNAME=environ.get("MAIL_USERNAME") or None,
            MAIL_PASSWORD=environ.get("MAIL_PASSWORD") or None,
            MAIL_DEFAULT_SENDER=environ.get("MAIL_DEFAULT_SENDER", cls.MAIL_DEFAULT_SENDER),
            MAIL_CAPTURE_DIR=capture_dir,
            MAIL_TIMEOUT=float(environ.get("MAIL_TIMEOUT", cls.MAIL_TIMEOUT)),
            MAIL_KEEPALIVE_SECONDS=float(
                environ.get("MAIL_KEEPALIVE_SECONDS", cls.MAIL_KEEPALIVE_SECONDS)
            ),
            PUBLIC_BASE_URL=environ.get("PUBLIC_BASE_URL", cls.PUBLIC_BASE_URL),
            JOB_RETRY_INTERVALS=environ.get("JOB_RETRY_INTERVALS", cls.JOB_RETRY_INTERVALS),
            JOB_TIMEOUT_SECONDS=int(environ.get("JOB_TIMEOUT_SECONDS", cls.JOB_TIMEOUT_SECONDS)),
            OUTBOX_RELAY_AFTER_SECONDS=float(
                environ.get("OUTBOX_RELAY_AFTER_SECONDS", cls.OUTBOX_RELAY_AFTER_SECONDS)
            ),
            RESET_PAGE_RATE_LIMIT=environ.get("RESET_PAGE_RATE_LIMIT", cls.RESET_PAGE_RATE_LIMIT),
            RATELIMIT_STORAGE_URI=environ.get("RATELIMIT_STORAGE_URI")
            or (environ["REDIS_URL"] if environ.get("REDIS_URL") else "memory://"),
            SESSION_HOURS=float(environ.get("SESSION_HOURS", cls.SESSION_HOURS)),
            SIGN_IN_MAX_FAILURES=int(environ.get("SIGN_IN_MAX_FAILURES", cls.SIGN_IN_MAX_FAILURES)),
            SIGN_IN_LOCKOUT_MINUTES=float(
                environ.get("SIGN_IN_LOCKOUT_MINUTES", cls.SIGN_IN_LOCKOUT_MINUTES)
            ),
            SIGN_IN_RATE_LIMIT=environ.get("SIGN_IN_RATE_LIMIT", cls.SIGN_IN_RATE_LIMIT),
            VERIFY_LIMIT_PER_EMPLOYEE=verify_limits["VERIFY_LIMIT_PER_EMPLOYEE"],
            VERIFY_LIMIT_PER_SCHOOL=verify_limits["VERIFY_LIMIT_PER_SCHOOL"],
            VERIFY_LIMIT_PER_TARGET=verify_limits["VERIFY_LIMIT_PER_TARGET"],
            VERIFY_LOCK_MINUTES=int(environ.get("VERIFY_LOCK_MINUTES", cls.VERIFY_LOCK_MINUTES)),
            VERIFY_DETAIL_TRIES=int(environ.get("VERIFY_DETAIL_TRIES", cls.VERIFY_DETAIL_TRIES)),
            DISPLAY_TIMEZONE=display_zone,
            LOG_LEVEL=environ.get("LOG_LEVEL", "INFO"),
            TESTING=env == "testing",
        )

    def as_flask_config(self) -> dict[str, Any]:
        """The settings as the upper-case mapping Flask and its extensions read."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
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
