"""Commands for the data the service holds: purging it when its time is up, and what
it holds about one person."""

from __future__ import annotations

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


COMMANDS = (data_cli,)
