"""Commands for the data the service holds: purging it when its time is up, and what
it holds about one person."""

from __future__ import annotations

import json

import click

data_cli = click.Group("data", help="Retention and subject access.")


@data_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Show what would be purged; change nothing.")
def data_purge(dry_run: bool) -> None:
    """Purge what was typed about people from incidents past their retention period."""
    from .services import retention

    if dry_run:
        due = retention.due()
        for item in due:
            click.echo(f"{item.ref}  {item.type}  ended {item.ended_at:%Y-%m-%d %H:%M} UTC")
        click.echo(f"{len(due)} incident(s) would be purged.")
        return
    refs = retention.purge()
    click.echo(f"{len(refs)} incident(s) purged" + (f": {', '.join(refs)}" if refs else "."))


@data_cli.command("subject")
@click.argument("person_id")
@click.option("--by", "actor", metavar="EMAIL", help="The admin answering the request, for "
              "the access log.")  # fmt: skip
def data_subject(person_id: str, actor: str | None) -> None:
    """Print as JSON what the service holds about one student or parent (their roster
    sourcedId): a subject access request's answer. The export is in the access log."""
    from .cli import fail
    from .errors import DomainError
    from .services import subject_access, users

    try:
        actor_id = users.user_by_email(actor).id if actor else None
        held = subject_access.export(person_id, actor_id=actor_id)
    except DomainError as error:
        fail(error)
    click.echo(json.dumps(held, indent=2, ensure_ascii=False))


COMMANDS = (data_cli,)
