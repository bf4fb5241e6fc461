"""A gunicorn thread worker that gives a thread only to a request that has fully arrived.

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

Used with ``worker_class = "app.server.worker.BufferingThreadWorker"`` (gunicorn.conf.py).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024
MAX_BUFFERED_BODY = int(os.environ.get("MAX_CONTENT_LENGTH") or 64 * 1024)


READ_TIMEOUT = float(os.environ.get("GUNICORN_REQUEST_READ_TIMEOUT") or 10)


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
        super().init_process()

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
        self.enqueue_req(conn)

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


class _TimedSocket(socket.socket):
    """A socket whose blocking mode keeps a timeout: gunicorn's thread sets it blocking."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(READ_TIMEOUT)
        else:
            super().setblocking(False)


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
