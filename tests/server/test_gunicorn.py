"""Gatehouse under the real gunicorn: graceful shutdown, slow clients, metrics across workers.

SECURITY.md REL-08 (SIGTERM under load), REL-10 in part (slow clients must not take every
thread), OPS-01 (no query strings in the access log), HTTP-01 (untrusted Host).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, func, select

from app.models import Account
from config import normalise_database_url

PASSWORD = "correct horse battery staple"
# For tests of the server, not of D-2/D-9: sign-up answers 201 and login needs no verified
# address, so a status says which request it answers (tests/email covers production's way).
PLAIN_SIGNUP_AND_LOGIN = {
    "SIGNUP_GENERIC_ANSWER": "false",
    "LOGIN_REQUIRES_VERIFIED_EMAIL": "false",
}


def call(url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30):
    """``(status, body bytes)``; an HTTP error status is an answer too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_sigterm_lets_requests_in_flight_finish_and_loses_no_sign_up(start_server, database_url):
    """REL-08: every accepted request gets its whole answer; every 201 is in the database."""
    server = start_server(GUNICORN_GRACEFUL_TIMEOUT="30", **PLAIN_SIGNUP_AND_LOGIN)
    call(f"{server.base_url}/api/v1/accounts", {"email": "ada@example.com", "password": PASSWORD})

    def signup(index: int):
        email = f"user{index}@example.com"
        return (
            "signup",
            email,
            call(f"{server.base_url}/api/v1/accounts", {"email": email, "password": PASSWORD}),
        )

    def login(index: int):
        body = {"email": "ada@example.com", "password": PASSWORD}
        return "login", None, call(f"{server.base_url}/api/v1/auth/login", body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(signup if i % 2 else login, i) for i in range(8)]
        time.sleep(0.3)  # accepted and hashing
        started = time.monotonic()
        server.process.send_signal(15)
        results = [future.result(timeout=60) for future in futures]
    exit_code = server.process.wait(timeout=60)
    stopped_after = time.monotonic() - started

    statuses = [status for _, _, (status, _) in results]
    assert statuses.count(201) == 4 and statuses.count(200) == 4, statuses
    for _, _, (_, body) in results:
        json.loads(body)  # complete JSON, not a cut connection
    created = {email for kind, email, (status, _) in results if kind == "signup" and status == 201}
    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as connection:
        stored = set(connection.scalars(select(Account.email).where(Account.email.in_(created))))
        total = connection.scalar(select(func.count()).select_from(Account))
    engine.dispose()
    assert stored == created
    assert total == 5
    assert exit_code == 0
    assert stopped_after < 30


