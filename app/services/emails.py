"""Email addresses: the address an account shows and mails, and the key that makes it one account.

An audit found that compatibility variants of one address (full-width letters, a dotted capital
I, ligatures, the Kelvin sign) each opened a separate account, because the key was only
``normalized.lower()``. :func:`normalise_email` now returns ``(display, key)``:

``display``
    email-validator's normalised address: NFC local part, UTS-46-normalised Unicode domain.
    It is what the user typed, made canonical, and the only address we ever mail (never the
    key, which may name a mailbox the user did not type).
``key``
    the lookup key, stored in ``accounts.email_key`` under a unique index (SECURITY.md DATA-02),
    equal for every variant of one address (LOG-03). See :func:`email_key` for each step.

:func:`normalise_email` also refuses addresses that mix scripts in a confusable way, following
Unicode TR39 (see :func:`_refuse_mixed_scripts`); :func:`email_lookup_key` (login, reset, rate
limits) computes the same key but refuses nothing beyond syntax, so an account created before the
rule keeps working: a lookup by an exact existing address cannot create a look-alike.

Error details never repeat the submitted address (it is personal data and details reach logs).
"""

from __future__ import annotations

import functools
import unicodedata

import regex
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from app.errors import EmailMixesScripts, InvalidEmail

__all__ = [
    "EmailMixesScripts",
    "email_key",
    "email_lookup_key",
    "is_highly_restrictive",
    "mixes_numbering_systems",
    "normalise_email",
]


# Nothing close to a valid address is longer (254 octets, RFC 5321; normalisation shrinks text
# by a few factors at most): refuse before spending any work on it.
MAX_INPUT_LENGTH = 1024
# A line break or control character anywhere ends the check at once (SECURITY.md EM-08): an
# address is later written into mail headers. Zl/Zp are U+2028/U+2029, line breaks too.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# Library messages naming a piece of the address this long or longer are replaced.
_MIN_REDACTED_PIECE = 3

_GENERIC_DETAIL = "The email address is not valid."
_CONTROL_DETAIL = "The email address must not contain control characters or line breaks."
_TOO_LONG_DETAIL = "The email address is too long."
_KEY_INVALID_DETAIL = (
    "The email address uses compatibility characters (such as full-width or ligature forms) "
    "that do not make a valid address once normalised."
)
_MIXED_DETAIL = (
    "The part {where} the @-sign mixes characters of different scripts (for example Latin with "
    "Cyrillic or Greek), which can make it look like another address."
)
_MIXED_NUMBERS_DETAIL = "The part {where} the @-sign mixes digits of different numbering systems."


def normalise_email(raw: str, *, field: str = "email") -> tuple[str, str]:
    """Return ``(display, key)`` for a new or changed address; raise InvalidEmail if unusable.

    1. Control characters and line breaks anywhere: refused first (EM-08), with InvalidEmail.
    2. email-validator checks the syntax (no DNS: ``check_deliverability=False``) and gives the
       display form. Internationalised local parts stay allowed (``allow_smtputf8=True``, as
       before): refusing them would lock out existing accounts and every user whose mailbox is
       not ASCII (RFC 6531/6532); the spoofing risk they bring is what step 4 addresses.
    3. The key, built as :func:`email_key` describes.
    4. Confusable script mixing in the local part (display and key forms) or in any domain label
       is refused with EmailMixesScripts (a subclass of InvalidEmail).

    ``field`` names the body field in the error (``email``, ``new_email``…).
    """
    validated = _validate(raw, field)
    keyed = _keyed(validated, field)
    _refuse_mixed_scripts(validated, keyed, field)
    return validated.normalized, keyed.normalized


def email_lookup_key(raw: str) -> str | None:
    """The key of an address given at login or reset, or None when it cannot be any account's.

    Same key as :func:`normalise_email` but no script rule: it decides which account an address
    means, not whether it may be registered, so accounts created before the rule still log in.
    """
    try:
        return _keyed(_validate(raw, "email"), "email").normalized
    except InvalidEmail:
        return None


