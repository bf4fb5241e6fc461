"""Every hot path against its own ceiling, in one run (`make bench`, issue #18).

Measures the ceilings first: Argon2id verifications per second with the configured parameters
on as many processes as gunicorn has workers (the ceiling of login and sign-up), JWT signing and
verification per second with a key of the configured algorithm on as many processes, and a bare
Flask JSON endpoint (bench/bare_app.py) under the same gunicorn.conf.py (the ceiling of every
request that does not hash). Then starts Gatehouse as production runs it, ``gunicorn -c
gunicorn.conf.py run:app`` with GATEHOUSE_ENV=production, on a scratch PostgreSQL database
(created, migrated and dropped here) with Redis, a generated signing key, a loopback SMTP sink
and rate limits off, and drives each scenario with wrk (bench/wrk/*.lua) on loopback: sign-up,
login, refresh (rotating), GET /accounts/me, logout, and a login flood with /me measured
alongside. Prints a table (requests/s of 2xx answers, p50, p99, errors, the ratio to the
scenario's ceiling, the issue's target) and writes it as JSON (bench/results/latest.json).

    make bench                            # 10 s per scenario, 16 connections
    make bench-quick                      # 2 s per scenario: does every scenario work?
    .venv/bin/python bench/run.py --scenarios me,refresh --seconds 5
    .venv/bin/python bench/run.py --database-url postgresql://postgres@127.0.0.1/scratch

The machine may be shared: compare ratios measured in the same run, not absolute figures, and
look at the CPU idle % sampled before each phase. bench/README.md describes every scenario and
ceiling. Exit status 1 when a scenario had errors or could not run; a missed target is a figure,
not a failure.
"""

# ruff: noqa: S603, S607  (it runs gunicorn, wrk, git and the PostgreSQL tools, by fixed argv)

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import os
import runpy
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
WRK_DIR = ROOT / "bench" / "wrk"
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
BALANCER_JSON = ROOT / "bench" / "results" / "balancer.json"
PASSWORD = "bench passphrase 2026 for wrk"
PG_HOST, PG_USER = "127.0.0.1", "postgres"
WRK_INSTALL = "wrk is not installed: on Debian or Ubuntu, `sudo apt-get install -y wrk`"

SCENARIOS = ("me", "refresh", "logout", "login", "mixed", "signup")  # the order they run in
BALANCER_SCENARIOS = ("me", "refresh", "login")  # those --balancer runs through nginx
# Settings the harness takes from the caller's environment; every other setting of
# docs/configuration.md is the harness's own (or production's default).
HONOURED = ("ARGON2_", "JWT_ALGORITHM", "GUNICORN_", "WEB_CONCURRENCY")

# The issue's targets: (ceiling a scenario is compared with, lowest ratio). Not timed tests.
RATIO_TARGETS = {
    "signup": ("argon2_verify", 0.95),
    "login": ("argon2_verify", 0.95),
    "me": ("bare_flask", 0.70),
    "refresh": ("bare_flask", 0.50),
    "logout": ("bare_flask", None),
    "flood_login": ("argon2_verify", None),
    "flood_me": ("me", 0.50),
}
# How the table names each ceiling.
CEILING_NAMES = {
    "argon2_verify": "Argon2id",
    "bare_flask": "bare Flask",
    "me": "/me alone",
    "me_direct": "no nginx",
    **{f"{name}_x1": "1 instance" for name in BALANCER_SCENARIOS},
}
P99_TARGET_MS = 50.0  # at 16 connections, for the scenarios that do not hash
NOT_HASHING = ("bare_flask", "me", "refresh", "logout")


# --- figures ---------------------------------------------------------------------------------


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return parse_cpu_line(fields)


def parse_cpu_line(fields: list[int]) -> tuple[int, int]:
    """user nice system idle iowait irq softirq steal: idle counts idle and iowait."""
    return fields[3] + fields[4], sum(fields[:8])


def idle_percent(seconds: float = 1.0) -> float:
    """How idle the CPUs were over the next ``seconds`` (100: nothing else ran)."""
    idle_before, total_before = cpu_times()
    time.sleep(seconds)
    idle_after, total_after = cpu_times()
    total = total_after - total_before
    return 100.0 * (idle_after - idle_before) / total if total else 100.0


@dataclass
class WrkResult:
    """What report.lua printed, in the units the table uses."""

    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    exhausted_threads: int
    ok: int = field(init=False)
    rate: float = field(init=False)

    def __post_init__(self) -> None:
        self.ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        self.rate = self.ok / self.seconds if self.seconds else 0.0

    def errors(self, *, allowed: tuple[int, ...] = ()) -> int:
        """Answers other than 2xx (and ``allowed``), and requests that got no answer."""
        refused = sum(
            n
            for status, n in self.statuses.items()
            if not 200 <= status < 300 and status not in allowed
        )
        return refused + self.socket_errors


def parse_wrk_output(stdout: str) -> WrkResult:
    """The ``BENCH_JSON`` line of report.lua's done(). Raises ValueError when there is none."""
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise ValueError("wrk printed no BENCH_JSON line:\n" + stdout[-2000:])
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={int(status): n for status, n in data["statuses"].items()},
        # wrk's "status" errors are answers >= 400, already in the statuses.
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        exhausted_threads=data["exhausted_threads"],
    )


