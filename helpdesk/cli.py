"""The ``helpdesk`` command: Flask's ``run`` and Flask-Migrate's ``db``, plus the commands here."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from .domain.roles import TokenScope
from .errors import DomainError
from .roster import MalformedBundle, open_bundle

DEMO_ROSTER = Path(__file__).parent / "demo" / "roster"


def fail(error: DomainError) -> None:
    click.echo(f"Error: {error.message}", err=True)
    for problem in getattr(error, "problems", [])[:50]:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


def _print_report(report: Any) -> None:
    for entity, counts in report.counts.items():
        click.echo(f"{entity:>16}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for rejected in report.rejected:
        click.echo(f"  rejected {rejected.file} row {rejected.row}: {rejected.reason}")


roster_cli = click.Group("roster", help="School records from the information system.")


@roster_cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def roster_import(path: Path) -> None:
    """Import a OneRoster bundle (a folder or zip); all of it, or nothing."""
    from .services.roster import import_roster

    try:
        report = import_roster(open_bundle(path), source=str(path))
    except (MalformedBundle, DomainError) as error:
        fail(error)
    _print_report(report)


users_cli = click.Group("users", help="Helpdesk users.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["employee", "agent", "admin"]))
@click.option("--staff-id", help="The staff record's sourcedId (employees).")
@click.option("--name", help="Display name; defaults to the staff record's name.")
@click.option("--password", "ask_password", is_flag=True, help="Set a password now (prompted).")
@click.option("--invite", is_flag=True, help="Print a one-time link to choose a password.")
def users_create(
    email: str, role: str, staff_id: str | None, name: str | None, ask_password: bool,
    invite: bool,
) -> None:  # fmt: skip
    """Add a user; an employee is tied to a staff record and so to a school.

    With --password the password is asked for (never an argument, so it stays out of the
    shell history); with --invite a link is printed with which they choose one.
    """
    from .services.sign_in import invite as make_invite
    from .services.sign_in import password_problems, set_password
    from .services.uow import unit_of_work
    from .services.users import create_user

    try:
        user = create_user(email, role, staff_sourced_id=staff_id, display_name=name)
    except DomainError as error:
        fail(error)
    click.echo(f"Created {user.role} {user.email}.")
    if ask_password:
        while True:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            problems = password_problems(user, password)
            if not problems:
                break
            click.echo(" ".join(problems), err=True)
        with unit_of_work():
            set_password(user, password)
        click.echo("Password set: they can sign in to the pages.")
    if invite:
        _print_invite(*make_invite(user.email))


def _print_invite(token: str, expires: Any) -> None:
    from flask import url_for

    with current_app.test_request_context(base_url=current_app.config["PUBLIC_BASE_URL"]):
        link = url_for("auth.accept_invite", token=token, _external=True)
    click.echo(f"Invitation (works once, until {expires:%Y-%m-%d %H:%M} UTC):\n  {link}")


@users_cli.command("invite")
@click.argument("email")
def users_invite(email: str) -> None:
    """Print a new one-time link with which a user chooses their password."""
    from .services.sign_in import invite as make_invite

    try:
        _print_invite(*make_invite(email))
    except DomainError as error:
        fail(error)


tokens_cli = click.Group("tokens", help="API tokens.")


@tokens_cli.command("issue")
@click.argument("email")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in TokenScope]),
    default="full",
    show_default=True,
    help="full: what its user may; read-only: it looks, never "
    "files or changes; filing: a school system's, it files for its employee's "
    "school and reads incidents, nothing else.",
)
@click.option("--read-only", is_flag=True, help="The same as --scope read-only.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True),
              help="How long it works (default: API_TOKEN_DAYS).")  # fmt: skip
def tokens_issue(email: str, name: str, scope: str, read_only: bool, days: float | None) -> None:
    """Issue an API token for a user and print it once; only its digest is kept."""
    from .services.users import issue_api_token

    try:
        scope = TokenScope.READ_ONLY if read_only else scope
        click.echo(issue_api_token(email, name, scope=scope, days=days))
    except DomainError as error:
        fail(error)


rules_cli = click.Group("rules", help="Routing rules.")


@rules_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", help="Why this version; kept with it.")
def rules_load(path: Path, note: str | None) -> None:
    """Save the rules in a YAML file as the new version in force."""
    from .domain.rules_yaml import RulesTextError, parse
    from .services.routing import save_rules, when_in_force

    try:
        data = parse(path.read_text(encoding="utf-8"))
    except RulesTextError as error:
        click.echo(f"Error: {path} is not a rule set: {error}", err=True)
        sys.exit(1)
    try:
        saved = save_rules(data, actor_id=None, note=note or f"loaded from {path.name}")
    except DomainError as error:
        fail(error)
    click.echo(f"Saved {len(saved.rules)} rules as version {saved.version}; "
               f"{when_in_force(saved)}.")  # fmt: skip


@rules_cli.command("rollback")
@click.argument("version", type=click.IntRange(0))
def rules_rollback(version: int) -> None:
    """Put an earlier version back in force as a new version; 0 is the shipped rules."""
    from .services.routing import roll_back, when_in_force

    try:
        saved = roll_back(version, actor_id=None)
    except DomainError as error:
        fail(error)
    click.echo(f"Version {version} is back as version {saved.version}; {when_in_force(saved)}.")


@rules_cli.command("export")
@click.option("--version", type=int, help="A saved version; default: the one in force.")
def rules_export(version: int | None) -> None:
    """Print a rule set as YAML (the one in force, or --version)."""
    import yaml

    from .services.routing import rule_set

    try:
        number, rules = rule_set(version)
    except DomainError as error:
        fail(error)
    click.echo(f"# routing rules, version {number}")
    click.echo(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True), nl=False)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run each periodic job once and exit (cron, tests).")
@click.option("--batch", default=500, show_default=True, help="Incidents claimed per batch.")
@click.option("--tick", default=5.0, show_default=True, help="Seconds between checks.")
def scheduler(once: bool, batch: int, tick: float) -> None:
    """Run the periodic jobs (SLA escalation, closing quiet incidents); one at a time."""
    from . import scheduler as periodic
    from .services.sla import run_escalation_pass
    from .services.transitions import close_quiet_resolved

    if once:
        report = run_escalation_pass(batch=batch)
        closed = close_quiet_resolved(batch=batch)
        click.echo(
            f"escalated {len(report.resolution_breaches)} resolution and "
            f"{len(report.response_breaches)} response breaches; warned "
            f"{len(report.warnings)}; closed {len(closed)}"
        )
        return
    click.echo("scheduler running; Ctrl-C or SIGTERM stops it")
    stopping = threading.Event()
    # SIGTERM (systemd, a deploy) ends the loop so the lease is let go at once, and another
    # scheduler takes over without waiting for it to lapse.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        periodic.loop(tick, stop=stopping.is_set)


@click.command("demo")
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(exists=True, path_type=Path),
    default=DEMO_ROSTER,
    show_default=True,
)
def demo(roster_path: Path) -> None:
    """Load the sample roster and demo users, and print their passwords and tokens."""
    from .services.demo import load_demo

    try:
        users = load_demo(roster_path)
    except DomainError as error:
        fail(error)
    base = current_app.config["PUBLIC_BASE_URL"]
    click.echo(f"Demo loaded. Sign in at {base}/sign-in; API: {base}/api/v1")
    click.echo("New passwords and API tokens on each run:")
    for email, user in users.items():
        where = f" ({user.school})" if user.school else ""
        click.echo(
            f"  {user.role:<9}{email}{where}\n           password: {user.password}"
            f"\n           token: {user.token}"
        )


def register_commands(app: Flask) -> None:
    from . import data_cli, desk_cli, work_cli

    for command in (
        *work_cli.COMMANDS,
        *data_cli.COMMANDS,
        *desk_cli.COMMANDS,
        roster_cli,
        users_cli,
        tokens_cli,
        rules_cli,
        scheduler,
        demo,
    ):
        app.cli.add_command(command)


def _create_app() -> Flask:
    from . import ConfigError, create_app

    try:
        return create_app()
    except ConfigError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)


def _main() -> FlaskGroup:
    from flask.cli import routes_command, shell_command

    from .work_cli import serve

    group = FlaskGroup(
        create_app=_create_app,
        add_default_commands=False,
        help="portal-helpdesk: incidents for school portal support.",
    )
    for command in (serve, shell_command, routes_command):
        group.add_command(command)
    return group


main = _main()


if __name__ == "__main__":
    main()
