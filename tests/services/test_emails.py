"""Email normalisation: one key per address however it is typed, confusable mixes refused.

Below the HTTP layer: ``app.services.emails``. SECURITY.md LOG-03 (case variants are one
account), DATA-02 (the unique index is on this key), EM-08 (no CR/LF or control characters).
"""

import sys
import unicodedata

import pytest
import regex

from app.errors import FieldRuleBroken, InvalidEmail
from app.services import emails
from app.services.emails import (
    EmailMixesScripts,
    email_key,
    email_lookup_key,
    normalise_email,
)


def key_of(address: str) -> str:
    return normalise_email(address)[1]


# --- One key per address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        pytest.param(
            ["ada@example.com", "ADA@EXAMPLE.COM", "ａｄａ@example.com", "Ada@Example.com"],
            id="case-and-full-width",
        ),
        pytest.param(["ＡＤＡ@ｅｘａｍｐｌｅ．ｃｏｍ", "ada@example.com"], id="full-width-domain"),
        pytest.param(["finn@example.com", "ﬁnn@example.com", "FINN@example.com"], id="ligature"),
        pytest.param(
            ["kate@example.com", "\u212aate@example.com", "Kate@example.com"], id="kelvin"
        ),
        pytest.param(
            [
                "strasse@example.com",
                "straße@example.com",
                "STRASSE@example.com",
                "STRAẞE@example.com",
            ],
            id="sharp-s",
        ),
        pytest.param(
            ["adi@example.com", "ADI@example.com", "ADİ@example.com", "adı@example.com"],
            id="turkish-i",
        ),
        pytest.param(["σοφία@example.gr", "ΣΟΦΊΑ@example.gr"], id="greek-case"),
        pytest.param(
            ["ada@bücher.example", "ada@xn--bcher-kva.example", "ADA@BÜCHER.EXAMPLE"],
            id="idna-domain",
        ),
    ],
)
def test_normalise_email_variants_of_one_address_share_one_key(variants):
    """LOG-03, DATA-02: case, width, ligature, Kelvin sign, sharp s, Turkish i and the IDNA
    form of the domain all give one key, so the unique index sees one account."""
    keys = {key_of(variant) for variant in variants}

    assert len(keys) == 1, keys


def test_normalise_email_full_width_keys_to_the_ascii_address():
    """DATA-02: the key is the plain address, the display keeps what was typed (canonically)."""
    display, key = normalise_email("ａｄａ@example.com")

    assert key == "ada@example.com"
    assert display == "ａｄａ@example.com"


def test_normalise_email_display_keeps_case_and_unicode_domain():
    """Mail goes to the display address: case kept, domain as email-validator renders it."""
    assert normalise_email("Ada@XN--BCHER-KVA.example") == (
        "Ada@bücher.example",
        "ada@bücher.example",
    )


def test_normalise_email_sharp_s_in_the_domain_stays_a_different_domain():
    """IDNA2008 keeps straße.de and strasse.de apart (two registrable domains): so does the key."""
    assert key_of("ada@straße.de") != key_of("ada@strasse.de")
    assert key_of("ada@STRAẞE.de") == key_of("ada@straße.de")


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "ＡＤＡ@example.com",
        "Straße@bücher.example",
        "ADİ@example.com",
        "山田たろう@example.jp",
        "ΣΟΦΊΑ@example.gr",
        "ǰane@example.com",
    ],
)
def test_email_key_of_a_key_is_the_key_itself(address):
    """DATA-02: the key is a valid address in canonical form, a fixed point of the rule."""
    key = email_key(address)

    assert email_key(key) == key
    assert normalise_email(key) == (key, key)


def test_fold_reaches_its_fixed_point_in_one_round_for_every_code_point():
    """The rule is idempotent character by character (NFKC, casefold, Turkic i, NFKC)."""
    unstable = []
    for code_point in range(sys.maxunicode + 1):
        char = chr(code_point)
        if unicodedata.category(char) in ("Cn", "Cs", "Co"):
            continue
        once = emails._fold(char)
        if once is None or emails._fold(once) != once:
            unstable.append(f"U+{code_point:04X}")

    assert unstable == []


