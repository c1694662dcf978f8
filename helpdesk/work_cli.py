"""Commands for the work that happens after a request: workers, the outbox, access, portals."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import ScriptInfo, get_debug_flag, run_command

from .errors import DomainError
from .outages import TRANSIENT, Outage


def _children_die_with_this_process() -> None:
    """RQ forks a scheduler (and, with --fork, a work-horse per job): each is told to end
    when this worker ends, however it ends (an out-of-memory kill included), so none is
    left behind. Linux's PR_SET_PDEATHSIG; elsewhere RQ's own shutdown is all there is."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def in_child() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the worker died before the child was told
            os.kill(os.getpid(), signal.SIGTERM)

    os.register_at_fork(after_in_child=in_child)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="Queues to serve (default: all, in order).")
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@click.option("--name", help="Worker name (default: host and pid).")
@click.option(
    "--fork/--no-fork",
    default=False,
    show_default=True,
    help="Run each job in a forked work-horse (RQ's isolation, but every job compiles and "
    "connects afresh), or in this process (warm caches, one database connection: four "
    "times the throughput, see bench/README.md).",
)
def worker(queues: tuple[str, ...], burst: bool, name: str | None, fork: bool) -> None:
    """Run an RQ worker (with RQ's scheduler for retries) inside the app."""
    from .services.outbox import QUEUES

    if current_app.config["REDIS_URL"] is None:
        raise click.UsageError(
            "Set REDIS_URL: a separate worker needs a Redis server. The embedded default "
            "runs its worker inside `helpdesk run`."
        )
    chosen = queues or QUEUES
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {unknown}; known: {list(QUEUES)}")
    from workers.worker import make_worker  # the CLI starts the workers; the app never does

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _children_die_with_this_process()
    # What is loaded by now lives as long as the worker: out of the collector's sight, a
    # full collection no longer walks it (about 2 ms a job on average, measured), and a
    # forked work-horse does not copy the pages a collection would have touched.
    gc.freeze()
    outage = Outage("worker")
    while True:
        # RQ rides out short Redis outages itself; one that stops it (at start-up, or in
        # its registration or scheduler) starts a new worker once Redis answers again.
        try:
            running = make_worker(app, tuple(chosen), name=name, fork=fork)
            running.connection.ping()
            outage.over()
            running.work(burst=burst, with_scheduler=True)
            return
        except TRANSIENT as error:
            outage.wait(error)


outbox_cli = click.Group("outbox", help="Jobs promised by committed changes.")


@outbox_cli.command("relay")
def outbox_relay() -> None:
    """Enqueue promised jobs that are overdue and not alive in RQ (the scheduler does it too)."""
    from .services.outbox import relay

    click.echo(f"relayed {len(relay())} job(s)")


access_cli = click.Group("access", help="Parents' portal access after a revocation.")


@access_cli.command("restore")
@click.argument("guardian_sourced_id")
@click.option("--admin", "admin_email", required=True, help="The admin taking the decision.")
def access_restore(guardian_sourced_id: str, admin_email: str) -> None:
    """Restore a revoked guardian's portal access, so resets may target them again."""
    import sqlalchemy as sa

    from .extensions import db
    from .models import Role, User
    from .services.fulfilment import restore_access

    admin = db.session.execute(sa.select(User).where(User.email == admin_email)).scalar()
    if admin is None or admin.role != Role.ADMIN:
        raise click.UsageError(f"{admin_email} is not an admin.")
    try:
        guardian = restore_access(guardian_sourced_id, admin)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Portal access restored for {guardian.full_name} ({guardian_sourced_id}).")


portals_cli = click.Group("portals", help="Password policy and delivery mode per portal.")


@portals_cli.command("list")
def portals_list() -> None:
    """Show each portal's password policy and how resets are delivered."""
    from .services.portals import describe_store, policies

    for row in policies():
        classes = [n for n, on in (("upper", row.require_upper), ("lower", row.require_lower),
                                   ("digit", row.require_digit), ("symbol", row.require_symbol))
                   if on]  # fmt: skip
        click.echo(
            f"{row.portal:<8} min {row.min_length}, {'+'.join(classes) or 'any'}, "
            f"history {row.history}, {row.delivery_mode}, "
            f"valid {row.secret_lifetime_minutes} min; store {describe_store(row)}"
        )


@portals_cli.command("set")
@click.argument("portal", type=click.Choice(["parent", "student"]))
@click.option("--min-length", type=int)
@click.option("--upper/--no-upper", default=None)
@click.option("--lower/--no-lower", default=None)
@click.option("--digit/--no-digit", default=None)
@click.option("--symbol/--no-symbol", default=None)
@click.option("--history", type=int, help="Refuse any of the last N passwords.")
@click.option("--mode", type=click.Choice(["one_time_password", "reset_link"]))
@click.option("--lifetime-minutes", type=int, help="How long a password or link stays valid.")
@click.option("--sign-in-url", help="Where holders sign in to the portal (https://…).")
@click.option(
    "--store",
    type=click.Choice(["sql", "ldap", "active_directory", "scim"]),
    help="Where the portal's passwords live (docs/directories.md).",
)
@click.option("--url", help="The directory: ldaps://host:636, ldap://host:389 or https://…/v2.")
@click.option("--bind-dn", help="LDAP/AD: the service account the helpdesk binds as.")
@click.option("--base-dn", help="LDAP/AD: where accounts are searched for.")
@click.option(
    "--find",
    help="How the roster's account is found, e.g. '(uid={username})' or "
    "'userName eq \"{username}\"'.",
)
@click.option(
    "--password-change",
    type=click.Choice(["exop", "replace"]),
    help="LDAP: RFC 3062 Password Modify (exop) or a replace of userPassword.",
)
@click.option("--start-tls/--no-start-tls", default=None, help="LDAP on 389: StartTLS first.")
def portals_set(portal: str, **changes: Any) -> None:
    """Change a portal's password policy, delivery mode or credential store."""
    from .services.portals import describe_store, update_policy

    try:
        row = update_policy(portal, {k: v for k, v in changes.items() if v is not None})
    except DomainError as error:
        raise click.ClickException(error.message) from None
    click.echo(
        f"{row.portal}: min {row.min_length}, history {row.history}, {row.delivery_mode}; "
        f"store {describe_store(row)}"
    )


def _serve(**kwargs: Any) -> Any:
    """Flask's ``run``; on the embedded default it also starts the worker thread."""
    context = click.get_current_context()
    app = context.ensure_object(ScriptInfo).load_app()
    reload = kwargs.get("reload")
    reloading = get_debug_flag() if reload is None else reload
    # With the reloader, only the child that serves requests runs the worker.
    if app.config["EMBEDDED"] and (not reloading or os.environ.get("WERKZEUG_RUN_MAIN")):
        from workers.worker import start_embedded

        start_embedded(app)
        click.echo("embedded worker running: jobs, retries and periodic jobs in-process")
    if not os.environ.get("WERKZEUG_RUN_MAIN"):  # once, not again from the reloader's child
        host, port = kwargs.get("host") or "127.0.0.1", kwargs.get("port") or 5000
        click.echo(f"Serving http://{host}:{port}/ (Ctrl+C to stop)")
    return context.invoke(run_command, **kwargs)


serve = click.Command(
    "run",
    callback=_serve,
    params=run_command.params,
    help="Serve the app; on the embedded default, with the worker running in a thread.",
)

COMMANDS = (worker, outbox_cli, access_cli, portals_cli)
