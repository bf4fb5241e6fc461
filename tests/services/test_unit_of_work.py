"""The unit of work: one transaction per operation, hooks before and after its commit (DATA-01)."""

import logging
import uuid

import pytest
from sqlalchemy import select

from app.errors import EmailTaken
from app.extensions import db
from app.models import Role
from app.services.account import register_account
from app.services.unit_of_work import unit_of_work
from tests.helpers import STRONG_PASSWORD, count_rows


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def new_role(name: str | None = None) -> Role:
    return Role(name=name or f"role-{uuid.uuid4().hex[:8]}", description="test")


def role_exists(app, name: str) -> bool:
    with app.app_context():
        return db.session.scalar(select(Role.name).where(Role.name == name)) is not None


def test_block_that_ends_commits_and_then_runs_after_commit_hooks(app, ctx):
    role, seen = new_role(), []

    with unit_of_work() as uow:
        uow.session.add(role)
        uow.after_commit(lambda: seen.append(role_exists(app, role.name)))
        assert seen == []

    assert seen == [True]  # the hook saw the committed row, from another session


def test_block_left_by_an_exception_rolls_back_and_drops_its_hooks(app, ctx):
    role, seen = new_role(), []

    with pytest.raises(RuntimeError), unit_of_work() as uow:
        uow.session.add(role)
        uow.before_commit(lambda: seen.append("before"))
        uow.after_commit(lambda: seen.append("after"))
        uow.session.flush()
        raise RuntimeError("failed half-way")

    assert seen == []
    assert not role_exists(app, role.name)


def test_nested_block_commits_with_the_outer_one_only(app, ctx):
    outer_role, inner_role, seen = new_role(), new_role(), []

    with pytest.raises(RuntimeError), unit_of_work() as outer:
        outer.session.add(outer_role)
        with unit_of_work() as inner:
            assert inner is not outer and not inner.is_outermost
            inner.session.add(inner_role)
            inner.after_commit(lambda: seen.append("inner hook"))
        assert role_exists(app, inner_role.name) is False  # the inner end commits nothing
        raise RuntimeError("the outer block fails")

    assert seen == []
    assert not role_exists(app, outer_role.name)
    assert not role_exists(app, inner_role.name)


def test_nested_block_that_succeeds_hands_its_hooks_to_the_outer_one(app, ctx):
    inner_role, seen = new_role(), []

    with unit_of_work() as outer:
        with unit_of_work() as inner:
            inner.session.add(inner_role)
            inner.after_commit(lambda: seen.append(role_exists(app, inner_role.name)))
        assert seen == []
        outer.after_commit(lambda: seen.append("outer hook"))

    assert seen == [True, "outer hook"]


def test_failed_nested_block_undoes_only_its_own_writes_and_hooks(app, ctx):
    """A caller that handles the inner failure keeps its own work (DATA-01, no half commit)."""
    outer_role, inner_role, seen = new_role(), new_role(), []

    with unit_of_work() as outer:
        outer.session.add(outer_role)
        outer.after_commit(lambda: seen.append("outer hook"))
        with pytest.raises(RuntimeError), unit_of_work() as inner:
            inner.session.add(inner_role)
            inner.session.flush()
            inner.after_commit(lambda: seen.append("inner hook"))
            raise RuntimeError("the inner part fails")

    assert seen == ["outer hook"]
    assert role_exists(app, outer_role.name)
    assert not role_exists(app, inner_role.name)


def test_nested_block_may_not_commit_early(app, ctx):
    with unit_of_work(), unit_of_work() as inner, pytest.raises(RuntimeError, match="outermost"):
        inner.commit()


