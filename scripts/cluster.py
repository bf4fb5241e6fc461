"""Several Gatehouse instances behind nginx, sharing PostgreSQL and Redis (`make cluster`).

Runs the migrations once (``flask --app manage db upgrade``), starts CLUSTER_INSTANCES (default
2) instances as production runs them, ``gunicorn -c gunicorn.conf.py run:app`` with
GATEHOUSE_ENV=production, each on a loopback port of its own, all with one signing key, one
SECRET_KEY and one issuer (the balancer's URL), waits until each answers /readyz, then renders
deploy/cluster/nginx.conf into a scratch directory and starts nginx (Debian's nginx-light) in
front of them with TRUSTED_PROXY_HOPS=1, prints the balancer's URL and runs until Ctrl-C, which
stops everything.

    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/gatehouse
    REDIS_URL=redis://127.0.0.1:6379/0 make cluster
    CLUSTER_INSTANCES=3 CLUSTER_PORT=8080 make cluster

Every setting of docs/configuration.md set in the environment is passed to the instances (e.g.
ARGON2_*, WEB_CONCURRENCY, RATELIMIT_ENABLED); JWT_PRIVATE_KEY(_FILE), SECRET_KEY and
REDIS_KEY_PREFIX are generated (or defaulted) when unset. Without MAIL_SERVER, mail goes to a
loopback SMTP server in this process that writes each message to the scratch directory and says
where. The tests (tests/cluster/) and ``bench/run.py --balancer`` use the same functions.
"""

# ruff: noqa: S603  (it runs gunicorn, flask and nginx, by fixed argv)

from __future__ import annotations

import argparse
import contextlib
import grp
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402  (the same helpers as the benchmark)
    free_port,
    http_get,
    smtp_sink,
)

BIN = Path(sys.executable).parent
TEMPLATE = ROOT / "deploy" / "cluster" / "nginx.conf"
NGINX_INSTALL = "nginx is not installed: on Debian or Ubuntu, `sudo apt-get install -y nginx-light`"
# Variables of the caller's environment the instances never inherit: they pick another
# configuration, or belong to one process (gunicorn empties its metrics directory at start).
NOT_INHERITED = ("GATEHOUSE_", "FLASK_", "PROMETHEUS_MULTIPROC_DIR", "HOST", "PORT")


class ClusterError(RuntimeError):
    """The cluster could not start; the message says why in one line (and where the log is)."""


def refusal(database_url: str | None, redis_url: str | None) -> str | None:
    """Why a cluster cannot run on these URLs, in one line; None when it can."""
    if not database_url or not database_url.startswith(("postgresql://", "postgresql+psycopg://")):
        return "a cluster needs DATABASE_URL=postgresql://… (instances share one PostgreSQL)"
    if not redis_url or not redis_url.startswith(("redis://", "rediss://", "unix://")):
        return "a cluster needs REDIS_URL=redis://… (instances share rate limits through Redis)"
    if nginx_binary() is None:
        return NGINX_INSTALL
    return None


def nginx_binary() -> str | None:
    """nginx's path; /usr/sbin is searched even when PATH lacks it (a user's shell)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("nginx", path=path)


def render_nginx_conf(
    template: str, *, listen: str, upstream_ports: list[int], scratch: Path
) -> str:
    """deploy/cluster/nginx.conf with its @NAME@ placeholders filled in."""
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in upstream_ports
    )
    # nginx started as root hands its workers to an unprivileged user; otherwise it runs as
    # whoever started it and the directive would only draw a warning.
    user = ""
    if os.geteuid() == 0:
        user = f"user nobody {_nobody_group()};"
    values = {
        "@USER@": user,
        "@WORKER_PROCESSES@": "auto",
        "@SCRATCH@": str(scratch),
        "@SERVERS@": servers,
        "@LISTEN@": listen,
    }
    text = template
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    if "@" in "".join(line.split("#", 1)[0] for line in text.splitlines()):
        raise ClusterError("deploy/cluster/nginx.conf has a placeholder the script does not fill")
    return text


def _nobody_group() -> str:
    for name in ("nogroup", "nobody"):
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            return name
    return "nobody"


def cluster_environ(
    *,
    database_url: str,
    redis_url: str,
    scratch: Path,
    balancer_port: int,
    settings: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every instance shares: production, one key, one secret, one issuer.

    ``base`` (default: this process's environment) supplies any other setting; ``settings``
    wins over everything.
    """
    inherited = os.environ if base is None else base
    environ = {k: v for k, v in inherited.items() if not k.startswith(NOT_INHERITED)}
    if not environ.get("JWT_PRIVATE_KEY") and not environ.get("JWT_PRIVATE_KEY_FILE"):
        from app.services.tokens import generate_private_key, private_key_to_pem

        key_file = scratch / "signing-key.pem"
        algorithm = environ.get("JWT_ALGORITHM") or "EdDSA"
        key_file.write_bytes(private_key_to_pem(generate_private_key(algorithm)))
        key_file.chmod(0o600)
        environ["JWT_PRIVATE_KEY_FILE"] = str(key_file)
    balancer = f"http://127.0.0.1:{balancer_port}"
    environ.update(
        GATEHOUSE_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_ISSUER=environ.get("JWT_ISSUER") or balancer,
        TRUSTED_HOSTS=environ.get("TRUSTED_HOSTS") or "127.0.0.1,localhost",
        # nginx is the one proxy of ours: its X-Forwarded-For entry is the client.
        TRUSTED_PROXY_HOPS="1",
        HSTS_ENABLED=environ.get("HSTS_ENABLED") or "false",  # plain HTTP on loopback
    )
    environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    environ.setdefault("REDIS_KEY_PREFIX", "gatehouse-cluster:")
    environ.update(settings or {})
    return environ


