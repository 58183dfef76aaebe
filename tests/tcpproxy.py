"""A loopback TCP proxy that a test puts between the service and a shared server (PostgreSQL)
to play an outage without touching that server: :meth:`TcpProxy.cut` closes every open
connection and turns new ones away (accepted, then closed at once, before a byte), and
:meth:`TcpProxy.restore` lets them through again. Threads only: one acceptor, two pumps per
connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .harness import LOOPBACK


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = LOOPBACK) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        #: Connections turned away while cut: a test can see that the service tried.
        self.refused = 0
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Close every connection through the proxy and turn new ones away."""
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._closed = True
        _close(self._listener)
        self._acceptor.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self._cut
                if cut:
                    self.refused += 1
            if cut:
                _close(client)
                continue
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if self._cut:  # cut while connecting: this one goes too
                    _close(client)
                    _close(server)
                    continue
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@contextmanager
def proxying(upstream_port: int, upstream_host: str = LOOPBACK) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream_port, upstream_host)
    try:
        yield proxy
    finally:
        proxy.close()