@dataclass
class Row:
    """One line of the table and of the JSON."""

    name: str
    label: str
    rate: float
    idle_before: float
    wrk: WrkResult | None = None
    errors: int = 0
    shed: int = 0  # 503 busy during the flood: the worker's load shedding, not errors
    ratio_to: str | None = None
    ratio: float | None = None
    target: float | None = None
    p99_target_ms: float | None = None
    note: str = ""

    def ratio_met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target

    def p99_met(self) -> bool | None:
        if self.p99_target_ms is None or self.wrk is None:
            return None
        return self.wrk.p99_ms <= self.p99_target_ms

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "requests_per_second": round(self.rate, 2),
            "cpu_idle_before_percent": round(self.idle_before, 1),
            "errors": self.errors,
        }
        if self.wrk is not None:
            data.update(
                requests=self.wrk.requests,
                seconds=round(self.wrk.seconds, 3),
                p50_ms=round(self.wrk.p50_ms, 2),
                p90_ms=round(self.wrk.p90_ms, 2),
                p99_ms=round(self.wrk.p99_ms, 2),
                max_ms=round(self.wrk.max_ms, 2),
                statuses={str(k): v for k, v in sorted(self.wrk.statuses.items())},
                socket_errors=self.wrk.socket_errors,
                exhausted_threads=self.wrk.exhausted_threads,
            )
        if self.shed:
            data["shed_503"] = self.shed
        if self.ratio_to:
            data.update(ratio_to=self.ratio_to, ratio=_round(self.ratio, 3))
            data.update(target_ratio=self.target, target_ratio_met=self.ratio_met())
        if self.p99_target_ms is not None:
            data.update(target_p99_ms=self.p99_target_ms, target_p99_met=self.p99_met())
        if self.note:
            data["note"] = self.note
        return data


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'scenario':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'ratio':>6}  {'to':10} {'target':22} {'idle':>5}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        p50 = f"{row.wrk.p50_ms:8.1f}" if row.wrk else f"{'':8}"
        p99 = f"{row.wrk.p99_ms:8.1f}" if row.wrk else f"{'':8}"
        ratio = f"{row.ratio:6.3f}" if row.ratio is not None else f"{'':6}"
        ceiling = CEILING_NAMES.get(row.ratio_to or "", row.ratio_to or "")
        targets = []
        if row.target is not None:
            targets.append(f">={row.target:.2f} " + ("ok" if row.ratio_met() else "MISS"))
        if row.p99_target_ms is not None:
            targets.append(f"p99 {'ok' if row.p99_met() else 'MISS'}")
        errors = f"{row.errors:7d}" if row.wrk else f"{'':7}"
        lines.append(
            f"{row.label:34} {row.rate:9.1f} {p50} {p99} {errors} {ratio}  "
            f"{ceiling:10} {', '.join(targets):22} {row.idle_before:4.0f}%"
        )
        if row.note:
            lines.append(f"{'':36}{row.note}")
    return "\n".join(lines)


# --- ceilings measured in processes ----------------------------------------------------------


def _loop_in_process(kind: str, config: dict[str, Any], seconds: float, barrier, results) -> None:
    """One process of a ceiling: set up, wait for the others, repeat the operation."""
    if kind == "argon2_verify":
        from app.services.passwords import PasswordHasher

        hasher = PasswordHasher(
            time_cost=config["time_cost"],
            memory_cost=config["memory_cost"],
            parallelism=config["parallelism"],
        )
        stored = hasher.hash(PASSWORD)

        def operation() -> None:
            assert hasher.verify(stored, PASSWORD)
    else:
        import uuid

        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from app.services.tokens import AccessTokenCodec, KeySet, signing_key_from_private

        private_key = load_pem_private_key(Path(config["key_file"]).read_bytes(), password=None)
        codec = AccessTokenCodec(
            KeySet(signing_key_from_private(private_key, config["algorithm"])),
            issuer=config["issuer"],
            audience=config["audience"],
            lifetime_seconds=config["lifetime_seconds"],
            leeway_seconds=config["leeway_seconds"],
        )
        ids = (uuid.uuid4(), uuid.uuid4())

        def sign() -> str:
            now = datetime.now(UTC)
            return codec.issue(
                account_id=ids[0],
                session_id=ids[1],
                roles=["user"],
                amr=["pwd"],
                auth_time=now,
                email_verified=True,
                now=now,
            )

        token = sign()
        operation = (
            sign if kind == "jwt_sign" else lambda: codec.verify(token, now=datetime.now(UTC))
        )
    operation()
    barrier.wait()
    start = time.perf_counter()
    done = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        operation()
        done += 1
    results.put(done / elapsed)


def ceiling_in_processes(
    kind: str, config: dict[str, Any], processes: int, seconds: float
) -> float:
    """Operations per second of ``processes`` processes doing ``kind`` at once, summed."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_loop_in_process, args=(kind, config, seconds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rates)


# --- processes: servers, wrk, the database ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str, body: dict[str, str] | None = None) -> int:
    """GET ``url``, or POST ``body`` as JSON; the status. A new connection each time."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@contextlib.contextmanager
