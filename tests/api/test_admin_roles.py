"""The admin API's roles and permissions: a closed list, built-in roles that stay as they are,
custom roles felt on the next request (SECURITY.md ADM-02, ADM-03, ADM-04, D-6)."""

from __future__ import annotations

import pytest

from app.services.permissions import PERMISSIONS
from tests.admin_helpers import ADMIN, account_id, admin_tokens, grant, roles_of, state
from tests.helpers import assert_problem


@pytest.fixture
def app(make_app):
    return make_app(ADMIN_REQUIRES_MFA=False)


@pytest.fixture
def root(app, api):
    return admin_tokens(app, api)


def create_role(client, root, name="support", permissions=("users:read",), **extra):
    return client.post(
        f"{ADMIN}/roles",
        json={"name": name, "permissions": list(permissions), **extra},
        headers=root.headers,
    )


def member(app, client, api, root, role: str, email: str = "sam@example.com"):
    """An account holding ``role``, logged in after the grant: (id, tokens)."""
    api.signup(email)
    user_id = account_id(app, email)
    assert grant(client, root, user_id, [role]).status_code == 200
    return user_id, api.login(email)


def test_built_in_roles_are_listed_and_admin_holds_every_permission(client, root):
    """The migration's seed and the closed list in the code agree."""
    response = client.get(f"{ADMIN}/roles", headers=root.headers)

    roles = {role["name"]: role for role in response.get_json()["roles"]}
    assert roles["admin"]["permissions"] == sorted(PERMISSIONS)
    assert roles["admin"]["built_in"] is True
    assert roles["admin"]["members"] == 1
    assert roles["user"]["permissions"] == []


def test_permissions_lists_the_closed_list(client, root):
    response = client.get(f"{ADMIN}/permissions", headers=root.headers)

    assert [p["name"] for p in response.get_json()["permissions"]] == list(PERMISSIONS)


def test_create_role_stores_it_with_its_permissions(client, root):
    response = create_role(
        client, root, permissions=["users:read", "audit:read"], description="Support desk"
    )
    fetched = client.get(f"{ADMIN}/roles/support", headers=root.headers)

    assert response.status_code == 201
    assert response.headers["Location"].endswith("/api/v1/admin/roles/support")
    assert fetched.get_json() == {
        "name": "support",
        "description": "Support desk",
        "permissions": ["audit:read", "users:read"],
        "built_in": False,
        "members": 0,
    }


def test_create_role_with_unknown_permission_is_refused(app, client, root):
    before = state(app)

    response = create_role(client, root, permissions=["users:read", "everything"])

    body = assert_problem(response, 400, "unknown_permission")
    assert body["errors"][0]["field"] == "permissions"
    assert state(app) == before


@pytest.mark.parametrize("name", ["Support", "x", "has space", "a" * 51, "1st"])
def test_create_role_with_invalid_name_is_refused(app, client, root, name):
    before = state(app)

    response = create_role(client, root, name=name)

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"][0]["field"] == "name"
    assert state(app) == before


def test_create_role_with_taken_name_is_a_conflict(app, client, root):
    create_role(client, root)
    before = state(app)

    response = create_role(client, root)

    assert_problem(response, 409, "role_exists")
    assert state(app) == before


def test_create_role_with_extra_field_is_refused(app, client, root):
    """ADM-03."""
    response = create_role(client, root, built_in=True)

    assert_problem(response, 400, "validation_failed")


def test_role_permission_removed_bites_its_members_on_next_request(app, client, api, root):
    """D-6: permissions are read live; the member's token is unchanged but refused."""
    create_role(client, root)
    _, sam = member(app, client, api, root, "support")
    allowed = client.get(f"{ADMIN}/users", headers=sam.headers)

    changed = client.patch(f"{ADMIN}/roles/support", json={"permissions": []}, headers=root.headers)
    refused = client.get(f"{ADMIN}/users", headers=sam.headers)

    assert allowed.status_code == 200
    assert changed.get_json()["permissions"] == []
    assert_problem(refused, 403, "forbidden")


