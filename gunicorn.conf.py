"""gunicorn settings for Gatehouse: `make serve`, and the container's command.

    gunicorn -c gunicorn.conf.py run:app

Every value can be changed by the environment variable named next to it; docs/configuration.md
lists them all. The app itself is configured as everywhere else (GATEHOUSE_ENV and its settings).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 quota (a container's
    CPU limit), which os.cpu_count() and affinity both ignore."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"

# Workers: one per core. Logins and sign-ups are Argon2 hashes, which occupy a core each; more
# processes than cores add memory (64 MiB per hash in flight), not hashing throughput.
workers = _env_int("WEB_CONCURRENCY", _cores())
# Measured on this repository's 2-core machine (2 workers, wrk -t2 -c16, 10 s, 4 alternating
# rounds on PostgreSQL, medians, requests/s): GET /api/v1/accounts/me sync 457, gthread 452,
# buffering gthread 439; POST /api/v1/auth/refresh (rotating tokens) sync 216, gthread 257,
# buffering gthread 239; no errors. The three are within this machine's noise on cheap
# requests. What separates them is slow clients: with 300 idle or half-sent connections open,
# sync and gthread did not answer /healthz within 40 s (every thread waited on one of them),
# while the buffering worker, which reads each request in its event loop before giving it a
# thread (app/server/worker.py), answered in 10 ms. Hence:
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "app.server.worker.BufferingThreadWorker"
threads = _env_int("GUNICORN_THREADS", 4)
# Sockets a worker holds (arriving, in a thread, kept alive); an arriving one costs no thread.
worker_connections = _env_int("GUNICORN_WORKER_CONNECTIONS", 1000)

# A request that takes longer than this kills its worker; shutdown (SIGTERM) lets requests in
# flight finish for up to graceful_timeout seconds before the workers are stopped.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (a slow leak cannot grow forever); jitter keeps them from
# restarting together.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Build the app once, before forking: a broken configuration stops the master with its one-line
# reason instead of every worker crashing in a loop. create_app opens no connection, so no
# socket is shared between workers.
preload_app = True

# X-Forwarded-Proto and friends are believed only from these addresses; the app's ProxyFix
# (TRUSTED_PROXY_HOPS) decides about X-Forwarded-For. With no proxy of ours, nobody is trusted.
_proxies = _env_int("TRUSTED_PROXY_HOPS", 0)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or ("127.0.0.1,::1" if _proxies else "")

# The app writes one access-log line per request itself (without query strings, which can hold
# tokens); gunicorn's own would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL") or "info"

# Heartbeat files on a RAM disk when there is one (a read-only or slow disk would stall them).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# No control socket under $HOME: the container's root filesystem is read-only.
control_socket_disable = True


def _fresh_metrics_directory() -> None:
    """Start with an empty Prometheus multiprocess directory (stale files skew the counts).

    Here, when the master reads this file: preloading the app, before any hook runs, already
    creates the metrics and their files.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


_fresh_metrics_directory()


def post_fork(server, worker) -> None:
    """Each worker opens its own database connections; none are inherited from the master."""
    from app.extensions import db
    from run import app

    with app.app_context():
        db.engine.dispose(close=False)


def child_exit(server, worker) -> None:
    """A dead worker's live gauges must not be summed into the metrics any more."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