def gunicorn(
    app_spec: str, environ: dict[str, str], port: int, log: Path, probe: str
) -> Iterator[str]:
    """``gunicorn -c gunicorn.conf.py app_spec`` on 127.0.0.1:port until the block ends."""
    base = f"http://127.0.0.1:{port}"
    with open(log, "ab") as output:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", app_spec],
            cwd=ROOT,
            env={**environ, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{app_spec} exited with {server.returncode}; see {log}")
            with contextlib.suppress(OSError):
                if http_get(base + probe) == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app_spec} did not answer {probe} within 60 s; see {log}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_wrk(
    script: str,
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int,
    environ: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """Start wrk with bench/wrk/``script``; :func:`wrk_result` waits for it."""
    threads = max(1, min(threads, connections))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
    ]
    return subprocess.Popen(
        command,
        cwd=WRK_DIR,
        env={**os.environ, **(environ or {}), "THREADS": str(threads)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wrk_result(process: subprocess.Popen, log: Path) -> WrkResult:
    stdout, _ = process.communicate()
    with open(log, "a") as output:
        output.write(f"$ {' '.join(process.args)}\n{stdout}\n")
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{stdout[-2000:]}")
    return parse_wrk_output(stdout)


def createdb(name: str) -> str:
    subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, name], check=True)
    return f"postgresql://{PG_USER}@{PG_HOST}:5432/{name}"


def dropdb(name: str) -> None:
    subprocess.run(
        ["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=False
    )


# --- Gatehouse's environment and fixtures ----------------------------------------------------


def server_environ(
    workdir: Path, database_url: str, redis_url: str, smtp_port: int, port: int
) -> tuple[dict[str, str], list[str]]:
    """Production's environment for the server, and the caller's variables it honoured."""
    from app.services.tokens import generate_private_key, private_key_to_pem
    from config import ENV_OVERRIDES

    environ = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDES}
    environ = {k: v for k, v in environ.items() if not k.startswith(("GATEHOUSE_", "FLASK_"))}
    honoured = sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith(HONOURED) and v != ""
    )
    environ.update(kv.split("=", 1) for kv in honoured)
    algorithm = os.environ.get("JWT_ALGORITHM") or "EdDSA"
    key_file = workdir / "signing-key.pem"
    key_file.write_bytes(private_key_to_pem(generate_private_key(algorithm)))
    key_file.chmod(0o600)
    metrics = workdir / "metrics"
    metrics.mkdir()
    environ.update(
        GATEHOUSE_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"gatehouse-bench-{os.getpid()}-{secrets.token_hex(4)}:",
        JWT_PRIVATE_KEY_FILE=str(key_file),
        JWT_ISSUER=f"http://127.0.0.1:{port}",
        TRUSTED_HOSTS="127.0.0.1",
        SECRET_KEY=secrets.token_urlsafe(48),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_port),
        MAIL_USE_TLS="false",
        MAIL_FROM="Gatehouse <no-reply@bench.example.com>",
        RATELIMIT_ENABLED="false",
        # As the image does: metrics summed across workers, in files.
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    return environ, honoured


class Fixtures:
    """Accounts and sessions made in this process through Gatehouse's own services.

    One real Argon2id hash (the configured parameters) is made and given to every fixture
    account, and this process's app checks no password when it opens sessions: making
    thousands of sessions costs database rows, not hashes. The server never sees this shortcut;
    a login it answers verifies the shared hash like any other.
    """

    def __init__(self, run_id: str) -> None:
        from app import create_app

        self.run_id = run_id
        # The server's workers deliver the mail; a sender here would outlive the scratch database.
        self.app = create_app(overrides={"MAIL_SENDER_ENABLED": False})
        logging.disable(logging.WARNING)  # a log line per fixture login is not what is measured
        self.runtime = self.app.extensions["gatehouse"]
        self.runtime.hasher = _SharedHash(self.runtime.hasher.hash(PASSWORD))
        self.sessions_made = 0

    def accounts(self, kind: str, count: int) -> list[str]:
        """``count`` verified accounts, ``{kind}-{run_id}-{i}@example.com``."""
        from sqlalchemy import delete, update

        from app.extensions import db
        from app.models.account import Account
        from app.models.outbox import OutboxMessage
        from app.services.account import register_account

        emails = [f"{kind}-{self.run_id}-{i}@example.com" for i in range(count)]
        with self.app.test_request_context():
            for email in emails:
                register_account(email=email, password=PASSWORD)
            pattern = f"{kind}-{self.run_id}-%@example.com"
            db.session.execute(
                update(Account).where(Account.email.like(pattern)).values(email_verified=True)
            )
            # Their verification mail is not what any scenario measures.
            db.session.execute(delete(OutboxMessage).where(OutboxMessage.to_address.like(pattern)))
            db.session.commit()
        return emails

    def sessions(self, emails: list[str], count: int) -> list[tuple[str, str]]:
        """``count`` new sessions spread over ``emails``: (access token, refresh token)."""
        from app.services.auth import login

        pairs = []
        with self.app.test_request_context():
            for index in range(count):
                pair = login(
                    email=emails[index % len(emails)],
                    password=PASSWORD,
                    ip_address="127.0.0.1",
                    user_agent="gatehouse-bench",
                )
                pairs.append((pair.access_token, pair.refresh_token))
        self.sessions_made += count
        return pairs

    def close(self) -> None:
        from app.extensions import db

        with self.app.app_context():
            db.engine.dispose()


class _SharedHash:
    """The fixture app's hasher: every account gets one precomputed hash; no check is run."""

    def __init__(self, stored: str) -> None:
        self.stored = stored

    def hash(self, normalised_password: str) -> str:
        return self.stored

    def verify(self, password_hash: str, password: str) -> bool:
        return True

    def verify_dummy(self, password: str) -> None:
        pass

    def needs_rehash(self, password_hash: str) -> bool:
        return False