def test_sign_up_refused_inside_a_larger_operation_keeps_that_operation(app, ctx):
    """An admin action that signs someone up and records it: EmailTaken undoes the insert only."""
    register_account(email="ada@example.com", password=STRONG_PASSWORD)
    audit_stand_in, seen = new_role(), []

    with unit_of_work() as uow:
        uow.session.add(audit_stand_in)
        uow.before_commit(lambda: seen.append("before"))
        uow.after_commit(lambda: seen.append("after"))
        with pytest.raises(EmailTaken):
            register_account(email="ADA@example.com", password=STRONG_PASSWORD)

    assert seen == ["before", "after"]
    assert role_exists(app, audit_stand_in.name)
    assert count_rows(app, "accounts") == 1


def test_after_commit_hook_may_write_in_a_unit_of_work_of_its_own(app, ctx):
    """The outbox sender marks a message sent after the change that queued it committed."""
    role, later = new_role(), new_role()

    def write_later() -> None:
        with unit_of_work() as own:
            own.session.add(later)

    with unit_of_work() as uow:
        uow.session.add(role)
        uow.after_commit(write_later)

    assert role_exists(app, role.name)
    assert role_exists(app, later.name)


def test_before_commit_hook_writes_in_the_same_transaction(app, ctx):
    """Where audit rows and outbox messages go: they commit or vanish with the change."""
    role, recorded = new_role(), new_role()

    with unit_of_work() as uow:
        uow.session.add(role)
        uow.before_commit(lambda: uow.session.add(recorded))

    assert role_exists(app, recorded.name)


def test_before_commit_hook_that_fails_rolls_back_the_change(app, ctx):
    role = new_role()

    def fail() -> None:
        raise RuntimeError("could not write the audit row")

    with pytest.raises(RuntimeError), unit_of_work() as uow:
        uow.session.add(role)
        uow.before_commit(fail)

    assert not role_exists(app, role.name)


def test_failing_after_commit_hook_is_logged_and_the_commit_stands(app, ctx, caplog):
    role, seen = new_role(), []

    def fail() -> None:
        raise RuntimeError("mail server down")

    with caplog.at_level(logging.ERROR, logger="gatehouse.unit_of_work"), unit_of_work() as uow:
        uow.session.add(role)
        uow.after_commit(fail)
        uow.after_commit(lambda: seen.append("next hook still runs"))

    assert role_exists(app, role.name)
    assert seen == ["next hook still runs"]
    assert any("after-commit hook" in record.getMessage() for record in caplog.records)


def test_early_commit_keeps_its_work_when_the_block_then_fails(app, ctx):
    """Refresh-token reuse: the session is ended for good, then the request answers 401."""
    kept, dropped, seen = new_role(), new_role(), []

    with pytest.raises(RuntimeError), unit_of_work() as uow:
        uow.session.add(kept)
        uow.after_commit(lambda: seen.append("kept"))
        uow.commit()
        uow.session.add(dropped)
        raise RuntimeError("refused after the commit")

    assert seen == ["kept"]
    assert role_exists(app, kept.name)
    assert not role_exists(app, dropped.name)


def test_rollback_inside_the_block_forgets_the_hooks_registered_so_far(app, ctx):
    role, seen = new_role(), []

    with unit_of_work() as uow:
        uow.after_commit(lambda: seen.append("forgotten"))
        uow.rollback()
        uow.session.add(role)

    assert seen == []
    assert role_exists(app, role.name)


def test_login_that_fails_to_commit_logs_no_success(app, api, caplog, monkeypatch):
    """Security-event lines follow the commit: a login that did not happen is not logged."""
    api.signup()
    with app.app_context():
        session_class = type(db.session())

    def refuse(self) -> None:
        raise RuntimeError("commit failed")

    monkeypatch.setattr(session_class, "commit", refuse)
    with caplog.at_level(logging.INFO, logger="gatehouse.security"):
        response = api.client.post(
            "/api/v1/auth/login",
            json={"email": "ada@example.com", "password": "correct horse battery staple"},
        )

    assert response.status_code == 500
    assert not any("authn_login_success" in record.getMessage() for record in caplog.records)
    assert count_rows(app, "sessions") == 0
