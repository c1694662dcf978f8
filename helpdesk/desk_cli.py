"""Commands for the desk's shape: queues and their members, closure days, SLA plans and
school working hours."""

from __future__ import annotations

from typing import Any

import click

from .cli import fail
from .errors import DomainError

queues_cli = click.Group("queues", help="ITS queues.")


@queues_cli.command("add-member")
@click.argument("slug")
@click.argument("email")
def queues_add_member(slug: str, email: str) -> None:
    """Make an agent a member of a queue; agents see only their queues' incidents."""
    from .services.queues import add_member

    try:
        add_member(slug, email)
    except DomainError as error:
        fail(error)
    click.echo(f"{email} is a member of {slug}.")


@queues_cli.command("remove-member")
@click.argument("slug")
@click.argument("email")
def queues_remove_member(slug: str, email: str) -> None:
    """Take an agent out of a queue; their open incidents there go back to the queue."""
    from .services.queues import remove_member

    try:
        handed_back = remove_member(slug, email)
    except DomainError as error:
        fail(error)
    click.echo(f"{email} is no longer a member of {slug}; {handed_back} incident(s) unassigned.")


@queues_cli.command("fulfils")
@click.argument("slug")
@click.argument("kinds", nargs=-1)
def queues_fulfils(slug: str, kinds: tuple[str, ...]) -> None:
    """Set the incident types whose fulfilment the queue's agents may approve (none: no
    types). The shipped set: identity all, student systems student resets, the service
    desk username reminders."""
    from .services.queues import set_fulfils

    try:
        chosen = set_fulfils(slug, list(kinds))
    except DomainError as error:
        fail(error)
    click.echo(f"{slug} fulfils {', '.join(chosen) or 'nothing'}")


@queues_cli.command("assign")
@click.argument("slug")
@click.argument("mode", type=click.Choice(["none", "round_robin", "fewest_open"]))
def queues_assign(slug: str, mode: str) -> None:
    """How the queue assigns new incidents: none (agents claim them), round_robin (to each
    member in turn) or fewest_open (to the member with the fewest open); members who are
    away are skipped."""
    from .services.assignment import MODES, set_mode

    try:
        set_mode(slug, mode)
    except DomainError as error:
        fail(error)
    click.echo(f"{slug}: {MODES[mode]}.")


@queues_cli.command("list")
def queues_list() -> None:
    """Each queue with its plan, open and breached counts, and members."""
    from .services.queues import members, queue_summaries

    for queue in queue_summaries():
        click.echo(
            f"{queue['slug']:<26} plan {queue['sla_plan'] or '-':<20} open {queue['open']:>4}"
            f"  breached {queue['breached']:>3}  fulfils: {', '.join(queue['fulfils']) or '-'}"
            "  members: " + (", ".join(members(queue["slug"])) or "-")
        )


closures_cli = click.Group("closures", help="Days the SLA clocks skip (term holidays...).")


@closures_cli.command("add")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--reason", required=True, help="e.g. 'In-service day'.")
@click.option("--school", "school_code", help="One school's code; default: every school.")
def closures_add(day: Any, reason: str, school_code: str | None) -> None:
    """Close a day (YYYY-MM-DD) for SLA clocks, like a bank holiday."""
    from .services.sla import add_closure

    try:
        add_closure(day.date(), reason, school_code)
    except DomainError as error:
        fail(error)
    click.echo(f"{day:%Y-%m-%d} closed for {school_code or 'every school'}: {reason}")


@closures_cli.command("remove")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--school", "school_code", help="One school's code; default: every school.")
def closures_remove(day: Any, school_code: str | None) -> None:
    """Open a closed day (YYYY-MM-DD) again, like one added by mistake."""
    from .services.sla import remove_closure

    try:
        reason = remove_closure(day.date(), school_code)
    except DomainError as error:
        fail(error)
    click.echo(f"{day:%Y-%m-%d} open again for {school_code or 'every school'} (was: {reason})")


@closures_cli.command("list")
def closures_list() -> None:
    """Every configured closure day."""
    from .services.sla import closures

    for day, reason, code in closures():
        click.echo(f"{day}  {code or 'all schools':<12} {reason}")


sla_cli = click.Group("sla", help="SLA plans and school working hours.")


def _targets(values: tuple[str, ...]) -> dict[str, dict[str, int]]:
    targets = {}
    for value in values:
        try:
            priority, minutes = value.split("=")
            response, resolution = (int(m) for m in minutes.split("/"))
        except ValueError:
            raise click.BadParameter(f"{value!r}: write P1=30/240 (business minutes)") from None
        targets[priority.upper()] = {"response": response, "resolution": resolution}
    return targets


@sla_cli.command("plan")
@click.argument("slug")
@click.option("--name", required=True)
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="PRIORITY=RESPONSE/RESOLUTION in business minutes, e.g. P1=30/240; one per priority.",
)
@click.option("--warn-at", default=80, show_default=True, help="Warn at this % of resolution.")
def sla_plan(slug: str, name: str, targets: tuple[str, ...], warn_at: int) -> None:
    """Create or change an SLA plan."""
    from .services.sla import save_plan

    try:
        save_plan(slug, name, _targets(targets), warn_at)
    except DomainError as error:
        fail(error)
    click.echo(f"SLA plan {slug} saved.")


@sla_cli.command("plans")
def sla_plans() -> None:
    """Every SLA plan and its targets."""
    from .services.sla import plans

    for plan in plans():
        targets = ", ".join(
            f"{p} {t['response']}/{t['resolution']} min" for p, t in sorted(plan.targets.items())
        )
        click.echo(f"{plan.slug:<22} {plan.name} (warn at {plan.warn_at_percent}%): {targets}")


@sla_cli.command("assign")
@click.argument("queue")
@click.argument("plan")
@click.option("--escalates-to", help="The queue this queue's breaches go to.")
def sla_assign(queue: str, plan: str, escalates_to: str | None) -> None:
    """Give a queue an SLA plan (and where its breaches escalate)."""
    from .services.sla import set_queue_plan

    try:
        set_queue_plan(queue, plan, escalates_to)
    except DomainError as error:
        fail(error)
    click.echo(f"{queue} now runs on {plan}.")


@sla_cli.command("hours")
@click.argument("school")
@click.argument("spec")
def sla_hours(school: str, spec: str) -> None:
    """Set a school's working hours, e.g. "mon-thu 08:00-16:30, fri 08:00-15:00"."""
    from .services.sla import set_working_hours

    try:
        hours = set_working_hours(school, spec)
    except DomainError as error:
        fail(error)
    click.echo(f"{school} works {hours}.")


COMMANDS = (queues_cli, closures_cli, sla_cli)
