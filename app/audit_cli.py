"""``flask audit …``: checking the audit log's hash chain, and purging old records (ADM-07).

``verify`` walks the chain from the latest checkpoint and exits 1 naming the first record that
was altered, inserted or deleted; ``purge`` deletes records older than ``AUDIT_RETENTION_DAYS``
and anchors a checkpoint, so what is left still verifies. Both call ``services/audit.py``.
"""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from app.runtime import runtime
from app.services import audit as audit_log

audit = AppGroup("audit", help="The audit log: verify its hash chain, purge old records.")


@audit.command("verify")
def verify() -> None:
    """Check every record's hash, link and sequence from the latest checkpoint to the head.

    Prints the head (sequence and hash: keep a copy elsewhere to catch a rewrite of the whole
    tail). Exits 1 naming the first bad record.
    """
    report = audit_log.verify()
    if not report.ok:
        click.echo(
            f"audit chain broken at sequence {report.sequence}: {report.problem} "
            f"({report.checked} record(s) verified before it)",
            err=True,
        )
        raise SystemExit(1)
    start = f"checkpoint {report.start_sequence}" if report.start_sequence else "the first record"
    click.echo(
        f"audit chain intact: {report.checked} record(s) from {start}; "
        f"head {report.head_sequence or 0} {report.head_hash or audit_log.GENESIS_HASH}"
    )


@audit.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    default=None,
    help="Delete records older than this many days (default: AUDIT_RETENTION_DAYS).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=10_000),
    default=1000,
    show_default=True,
    help="Records deleted per transaction, each anchoring a checkpoint.",
)
def purge(days: int | None, batch_size: int) -> None:
    """Delete the oldest records, keeping the chain verifiable from a checkpoint.

    Each batch is verified before it goes: a broken chain stops the purge (exit 1) rather than
    lose the evidence. With AUDIT_RETENTION_DAYS 0 and no --older-than, nothing is deleted.
    """
    days = days if days is not None else runtime().settings.audit_retention_days
    if not days:
        click.echo("AUDIT_RETENTION_DAYS is 0: audit records are kept for ever")
        return
    try:
        result = audit_log.purge(older_than=timedelta(days=days), batch_size=batch_size)
    except audit_log.ChainBroken as exc:
        click.echo(f"purge stopped: the chain is broken at {exc}", err=True)
        raise SystemExit(1) from None
    where = f"; the chain now starts after {result.checkpoint}" if result.checkpoint else ""
    click.echo(f"purged {result.purged} audit record(s) older than {days} day(s){where}")