def email_key(address: str) -> str:
    """The lookup key of ``address``; raises InvalidEmail. Each step and why:

    1. Validate with email-validator: splits local part and domain, NFC-normalises the local
       part and maps the domain through IDNA (UTS-46 non-transitional, as before), so
       ``bücher.example``, ``BÜCHER.example`` and ``xn--bcher-kva.example`` are already one
       domain.
    2. Local part: NFKC, then ``str.casefold()``, then the Turkic fold, then NFKC again, until
       nothing changes (:func:`_fold`).

       - NFKC maps compatibility characters to what they stand for: full-width ``U+FF41`` to
         ``a``, the ligature ``U+FB01`` to ``fi``, the Kelvin sign ``U+212A`` to ``K``.
       - casefold is caseless matching (Unicode ch. 3.13), stronger than ``lower()``: it also
         maps ``ß``/``ẞ`` to ``ss`` and final sigma to sigma. Merging ``ß`` with ``ss`` is
         deliberate: ``SS`` is the usual capital of ``ß`` and many keyboards have no ``ß``, so
         one person types both; as separate accounts they are the look-alike twins the audit
         found; and a wrong merge (two real mailboxes differing only so at one domain) costs a
         refused sign-up (409), never access: a login still needs the account's password and
         mail only goes to the stored display address.
       - the Turkic fold maps the dotless i (U+0131) and ``i`` + combining dot above (what
         the dotted capital I, U+0130, casefolds to) to ``i``: in Turkish the case pairs are
         I / dotless i and dotted capital I / i, so a Turkish keyboard or locale turns ``adi``
         into ``AD`` + U+0130 and ``ADI`` into ``ad`` + U+0131; casefold alone keeps all of
         those apart. Same trade-off as ``ß``.
       - NFKC again because casefolding can leave text that is not normalised (it decomposes
         some letters, e.g. U+01F0), and normalising can create text that folds further.
    3. The domain is NOT passed through ``str.casefold()``: IDNA already case-folds and
       compatibility-maps it (the UTS-46 mapping is built from NFKC_Casefold), except for
       ``ß`` and final sigma, which IDNA2008 keeps because ``straße.de`` and ``strasse.de``
       are two registrable domains, possibly with different owners. The key keeps naming the
       domain the mail goes to.
    4. Validate ``folded_local@domain`` again and take its normalised form: NFKC and casefold
       can produce characters that are not allowed (full-width full stop to ``.`` giving
       ``..``, small commercial at to ``@``) or push the address over 254 octets. Such an
       address is refused, and the key is always itself a valid address in canonical form,
       with ``email_key(key) == key``.
    """
    return _keyed(_validate(address, "email"), "email").normalized


# --- Syntax -----------------------------------------------------------------------------------


def _validate(raw: object, field: str) -> ValidatedEmail:
    if not isinstance(raw, str):
        raise InvalidEmail(field, _GENERIC_DETAIL)
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in raw):
        raise InvalidEmail(field, _CONTROL_DETAIL)
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidEmail(field, _TOO_LONG_DETAIL)
    try:
        return _email_validator(raw)
    except EmailNotValidError as exc:
        raise InvalidEmail(field, _redacted(str(exc), raw)) from None


def _email_validator(address: str) -> ValidatedEmail:
    # Every option spelled out, so a change of the library's defaults cannot change the rule.
    return validate_email(
        address,
        check_deliverability=False,
        allow_smtputf8=True,
        allow_quoted_local=False,
        allow_domain_literal=False,
        allow_display_name=False,
        allow_empty_local=False,
    )


def _redacted(message: str, raw: str) -> str:
    """email-validator's message, unless it quotes a piece of the address (the idna package
    puts the offending label in its messages); single characters it names are kept."""
    loose_message = _loose(message)
    pieces = [raw, *raw.replace("@", ".").split(".")]
    if any(
        len(piece) >= _MIN_REDACTED_PIECE and _loose(piece) in loose_message for piece in pieces
    ):
        return _GENERIC_DETAIL
    return message


