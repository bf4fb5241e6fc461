"""email_key: one account per address however it is typed (NFKC, case folding, IDNA)

Revision ID: 88b98afca4eb
Revises: fc0c2f27227c
Create Date: 2026-11-26 00:50:02

Recomputes ``accounts.email_key`` for every existing row with the rule of
``app/services/emails.py``: the local part NFKC-normalised, case-folded (``ß`` -> ``ss``), the
Turkish dotted and dotless i folded to ``i``, NFKC again; the domain as IDNA (UTS-46) gives it;
the result validated again by email-validator and taken in its normalised form. Downgrade puts
back the old key, ``email.lower()`` (the old code stored ``normalized`` and
``normalized.lower()``). No schema change: models and migrations still match.

Why a frozen copy of the key function, not an import of ``app.services.emails``: a migration
must do the same thing every time it runs, on a fresh database in a year as on production today.
Importing the app would make this revision follow any later change of the rule (and fail once
the function moves or is renamed); a later change of the rule gets its own migration. The copy
depends only on email-validator (pinned) and the standard library; NFKC and case folding are
stable for assigned characters under Unicode's stability policies. A test checks that this copy
and the app's function agree today.

Collisions: if two existing rows get the same new key (e.g. ``ada@example.com`` and its
full-width twin, the separate accounts the audit found), nothing is merged or dropped. The
migration aborts before writing anything (the transaction rolls back) with EmailKeyCollision,
naming the account ids of each group (never an address). It aborts the same way, listing ids,
for a row whose address no longer makes a valid key (e.g. full-width full stops that normalise
to ``..``). The operator resolves each group and re-runs ``flask --app manage db upgrade``:

1. ``SELECT id, email, email_verified, created_at, updated_at FROM accounts WHERE id IN (...)``
   and decide which account of the group the address owner keeps (typically the verified one,
   or the one with recent sessions: ``SELECT account_id, max(last_refreshed_at) FROM sessions``).
2. For the other accounts: delete them (their sessions and tokens go by ON DELETE CASCADE), or,
   after asking their owner, move them to another address the owner controls
   (``UPDATE accounts SET email = :new, email_key = lower(:new) WHERE id = :id``, any value
   unique; this migration recomputes it). Record each action in the audit trail.
3. Re-run the upgrade. Nothing was changed by the failed run.

Locks (OPS-04): only row updates, no DDL, no table lock. The rows are read with a plain SELECT
and only rows whose key changes are updated (ASCII addresses never change), each by a
compare-and-set on its old key, in executemany batches. On PostgreSQL env.py sets
``lock_timeout`` (MIGRATION_LOCK_TIMEOUT_MS), so a row held by a live request makes the migration
fail fast instead of queueing requests behind it. A row changed by the app between the read and
the update fails the compare-and-set and aborts the migration (re-run it). Changed rows stay
locked until the migration commits. While the previous release still runs after the upgrade, it
computes old keys: accounts with non-ASCII addresses it creates in that window keep an old-style
key (a downgrade then upgrade rewrites them), and its logins to such accounts may miss.
A table with no rows (a fresh database, the test schema) is a no-op.
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

# revision identifiers, used by Alembic.
revision = "88b98afca4eb"
down_revision = "fc0c2f27227c"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

BATCH_SIZE = 500

accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String(254)),
    sa.column("email_key", sa.String(254)),
)


class EmailKeyCollision(Exception):
    """The new keys would merge accounts, or an address has no valid key: nothing was changed."""


def upgrade():
    _rekey(_new_key, "NFKC and case-folded key")


def downgrade():
    _rekey(_old_key, "lower-cased key")


# --- The keys, frozen as of this revision ----------------------------------------------------


def _old_key(email):
    return email.lower()


def _new_key(email):
    """The key of a stored (already normalised) address, or None when it has none."""
    local_part, _, domain = email.rpartition("@")  # no quoted local parts: the last "@" splits
    text = local_part
    for _ in range(4):  # NFKC, casefold, Turkic i, NFKC, to a fixed point
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = folded.replace("i\u0307", "i").replace("\u0131", "i")
        folded = unicodedata.normalize("NFKC", folded)
        if folded == text:
            break
        text = folded
    else:
        return None
    try:
        keyed = validate_email(
            f"{folded}@{domain}",
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            allow_empty_local=False,
        )
    except EmailNotValidError:
        return None
    return keyed.normalized


# --- Rewriting the column --------------------------------------------------------------------


def _rekey(key_of, description):
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(accounts.c.id, accounts.c.email, accounts.c.email_key)
        .order_by(accounts.c.id)
        .execution_options(yield_per=BATCH_SIZE)
    )
    owners = {}  # new key -> account ids
    keyless = []
    changes = []  # (id, old key, new key)
    total = 0
    for account_id, email, old_key in rows:
        total += 1
        new_key = key_of(email)
        if new_key is None:
            keyless.append(account_id)
            continue
        owners.setdefault(new_key, []).append(account_id)
        if new_key != old_key:
            changes.append((account_id, old_key, new_key))

    collisions = [ids for ids in owners.values() if len(ids) > 1]
    if collisions or keyless:
        raise EmailKeyCollision(_refusal(description, collisions, keyless))

    # Two passes, so that no row ever takes a key another row still holds (the unique index is
    # checked row by row): first every changing row gets a placeholder of its own (no "@", so it
    # is no address's key), then its new key.
    parked = [(account_id, old, _placeholder(account_id)) for account_id, old, _ in changes]
    _update(connection, parked)
    _update(connection, [(i, _placeholder(i), new) for i, _, new in changes])
    log.info("email_key: %d of %d accounts given the %s", len(changes), total, description)


def _placeholder(account_id):
    return f"rekeying:{account_id.hex}"


def _update(connection, triples):
    statement = (
        sa.update(accounts)
        .where(accounts.c.id == sa.bindparam("row_id"))
        .where(accounts.c.email_key == sa.bindparam("expected"))
        .values(email_key=sa.bindparam("new_key"))
    )
    for start in range(0, len(triples), BATCH_SIZE):
        batch = [
            {"row_id": account_id, "expected": expected, "new_key": new_key}
            for account_id, expected, new_key in triples[start : start + BATCH_SIZE]
        ]
        result = connection.execute(statement, batch)
        if connection.dialect.supports_sane_multi_rowcount and result.rowcount != len(batch):
            raise EmailKeyCollision(
                "email_key migration stopped: accounts changed while it ran; nothing was "
                "changed, run the upgrade again."
            )


def _refusal(description, collisions, keyless):
    lines = [
        f"email_key migration refused: the {description} cannot be stored. Nothing was changed."
    ]
    if collisions:
        lines.append(
            f"{len(collisions)} group(s) of accounts would share one key (one account per group "
            "must keep the address; delete or re-address the others, then run the upgrade again):"
        )
        lines += ["  " + ", ".join(str(account_id) for account_id in ids) for ids in collisions]
    if keyless:
        lines.append(
            f"{len(keyless)} account(s) have an address that no longer makes a valid key (give "
            "them a valid address or delete them, then run the upgrade again):"
        )
        lines.append("  " + ", ".join(str(account_id) for account_id in keyless))
    lines.append("See the docstring of migrations/versions/0002_email_key_nfkc_casefold.py.")
    return "\n".join(lines)