def test_half_open_connections_do_not_take_every_thread(start_server):
    """Slow or silent clients wait in the poller, not in a worker thread."""
    server = start_server()
    idle = []
    for index in range(300):
        connection = socket.create_connection(("127.0.0.1", server.port))
        if index % 2:
            connection.sendall(b"GET /api/v1/accounts/me HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        idle.append(connection)
    try:
        started = time.monotonic()
        status, _ = call(f"{server.base_url}/healthz", timeout=10)
        elapsed = time.monotonic() - started
    finally:
        for connection in idle:
            connection.close()

    assert status == 200
    assert elapsed < 3, elapsed


def test_trickling_clients_are_cut_off_at_the_deadline_and_hold_no_thread(start_server):
    """Slowloris: a byte at a time costs the attacker a socket, never a thread, and ends."""
    server = start_server(GUNICORN_REQUEST_READ_TIMEOUT="2")
    tricklers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    started = time.monotonic()
    answered, cut_off = [], 0
    try:
        while time.monotonic() - started < 4:
            for connection in list(tricklers):
                try:
                    connection.sendall(b"X")
                except OSError:
                    tricklers.remove(connection)
                    connection.close()
                    cut_off += 1
            before = time.monotonic()
            status, _ = call(f"{server.base_url}/healthz", timeout=5)
            answered.append((status, time.monotonic() - before))
            time.sleep(0.2)
    finally:
        for connection in tricklers:
            connection.close()

    assert all(status == 200 for status, _ in answered)
    assert max(elapsed for _, elapsed in answered) < 1
    assert cut_off == 40


def test_kept_alive_connection_serves_several_requests(start_server):
    server = start_server()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        statuses = []
        for _ in range(3):
            connection.request("GET", "/api/v1/accounts/me")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        connection.close()

    assert statuses == [401, 401, 401]


def test_request_bodies_arrive_whole_chunked_or_not(start_server):
    server = start_server(**PLAIN_SIGNUP_AND_LOGIN)
    body = json.dumps({"email": "body@example.com", "password": PASSWORD}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/api/v1/accounts",
            body=iter([body[:10], body[10:]]),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        chunked = connection.getresponse()
        chunked.read()
        connection.request(
            "POST", "/api/v1/auth/login", body=body, headers={"Content-Type": "application/json"}
        )
        plain = connection.getresponse()
        plain.read()
    finally:
        connection.close()

    assert (chunked.status, plain.status) == (201, 200)


def test_metrics_count_the_requests_of_every_worker(start_server, tmp_path):
    """prometheus_client's multiprocess mode: a scrape sums both workers' samples."""
    server = start_server(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), WEB_CONCURRENCY="2")
    for _ in range(40):
        call(f"{server.base_url}/api/v1/accounts/me")

    scrapes = [call(f"{server.base_url}/metrics")[1].decode() for _ in range(6)]

    pattern = re.compile(
        r'gatehouse_http_requests_total\{endpoint="/api/v1/accounts/me",method="GET",'
        r'status="401"\} ([0-9.]+)'
    )
    counts = {float(pattern.search(text).group(1)) for text in scrapes}
    assert counts == {40.0}


def test_access_log_holds_no_query_string(start_server):
    """OPS-01: a token in ?access_token= never reaches a log line, gunicorn's or ours."""
    server = start_server()
    token = "eyJhbGciOiJFZERTQSJ9.secret-looking-token.signature"

    call(f"{server.base_url}/api/v1/accounts/me?access_token={token}&x=1")
    server.stop()

    output = server.output()
    assert "/api/v1/accounts/me" in output  # the access line is there
    assert token not in output and "access_token" not in output


def test_untrusted_host_is_refused_by_the_server(start_server):
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(
            b"GET /api/v1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk

    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 400")
    assert "evil.example" not in answer.decode(errors="replace")


def test_server_refuses_to_start_with_a_world_readable_key(start_server, tmp_path):
    """OPS-03: the master stops at once, with its one-line reason."""
    key = tmp_path / "open-key.pem"
    key.write_text((tmp_path / "signing-key.pem").read_text())
    key.chmod(0o644)
    result = None
    try:
        start_server(JWT_PRIVATE_KEY_FILE=str(key))
    except BaseException as exc:  # pytest.fail inside the fixture: the server exited early
        result = str(exc)

    assert result is not None and "open to group or others" in result


def worker_memory_mib(server) -> int:
    """Resident memory of the master and its workers, in MiB."""
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids += [int(pid) for pid in children.read_text().split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total // 1024


def test_login_flood_leaves_token_checks_fast_and_memory_bounded(start_server):
    """REL-10: 40 clients flooding login (production Argon2, 64 MiB a hash); /me stays quick."""
    server = start_server(
        ARGON2_TIME_COST="3",
        ARGON2_MEMORY_COST="65536",
        ARGON2_PARALLELISM="4",
        RATELIMIT_ENABLED="false",
        GUNICORN_HASHING_THREADS="2",
        **PLAIN_SIGNUP_AND_LOGIN,
    )
    body = {"email": "ada@example.com", "password": PASSWORD}
    call(f"{server.base_url}/api/v1/accounts", body)
    token = json.loads(call(f"{server.base_url}/api/v1/auth/login", body)[1])["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def me_latencies(count: int) -> list[float]:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            status, _ = call(f"{server.base_url}/api/v1/accounts/me", headers=headers)
            assert status == 200
            latencies.append(time.perf_counter() - started)
        return sorted(latencies)

    quiet = me_latencies(20)
    memory_before = worker_memory_mib(server)
    stop, statuses, memory = threading.Event(), [], [memory_before]

    def flood(index: int) -> None:
        while not stop.is_set():
            flood_body = {"email": f"nobody{index}@example.com", "password": "x" * 12}
            statuses.append(call(f"{server.base_url}/api/v1/auth/login", flood_body)[0])

    flooders = [threading.Thread(target=flood, args=(i,)) for i in range(40)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(1.0)
        busy = me_latencies(20)
        memory.append(worker_memory_mib(server))
    finally:
        stop.set()
        for thread in flooders:
            thread.join(timeout=60)

    median_quiet, median_busy = quiet[10], busy[10]
    assert median_busy < max(10 * median_quiet, 0.25), (median_quiet, median_busy)
    assert set(statuses) <= {401, 503}, set(statuses)
    # Two workers, two hashes each at 64 MiB, and slack for the allocator.
    assert max(memory) - memory_before < 2 * 2 * 64 * 1.5, (memory_before, memory)


def _thread_nices(pid: int) -> list[int]:
    """The nice value of each thread of ``pid`` (Linux gives them per thread)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        # Field 19 of stat; the name (field 2) is in parentheses and may hold spaces.
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))
    return values


def test_hashing_threads_yield_the_cores_to_cheap_requests(start_server):
    """REL-10: a login runs on a hashing thread whose CPU priority is GUNICORN_HASHING_NICE
    lower than the request threads', so during a login flood the kernel serves token checks
    first (bench/run.py's flood scenario measures what that buys)."""
    server = start_server(WEB_CONCURRENCY="1", GUNICORN_HASHING_NICE="7", RATELIMIT_ENABLED="false")
    body = {"email": "nobody@example.com", "password": "x" * 12}
    assert call(f"{server.base_url}/api/v1/auth/login", body)[0] == 401  # starts one hashing thread
    assert call(f"{server.base_url}/healthz")[0] == 200
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    (worker,) = [int(pid) for pid in children.read_text().split()]

    base = os.getpriority(os.PRIO_PROCESS, worker)  # the worker's main thread
    nices = sorted(_thread_nices(worker))
    assert nices.count(min(base + 7, 19)) == 1, nices  # the one hashing thread started so far
    assert len(nices) > 2 and set(nices) - {min(base + 7, 19)} == {base}, nices
