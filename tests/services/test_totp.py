"""The TOTP computation and the recovery-code format (SECURITY.md MFA-02, MFA-04).

The RFC 6238 Appendix B vectors check the generator itself; the drift window is checked with
explicit times, never the real clock.
"""

import base64
from datetime import UTC, datetime, timedelta

import pytest

from app.services import mfa

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890", 8 digits.
RFC_SEED = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
# 160 bits, as the service makes them (pyotp refuses secrets under 112 bits).
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 26, 12, 0, 10, tzinfo=UTC)  # 10 s into its 30-second step


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc_6238_appendix_b_sha1_vectors(unix_time, expected):
    """MFA-02: the generator the service uses gives the RFC's codes at the RFC's times."""
    assert mfa.totp(RFC_SEED, digits=8).at(at(unix_time)) == expected


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc_vectors_fall_in_the_rfc_time_steps(unix_time, expected):
    """MFA-02: T = floor(unix time / 30), as the RFC's table lists it (e.g. 0x23523EC)."""
    generator = mfa.totp(RFC_SEED, digits=8)
    step = generator.timecode(at(unix_time))

    assert step == unix_time // 30
    assert generator.generate_otp(step) == expected


def test_service_codes_are_six_digit_sha1_thirty_second_codes():
    """What authenticator apps make: the default of the otpauth URI (6 digits, SHA-1, 30 s)."""
    secret = SECRET
    generator = mfa.totp(secret)

    code = generator.at(NOW)

    assert len(code) == 6 and code.isdigit()
    assert generator.interval == 30 and generator.digits == 6
    assert generator.at(NOW + timedelta(seconds=19)) == code  # same step
    assert "period" not in generator.provisioning_uri(name="ada@example.com")


@pytest.mark.parametrize("steps", [-1, 0, 1])
def test_codes_within_one_step_of_now_match_with_their_step(steps):
    """MFA-02: ±1 step of clock drift is tolerated; the step found is the code's own."""
    secret = SECRET
    generator = mfa.totp(secret)
    code = generator.at(NOW + timedelta(seconds=30 * steps))

    assert mfa.matching_step(secret, code, NOW) == generator.timecode(NOW) + steps


@pytest.mark.parametrize("steps", [-2, 2, -3, 3])
def test_codes_two_or_more_steps_away_do_not_match(steps):
    """MFA-02: ±2 steps are refused."""
    secret = SECRET
    code = mfa.totp(secret).at(NOW + timedelta(seconds=30 * steps))

    assert mfa.matching_step(secret, code, NOW) is None


def test_recovery_codes_are_four_groups_of_base32_with_80_bits():
    """MFA-04: 16 base32 characters (5 bits each) from the CSPRNG, all distinct in practice."""
    codes = {mfa.new_recovery_code() for _ in range(200)}

    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(group) for group in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set("abcdefghijklmnopqrstuvwxyz234567")


@pytest.mark.parametrize(
    "typed",
    ["abcd-efgh-ijkl-mnop", "ABCD-EFGH-IJKL-MNOP", "abcdefghijklmnop", " abcd efgh ijkl mnop "],
)
def test_recovery_codes_ignore_case_spaces_and_hyphens(typed):
    assert mfa.canonical_recovery_code(typed) == "abcdefghijklmnop"


@pytest.mark.parametrize("typed", ["", "abcd-efgh-ijkl", "abcd-efgh-ijkl-mno1", "a" * 17, "é" * 16])
def test_text_that_cannot_be_a_recovery_code_has_no_canonical_form(typed):
    assert mfa.canonical_recovery_code(typed) is None


def test_recovery_code_digest_is_sha256_of_the_canonical_form():
    """MFA-04: stored hashed; a digest is 64 hex characters and never the code itself."""
    digest = mfa.digest_recovery_code("abcdefghijklmnop")

    assert len(digest) == 64 and "abcdefghijklmnop" not in digest
    assert digest == mfa.digest_recovery_code(mfa.canonical_recovery_code("ABCD-efgh-IJKL-mnop"))
