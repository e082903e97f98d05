"""The dock's configuration (docks/config.py): a private file that round-trips, plain HTTP only
to the local host, and TLS that trusts the pinned CA and nothing else."""

from __future__ import annotations

import http.server
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bwv.base.errors import ConfigError
from bwv.base.tls import make_ca
from bwv.keys import SigningKey
from docks import DockAgent, DockConfig, write_enrollment
from docks.client import (
    TusClient,
)
from tests.support.docks import (
    SERVICE,
    TOKEN,
    dock_config,
)


def _ca(folder: Path) -> Path:
    """A CA certificate file of a throwaway CA of its own (bwv.base.tls)."""
    return make_ca(folder)[0]


@pytest.fixture
def tls_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate chains to a test CA: (url, CA file)."""
    ca, cert, key = make_ca(tmp_path / "service-ca")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"detail": "no such clip"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca
    server.shutdown()
    server.server_close()


def _https_config(tmp_path: Path, signer: SigningKey, url: str, ca: Path) -> DockConfig:
    return DockConfig(url, "d", TOKEN, [str(signer.verifier)], tmp_path / "state", ca_file=ca)


def test_tls_service_signed_by_the_pinned_ca_is_reached(
    tmp_path: Path, signer: SigningKey, tls_service: tuple[str, Path]
) -> None:
    url, ca = tls_service
    client = TusClient.from_config(_https_config(tmp_path, signer, url, ca))
    assert client.receipt("ab" * 32) is None  # a 404 answer: the TLS handshake succeeded
    client.close()


def test_tls_service_signed_by_another_ca_is_refused(
    tmp_path: Path, signer: SigningKey, tls_service: tuple[str, Path]
) -> None:
    url, _ = tls_service
    (tmp_path / "other").mkdir()
    other_ca = _ca(tmp_path / "other")
    client = TusClient.from_config(_https_config(tmp_path, signer, url, other_ca))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.receipt("ab" * 32)
    client.close()


def test_config_file_is_private_and_round_trips(tmp_path: Path, signer: SigningKey) -> None:
    config = dock_config(tmp_path, signer, [tmp_path / "bay1"], max_rate_mb_s=5.0)
    path = config.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DockConfig.load(config.state_dir) == config


def test_config_load_refuses_a_file_others_can_read(tmp_path: Path, signer: SigningKey) -> None:
    path = dock_config(tmp_path, signer, []).save()
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        DockConfig.load(path)


def test_config_refuses_plain_http_to_another_host(tmp_path: Path, signer: SigningKey) -> None:
    with pytest.raises(ConfigError, match="plain http"):
        DockConfig(
            service_url="http://evidence.example:8000",
            dock_name="d",
            token=TOKEN,
            verifier_keys=[str(signer.verifier)],
            state_dir=tmp_path,
        )


def test_config_refuses_https_without_a_ca_file(tmp_path: Path, signer: SigningKey) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        DockConfig(
            service_url="https://evidence.example",
            dock_name="d",
            token=TOKEN,
            verifier_keys=[str(signer.verifier)],
            state_dir=tmp_path,
        )


def test_config_refuses_a_malformed_pinned_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pinned service key"):
        DockConfig(SERVICE, "d", TOKEN, ["not-a-key"], tmp_path)


def test_tls_trusts_the_configured_ca_and_nothing_else(tmp_path: Path, signer: SigningKey) -> None:
    config = write_enrollment(
        tmp_path / "state", "https://evidence.example", "d", TOKEN, str(signer.verifier),
        _ca(tmp_path),
    )  # fmt: skip
    context = config.ssl_context()
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "bwv test CA"),),)]
    assert context.check_hostname


def test_agent_refuses_to_start_without_its_ca_file(tmp_path: Path, signer: SigningKey) -> None:
    config = _https_config(tmp_path, signer, "https://evidence.example", tmp_path / "gone.pem")
    with pytest.raises(ConfigError, match="does not exist"):
        DockAgent(config)


def test_enrollment_writes_a_loadable_config_with_the_pinned_ca(
    tmp_path: Path, signer: SigningKey
) -> None:
    ca = _ca(tmp_path)
    written = write_enrollment(
        tmp_path / "state", "https://evidence.example", "d", TOKEN, str(signer.verifier), ca
    )
    loaded = DockConfig.load(tmp_path / "state")
    assert loaded == written
    assert loaded.verifier_keys == [str(signer.verifier)]
    assert loaded.ca_file is not None and loaded.ca_file.read_bytes() == ca.read_bytes()
