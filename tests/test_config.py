"""Configuration from the environment, and refusing unsafe production set-ups."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk import create_app
from helpdesk.config import SETTINGS, Config, ConfigError
from helpdesk.services.stores.base import env_name

ROOT = Path(__file__).resolve().parent.parent / "helpdesk"


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


# -- Every documented setting is read, as documented ------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


_NEEDS = {"OIDC_ISSUER": {"OIDC_CLIENT_ID": "helpdesk", "OIDC_CLIENT_SECRET": "example-only"}}


def test_single_sign_on_without_its_client_is_refused_at_start(tmp_path):
    with pytest.raises(ConfigError, match="needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"):
        create_app({"HELPDESK_INSTANCE": str(tmp_path), "OIDC_ISSUER": "https://idp.example"})


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_each_setting_is_read_from_the_environment(tmp_path, setting):
    """Set to its example value, the setting is what the app's config holds; unset, its
    default (what the README says)."""
    needs = _NEEDS.get(setting.name, {})  # settings that only work with others
    app = create_app({"HELPDESK_INSTANCE": str(tmp_path), setting.name: setting.example, **needs})
    default = setting.read({})  # a default written as text is read like the variable
    assert app.config[setting.name] == setting.parse(setting.example) != default
    unset = create_app({"HELPDESK_INSTANCE": str(tmp_path)})
    assert unset.config[setting.name] == default


@pytest.mark.parametrize("value, said", [
    ("thirty", "RETENTION_DAYS='thirty' is not a number."),
    ("30; homework=5", "RETENTION_DAYS='30; homework=5' is not a period like "
                       "'30; access_revocation=365' (each type one of student_password_reset, "
                       "parent_password_reset, portal_link_failure, username_reminder, "
                       "access_revocation)."),
    ("30; access_revocation=-1", "RETENTION_DAYS='30; access_revocation=-1' is not a number "
                                 "of 0 or more."),
])  # fmt: skip
def test_a_retention_period_that_cannot_be_read_stops_the_start_saying_why(tmp_path, value, said):
    with pytest.raises(ConfigError) as raised:
        create_app({"HELPDESK_INSTANCE": str(tmp_path), "RETENTION_DAYS": value})
    assert str(raised.value) == said


def test_every_incident_type_has_its_schema_in_order():
    from helpdesk.domain.lifecycle import INCIDENT_TYPES
    from helpdesk.schemas.incidents import INCIDENT_SCHEMAS

    assert tuple(INCIDENT_SCHEMAS) == INCIDENT_TYPES


def _readme_settings() -> list[str]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| variable | meaning | default |") :].split("\n\n", 1)[0]
    return table.splitlines()[2:]


def test_the_readme_lists_every_setting_as_it_is_read():
    rows = _readme_settings()
    for setting in SETTINGS:
        assert setting.readme_row() in rows, f"README.md: write {setting.readme_row()}"


def test_the_readme_names_no_setting_that_is_not_read():
    """Every variable in the README's table changes something: a table setting, or one
    read by ``Config.from_env`` (or the directory stores) by name."""
    read_by_name = set(
        re.findall(r'environ(?:\.get)?\(\s*"([A-Z_]+)"', (ROOT / "config.py").read_text())
    ) | {"HELPDESK_INSTANCE"}  # read by create_app  # fmt: skip
    store_names = {env_name(portal, suffix) for portal in ("parent", "student")
                   for suffix in ("SECRET", "SECRET_FILE", "CA_FILE")}  # fmt: skip
    known = {s.name for s in SETTINGS} | read_by_name | store_names
    for row in _readme_settings():
        named = re.findall(r"`([A-Z][A-Z_]+)`", row.split("|")[1])
        assert named, row
        assert set(named) <= known, f"README.md names {set(named) - known}, which nothing reads"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MAIL_PORT", "smtp", "MAIL_PORT='smtp' is not a whole number."),
        ("RULES_CACHE_SECONDS", "-1", "RULES_CACHE_SECONDS='-1' is not a number of 0 or more."),
        ("MAIL_USE_TLS", "maybe", "MAIL_USE_TLS='maybe' is not true or false."),
        ("SIGN_IN_RATE_LIMIT", "lots", "SIGN_IN_RATE_LIMIT='lots' is not a limit"),
        ("JOB_RETRY_INTERVALS", "30s", "JOB_RETRY_INTERVALS='30s' is not a list of seconds"),
    ],
)
def test_a_setting_that_cannot_be_read_says_what_to_write(tmp_path, name, value, says):
    with pytest.raises(ConfigError) as refused:
        Config.from_env({name: value}, str(tmp_path))
    assert says in str(refused.value)
