"""PWD-05 below the HTTP layer: the shipped common-password list, context words, and the
optional k-anonymity range check (against a stub server on 127.0.0.1, never the network)."""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.errors import FieldRuleBroken
from app.services.breached import (
    BreachRangeClient,
    CommonPasswordList,
    NullBreachClient,
    NullCommonPasswordList,
    PasswordBreached,
    PasswordContainsEmail,
    PasswordContainsName,
    PasswordContainsServiceName,
    PasswordScreen,
    PasswordTooCommon,
    build_password_screen,
    check_context,
)
from app.services.passwords import normalise_password

PASSPHRASE = "tangerine orbit velvet 7 quarry lantern"
EMAIL = "writer@example.com"


@pytest.fixture(scope="module")
def common_list() -> CommonPasswordList:
    return CommonPasswordList().load()


@pytest.fixture(scope="module")
def screen(common_list: CommonPasswordList) -> PasswordScreen:
    return PasswordScreen(common=common_list, breach_api=NullBreachClient())


# --- The shipped list ---------------------------------------------------------------------


def test_load_shipped_list_has_at_least_100000_entries(common_list):
    """PWD-05: the list that ships with the service holds at least 100,000 passwords."""
    assert len(common_list) >= 100_000


@pytest.mark.parametrize(
    "password", ["password", "123456789", "qwertyuiop", "iloveyou1", "football", "passw0rd"]
)
def test_check_common_password_is_refused_with_a_reason(screen, password):
    """PWD-05: a listed password → password_too_common naming the field, with a reason."""
    with pytest.raises(PasswordTooCommon) as raised:
        screen.check(password, email=EMAIL, field="new_password")

    error = raised.value
    assert (error.status, error.code) == (400, "password_too_common")
    assert error.errors[0].field == "new_password"
    assert error.errors[0].code == "password_too_common"
    assert error.detail == "is in a list of commonly used passwords"  # a reason, not the password


@pytest.mark.parametrize(
    "password", [PASSPHRASE, "correct horse battery staple 1984 ☂", "数学 ist schön, 42 Äpfel!"]
)
def test_check_long_random_passphrase_passes(screen, password):
    """PWD-05: a passphrase that is in no list and contains no context word is accepted."""
    screen.check(normalise_password(password), email=EMAIL, display_name="Ada Lovelace")


@pytest.mark.parametrize(
    "password", ["ｐａｓｓｗｏｒｄ", "ｑｗｅｒｔｙｕｉｏｐ", "１２３４５６７８９"]
)
def test_check_full_width_variant_is_refused(screen, password):
    """PWD-05: the list is compared after the same NFKC normalisation as hashing."""
    with pytest.raises(PasswordTooCommon):
        screen.check(normalise_password(password), email=EMAIL)


@pytest.mark.parametrize("password", ["PASSWORD", "Password", "QwertyUIOP", "ILoveYou1"])
def test_check_case_variant_is_refused(screen, password):
    """PWD-05: the list is case-insensitive (entries and passwords are case-folded)."""
    with pytest.raises(PasswordTooCommon):
        screen.check(password, email=EMAIL)


def test_is_common_short_entry_is_not_listed(common_list):
    """Entries shorter than 8 are left out: the length rule (PWD-01) refuses them first."""
    assert not common_list.is_common("123456")
    assert common_list.is_common("12345678")


def test_construct_list_reads_nothing_until_first_use(tmp_path):
    """The list loads lazily: building it (once per app) touches no file."""
    missing = CommonPasswordList(tmp_path / "absent.txt.gz")

    assert not missing.loaded
    with pytest.raises(FileNotFoundError):
        missing.is_common("anything at all")