def migrate(environ: Mapping[str, str]) -> None:
    """``flask --app manage db upgrade``, once for all instances. Raises ClusterError."""
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "manage", "db", "upgrade"],
        cwd=ROOT,
        env=dict(environ),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"the migrations failed: {(done.stderr or done.stdout)[-2000:]}")


@dataclass
class Instance:
    """One gunicorn (master and workers, a process group of their own) on 127.0.0.1:port."""

    name: str
    port: int
    environ: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "run:app"],
                cwd=ROOT,
                env={**self.environ, "HOST": "127.0.0.1", "PORT": str(self.port)},
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C in the terminal reaches only this script, which
                # stops the instances in order, and kill() reaches master and workers at once.
                start_new_session=True,
            )

    def wait_until_ready(self, seconds: float = 60) -> None:
        """Until /readyz answers 200 (database, migrations and Redis checked). ClusterError."""
        deadline = time.monotonic() + seconds
        while True:
            if self.process is None or self.process.poll() is not None:
                raise ClusterError(f"instance {self.name} exited; see {self.log}")
            with contextlib.suppress(OSError):
                if http_get(self.url + "/readyz") == 200:
                    return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"instance {self.name} was not ready in {seconds} s; see {self.log}"
                )
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: a crash, nothing finishes."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 40) -> None:
        """SIGTERM (requests in flight finish, REL-08), then SIGKILL after ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Workers a master left behind (it was killed alone) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Cluster:
    """The running instances and nginx in front of them."""

    url: str
    instances: list[Instance]
    scratch: Path
    environ: dict[str, str]
    nginx: subprocess.Popen | None = None
    nginx_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.nginx_log = self.scratch / "nginx" / "error.log"

    def restart(self, instance: Instance, seconds: float = 60) -> None:
        """Start a stopped or killed instance again on its port and wait until it is ready."""
        instance.stop(timeout=5)
        instance.start()
        instance.wait_until_ready(seconds)

    def logs(self, tail: int = 3000) -> str:
        """The end of every instance's log and nginx's, for a failing test's message."""
        parts = []
        for path in [*(instance.log for instance in self.instances), self.nginx_log]:
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name}\n{text[-tail:]}")
        return "\n".join(parts)


def start_nginx(scratch: Path, listen_port: int, upstream_ports: list[int]) -> subprocess.Popen:
    """Render the template into ``scratch`` and run nginx in the foreground, unprivileged paths."""
    nginx = nginx_binary()
    if nginx is None:
        raise ClusterError(NGINX_INSTALL)
    directory = scratch / "nginx"
    directory.mkdir(exist_ok=True)
    temp_dirs = ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp")
    for name in temp_dirs:
        (directory / name).mkdir(exist_ok=True)
    if os.geteuid() == 0:
        # Its workers run as nobody: they must reach and write their temporary files.
        scratch.chmod(0o711)
        directory.chmod(0o711)
        nobody = pwd.getpwnam("nobody").pw_uid
        for name in temp_dirs:
            os.chown(directory / name, nobody, -1)
    conf = directory / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            TEMPLATE.read_text(),
            listen=f"127.0.0.1:{listen_port}",
            upstream_ports=upstream_ports,
            scratch=directory,
        )
    )
    command = [nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise ClusterError(f"nginx refused {conf}: {checked.stderr.strip()}")
    with open(directory / "stderr.log", "ab") as output:
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=output,
            start_new_session=True,
        )
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            log = (directory / "error.log").read_text(errors="replace")[-1000:]
            raise ClusterError(f"nginx exited with {process.returncode}: {log}")
        with contextlib.suppress(OSError):
            if http_get(f"http://127.0.0.1:{listen_port}/healthz") == 200:
                return process
        if time.monotonic() > deadline:
            raise ClusterError(f"nginx did not answer on port {listen_port}")
        time.sleep(0.1)


