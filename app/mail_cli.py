"""``flask mail …``: the outbox sender as a command, for deployments that run it as a worker of
its own (``MAIL_SENDER_ENABLED=false`` on the web processes) or want to flush it by hand.

It runs the same :func:`app.services.mail.send_pending` as the in-process sender; claims keep
the two (and any number of workers) from sending one message twice at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from flask.cli import AppGroup

from app.runtime import runtime
from app.services.mail import SendReport, send_pending
from config import ConfigurationError

mail = AppGroup("mail", help="The outbox: mail waiting to be delivered.")


@mail.command("send-pending")
@click.option(
    "--loop",
    is_flag=True,
    help="Keep sending: a pass every MAIL_POLL_SECONDS until SIGTERM or Ctrl-C.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Attempt at most this many messages per pass (default: every due one).",
)
def send_pending_command(loop: bool, limit: int | None) -> None:
    """Send the messages that are due, retrying failures later with backoff.

    Prints what each pass did. Fails (exit 1) when no transport is configured; an SMTP outage
    is not a failure of the command: the messages wait for the next pass.
    """
    if not loop:
        click.echo(_summary(_one_pass(limit)))
        return
    poll = runtime().settings.mail_poll_seconds
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(f"sending pending mail every {poll:g} s; SIGTERM or Ctrl-C stops")
        while not stop.is_set():
            try:
                report = _one_pass(limit)
            except click.ClickException:
                raise
            except Exception as exc:  # the database is down, say: say so, try again next poll
                click.echo(f"pass failed: {type(exc).__name__}; retrying", err=True)
                report = SendReport()
            if report.attempted or report.jobs:
                click.echo(_summary(report))
            if not (limit is not None and report.attempted >= limit and not report.unavailable):
                stop.wait(poll)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("stopped")


def _one_pass(limit: int | None) -> SendReport:
    try:
        return send_pending(limit=limit)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _summary(report: SendReport) -> str:
    line = f"sent {report.sent}, retrying {report.retried}, failed {report.failed}"
    if report.jobs:
        line += f", jobs run {report.jobs}"
    if report.unavailable:
        line += " (mail server unavailable; the rest wait for the next pass)"
    return line