def test_load_from_many_threads_reads_the_file_once(tmp_path):
    """Concurrent first lookups read the file once and all see the whole list."""
    path = tmp_path / "small.txt.gz"
    path.write_bytes(gzip.compress(b"Alpha-Bravo\nCharlie99\n\nalpha-bravo\n"))
    reads = []

    class CountingList(CommonPasswordList):
        def _read(self):
            reads.append(threading.get_ident())
            time.sleep(0.05)  # widen the window for a second reader
            return super()._read()

    listed = CountingList(path)
    barrier = threading.Barrier(8)
    answers = []

    def look_up() -> None:
        barrier.wait()
        answers.append(listed.is_common("ALPHA-BRAVO"))

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(reads) == 1
    assert answers == [True] * 8
    assert len(listed) == 2  # blank lines skipped, case duplicates merged


def test_check_with_list_disabled_accepts_a_listed_password():
    """PASSWORD_BREACHED_LIST_ENABLED=false swaps in the null list."""
    screen = build_password_screen(list_enabled=False)

    assert isinstance(screen.common, NullCommonPasswordList)
    screen.check("password", email=EMAIL)


def test_build_screen_by_default_uses_the_list_and_no_api():
    """Defaults: the shipped list on (loaded lazily), the online check off."""
    screen = build_password_screen()

    assert isinstance(screen.common, CommonPasswordList)
    assert not screen.common.loaded
    assert isinstance(screen.breach_api, NullBreachClient)


# --- Context words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("my writer password 2024", "writer@example.com"),
        ("MY-WRITER-PASSWORD-2024", "writer@example.com"),
        ("xx-Writer-xx-2024-yy", "WRITER@Example.com"),
        ("annannannanna", "anna@example.com"),  # exactly 4 characters still counts
        ("lovelace forever 1815", "ada.lovelace@example.com"),  # a word of the local part
    ],
)
def test_check_password_containing_email_local_part_is_refused(password, email):
    """PWD-05: the email's local part (≥ 4 characters) may not appear, whatever its case."""
    with pytest.raises(PasswordContainsEmail) as raised:
        check_context(password, email=email, field="new_password")

    assert raised.value.code == "password_contains_email"
    assert raised.value.errors[0].field == "new_password"
    assert password not in raised.value.detail


def test_check_three_letter_local_part_forbids_nothing():
    """PWD-05 boundary: a 3-character local part is too short to forbid ("bob" in "bobcat")."""
    check_context("bobcat-paradise-x", email="bob@example.com")
    check_context("bobcat-paradise-x", email="bob@example.com", display_name="Bob")


@pytest.mark.parametrize(
    ("password", "display_name"),
    [
        ("i am ada lovelace!", "Ada Lovelace"),
        ("AdaLovelace-1815", "Ada Lovelace"),
        ("lovelace-1815-engine", "Ada Lovelace"),
        ("ｍａｒｉｅ curie radium", "Marie"),  # NFKC of the password
        ("straße-1900-berlin", "STRASSE"),  # case folding: ß folds to ss
    ],
)
def test_check_password_containing_display_name_is_refused(password, display_name):
    """PWD-05: the display name (or one of its words, ≥ 4 characters) may not appear."""
    with pytest.raises(PasswordContainsName) as raised:
        check_context(
            normalise_password(password), email=EMAIL, display_name=display_name, field="pw"
        )

    assert raised.value.code == "password_contains_name"
    assert raised.value.errors[0].field == "pw"


def test_check_short_display_name_forbids_nothing():
    """PWD-05 boundary: a display name of 3 characters, or words of 3, forbids nothing."""
    check_context("adamant-ivy-garden", email=EMAIL, display_name="Ada")
    check_context("adamant-ivy-garden", email=EMAIL, display_name="Ada Ivy")


@pytest.mark.parametrize(
    "password", ["gatehouse rocks 2024", "My-GateHouse-Login", "ｇａｔｅｈｏｕｓｅ-42-x"]
)
def test_check_password_containing_service_name_is_refused(password):
    """PWD-05: the service's name may not appear, whatever its case or width."""
    with pytest.raises(PasswordContainsServiceName) as raised:
        check_context(normalise_password(password), email=EMAIL, field="new_password")

    assert raised.value.code == "password_contains_service_name"
    assert raised.value.errors[0].field == "new_password"


