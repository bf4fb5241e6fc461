"""Password policy and Argon2id hashing, below the HTTP layer."""

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type, extract_parameters

from app.errors import PasswordMatchesEmail, PasswordTooLong, PasswordTooShort
from app.services.passwords import PasswordHasher, PasswordPolicy

POLICY = PasswordPolicy(min_length=8, max_length=256)


def test_policy_returns_the_nfkc_normalised_password():
    assert POLICY.check("ｐａｓｓｗｏｒｄ１２", email="a@example.com") == "password12"


@pytest.mark.parametrize(
    ("password", "error"),
    [
        ("1234567", PasswordTooShort),
        ("x" * 257, PasswordTooLong),
        ("Ada@Example.com", PasswordMatchesEmail),
    ],
)
def test_policy_errors_name_the_field_given(password, error):
    with pytest.raises(error) as raised:
        POLICY.check(password, email="ada@example.com", field="new_password")

    assert raised.value.errors[0].field == "new_password"


def test_minimum_length_is_a_setting(make_app):
    """D-1: NIST SP 800-63B-4's 15 characters is one setting away."""
    policy = make_app(PASSWORD_MIN_LENGTH=15).extensions["gatehouse"].password_policy

    with pytest.raises(PasswordTooShort):
        policy.check("fourteen chars", email="a@example.com")
    assert policy.check("fifteen chars!!", email="a@example.com")


def test_hashes_are_argon2id_with_a_unique_salt():
    """PWD-06."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    first, second = hasher.hash("same password"), hasher.hash("same password")

    assert first != second
    assert first.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert hasher.verify(first, "same password")
    assert not hasher.verify(first, "Same password")


def test_verify_normalises_what_it_is_given():
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    stored = hasher.hash("password12")

    assert hasher.verify(stored, "ｐａｓｓｗｏｒｄ１２")


def test_verify_of_a_corrupt_hash_is_false_not_an_error():
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    assert hasher.verify("not-a-hash", "anything") is False


def test_weaker_hash_needs_rehash_and_equal_one_does_not():
    """PWD-07."""
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    weaker = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw")

    assert hasher.needs_rehash(weaker)
    assert not hasher.needs_rehash(hasher.hash("pw"))


def test_production_app_hashes_with_argon2_cffi_defaults(make_app):
    """PWD-06: production, with no Argon2 setting given, hashes with argon2-cffi's defaults.

    Nothing is overridden here, so lowering production's parameters makes this fail.
    """
    app = make_app("production", production_hashing=True)

    stored = app.extensions["gatehouse"].hasher.hash("a production password")

    library = Argon2Hasher()  # RFC 9106 low-memory profile: t=3, m=64 MiB, p=4
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        library.time_cost,
        library.memory_cost,
        library.parallelism,
    )
    assert parameters.memory_cost >= 19456 and parameters.time_cost >= 2