def test_normalise_email_compatibility_form_making_an_invalid_key_is_refused():
    """Full-width full stops are letters to email-validator but become ".." under NFKC."""
    with pytest.raises(InvalidEmail) as raised:
        normalise_email("ａ．．ｂ@example.com")

    assert raised.value.code == "invalid_email"


def test_normalise_email_key_longer_than_254_octets_is_refused():
    """U+337F (one character) is four Han characters under NFKC: the key would not fit."""
    address = "\u337f" * 21 + "@example.com"

    with pytest.raises(InvalidEmail) as raised:
        normalise_email(address)

    assert raised.value.code == "invalid_email"


def test_normalise_email_internationalised_local_part_is_accepted():
    """SMTPUTF8 local parts stay allowed, as before."""
    assert normalise_email("José@example.com") == ("José@example.com", "josé@example.com")


# --- Mixed scripts (Unicode TR39, Highly Restrictive) ---------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("\u0430da@example.com", id="cyrillic-a-in-latin-local-part"),
        pytest.param("ad\u0430@example.com", id="cyrillic-a-at-the-end"),
        pytest.param("b\u03bfb@example.com", id="greek-omicron-in-latin"),
        pytest.param("ada@ex\u0430mple.com", id="cyrillic-a-in-a-domain-label"),
        pytest.param("ada@xn--exmple-4nf.com", id="same-label-as-punycode"),
        pytest.param("ada@\u0440\u0430ypal.com", id="cyrillic-pa-in-paypal"),
        pytest.param("\U0001d41a\u0431\u0432@example.com", id="math-bold-a-with-cyrillic"),
        pytest.param("иван山田@example.com", id="cyrillic-with-han"),
        pytest.param("홍길동たろう@example.com", id="hangul-with-hiragana"),
        pytest.param("αlpha@example.com", id="greek-with-latin"),
        pytest.param("علي١2@example.com", id="arabic-indic-with-ascii-digits"),
    ],
)
def test_normalise_email_confusable_script_mix_is_refused_with_its_code(address):
    """DATA-02, LOG-03: a look-alike of another address is never registered."""
    with pytest.raises(EmailMixesScripts) as raised:
        normalise_email(address)

    error = raised.value
    assert error.code == "email_mixed_scripts"
    assert error.status == 400
    assert isinstance(error, InvalidEmail)
    assert [e.as_dict()["code"] for e in error.errors] == ["email_mixed_scripts"]
    assert error.errors[0].field == "email"


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("山田たろう@example.jp", id="japanese-han-hiragana"),
        pytest.param("ヤマダ山田やまだ@example.jp", id="japanese-all-three"),
        pytest.param("taro山田たろう@example.jp", id="latin-with-japanese"),
        pytest.param("홍길동kim@example.kr", id="latin-with-hangul"),
        pytest.param("王ㄅㄆwang@example.tw", id="latin-with-han-and-bopomofo"),
        pytest.param("иван@пример.рф", id="all-cyrillic"),
        pytest.param("ivan@пример.рф", id="latin-local-part-cyrillic-domain"),
        pytest.param("αλέξης@example.gr", id="all-greek"),
        pytest.param("علي12@example.com", id="arabic-with-ascii-digits"),
        pytest.param("ada.lovelace+tag-1_x@mail.example.com", id="ascii-with-punctuation"),
        pytest.param("josé.müller@bücher.example", id="accented-latin"),
    ],
)
def test_normalise_email_single_script_or_allowed_combination_is_accepted(address):
    """TR39 Highly Restrictive: one script, or Latin + Japanese / Korean / Chinese scripts."""
    display, key = normalise_email(address)

    assert display
    assert key == email_key(address)