def test_new_errors_have_stable_codes_and_are_field_errors():
    """The codes are part of the API (RFC 9457 `code`); each error is a 400 field error."""
    codes = {
        PasswordTooCommon: "password_too_common",
        PasswordBreached: "password_breached",
        PasswordContainsEmail: "password_contains_email",
        PasswordContainsName: "password_contains_name",
        PasswordContainsServiceName: "password_contains_service_name",
    }
    for error, code in codes.items():
        assert issubclass(error, FieldRuleBroken)
        assert (error.status, error.code) == (400, code)
        assert error.title


# --- The optional range check, against a stub on 127.0.0.1 --------------------------------


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


@dataclass
class RangeStub:
    """What the stub answers, and what it was asked."""

    status: int = 200
    body: str = ""
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def answer_with(self, *lines: str) -> None:
        self.status, self.body = 200, "\r\n".join(lines)


class _StubServer(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for every handler
    stub: RangeStub


class _RangeHandler(BaseHTTPRequestHandler):
    server: _StubServer

    def do_GET(self) -> None:
        stub = self.server.stub
        stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if stub.hold:
            stub.release.wait(10)
        data = stub.body.encode()
        try:
            self.send_response(stub.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def range_stub(monkeypatch) -> Iterator[RangeStub]:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    stub = RangeStub()
    server = _StubServer(("127.0.0.1", 0), _RangeHandler)
    server.stub = stub
    host, port = server.server_address[:2]
    stub.url = f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield stub
    stub.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def test_range_check_breached_password_is_refused(range_stub):
    """PWD-05: a password the range answer lists with a count ≥ 1 → password_breached."""
    password = "an unusual passphrase 7f3k"
    suffix = sha1_hex(password)[5:]
    range_stub.answer_with(f"{'0' * 35}:0", f"{suffix}:42", f"{'F' * 35}:3")
    client = BreachRangeClient(range_stub.url, timeout_seconds=1.0)
    screen = PasswordScreen(common=NullCommonPasswordList(), breach_api=client)

    assert client.breach_count(password) == 42
    with pytest.raises(PasswordBreached) as raised:
        screen.check(password, email=EMAIL, field="new_password")
    assert raised.value.code == "password_breached"
    assert raised.value.errors[0].field == "new_password"


def test_range_check_absent_password_is_accepted(range_stub):
    """PWD-05: a suffix missing from the answer, or listed with padding's count 0, passes."""
    password = "an unusual passphrase 7f3k"
    suffix = sha1_hex(password)[5:]
    client = BreachRangeClient(range_stub.url, timeout_seconds=1.0)

    range_stub.answer_with(f"{'0' * 35}:7", f"{'F' * 35}:3")
    assert client.is_breached(password) is False
    range_stub.answer_with(f"{suffix}:0")  # Add-Padding decoys carry count 0
    assert client.is_breached(password) is False


def test_range_check_sends_only_the_prefix_and_the_padding_header(range_stub):
    """PWD-05: only the first 5 hex characters of the SHA-1 leave the process."""
    password = "an unusual passphrase 7f3k"
    full_hash = sha1_hex(password)
    range_stub.answer_with(f"{'0' * 35}:1")

    BreachRangeClient(range_stub.url + "/", timeout_seconds=1.0).is_breached(password)

    [(path, headers)] = range_stub.requests
    assert path == f"/range/{full_hash[:5]}"
    assert headers["add-padding"] == "true"
    seen = (path + " " + " ".join(headers.values())).upper()
    assert full_hash[5:] not in seen
    assert full_hash not in seen
    assert password.upper() not in seen


def test_range_check_server_error_fails_open(range_stub, caplog):
    """D-10: a 5xx answer → not breached, logged at WARNING without the hash prefix."""
    range_stub.status, range_stub.body = 500, "oops"
    client = BreachRangeClient(range_stub.url, timeout_seconds=1.0)
    prefix = sha1_hex("an unusual passphrase 7f3k")[:5]

    with caplog.at_level(logging.INFO, logger="gatehouse.passwords"):
        assert client.is_breached("an unusual passphrase 7f3k") is False

    [record] = [r for r in caplog.records if r.name == "gatehouse.passwords"]
    assert record.levelno == logging.WARNING
    assert "HTTP 500" in record.getMessage()
    assert prefix not in record.getMessage()


def test_range_check_malformed_answer_fails_open(range_stub):
    """D-10: an answer that is not SUFFIX:COUNT lines → not breached."""
    range_stub.answer_with("<html>maintenance</html>")

    assert BreachRangeClient(range_stub.url, timeout_seconds=1.0).is_breached("x" * 12) is False


def test_range_check_slow_server_beyond_timeout_fails_open_quickly(range_stub):
    """D-10: a server slower than the timeout → not breached, within about the timeout."""
    range_stub.hold = True
    range_stub.answer_with(f"{sha1_hex('x' * 12)[5:]}:99")
    client = BreachRangeClient(range_stub.url, timeout_seconds=0.2)

    started = time.monotonic()
    assert client.is_breached("x" * 12) is False
    assert time.monotonic() - started < 1.0
    assert client.in_outage


def test_range_check_unreachable_server_fails_open(monkeypatch):
    """D-10: nothing listening on the port → not breached."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused

    client = BreachRangeClient(f"http://127.0.0.1:{port}", timeout_seconds=0.5)

    assert client.is_breached("x" * 12) is False


def test_range_check_repeated_failure_within_an_outage_is_logged_once(range_stub, caplog):
    """D-10: one WARNING per outage, not per call; the recovery ends the outage."""
    client = BreachRangeClient(range_stub.url, timeout_seconds=1.0)

    def warnings() -> int:
        return sum(
            r.levelno == logging.WARNING for r in caplog.records if r.name == "gatehouse.passwords"
        )

    with caplog.at_level(logging.INFO, logger="gatehouse.passwords"):
        range_stub.status, range_stub.body = 503, "down"
        for _ in range(3):
            assert client.is_breached("x" * 12) is False
        assert warnings() == 1

        range_stub.answer_with(f"{'0' * 35}:1")
        assert client.is_breached("x" * 12) is False
        assert not client.in_outage
        assert any("again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)

        range_stub.status, range_stub.body = 500, "down again"
        client.is_breached("x" * 12)
        client.is_breached("x" * 12)
        assert warnings() == 2
    assert len(range_stub.requests) == 6


def test_construct_range_client_refuses_a_non_http_url():
    """Only http(s) base URLs: a file:// or bare host would be a misconfiguration."""
    for url in ("file:///etc/passwd", "api.pwnedpasswords.com", "ftp://example.com"):
        with pytest.raises(ValueError):
            BreachRangeClient(url)


def test_is_common_lone_surrogate_is_not_an_error(common_list):
    """A password JSON can carry ("\\ud800") but UTF-8 cannot: answered, never a crash."""
    assert common_list.is_common("abc\ud800defgh") is False


def test_load_same_file_from_two_lists_reads_it_once(tmp_path):
    """Once per process: a second app's list shares the digests the first one read."""
    path = tmp_path / "shared.txt.gz"
    path.write_bytes(gzip.compress(b"correcthorse\n"))
    reads = []

    class CountingList(CommonPasswordList):
        def _read(self):
            reads.append(1)
            return super()._read()

    first, second = CountingList(path), CountingList(path)

    assert first.is_common("CorrectHorse") and second.is_common("correcthorse")
    assert len(reads) == 1