def stop_nginx(process: subprocess.Popen) -> None:
    """SIGQUIT: nginx finishes the requests it holds, then exits."""
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_cluster(
    environ: Mapping[str, str],
    *,
    scratch: Path,
    balancer_port: int,
    instances: int = 2,
    per_instance: Mapping[int, Mapping[str, str]] | None = None,
    ready_seconds: float = 60,
) -> Iterator[Cluster]:
    """``instances`` gunicorns and nginx on ``balancer_port`` until the block ends.

    ``environ`` is :func:`cluster_environ`'s (migrations already run); ``per_instance`` adds
    settings to one instance by its index (0, 1, …), e.g. to break a shared setting on purpose.
    Every instance gets its own Prometheus multiprocess directory and log in ``scratch``.
    """
    started: list[Instance] = []
    nginx: subprocess.Popen | None = None
    try:
        for index in range(instances):
            name = chr(ord("a") + index)
            metrics = scratch / f"metrics-{name}"
            metrics.mkdir(exist_ok=True)
            instance = Instance(
                name=name,
                port=free_port(),
                environ={
                    **environ,
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                    **((per_instance or {}).get(index) or {}),
                },
                log=scratch / f"instance-{name}.log",
            )
            instance.start()
            started.append(instance)
        for instance in started:
            instance.wait_until_ready(ready_seconds)
        nginx = start_nginx(scratch, balancer_port, [instance.port for instance in started])
        yield Cluster(
            url=f"http://127.0.0.1:{balancer_port}",
            instances=started,
            scratch=scratch,
            environ=dict(environ),
            nginx=nginx,
        )
    finally:
        if nginx is not None:
            stop_nginx(nginx)
        for instance in started:
            instance.stop()


@contextlib.contextmanager
def mail_to_files(directory: Path) -> Iterator[int]:
    """A loopback SMTP server writing each message to ``directory``; yields its port."""
    directory.mkdir(exist_ok=True)
    written = itertools.count(1)

    def write(envelope) -> None:
        path = directory / f"{next(written):05d}.eml"
        path.write_bytes(envelope.content)
        print(f"cluster: mail to {', '.join(envelope.rcpt_tos)}: {path}", flush=True)

    with smtp_sink(keep=write) as port:
        yield port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--instances",
        type=int,
        default=int(os.environ.get("CLUSTER_INSTANCES") or 2),
        help="Gatehouse instances (CLUSTER_INSTANCES, default 2)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("CLUSTER_PORT") or 8080),
        help="nginx's port on 127.0.0.1 (CLUSTER_PORT, default 8080)",
    )
    args = parser.parse_args(argv)
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    reason = refusal(database_url, redis_url)
    if reason is None and args.instances < 1:
        reason = "--instances must be at least 1"
    if reason is not None:
        print(f"cluster: {reason}", file=sys.stderr)
        return 2
    assert database_url is not None and redis_url is not None
    with contextlib.ExitStack() as stack:
        directory = tempfile.TemporaryDirectory(prefix="gatehouse-cluster-")
        scratch = Path(stack.enter_context(directory))
        settings: dict[str, str] = {}
        if not os.environ.get("MAIL_SERVER"):
            smtp_port = stack.enter_context(mail_to_files(scratch / "mail"))
            settings.update(
                MAIL_SERVER="127.0.0.1",
                MAIL_PORT=str(smtp_port),
                MAIL_USE_TLS="false",
                MAIL_FROM=os.environ.get("MAIL_FROM") or "Gatehouse <no-reply@cluster.example.com>",
            )
        environ = cluster_environ(
            database_url=database_url,
            redis_url=redis_url,
            scratch=scratch,
            balancer_port=args.port,
            settings=settings,
        )
        try:
            print("cluster: migrating (flask --app manage db upgrade)", flush=True)
            migrate(environ)
            cluster = stack.enter_context(
                running_cluster(
                    environ, scratch=scratch, balancer_port=args.port, instances=args.instances
                )
            )
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        for instance in cluster.instances:
            print(f"cluster: instance {instance.name} at {instance.url} (log {instance.log})")
        print(f"cluster: nginx at {cluster.url} (config {scratch / 'nginx' / 'nginx.conf'})")
        print(f"cluster: serving on {cluster.url}/api/v1 — Ctrl-C stops everything", flush=True)
        try:
            while all(instance.alive() for instance in cluster.instances):
                if cluster.nginx is not None and cluster.nginx.poll() is not None:
                    print("cluster: nginx exited", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            print("cluster: an instance exited; stopping", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ncluster: stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
