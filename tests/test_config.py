"""Configuration from the environment, and refusing unsafe production set-ups."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpdesk.config import Config, ConfigError


def test_nothing_set_means_the_embedded_default(tmp_path):
    config = Config.from_env({}, str(tmp_path))
    assert config.ENV == "development"
    assert f"sqlite:///{tmp_path}/helpdesk.sqlite3" == config.SQLALCHEMY_DATABASE_URI
    assert config.REDIS_URL is None
    assert f"{tmp_path}/mail" == config.MAIL_CAPTURE_DIR
    assert config.DISPLAY_TIMEZONE == "Europe/London"
    assert config.embedded


def test_production_settings_are_read(tmp_path):
    config = Config.from_env(
        {
            "DATABASE_URL": "postgres://u:p@db.internal/helpdesk",
            "REDIS_URL": "redis://r:6379/0",
            "SECRET_KEY": "s" * 40,
            "PIN_PEPPER": "p" * 40,
            "MAIL_SERVER": "smtp.internal",
            "MAIL_PORT": "587",
            "MAIL_USE_TLS": "true",
        },
        str(tmp_path),
    )
    assert config.ENV == "production"
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u:p@db.internal/helpdesk"
    assert (config.MAIL_PORT, config.MAIL_USE_TLS, config.MAIL_CAPTURE_DIR) == (587, True, None)
    assert not config.embedded


@pytest.mark.parametrize(
    ("environ", "needs"),
    [
        ({"DATABASE_URL": "postgresql://x/y", "PIN_PEPPER": "p"}, "SECRET_KEY is not set"),
        (
            {
                "HELPDESK_ENV": "production",
                "SECRET_KEY": "dev-only-not-a-secret",
                "PIN_PEPPER": "p",
            },
            "development placeholder",
        ),
        ({"DATABASE_URL": "postgresql://x/y", "SECRET_KEY": "s"}, "PIN_PEPPER is not set"),
        ({"HELPDESK_ENV": "staging"}, "HELPDESK_ENV='staging'"),
        ({"DISPLAY_TIMEZONE": "London"}, "'London' is not a time zone: use an IANA name"),
    ],
)
def test_unsafe_settings_are_refused_with_what_to_do(tmp_path, environ, needs):
    with pytest.raises(ConfigError, match=needs):
        Config.from_env(environ, str(tmp_path))


def test_the_cli_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "HELPDESK_ENV"}}
    env |= {"DATABASE_URL": "postgresql://nowhere/db", "HELPDESK_INSTANCE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk.cli", "routes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SECRET_KEY is not set" in result.stderr
