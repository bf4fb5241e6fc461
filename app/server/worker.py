"""A gunicorn thread worker: a thread only for a request that has arrived, hashing apart.

gunicorn's ``gthread`` worker hands every new connection to a thread, which then waits for the
request (up to 5 s for the first byte, and without limit for the rest of it): 300 silent or
half-sent connections took every thread of the server and nothing else was answered (REL-10;
an audit found the same with the development server). Here the worker's event loop reads the
request head, and a body of known length up to ``MAX_CONTENT_LENGTH``, itself, without
blocking, under one deadline for the whole request (``GUNICORN_REQUEST_READ_TIMEOUT``, 10 s by
default); only then does a thread parse and answer it. A client too slow for the deadline is
disconnected; however many there are, they cost a socket each, never a thread. Sockets handed
to a thread carry a timeout too, so a client that stops reading its answer, or stalls inside
a chunked body, frees its thread after ``GUNICORN_REQUEST_READ_TIMEOUT`` seconds.

Requests that hash a password (login, sign-up, password change, deletion) run on a pool of their
own, one thread per core: a flood of logins waits behind other logins, never in front of a
token check; past ``GUNICORN_HASHING_QUEUE`` waiting, the worker answers 503 ``busy`` itself.
Measured with 40 clients flooding login (2 workers, Argon2id m=64 MiB): ``GET /accounts/me``
took 6.9 s at the median with one shared pool, 19 ms with the hashing pool apart. The hashing
threads also run nicer (``GUNICORN_HASHING_NICE``), so the cores go to cheap requests first.

Used with ``worker_class = "app.server.worker.BufferingThreadWorker"`` (gunicorn.conf.py).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024
MAX_BUFFERED_BODY = int(os.environ.get("MAX_CONTENT_LENGTH") or 64 * 1024)


READ_TIMEOUT = float(os.environ.get("GUNICORN_REQUEST_READ_TIMEOUT") or 10)

# Requests that hash a password (tens of milliseconds of a core each) run on threads of their
# own, as many as the process hashes at once, so a login flood queues behind logins and never
# in front of a token check (REL-10). Past HASHING_QUEUE of them waiting, the answer is 503.
HASHING_ROUTES = frozenset(
    (os.environ.get("GUNICORN_HASHING_ROUTES") or "").replace(", ", ",").split(",")
    if os.environ.get("GUNICORN_HASHING_ROUTES")
    else (
        "POST /api/v1/auth/login",
        "POST /api/v1/accounts",
        "POST /api/v1/accounts/me/password",
        "DELETE /api/v1/accounts/me",
        "POST /api/v1/auth/password-reset/confirm",
        "POST /api/v1/accounts/me/email",
    )
)
HASHING_THREADS = int(os.environ.get("GUNICORN_HASHING_THREADS") or len(os.sched_getaffinity(0)))
HASHING_QUEUE = int(os.environ.get("GUNICORN_HASHING_QUEUE") or 32)
# A separate pool keeps token checks from queueing behind hashes, but the hashes still take the
# cores: with every core hashing, a token check waits for the scheduler. Hashing threads (and
# Argon2's own lane threads, which inherit it) run this much nicer than the rest, so the kernel
# gives cheap requests the CPU first and hashing every cycle they leave. 0 turns it off.
# Measured here (bench/run.py --scenarios mixed, 2 workers, 16 connections flooding login):
# /me kept 0.35-0.53 of its throughput alone at nice 10, 0.83 at 19, where logins under the
# flood fell to 0.20 of the hashing ceiling; 15 is between the two.
HASHING_NICE = int(os.environ.get("GUNICORN_HASHING_NICE") or 15)
BUSY_BODY = (
    b'{"type": "urn:gatehouse:problem:busy", "title": "The service is busy", "status": 503, '
    b'"detail": "Too many password checks are waiting; try again in a moment.", "code": "busy"}'
)
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Retry-After: 1\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY
)


class _Arriving:
    """A connection whose request is still arriving: what came so far, and the deadline."""

    def __init__(self, conn, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.data = bytearray()
        self.wanted: int | None = None  # bytes of head + body to wait for, once known


class BufferingThreadWorker(ThreadWorker):
    """``gthread`` that buffers each request in its event loop before using a thread."""

    def init_process(self) -> None:
        self.arriving: collections.deque[_Arriving] = collections.deque()
        self.read_timeout = READ_TIMEOUT
        self.hashing_pool = futures.ThreadPoolExecutor(
            max_workers=HASHING_THREADS, thread_name_prefix="hashing", initializer=_nicer_thread
        )
        self.hashing_queue = 0
        super().init_process()  # runs the worker until it stops

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.hashing_pool.shutdown(wait=False)

    # New connections and kept-alive ones that speak again start arriving, not in a thread.

    def accept(self, listener) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self._start_arriving(conn)

    def on_client_socket_readable(self, conn, client) -> None:
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_arriving(conn)

    def _start_arriving(self, conn) -> None:
        conn.sock.setblocking(False)
        arriving = _Arriving(conn, time.monotonic() + self.read_timeout)
        self.arriving.append(arriving)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_data, arriving))

    def _on_data(self, arriving: _Arriving, sock) -> None:
        try:
            chunk = sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._drop(arriving)
            return
        arriving.data += chunk
        if arriving.wanted is None:
            end = arriving.data.find(HEAD_END)
            if end < 0:
                if len(arriving.data) > MAX_HEAD_BYTES:
                    self._drop(arriving)  # not HTTP we will read; no thread for it
                return
            arriving.wanted = end + len(HEAD_END) + _buffered_body_length(arriving.data[:end])
        if len(arriving.data) >= arriving.wanted:
            self._dispatch(arriving)

    def _dispatch(self, arriving: _Arriving) -> None:
        self.poller.unregister(arriving.conn.sock)
        self.arriving.remove(arriving)
        conn = arriving.conn
        if type(conn.sock) is socket.socket:
            conn.sock.__class__ = _TimedSocket  # a stall later on frees the thread
        conn.init()
        conn.parser.unreader.unread(bytes(arriving.data))
        conn.data_ready = True
        if _request_line(arriving.data) not in HASHING_ROUTES:
            self.enqueue_req(conn)
        elif self.hashing_queue >= HASHING_QUEUE:
            self._refuse_busy(conn)
        else:
            self.hashing_queue += 1
            future = self.hashing_pool.submit(self._handle_hashing, conn)
            future.add_done_callback(
                lambda done: self.method_queue.defer(self.finish_request, conn, done)
            )

    def _handle_hashing(self, conn):
        try:
            return self.handle(conn)
        finally:
            self.method_queue.defer(self._hashing_done)

    def _hashing_done(self) -> None:
        self.hashing_queue -= 1

    def _refuse_busy(self, conn) -> None:
        """Too many hashing requests already waiting: 503 at once, costing nobody a thread."""
        with contextlib.suppress(OSError):
            conn.sock.setblocking(True)
            conn.sock.settimeout(1)
            conn.sock.sendall(BUSY_RESPONSE)
        self.nr_conns -= 1
        conn.close()

    def _drop(self, arriving: _Arriving) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(arriving.conn.sock)
        self.arriving.remove(arriving)
        self.nr_conns -= 1
        arriving.conn.close()

    def murder_pending(self) -> None:
        """gunicorn calls this every loop: also close requests that missed their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for arriving in [a for a in self.arriving if a.deadline <= now]:
            self._drop(arriving)


def _nicer_thread() -> None:
    """Lower this thread's CPU priority by ``HASHING_NICE`` (Linux: nice is per thread)."""
    if HASHING_NICE <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):  # not permitted, or not Linux
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICE
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, 19))


class _TimedSocket(socket.socket):
    """A socket whose blocking mode keeps a timeout: gunicorn's thread sets it blocking."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(READ_TIMEOUT)
        else:
            super().setblocking(False)


def _request_line(data: bytes | bytearray) -> str:
    """``"POST /api/v1/auth/login"``: the method and the path, without the query."""
    line = bytes(data[: data.find(b"\r\n")]).decode("latin-1")
    parts = line.split(" ")
    if len(parts) < 2:
        return ""
    return f"{parts[0]} {parts[1].split('?', 1)[0]}"


def _buffered_body_length(head: bytes) -> int:
    """How much body to wait for before a thread: a known length up to the size limit.

    A chunked body, or one over the limit (which the app refuses with 413 anyway), is read by
    the thread, under the socket timeout.
    """
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return 0
            return length if 0 < length <= MAX_BUFFERED_BODY else 0
    return 0
