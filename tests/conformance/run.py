"""Schemathesis against a running Gatehouse: the OpenAPI document must tell the truth.

Starts the service as production runs it (gunicorn with gunicorn.conf.py, the production
configuration: DEBUG and TESTING off, so errors are answered the way production answers them)
on a scratch SQLite database, with a loopback SMTP server (aiosmtpd) taking its mail; signs up
one account and verifies it by the link mailed to it, as production requires before a login,
and runs schemathesis (tests/conformance/schemathesis.toml) against /api/v1/swagger.json with
the checks not_a_server_error, status_code_conformance, content_type_conformance and
response_schema_conformance, valid and invalid requests alike. The operations that end the
fuzzing session (logout, account deletion) each get a pass and a token of their own, so they
cannot turn every other request into a 401.

    make api-conformance            # or: .venv/bin/python tests/conformance/run.py

Bounded: a fixed number of examples per operation and a time limit per pass. Exit status 0
when every pass passes and the server logged no traceback.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email import policy
from email.parser import BytesParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

from app.services.tokens import generate_private_key, private_key_to_pem  # noqa: E402

BIN = Path(sys.executable).parent
CONFIG = ROOT / "tests" / "conformance" / "schemathesis.toml"
SESSION_ENDING = ("POST /auth/logout", "DELETE /accounts/me")
PASS_TIMEOUT_SECONDS = 600
PASSWORD = "conformance passphrase 2026"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Mailbox:
    """Keeps what the service mails (the fuzzing's sign-ups mail too)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.content)
        return "250 2.0.0 accepted"

    def token_for(self, address: str, seconds: float = 30) -> str:
        """The token of the first message to ``address`` (its verification link)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for raw in self.messages:
                message = BytesParser(policy=policy.default).parsebytes(raw)
                if message["To"] == address:
                    text = message.get_body(("plain",)).get_content()
                    return re.search(r"#token=([A-Za-z0-9_-]{43})", text).group(1)
            time.sleep(0.2)
        sys.exit(f"conformance: no message reached {address}")


def wait_until_serving(url: str, server: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"conformance: the server exited with {server.returncode}")
        try:
            if call(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("conformance: the server did not answer in time")


def run_pass(name: str, spec_url: str, token: str, filters: list[str], workdir: Path) -> int:
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        spec_url,
        *filters,
    ]
    print(f"== schemathesis, {name}: {' '.join(command[3:])}", flush=True)
    environ = {**os.environ, "GATEHOUSE_FUZZ_TOKEN": token}
    try:
        return subprocess.run(
            command, cwd=workdir, env=environ, timeout=PASS_TIMEOUT_SECONDS, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        print(f"conformance: the {name} pass took over {PASS_TIMEOUT_SECONDS} s", flush=True)
        return 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gatehouse-conformance-") as scratch:
        workdir = Path(scratch)
        key_file = workdir / "signing-key.pem"
        key_file.write_bytes(private_key_to_pem(generate_private_key("EdDSA")))
        key_file.chmod(0o600)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        mailbox = Mailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "JWT_"))},
            "GATEHOUSE_ENV": "production",
            "DATABASE_URL": f"sqlite:///{workdir / 'conformance.db'}",
            "JWT_PRIVATE_KEY_FILE": str(key_file),
            "JWT_ISSUER": base,
            # OWASP's minimum: a valid production value that keeps sign-ups quick.
            "ARGON2_TIME_COST": "2",
            "ARGON2_MEMORY_COST": "19456",
            "ARGON2_PARALLELISM": "1",
            "HSTS_ENABLED": "false",
            "TRUSTED_HOSTS": "127.0.0.1",
            "SECRET_KEY": "conformance-secret-key-" + "c" * 32,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(smtp.port),
            "MAIL_USE_TLS": "false",
            "MAIL_FROM": "Gatehouse <no-reply@auth.example.test>",
            # Fuzzing needs volume; the limits and their 429s are tested by the suite.
            "RATELIMIT_ENABLED": "false",
            # Nor may the lockout turn the fuzzed password checks into one answer.
            "LOCKOUT_FAILURES": "1000000",
            "LOG_LEVEL": "WARNING",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
        }
        environ.pop("REDIS_URL", None)
        subprocess.run(
            [str(BIN / "flask"), "--app", "manage", "db", "upgrade"],
            cwd=ROOT,
            env=environ,
            check=True,
        )
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "run:app"],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "server.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        try:
            spec_url = f"{base}/api/v1/swagger.json"
            wait_until_serving(spec_url, server)
            account = {"email": "fuzz@example.com", "password": PASSWORD}
            assert call(f"{base}/api/v1/accounts", account)[0] == 202  # generic sign-up (D-2)
            verified = {"token": mailbox.token_for(account["email"])}
            assert call(f"{base}/api/v1/auth/verify-email", verified)[0] == 204

            def login() -> str:
                return call(f"{base}/api/v1/auth/login", account)[1]["access_token"]

            # Every pass's token first: fuzzed password checks may lock the account later.
            tokens = [login() for _ in range(len(SESSION_ENDING) + 1)]
            excluded = [arg for name in SESSION_ENDING for arg in ("--exclude-name", name)]
            statuses = [run_pass("every other operation", spec_url, tokens[0], excluded, workdir)]
            for name, token in zip(SESSION_ENDING, tokens[1:], strict=True):
                statuses.append(run_pass(name, spec_url, token, ["--include-name", name], workdir))
        finally:
            server.terminate()
            server.wait(timeout=10)
            smtp.stop()
            errors = (workdir / "server.log").read_text()
            if "Traceback" in errors:
                print("conformance: the server logged a traceback:\n" + errors[-4000:])
                statuses.append(1)
    print(f"== conformance: {'passed' if not any(statuses) else 'FAILED'}")
    return 1 if any(statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