def _loose(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


# --- Key --------------------------------------------------------------------------------------


# Round limit for _fold; one round reaches the fixed point for every code point (a test checks
# them all), the rest is a margin for combining sequences.
_FOLD_ROUNDS = 4


def _keyed(validated: ValidatedEmail, field: str) -> ValidatedEmail:
    folded = _fold(validated.local_part)
    if folded is None:
        raise InvalidEmail(field, _KEY_INVALID_DETAIL)
    try:
        return _email_validator(f"{folded}@{validated.domain}")
    except EmailNotValidError:
        raise InvalidEmail(field, _KEY_INVALID_DETAIL) from None


def _fold(local_part: str) -> str | None:
    """NFKC, casefold, Turkic fold, NFKC, to a fixed point (None if none is reached)."""
    text = local_part
    for _ in range(_FOLD_ROUNDS):
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = folded.replace("i\u0307", "i").replace("\u0131", "i")
        folded = unicodedata.normalize("NFKC", folded)
        if folded == text:
            return folded
        text = folded
    return None


# --- Scripts (Unicode TR39) -------------------------------------------------------------------
#
# Rule: TR39 section 5.2, restriction level "Highly Restrictive", applied to the local part and
# to each domain label separately (a Cyrillic local part at a Latin domain is fine; "paypal"
# with a Cyrillic "a", U+0430, is not):
#   - each character's script set is its Script_Extensions value (scx), augmented as TR39 5.1
#     says: Han adds Hanb, Jpan, Kore; Hiragana and Katakana add Jpan; Hangul adds Kore;
#     Bopomofo adds Hanb. Characters whose scx is Common or Inherited (digits, "+", "-", ".",
#     combining marks) count as every script, i.e. they are ignored;
#   - the text passes if the intersection of those sets is not empty (single script: all
#     Cyrillic, all Greek, Han + Hiragana + Katakana as Jpan...), or if, leaving out the
#     characters whose set contains Latin, the rest still shares Jpan, Kore or Hanb (the
#     covering sets Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo, Latin + Han +
#     Hangul);
#   - plus TR39 5.3 mixed-number detection: decimal digits from two numbering systems (ASCII
#     "1" with Arabic-Indic "U+0661") are refused too; TR39 3.3, the email security profile,
#     asks for both.
# Not done: TR39's identifier profile (Identifier_Status) beyond what email-validator already
# refuses (controls, format characters, unassigned and private-use code points), and
# whole-script confusables (an all-Cyrillic local part that looks Latin is allowed: it is a
# different mailbox, and refusing whole scripts would refuse their users).
#
# Library: the ``regex`` package, whose ``\p{scx=...}`` gives Script_Extensions from its own,
# current Unicode tables (Python's unicodedata has no script property). It is maintained (monthly
# releases), ships wheels for CPython 3.11, and is among PyPI's most downloaded packages.
# confusable_homoglyphs (last release 2024-01) only knows each character's Script, not
# Script_Extensions, and has no notion of TR39's allowed combinations, so Japanese (Han +
# Hiragana + Katakana) would be "mixed". regex cannot list a character's scripts, so every
# script code is asked in turn (once per character, cached); a code this regex does not know is
# skipped, and a character of no known script matches nothing and is refused (fails closed). A
# test checks that every assigned code point with a script is covered by this list.
_SCRIPT_CODES = [
    "Adlm",
    "Aghb",
    "Ahom",
    "Arab",
    "Armi",
    "Armn",
    "Avst",
    "Bali",
    "Bamu",
    "Bass",
    "Batk",
    "Beng",
    "Berf",
    "Bhks",
    "Bopo",
    "Brah",
    "Brai",
    "Bugi",
    "Buhd",
    "Cakm",
    "Cans",
    "Cari",
    "Cham",
    "Cher",
    "Chrs",
    "Copt",
    "Cpmn",
    "Cprt",
    "Cyrl",
    "Deva",
    "Diak",
    "Dogr",
    "Dsrt",
    "Dupl",
    "Egyp",
    "Elba",
    "Elym",
    "Ethi",
    "Gara",
    "Geor",
    "Glag",
    "Gong",
    "Gonm",
    "Goth",
    "Gran",
    "Grek",
    "Gujr",
    "Gukh",
    "Guru",
    "Hang",
    "Hani",
    "Hano",
    "Hatr",
    "Hebr",
    "Hira",
    "Hluw",
    "Hmng",
    "Hmnp",
    "Hung",
    "Ital",
    "Java",
    "Jurc",
    "Kali",
    "Kana",
    "Kawi",
    "Khar",
    "Khmr",
    "Khoj",
    "Kits",
    "Knda",
    "Krai",
    "Kthi",
    "Lana",
    "Laoo",
    "Latn",
    "Lepc",
    "Limb",
    "Lina",
    "Linb",
    "Lisu",
    "Lyci",
    "Lydi",
    "Mahj",
    "Maka",
    "Mand",
    "Mani",
    "Marc",
    "Medf",
    "Mend",
    "Merc",
    "Mero",
    "Mlym",
    "Modi",
    "Mong",
    "Mroo",
    "Mtei",
    "Mult",
    "Mymr",
    "Nagm",
    "Nand",
    "Narb",
    "Nbat",
    "Newa",
    "Nkoo",
    "Nshu",
    "Ogam",
    "Olck",
    "Onao",
    "Orkh",
    "Orya",
    "Osge",
    "Osma",
    "Ougr",
    "Palm",
    "Pauc",
    "Pcun",
    "Perm",
    "Phag",
    "Phli",
    "Phlp",
    "Phnx",
    "Plrd",
    "Prti",
    "Rjng",
    "Rohg",
    "Runr",
    "Samr",
    "Sarb",
    "Saur",
    "Seal",
    "Sgnw",
    "Shaw",
    "Shrd",
    "Sidd",
    "Sidt",
    "Sind",
    "Sinh",
    "Sogd",
    "Sogo",
    "Sora",
    "Soyo",
    "Sund",
    "Sunu",
    "Sylo",
    "Syrc",
    "Tagb",
    "Takr",
    "Tale",
    "Talu",
    "Taml",
    "Tang",
    "Tavt",
    "Tayo",
    "Telu",
    "Tfng",
    "Tglg",
    "Thaa",
    "Thai",
    "Tibt",
    "Tirh",
    "Tnsa",
    "Todr",
    "Tols",
    "Toto",
    "Tutg",
    "Ugar",
    "Vaii",
    "Vith",
    "Wara",
    "Wcho",
    "Xpeo",
    "Xsux",
    "Yezi",
    "Yiii",
    "Zanb",
]


def _compile_scripts() -> tuple[tuple[str, regex.Pattern[str]], ...]:
    patterns = []
    for code in _SCRIPT_CODES:
        try:
            patterns.append((code, regex.compile(rf"\p{{scx={code}}}")))
        except regex.error:  # unknown to this regex: its characters will match no script
            continue
    return tuple(patterns)


_SCRIPTS = _compile_scripts()
_ANY_SCRIPT = regex.compile(r"[\p{scx=Zyyy}\p{scx=Zinh}]")
# TR39 5.1 augmented script sets.
_AUGMENTED = {"Hani": ("Hanb", "Jpan", "Kore"), "Hira": ("Jpan",), "Kana": ("Jpan",)}
_AUGMENTED |= {"Hang": ("Kore",), "Bopo": ("Hanb",)}
_LATIN_COVERED_BY = frozenset({"Jpan", "Kore", "Hanb"})


@functools.lru_cache(maxsize=4096)
def _script_set(char: str) -> frozenset[str] | None:
    """TR39's augmented script set of one character; None means every script."""
    if _ANY_SCRIPT.match(char):
        return None
    scripts = {code for code, pattern in _SCRIPTS if pattern.match(char)}
    for code in list(scripts):
        scripts.update(_AUGMENTED.get(code, ()))
    return frozenset(scripts)


def is_highly_restrictive(text: str) -> bool:
    """TR39 5.2 "Highly Restrictive" (Common and Inherited ignored); see the rule above."""
    if text.isascii():
        return True  # ASCII-Only, a stricter level
    resolved: frozenset[str] | None = None
    without_latin: frozenset[str] | None = None
    for char in text:
        scripts = _script_set(char)
        if scripts is None:
            continue
        resolved = scripts if resolved is None else resolved & scripts
        if "Latn" not in scripts:
            without_latin = scripts if without_latin is None else without_latin & scripts
    if resolved is None or resolved:
        return True
    return without_latin is not None and not without_latin.isdisjoint(_LATIN_COVERED_BY)


def mixes_numbering_systems(text: str) -> bool:
    """TR39 5.3: decimal digits (Nd) from more than one run of ten, e.g. ASCII and Arabic-Indic."""
    zeros = {
        ord(char) - unicodedata.decimal(char) for char in text if unicodedata.category(char) == "Nd"
    }
    return len(zeros) > 1


def _refuse_mixed_scripts(validated: ValidatedEmail, keyed: ValidatedEmail, field: str) -> None:
    # Both local parts: NFKC can turn a Common character into a letter (mathematical bold "a"
    # is Common, its NFKC form Latin), so a mix may show only in one of the two.
    parts = [("before", validated.local_part), ("before", keyed.local_part)]
    parts += [("after", label) for label in keyed.domain.split(".")]
    for where, text in parts:
        if not is_highly_restrictive(text):
            raise EmailMixesScripts(field, _MIXED_DETAIL.format(where=where))
        if mixes_numbering_systems(text):
            raise EmailMixesScripts(field, _MIXED_NUMBERS_DETAIL.format(where=where))
