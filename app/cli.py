"""``flask …`` commands for operators. Each group is a domain noun, each command a verb.

Groups live here as their features arrive: ``keys`` (signing keys), and later ``users``,
``sessions`` (purges), ``audit`` (chain verification); ``mail`` (the outbox sender) lives in
``app/mail_cli.py``.
Commands call the same services as the API, inside an app context, so a rule holds the same
whichever door it is reached through.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from app.admin_cli import roles, users
from app.audit_cli import audit
from app.mail_cli import mail
from app.services import sessions
from app.services.tokens import (
    generate_private_key,
    private_key_to_pem,
    signing_key_from_private,
)
from config import SUPPORTED_ALGORITHMS

keys = AppGroup("keys", help="Signing keys for access tokens.")


@keys.command("generate")
@click.option(
    "--algorithm",
    type=click.Choice(SUPPORTED_ALGORITHMS),
    default="EdDSA",
    show_default=True,
    help="EdDSA (Ed25519) or ES256 (P-256); must match JWT_ALGORITHM.",
)
@click.option(
    "--out",
    "path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Where to write the PEM private key (created with mode 0600; never overwritten).",
)
def generate_key(algorithm: str, path: Path) -> None:
    """Write a new signing key, for a first deployment or a key rotation."""
    private_key = generate_private_key(algorithm)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as file:
        file.write(private_key_to_pem(private_key))
    kid = signing_key_from_private(private_key, algorithm).kid
    click.echo(f"wrote {algorithm} signing key {kid} to {path} (mode 0600)")


sessions_group = AppGroup("sessions", help="Login sessions.")


@sessions_group.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Delete sessions that ended or expired at least this many days ago.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=10_000),
    default=500,
    show_default=True,
    help="Sessions deleted per transaction: short transactions keep serving unblocked.",
)
def purge_sessions(days: float, batch_size: int) -> None:
    """Delete ended and expired sessions with their refresh tokens; safe while serving.

    A live session is never touched. The days of grace keep recent ones for inspection.
    """
    deleted = sessions.purge(older_than=timedelta(days=days), batch_size=batch_size)
    click.echo(f"purged {deleted} session(s) ended or expired before {days:g} day(s) ago")


def init_app(app: Flask) -> None:
    app.cli.add_command(keys)
    app.cli.add_command(users)
    app.cli.add_command(roles)
    app.cli.add_command(mail)
    app.cli.add_command(audit)
    app.cli.add_command(sessions_group)