@contextlib.contextmanager
def smtp_sink(keep: Callable[[Any], None] | None = None) -> Iterator[int]:
    """A loopback SMTP server that accepts every message; yields its port.

    ``keep(envelope)`` is called for each message (aiosmtpd's envelope); without it, none is
    kept.
    """
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope) -> str:
            if keep is not None:
                keep(envelope)
            return "250 2.0.0 accepted"

    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    with contextlib.suppress(redis.RedisError):
        batch = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    client.close()


# --- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.log = workdir / "wrk.log"
        self.rows: list[Row] = []
        self.ceilings: dict[str, float] = {}
        self.failures: list[str] = []
        self.rates: dict[str, float] = {}
        self.seconds: int = args.seconds
        # Hashing requests take seconds each under a full queue: a smoke run gives them a few.
        self.hashing_seconds: int = max(args.seconds, 4) if args.quick else args.seconds

    def phase(self, title: str) -> float:
        idle = idle_percent(1.0)
        warning = "  (busy machine: ratios are less trustworthy)" if idle < 80 else ""
        print(f"== {title}  [CPU idle {idle:.0f}% over the last second]{warning}", flush=True)
        return idle

    def wrk(
        self, script: str, url: str, connections: int, seconds: int | None = None, **environ: str
    ) -> WrkResult:
        process = run_wrk(
            script,
            url,
            seconds=seconds or self.seconds,
            connections=connections,
            threads=self.args.threads,
            environ=environ,
        )
        return wrk_result(process, self.log)

    def add(self, row: Row) -> Row:
        if row.ratio_to:
            ceiling = self.ceilings.get(row.ratio_to)
            row.ratio = row.rate / ceiling if ceiling else None
        self.rows.append(row)
        if row.wrk:
            extra = f", {row.shed} shed (503)" if row.shed else ""
            print(
                f"   {row.rate:.1f} req/s, p50 {row.wrk.p50_ms:.1f} ms, "
                f"p99 {row.wrk.p99_ms:.1f} ms, {row.errors} errors{extra}",
                flush=True,
            )
            if row.errors:
                self.failures.append(f"{row.label}: {row.errors} errors {row.wrk.statuses}")
        else:
            print(f"   {row.rate:.1f} per second", flush=True)
        return row

    def scenario_row(self, name: str, label: str, idle: float, result: WrkResult, **extra) -> Row:
        ratio_to, target = RATIO_TARGETS.get(name, (None, None))
        p99 = P99_TARGET_MS if name in NOT_HASHING and self.args.connections == 16 else None
        note = extra.pop("note", "")
        if result.exhausted_threads:
            note = (note + "; " if note else "") + (
                f"{result.exhausted_threads} wrk thread(s) ran out of sessions before the end"
            )
        return self.add(
            Row(
                name,
                label,
                result.rate,
                idle,
                wrk=result,
                errors=result.errors(),
                ratio_to=ratio_to,
                target=target,
                p99_target_ms=p99,
                note=note,
                **extra,
            )
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        old, new = (json.loads(path.read_text()) for path in args.compare)
        print(compare(old, new))
        return 0
    if shutil.which("wrk") is None:
        print(f"bench: {WRK_INSTALL}", file=sys.stderr)
        return 2
    for tool in ("createdb", "dropdb") if not args.database_url else ():
        if shutil.which(tool) is None:
            print(
                f"bench: {tool} is missing (postgresql-client), or pass --database-url",
                file=sys.stderr,
            )
            return 2
    if args.balancer:
        from scripts.cluster import nginx_binary

        if nginx_binary() is None:
            print(
                "bench: --balancer needs nginx: `sudo apt-get install -y nginx-light`",
                file=sys.stderr,
            )
            return 2
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as scratch:
        bench = Bench(args, Path(scratch))
        try:
            run_balancer(bench) if args.balancer else run(bench)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            bench.failures.append(str(exc))
            print(f"bench: {exc}", file=sys.stderr)
        finally:
            report(bench)
    return 1 if bench.failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per scenario (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all); ceilings always run",
    )
    parser.add_argument(
        "--flood-connections",
        type=int,
        help="login flood connections (default: 4 per hashing thread of all workers)",
    )
    parser.add_argument("--database-url", help="an existing scratch PostgreSQL database to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--seed", type=int, default=1, help="seeds the login scenario's draws")
    parser.add_argument(
        "--json",
        type=Path,
        help=f"default {DEFAULT_JSON}, with --balancer {BALANCER_JSON}",
    )
    parser.add_argument(
        "--balancer",
        action="store_true",
        help="instead: /me, refresh and login through nginx with 1, then 2 instances "
        "(scripts/cluster.py), the same gunicorn workers in all",
    )
    parser.add_argument(
        "--balancer-workers",
        type=int,
        help="gunicorn workers in all with --balancer (default: the cores; split between the "
        "2 instances)",
    )
    parser.add_argument("--quick", action="store_true", help="2 s per scenario: a smoke run")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("OLD", "NEW"),
        help="run nothing: print two result files' ratios side by side (e.g. two commits')",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 2
    if args.json is None:
        args.json = BALANCER_JSON if args.balancer else DEFAULT_JSON
    if args.balancer:
        # The scenarios a balancer run has: every one of them by default, else those asked.
        names = args.scenarios.split(",")
        if args.scenarios == ",".join(SCENARIOS):
            names = list(BALANCER_SCENARIOS)
        args.scenarios = ",".join(name for name in names if name.strip() in BALANCER_SCENARIOS)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.seconds < 1 or args.connections < 1:
        parser.error("--seconds and --connections must be at least 1")
    return args


