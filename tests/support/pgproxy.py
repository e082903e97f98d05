"""A TCP proxy in front of a PostgreSQL server that can lose the answer to a COMMIT: armed,
it passes the next ``COMMIT`` on to the server, waits for the server's answer (the transaction
has then committed), drops that answer and cuts the client's connection, as a network or a
server gone at that moment would."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# A simple-protocol Query message carrying COMMIT: 'Q', length 4 + 7, "COMMIT\0".
_COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"
_READY = b"Z\x00\x00\x00\x05"  # ReadyForQuery: the server finished the command


class CommitLosingProxy:
    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.armed = threading.Event()
        self.lost = threading.Event()  # set once a COMMIT's answer was dropped
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            state = {"swallow": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.armed.is_set() and _COMMIT in data:
                    self.armed.clear()
                    state["swallow"] = True  # before the server can answer
                server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            answer = b""
            while data := server.recv(65536):
                if not state["swallow"]:
                    client.sendall(data)
                    continue
                answer += data
                if _READY in answer:  # committed on the server; the client never hears
                    self.lost.set()
                    break
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


@contextmanager
def commit_losing_proxy(server_port: int) -> Iterator[CommitLosingProxy]:
    proxy = CommitLosingProxy(server_port)
    try:
        yield proxy
    finally:
        proxy.close()