def test_role_permission_added_reaches_its_members_on_next_request(app, client, api, root):
    create_role(client, root, permissions=[])
    _, sam = member(app, client, api, root, "support")
    refused = client.get(f"{ADMIN}/roles", headers=sam.headers)

    client.patch(
        f"{ADMIN}/roles/support", json={"permissions": ["roles:read"]}, headers=root.headers
    )
    allowed = client.get(f"{ADMIN}/roles", headers=sam.headers)

    assert_problem(refused, 403, "forbidden")
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("name", "change"),
    [("admin", {"permissions": ["users:read"]}), ("user", {"permissions": ["users:read"]})],
)
def test_update_built_in_role_is_refused(app, client, root, name, change):
    """ADM-04: `admin` is never stripped of permissions, `user` never given any."""
    before = state(app)

    response = client.patch(f"{ADMIN}/roles/{name}", json=change, headers=root.headers)

    assert_problem(response, 409, "built_in_role")
    assert state(app) == before


@pytest.mark.parametrize("name", ["admin", "user"])
def test_delete_built_in_role_is_refused(app, client, root, name):
    before = state(app)

    response = client.delete(f"{ADMIN}/roles/{name}", headers=root.headers)

    assert_problem(response, 409, "built_in_role")
    assert state(app) == before


def test_delete_unused_role_removes_it(client, root):
    create_role(client, root)

    response = client.delete(f"{ADMIN}/roles/support", headers=root.headers)

    assert response.status_code == 204
    assert_problem(
        client.get(f"{ADMIN}/roles/support", headers=root.headers), 404, "role_not_found"
    )


def test_delete_role_in_use_is_a_conflict(app, client, api, root):
    create_role(client, root)
    member(app, client, api, root, "support")
    before = state(app)

    response = client.delete(f"{ADMIN}/roles/support", headers=root.headers)

    assert_problem(response, 409, "role_in_use")
    assert state(app) == before


def test_delete_role_with_reassign_to_moves_its_members(app, client, api, root):
    create_role(client, root)
    create_role(client, root, name="helpdesk", permissions=["users:read", "users:write"])
    sam_id, _ = member(app, client, api, root, "support")

    response = client.delete(
        f"{ADMIN}/roles/support", query_string={"reassign_to": "helpdesk"}, headers=root.headers
    )

    assert response.status_code == 204
    assert roles_of(app, sam_id) == ["helpdesk"]


@pytest.mark.parametrize("target", ["nope", "support"])
def test_delete_role_reassigned_to_unknown_or_itself_is_refused(app, client, api, root, target):
    create_role(client, root)
    member(app, client, api, root, "support")
    before = state(app)

    response = client.delete(
        f"{ADMIN}/roles/support", query_string={"reassign_to": target}, headers=root.headers
    )

    body = assert_problem(response, 400, "unknown_role")
    assert body["errors"][0]["field"] == "reassign_to"
    assert state(app) == before


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("patch", {"description": "x"}), ("delete", None)]
)
def test_role_operation_with_unknown_name_is_not_found(app, client, root, method, body):
    """ADM-02."""
    before = state(app)

    response = getattr(client, method)(f"{ADMIN}/roles/nope", json=body, headers=root.headers)

    assert_problem(response, 404, "role_not_found")
    assert state(app) == before


def test_role_writer_cannot_grant_a_permission_it_lacks(app, client, api, root):
    """No escalation: a `roles:write` holder cannot make a role with `users:write`."""
    create_role(client, root, name="roler", permissions=["roles:read", "roles:write"])
    _, sam = member(app, client, api, root, "roler")
    before = state(app)

    response = create_role(client, sam, name="sneaky", permissions=["users:write"])
    widened = client.patch(
        f"{ADMIN}/roles/roler", json={"permissions": list(PERMISSIONS)}, headers=sam.headers
    )

    assert_problem(response, 403, "permission_not_held")
    assert_problem(widened, 403, "permission_not_held")
    assert state(app) == before