def run(bench: Bench) -> None:
    args = bench.args
    run_id = secrets.token_hex(4)
    port = free_port()
    pid_db = f"gh_bench_{os.getpid()}"
    database_url = args.database_url or createdb(pid_db)
    with smtp_sink() as smtp_port:
        environ, honoured = server_environ(
            bench.workdir, database_url, args.redis_url, smtp_port, port
        )
        try:
            # This process builds the fixture app and reads gunicorn.conf.py: the same settings.
            os.environ.clear()
            os.environ.update(environ)
            _run_with(bench, environ, honoured, port, run_id)
        finally:
            delete_redis_keys(args.redis_url, environ["REDIS_KEY_PREFIX"])
            if not args.database_url:
                dropdb(pid_db)


def _run_with(
    bench: Bench, environ: dict[str, str], honoured: list[str], port: int, run_id: str
) -> None:
    from config import load_config

    args = bench.args
    settings = load_config("production", environ=environ)
    gunicorn_conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers = int(gunicorn_conf["workers"])
    hashing_threads = int(environ.get("GUNICORN_HASHING_THREADS") or len(os.sched_getaffinity(0)))
    flood = args.flood_connections or 4 * workers * hashing_threads
    bench.settings = {
        "argon2_time_cost": settings["ARGON2_TIME_COST"],
        "argon2_memory_cost_kib": settings["ARGON2_MEMORY_COST"],
        "argon2_parallelism": settings["ARGON2_PARALLELISM"],
        "jwt_algorithm": settings["JWT_ALGORITHM"],
        "workers": workers,
        "worker_class": gunicorn_conf["worker_class"],
        "threads": gunicorn_conf["threads"],
        "hashing_threads_per_worker": hashing_threads,
        "max_requests": gunicorn_conf["max_requests"],
        "cores": len(os.sched_getaffinity(0)),
        "seconds_per_scenario": bench.seconds,
        "seconds_per_hashing_scenario": bench.hashing_seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "flood_connections": flood,
        "seed": args.seed,
        "honoured_environment": honoured,
    }
    print(
        f"Gatehouse bench: {workers} workers ({gunicorn_conf['worker_class']}, "
        f"{gunicorn_conf['threads']} threads, {hashing_threads} hashing threads each) on "
        f"{bench.settings['cores']} cores; Argon2id t={settings['ARGON2_TIME_COST']} "
        f"m={settings['ARGON2_MEMORY_COST']} KiB p={settings['ARGON2_PARALLELISM']}; "
        f"JWT {settings['JWT_ALGORITHM']}; {bench.seconds} s per scenario, "
        f"{args.connections} connections, wrk -t{args.threads}",
        flush=True,
    )
    if honoured:
        print(f"from the environment: {' '.join(honoured)}", flush=True)

    # Ceilings.
    argon2 = {
        "time_cost": settings["ARGON2_TIME_COST"],
        "memory_cost": settings["ARGON2_MEMORY_COST"],
        "parallelism": settings["ARGON2_PARALLELISM"],
    }
    idle = bench.phase(f"ceiling: Argon2id verify, {workers} processes")
    rate = ceiling_in_processes("argon2_verify", argon2, workers, bench.hashing_seconds)
    bench.ceilings["argon2_verify"] = rate
    bench.add(Row("argon2_verify", f"ceiling: Argon2id verify x{workers}", rate, idle))
    jwt_config = {
        "key_file": environ["JWT_PRIVATE_KEY_FILE"],
        "algorithm": settings["JWT_ALGORITHM"],
        "issuer": settings["JWT_ISSUER"],
        "audience": settings["JWT_AUDIENCE"],
        "lifetime_seconds": settings["ACCESS_TOKEN_LIFETIME_SECONDS"],
        "leeway_seconds": settings["JWT_LEEWAY_SECONDS"],
    }
    for kind, what in (("jwt_sign", "sign"), ("jwt_verify", "verify")):
        idle = bench.phase(
            f"ceiling: JWT {what} ({settings['JWT_ALGORITHM']}), {workers} processes"
        )
        rate = ceiling_in_processes(kind, jwt_config, workers, max(1.0, bench.seconds / 2))
        bench.ceilings[kind] = rate
        bench.add(Row(kind, f"ceiling: JWT {what} x{workers}", rate, idle))
    bare_port = free_port()
    with gunicorn(
        "bench.bare_app:app", environ, bare_port, bench.workdir / "bare.log", "/ping"
    ) as base:
        warm(bench, "bare.lua", base + "/ping")
        idle = bench.phase("ceiling: bare Flask GET /ping, same gunicorn.conf.py")
        result = bench.wrk("bare.lua", base + "/ping", args.connections)
        bench.ceilings["bare_flask"] = result.rate
        bench.scenario_row("bare_flask", "ceiling: bare Flask GET /ping", idle, result)

    # Gatehouse.
    print("== Gatehouse: migrating the scratch database, making accounts", flush=True)
    migrated = subprocess.run(
        [str(BIN / "flask"), "--app", "manage", "db", "upgrade"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"the migrations failed:\n{migrated.stdout}{migrated.stderr[-3000:]}")
    fixtures = Fixtures(run_id)
    try:
        login_pool = 16 if args.quick else 64
        fixtures.accounts("login", login_pool)
        holders = fixtures.accounts("session", 16)
        server_log = bench.workdir / "gatehouse.log"
        with gunicorn("run:app", environ, port, server_log, "/readyz") as base:
            gatehouse_scenarios(bench, fixtures, base, holders, login_pool, run_id, flood)
        if "Traceback" in server_log.read_text(errors="replace"):
            tail = server_log.read_text(errors="replace")[-3000:]
            bench.failures.append("the server logged a traceback")
            print(f"bench: the server logged a traceback:\n{tail}", file=sys.stderr)
    finally:
        fixtures.close()


def run_balancer(bench: Bench) -> None:
    """``--balancer``: the cheap scenarios and login through nginx, 1 instance then 2.

    One scratch database, migrated once, and one environment (signing key, issuer: the
    balancer's URL, Redis prefix) for both layouts; the same gunicorn workers in all (W on one
    instance, W/2 on each of two), so the ratio shows what a second instance adds on this
    machine, not what more workers add. /me is also measured on the one instance without nginx:
    nginx's own cost.
    """
    from scripts.cluster import cluster_environ

    args = bench.args
    run_id = secrets.token_hex(4)
    balancer_port = free_port()
    pid_db = f"gh_bench_{os.getpid()}"
    database_url = args.database_url or createdb(pid_db)
    total = args.balancer_workers or len(os.sched_getaffinity(0))
    if total < 2:
        raise RuntimeError("--balancer needs at least 2 workers in all (--balancer-workers)")
    layouts = ((1, total), (2, total // 2))
    prefix = None
    try:
        with smtp_sink() as smtp_port:
            base, honoured = server_environ(
                bench.workdir, database_url, args.redis_url, smtp_port, balancer_port
            )
            environ = cluster_environ(
                database_url=database_url,
                redis_url=args.redis_url,
                scratch=bench.workdir,
                balancer_port=balancer_port,
                base=base,
            )
            prefix = environ["REDIS_KEY_PREFIX"]
            os.environ.clear()
            os.environ.update(environ)
            _run_balancer_with(bench, environ, honoured, layouts, balancer_port, run_id)
    finally:
        if prefix:
            delete_redis_keys(args.redis_url, prefix)
        if not args.database_url:
            dropdb(pid_db)


def _run_balancer_with(
    bench: Bench,
    environ: dict[str, str],
    honoured: list[str],
    layouts: tuple[tuple[int, int], ...],
    balancer_port: int,
    run_id: str,
) -> None:
    from config import load_config
    from scripts.cluster import migrate, running_cluster

    args = bench.args
    settings = load_config("production", environ=environ)
    gunicorn_conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    bench.settings = {
        "mode": "balancer",
        "layouts": [{"instances": n, "workers_per_instance": w} for n, w in layouts],
        "argon2_time_cost": settings["ARGON2_TIME_COST"],
        "argon2_memory_cost_kib": settings["ARGON2_MEMORY_COST"],
        "argon2_parallelism": settings["ARGON2_PARALLELISM"],
        "worker_class": gunicorn_conf["worker_class"],
        "threads": gunicorn_conf["threads"],
        "workers": layouts[0][1],  # in all, in every layout (drain() sizes its probes by it)
        "cores": len(os.sched_getaffinity(0)),
        "seconds_per_scenario": bench.seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "seed": args.seed,
        "honoured_environment": honoured,
    }
    print(
        "Gatehouse bench through nginx: "
        + ", ".join(f"{n} instance(s) x {w} workers" for n, w in layouts)
        + f" ({gunicorn_conf['worker_class']}, {gunicorn_conf['threads']} threads) on "
        f"{bench.settings['cores']} cores; Argon2id t={settings['ARGON2_TIME_COST']} "
        f"m={settings['ARGON2_MEMORY_COST']} KiB p={settings['ARGON2_PARALLELISM']}; "
        f"{bench.seconds} s per scenario, {args.connections} connections, wrk -t{args.threads}",
        flush=True,
    )
    print("== migrating the scratch database, making accounts", flush=True)
    migrate(environ)
    fixtures = Fixtures(run_id)
    try:
        login_pool = 16 if args.quick else 64
        fixtures.accounts("login", login_pool)
        holders = fixtures.accounts("session", 16)
        login_env = {
            "RUN_ID": run_id,
            "POOL_SIZE": str(login_pool),
            "PASSWORD": PASSWORD,
            "SEED": str(args.seed),
        }
        for instances, workers in layouts:
            scratch = bench.workdir / f"cluster-{instances}"
            scratch.mkdir()
            layout_env = {**environ, "WEB_CONCURRENCY": str(workers)}
            with running_cluster(
                layout_env, scratch=scratch, balancer_port=balancer_port, instances=instances
            ) as cluster:
                tag = f"x{instances}"
                title = f"{instances} instance{'s' if instances > 1 else ''} x {workers}w"
                if "me" in args.scenarios:
                    token = fixtures.sessions(holders, 1)[0][0]
                    if instances == 1:
                        direct = cluster.instances[0].url + "/api/v1/accounts/me"
                        warm(bench, "me.lua", direct, ACCESS_TOKEN=token)
                        idle = bench.phase(f"GET /accounts/me, {title}, without nginx")
                        result = bench.wrk("me.lua", direct, args.connections, ACCESS_TOKEN=token)
                        bench.ceilings["me_direct"] = result.rate
                        _balancer_row(bench, "me_direct", f"/me {title}, no nginx", idle, result)
                    url = cluster.url + "/api/v1/accounts/me"
                    warm(bench, "me.lua", url, ACCESS_TOKEN=token)
                    idle = bench.phase(f"GET /accounts/me through nginx, {title}")
                    result = bench.wrk("me.lua", url, args.connections, ACCESS_TOKEN=token)
                    _balancer_row(bench, f"me_{tag}", f"/me via nginx, {title}", idle, result)
                if "refresh" in args.scenarios:
                    pairs = fixtures.sessions(holders, 2 * args.connections)
                    tokens = write_tokens(
                        bench, f"refresh-{tag}", [refresh for _, refresh in pairs]
                    )
                    idle = bench.phase(f"POST /auth/refresh through nginx, {title}")
                    result = bench.wrk(
                        "refresh.lua",
                        cluster.url + "/api/v1/auth/refresh",
                        args.connections,
                        TOKENS=tokens,
                    )
                    label = f"refresh via nginx, {title}"
                    _balancer_row(bench, f"refresh_{tag}", label, idle, result)
                if "login" in args.scenarios:
                    idle = bench.phase(f"POST /auth/login through nginx, {title}")
                    result = bench.wrk(
                        "login.lua",
                        cluster.url + "/api/v1/auth/login",
                        args.connections,
                        bench.hashing_seconds,
                        **login_env,
                    )
                    _balancer_row(bench, f"login_{tag}", f"login via nginx, {title}", idle, result)
                    drain(bench, cluster.url, f"login-{run_id}-0@example.com")
                for instance in cluster.instances:
                    if "Traceback" in instance.log.read_text(errors="replace"):
                        bench.failures.append(f"instance {instance.name} logged a traceback")
    finally:
        fixtures.close()


def _balancer_row(bench: Bench, name: str, label: str, idle: float, result: WrkResult) -> None:
    """A row of --balancer: the 2-instance rows' ratio is to the same scenario on 1 instance;
    through nginx on 1 instance, /me's ratio is to /me without nginx."""
    scenario, _, layout = name.rpartition("_")
    ratio_to = None
    if layout == "x1":
        bench.ceilings[name] = result.rate
        ratio_to = "me_direct" if scenario == "me" and "me_direct" in bench.ceilings else None
    elif layout == "x2":
        ratio_to = f"{scenario}_x1"
    bench.add(
        Row(name, label, result.rate, idle, wrk=result, errors=result.errors(), ratio_to=ratio_to)
    )


def warm(bench: Bench, script: str, url: str, **environ: str) -> None:
    """One second of load first, not recorded: connection pools and caches filled."""
    process = run_wrk(
        script,
        url,
        seconds=1,
        connections=bench.args.connections,
        threads=bench.args.threads,
        environ=environ,
    )
    wrk_result(process, bench.log)


def drain(bench: Bench, base: str, email: str) -> None:
    """Wait until the hashing requests a phase left queued in the workers have run.

    wrk stops at its deadline, but the logins and sign-ups it left waiting in the workers'
    hashing pools are still hashed afterwards, and would slow the next phase down. Each worker
    runs its hashing pool first in, first out: logins sent now, on connections of their own
    (several per worker, so every worker gets some), finish once the queue ahead of them has.
    """
    started = time.monotonic()
    probes = 4 * bench.settings["workers"]
    with ThreadPoolExecutor(max_workers=probes) as pool:
        statuses = list(
            pool.map(
                lambda _: http_get(
                    base + "/api/v1/auth/login", {"email": email, "password": PASSWORD}
                ),
                range(probes),
            )
        )
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"drain logins answered {statuses}")
    print(f"   (queued hashing drained in {time.monotonic() - started:.1f} s)", flush=True)


def write_tokens(bench: Bench, name: str, tokens: list[str]) -> str:
    path = bench.workdir / name
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


def gatehouse_scenarios(
    bench: Bench,
    fixtures: Fixtures,
    base: str,
    holders: list[str],
    login_pool: int,
    run_id: str,
    flood: int,
) -> None:
    args = bench.args
    chosen = args.scenarios
    me_url = base + "/api/v1/accounts/me"
    probe_email = f"login-{run_id}-0@example.com"
    login_env = {
        "RUN_ID": run_id,
        "POOL_SIZE": str(login_pool),
        "PASSWORD": PASSWORD,
        "SEED": str(args.seed),
    }

    def me_token() -> str:
        return fixtures.sessions(holders, 1)[0][0]  # a fresh one: access tokens live 15 min

    if "me" in chosen or "mixed" in chosen:
        token = me_token()
        warm(bench, "me.lua", me_url, ACCESS_TOKEN=token)
        idle = bench.phase("GET /api/v1/accounts/me")
        result = bench.wrk("me.lua", me_url, args.connections, ACCESS_TOKEN=token)
        bench.ceilings["me"] = result.rate
        if "me" in chosen:
            bench.scenario_row("me", "GET /accounts/me", idle, result)

    if "refresh" in chosen:
        pairs = fixtures.sessions(holders, 2 * args.connections)
        tokens = write_tokens(bench, "refresh-tokens", [refresh for _, refresh in pairs])
        idle = bench.phase("POST /api/v1/auth/refresh (rotating)")
        result = bench.wrk(
            "refresh.lua", base + "/api/v1/auth/refresh", args.connections, TOKENS=tokens
        )
        bench.scenario_row("refresh", "POST /auth/refresh", idle, result)
        bench.rates["refresh"] = result.rate

    if "logout" in chosen:
        # One session per request. Logout writes about as much as a refresh: its rate, or half
        # the /me rate, or a quarter of bare Flask's, with a margin; a thread whose sessions run
        # out stops early, and the rate stays the rate over the time it ran.
        expected = (
            bench.rates.get("refresh")
            or 0.5 * bench.ceilings.get("me", 0)
            or 0.25 * bench.ceilings.get("bare_flask", 0)
            or 200
        )
        count = min(50_000, math.ceil(1.5 * expected * bench.seconds) + 4 * args.connections)
        started = time.monotonic()
        pairs = fixtures.sessions(holders, count)
        print(f"   ({count} sessions made in {time.monotonic() - started:.1f} s)", flush=True)
        tokens = write_tokens(bench, "logout-tokens", [access for access, _ in pairs])
        idle = bench.phase("POST /api/v1/auth/logout (a session each)")
        result = bench.wrk(
            "logout.lua", base + "/api/v1/auth/logout", args.connections, TOKENS=tokens
        )
        bench.scenario_row("logout", "POST /auth/logout", idle, result)

    if "login" in chosen:
        idle = bench.phase(f"POST /api/v1/auth/login ({login_pool} accounts)")
        result = bench.wrk(
            "login.lua",
            base + "/api/v1/auth/login",
            args.connections,
            bench.hashing_seconds,
            **login_env,
        )
        bench.scenario_row("login", "POST /auth/login", idle, result)
        drain(bench, base, probe_email)

    if "mixed" in chosen:
        token = me_token()
        idle = bench.phase(f"login flood ({flood} connections) with GET /accounts/me alongside")
        flooding = run_wrk(
            "login.lua",
            base + "/api/v1/auth/login",
            seconds=bench.hashing_seconds,
            connections=flood,
            threads=1,
            environ={**login_env, "SEED": str(args.seed + 1)},
        )
        measured = run_wrk(
            "me.lua",
            me_url,
            seconds=bench.hashing_seconds,
            connections=args.connections,
            threads=args.threads,
            environ={"ACCESS_TOKEN": token},
        )
        me_result = wrk_result(measured, bench.log)
        flood_result = wrk_result(flooding, bench.log)
        shed = flood_result.statuses.get(503, 0)
        bench.add(
            Row(
                "flood_login",
                f"flood: POST /auth/login x{flood} conns",
                flood_result.rate,
                idle,
                wrk=flood_result,
                errors=flood_result.errors(allowed=(503,)),
                shed=shed,
                ratio_to="argon2_verify",
                note="achieved login rate under the flood (closed loop, queue always full)",
            )
        )
        bench.scenario_row("flood_me", "flood: GET /accounts/me alongside", idle, me_result)
        drain(bench, base, probe_email)

    if "signup" in chosen:
        idle = bench.phase("POST /api/v1/accounts (a new address each)")
        result = bench.wrk(
            "signup.lua",
            base + "/api/v1/accounts",
            args.connections,
            bench.hashing_seconds,
            RUN_ID=run_id,
            PASSWORD=PASSWORD,
        )
        bench.scenario_row("signup", "POST /accounts (sign-up)", idle, result)


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Two result files side by side: each row's ratio (the figure that survives a noisy
    machine), its requests/s and p99, old then new."""

    def describe(document: dict[str, Any]) -> str:
        commit = (document.get("git") or {}).get("commit") or "?"
        return f"{commit[:10]} {document.get('taken_at', '?')}"

    lines = [
        f"old: {describe(old)}",
        f"new: {describe(new)}",
        f"{'row':24} {'ratio old':>9} {'new':>6}  {'req/s old':>10} {'new':>9}  "
        f"{'p99 old':>8} {'new':>7}",
    ]
    names = list(old["rows"]) + [name for name in new["rows"] if name not in old["rows"]]
    for name in names:
        a, b = old["rows"].get(name, {}), new["rows"].get(name, {})

        def cell(row: dict[str, Any], key: str, width: int, digits: int) -> str:
            value = row.get(key)
            return f"{value:{width}.{digits}f}" if isinstance(value, int | float) else " " * width

        lines.append(
            f"{name:24} {cell(a, 'ratio', 9, 2)} {cell(b, 'ratio', 6, 2)}  "
            f"{cell(a, 'requests_per_second', 10, 1)} {cell(b, 'requests_per_second', 9, 1)}  "
            f"{cell(a, 'p99_ms', 8, 1)} {cell(b, 'p99_ms', 7, 1)}"
        )
    return "\n".join(lines)


def git_state() -> dict[str, Any]:
    def git(*command: str) -> str:
        return subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def report(bench: Bench) -> None:
    if not bench.rows:
        return
    print()
    print(format_table(bench.rows))
    print(
        "\nratio: requests/s (2xx answers) over the ceiling named in `to`, both from this run. "
        f"Targets (issue #18): login, sign-up >= 0.95 of Argon2; /me >= 0.70 and refresh >= 0.50 "
        f"of bare Flask; p99 <= {P99_TARGET_MS:.0f} ms at 16 connections without hashing; "
        "/me during the flood >= 0.50 of /me alone; no errors."
    )
    checks = [
        met
        for row in bench.rows
        for met in (row.ratio_met(), row.p99_met(), (row.errors == 0) if row.wrk else None)
        if met is not None
    ]
    print(f"targets met: {sum(checks)} of {len(checks)}")
    for failure in bench.failures:
        print(f"FAILED: {failure}")
    document = {
        "schema": 1,
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "host": socket.gethostname(),
        "loadavg": os.getloadavg(),
        "settings": getattr(bench, "settings", {}),
        "ceilings": {name: round(rate, 2) for name, rate in bench.ceilings.items()},
        "rows": {row.name: row.as_json() for row in bench.rows},
        "targets_met": sum(checks),
        "targets_checked": len(checks),
        "failures": bench.failures,
    }
    path: Path = bench.args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    sys.exit(main())
