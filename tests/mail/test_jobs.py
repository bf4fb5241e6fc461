"""Deferred jobs in the outbox: work a request queues for the sender, run once, retried on failure.

A job is an outbox row whose template is ``job:<name>``: it commits with the request that
defers it, the sender runs its handler, and the handler's unit of work removes the row with
its own effects (``finish_job``), so the job's effects happen exactly once.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.outbox import OutboxMessage
from app.services import mail
from app.services.mail import JobGone, defer, enqueue, finish_job, run_jobs, send_pending
from app.services.unit_of_work import unit_of_work
from tests.mail.conftest import SmtpServer

RAN: list[dict[str, Any]] = []


@mail.job("test_greet")
def _greet(job_id: uuid.UUID, data: dict[str, Any]) -> None:
    with unit_of_work() as uow:
        RAN.append(data)
        if data.get("fail"):
            raise RuntimeError("the job's work failed")
        enqueue(
            uow,
            to=data["to"],
            template="test",
            context={"name": "Ada", "link": "https://app.example/x"},
        )
        finish_job(uow, job_id)


@pytest.fixture(autouse=True)
def _forget_runs():
    RAN.clear()


def rows(app: Flask) -> list[OutboxMessage]:
    with app.app_context():
        found = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()
        db.session.expunge_all()
        return list(found)


def defer_greeting(app: Flask, **data: Any) -> None:
    with app.app_context(), unit_of_work() as uow:
        defer(uow, job="test_greet", data={"to": "ada@example.com", **data})


def test_a_deferred_job_is_one_encrypted_row_until_the_sender_runs_it(mail_app):
    app = mail_app()

    defer_greeting(app)

    [row] = rows(app)
    assert row.template == "job:test_greet"
    assert row.to_address == ""
    assert b"ada@example.com" not in row.payload
    assert RAN == []


def test_a_job_deferred_in_a_rolled_back_unit_of_work_never_runs(mail_app):
    app = mail_app()

    with pytest.raises(RuntimeError), app.app_context(), unit_of_work() as uow:
        defer(uow, job="test_greet", data={"to": "ada@example.com"})
        raise RuntimeError("the request failed")

    assert rows(app) == []
    with app.app_context():
        assert run_jobs() == 0
    assert RAN == []


def test_the_sender_runs_the_job_and_delivers_what_it_queued(mail_app, smtp_server: SmtpServer):
    app = mail_app()
    defer_greeting(app)

    with app.app_context():
        report = send_pending()

    assert report.jobs == 1 and report.sent == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.com"]]
    assert [r.status for r in rows(app)] == ["sent"]


def test_a_failing_job_is_kept_and_retried_after_backoff(mail_app, clock_factory):
    app = mail_app(MAIL_RETRY_BASE_SECONDS=30)
    clock = clock_factory(app)
    defer_greeting(app, fail=True)

    with app.app_context():
        run_jobs()
        assert run_jobs() == 0  # not due again before its backoff

    [row] = rows(app)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error == "RuntimeError"
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(seconds=30)
    with app.app_context():
        assert run_jobs() == 1
    assert len(RAN) == 2


def test_finishing_a_job_another_sender_finished_rolls_back_this_run(mail_app):
    """Two senders that both ran one job (a lapsed claim): only the first's effects commit."""
    app = mail_app()
    defer_greeting(app)
    [job] = rows(app)
    with app.app_context(), unit_of_work() as uow:
        finish_job(uow, job.id)

    with pytest.raises(JobGone), app.app_context(), unit_of_work() as uow:
        enqueue(uow, to="ada@example.com", template="test", context={"name": "A", "link": "x"})
        finish_job(uow, job.id)

    assert rows(app) == []


def test_deferring_an_unregistered_job_is_refused(mail_app):
    app = mail_app()

    with pytest.raises(KeyError), app.app_context(), unit_of_work() as uow:
        defer(uow, job="nobody_handles_this", data={})

    assert rows(app) == []