def test_lookup_key_does_not_refuse_mixed_scripts():
    """Accounts created before the rule keep logging in: lookups decide which account, only
    registration decides what may exist."""
    assert email_lookup_key("\u0430da@example.com") == "\u0430da@example.com"
    assert email_lookup_key("ADA@example.com") == "ada@example.com"
    assert email_lookup_key("not an address") is None


def test_every_script_regex_knows_is_covered_by_the_script_list():
    """Every assigned character with a script belongs to a listed one (none fails by omission)."""
    known = "".join(rf"\p{{scx={code}}}" for code, _ in emails._SCRIPTS)
    uncovered = regex.compile(rf"[^{known}\p{{scx=Zyyy}}\p{{scx=Zinh}}]")
    assigned = "".join(
        chr(code_point)
        for code_point in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code_point)) not in ("Cn", "Cs", "Co")
    )

    assert [f"U+{ord(char):04X}" for char in uncovered.findall(assigned)] == []
    assert len(emails._SCRIPTS) == len(emails._SCRIPT_CODES)


# --- Control characters (EM-08) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com\r\nBcc: eve@example.org",
        "ada\n@example.com",
        "\rada@example.com",
        "ada@exam\nple.com",
        "ada@example.com\n",
        "ada\x00@example.com",
        "ada\u0085@example.com",
        "ada\u2028@example.com",
        "ａｄａ\u2029@example.com",
        "ada\x1b@example.com",
    ],
)
def test_normalise_email_control_character_anywhere_is_refused(address):
    """EM-08: CR/LF (and any control character or line separator) -> invalid_email, not the
    mixed-scripts code, before anything else looks at the address."""
    with pytest.raises(InvalidEmail) as raised:
        normalise_email(address)

    assert type(raised.value) is InvalidEmail
    assert raised.value.code == "invalid_email"
    assert email_lookup_key(address) is None


def test_normalise_email_non_string_is_refused():
    with pytest.raises(InvalidEmail):
        normalise_email(None)  # type: ignore[arg-type]


def test_normalise_email_huge_input_is_refused_before_normalising():
    """HTTP-03: an oversized address is a 400, whatever it contains."""
    with pytest.raises(InvalidEmail) as raised:
        normalise_email("a" * 5000 + "@example.com")

    assert raised.value.code == "invalid_email"


# --- Error details ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "pieces"),
    [
        ("\u0430dalovelace@example.com", ["dalovelace", "example.com"]),
        ("adalovelace@gl\u0430ssworks.com", ["adalovelace", "ssworks"]),
        ("adalovelace@abc\u00b7defgh.com", ["adalovelace", "abc", "defgh"]),
        ("adalovelace@example.com\r\n", ["adalovelace", "example"]),
        ("adalovelace@@example.com", ["adalovelace", "example"]),
        ("ａ．．ｂｃｄ@example.com", ["ｂｃｄ", "bcd", "example"]),
        ("adalovelace@" + "x" * 300 + ".com", ["adalovelace", "xxx"]),
    ],
)
def test_invalid_email_detail_never_repeats_the_address(address, pieces):
    """OPS-01 spirit, LOG-03: error bodies and logs carry no submitted address, not even a
    label of it (the idna package quotes labels in its messages)."""
    with pytest.raises(InvalidEmail) as raised:
        normalise_email(address)

    error = raised.value
    texts = [error.detail, str(error), *(e.detail for e in error.errors)]
    for text in texts:
        for piece in pieces:
            assert piece.casefold() not in text.casefold(), text


def test_email_mixes_scripts_is_a_field_rule_for_the_given_field():
    with pytest.raises(EmailMixesScripts) as raised:
        normalise_email("\u0430da@example.com", field="new_email")

    assert isinstance(raised.value, FieldRuleBroken)
    assert raised.value.errors[0].field == "new_email"
    assert raised.value.title == "The email address mixes scripts"
