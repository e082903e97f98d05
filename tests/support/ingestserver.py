"""The ingest service as a real process: ``bwv serve`` under uvicorn on 127.0.0.1 with TLS."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bwv.access.docks import enroll_dock
from bwv.base.net import free_port
from bwv.base.settings import Settings
from bwv.base.tls import make_ca
from bwv.keys import init_keys
from bwv.records import database as db
from bwv.services.context import Context


def init_data_dir(data_dir: Path, **settings: object) -> Settings:
    s = Settings(data_dir=data_dir, **settings)  # type: ignore[arg-type]
    engine = db.make_engine(s.database_url)
    db.upgrade(engine)
    engine.dispose()
    assert s.signing_key_path and s.keyring_path
    if not s.signing_key_path.exists():
        init_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
    return s


@dataclass
class IngestServer:
    data_dir: Path
    settings: Settings
    ca: Path
    cert: Path
    key: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def service_key(self) -> str:
        return str(Context(self.settings).signer.verifier)

    def enroll(self, name: str) -> str:
        ctx = Context(self.settings)
        try:
            return enroll_dock(ctx.engine, name)
        finally:
            ctx.close()

    def start(self, wait: float = 30.0) -> None:
        self.log = self.data_dir / f"serve-{time.time_ns()}.log"
        env = {**os.environ, **self.env}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "--data-dir",
                    str(self.data_dir),
                    "serve",
                    "--port",
                    str(self.port),
                    "--cert",
                    str(self.cert),
                    "--key",
                    str(self.key),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bwv serve exited: {self.log.read_text()[-2000:]}")
            try:
                if (
                    httpx.get(f"{self.url}/api/v1/health", verify=context, timeout=1).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"bwv serve did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown, no cleanup, as a crash or power cut would leave it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:  # the drain, then its shutdown (summaries recorded, database closed)
                self.process.wait(timeout=self.settings.shutdown_grace_seconds + 10)
            except subprocess.TimeoutExpired:
                self.kill()


def make_server(directory: Path, **settings: object) -> IngestServer:
    """A service with its own data dir; ``settings`` (e.g. database_url, store_url) reach the
    process as BWV_* environment variables, as an operator would set them."""
    data_dir = directory / "service"
    # Requests in flight at a stop get 5 s, not the 30 of production: a test that leaves a
    # request hanging must not slow the suite (tests of the drain set their own).
    settings.setdefault("shutdown_grace_seconds", 5)
    s = init_data_dir(data_dir, **settings)
    ca, cert, key = make_ca(directory / "tls")
    env = {f"BWV_{name.upper()}": str(value) for name, value in settings.items()}
    return IngestServer(data_dir, s, ca, cert, key, env=env)


@contextlib.contextmanager
def running(directory: Path, **settings: object) -> Iterator[tuple[IngestServer, Context]]:
    """A started service of its own under ``directory`` with ``settings``, and a Context on its
    records; both stopped and closed when the ``with`` ends."""
    server = make_server(directory, **settings)
    server.start()
    ctx = Context(server.settings)
    try:
        yield server, ctx
    finally:
        server.stop()
        ctx.close()
