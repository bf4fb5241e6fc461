"""A real gunicorn running Gatehouse (production config), for what only a server shows.

Each test gets its own server on a free port, on the test database (SQLite file, or
TEST_DATABASE_URL), with the gunicorn.conf.py of the repository.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.services.tokens import generate_private_key, private_key_to_pem

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def start_server(database_url: str, make_app, tmp_path: Path) -> Iterator:
    """``start_server(WEB_CONCURRENCY="2", …)`` starts gunicorn and waits until it answers.

    Depends on ``make_app`` so the rows the server writes are emptied after the test.
    """
    servers: list[Server] = []
    key = tmp_path / "signing-key.pem"
    key.write_bytes(private_key_to_pem(generate_private_key("EdDSA")))
    key.chmod(0o600)

    def start(**environ: str) -> Server:
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GATEHOUSE_", "JWT_", "GUNICORN_", "PROMETHEUS", "REDIS"))
        }
        env.update(
            GATEHOUSE_ENV="production",
            DATABASE_URL=database_url,
            JWT_PRIVATE_KEY_FILE=str(key),
            JWT_ISSUER=f"http://127.0.0.1:{port}",
            TRUSTED_HOSTS="127.0.0.1,localhost",
            SECRET_KEY="server-test-secret-key-" + "z" * 32,
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT="1",
            MAIL_FROM="Gatehouse <no-reply@auth.example.test>",
            MAIL_SENDER_ENABLED="false",
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            ARGON2_TIME_COST="2",
            ARGON2_MEMORY_COST="19456",
            ARGON2_PARALLELISM="1",
            HSTS_ENABLED="false",
        )
        env.update(environ)
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("w") as output:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "run:app"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", port, log)
        servers.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{server.output()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=1):  # noqa: S310
                    return server
            except OSError:
                time.sleep(0.1)
        pytest.fail("gunicorn did not answer within 30 s")

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
