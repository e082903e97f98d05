"""Raw HTTP/1.1 over TLS to the service, for the tests that must send what no client would: a
head that never ends, a body past the cap, bytes that are not a request."""

from __future__ import annotations

import re
import socket
import ssl
import time

from tests.support.ingestserver import IngestServer


def tls_socket(server: IngestServer, context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
    """A verified TLS connection to the service."""
    context = context or ssl.create_default_context(cafile=str(server.ca))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(sock: ssl.SSLSocket, timeout: float) -> bytes:
    """Bytes the service sends until it closes the connection or ``timeout`` passes."""
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        got += chunk
        if b"\r\n\r\n" in got:
            head, _, rest = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                break
    return got


def send_huge_head(sock: ssl.SSLSocket, head: bytes, pad: int = 1 << 20) -> bytes:
    """Send ``head`` (a request line and headers, the last one open) followed by ``pad`` bytes
    of that header's value, then the head's end; the answer, read for up to 5 s. The service
    may stop reading at its head limit before all is sent."""
    sock.sendall(head)
    sock.settimeout(5)
    try:
        for _ in range(pad // 16384):
            sock.sendall(b"a" * 16384)
        sock.sendall(b"\r\n\r\n")
    except (ssl.SSLError, OSError):
        pass  # the service stopped reading at the limit
    return read_response(sock, 5)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])
