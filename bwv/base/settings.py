"""The one settings object. Every value can be set by an environment variable ``BWV_<NAME>``."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "bwv"


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


class Settings(BaseSettings):
    """Embedded defaults: a SQLite file and a local store, both under ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="BWV_")

    data_dir: Path = _default_data_dir()
    database_url: str = ""
    store_url: str = ""
    signing_key_path: Path | None = None
    keyring_path: Path | None = None
    ledger_origin: str = "bwv.local/custody"
    checkpoint_every_leaves: int = 1000
    checkpoint_every_seconds: float = 60.0
    actor: str = _default_actor()
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses or networks, e.g.
    # "10.0.0.5,192.0.2.0/28"); by default none: the recorded client is the connection's peer.
    trusted_proxies: str = ""
    upload_dir: Path | None = None
    tus_max_size: int = 64 * 1024**3
    upload_expiry_seconds: float = 24 * 3600.0
    # The service re-hashes every stored object this often (bwv.services.fixity); 0 turns the
    # scrub off.
    fixity_every_seconds: float = 24 * 3600.0
    # Per dock: uploads in flight and the bytes they reserve; free space kept on the upload
    # filesystem beyond what uploads in flight still need (a creation that would eat it is 507).
    dock_max_uploads: int = 200
    dock_max_reserved_bytes: int = 2 * 1024**4
    upload_min_free_bytes: int = 1024**3
    # A reviewed redaction plan sent to POST .../exports, in bytes. The request body holds it as
    # a JSON string, so that route's body may be up to twice this plus a little (escaping).
    max_plan_bytes: int = 8 * 1024**2
    # The transport (bwv.api.limits). Any API body but tus uploads and exports, in bytes.
    max_body_bytes: int = 64 * 1024
    # A request head must be complete this long after its first byte; a body may not stall
    # for longer than the idle timeout. Either drops the connection.
    header_timeout_seconds: float = 10.0
    body_idle_timeout_seconds: float = 60.0
    # Open connections (also capped by the descriptors the process may have) and listen queue.
    max_connections: int = 1024
    listen_backlog: int = 2048
    # Refusals recorded one by one per client address: a burst, refilled at a rate per second;
    # past it 429, counted into an access.denied.summary leaf this often.
    refusal_burst: int = 60
    refusal_rate: float = 1.0
    refusal_summary_seconds: float = 60.0
    # All addresses together (checked first): many sources cannot grow the ledger fast either.
    refusal_global_burst: int = 200
    refusal_global_rate: float = 10.0
    # Open connections from one client address (an IPv6 /64) at once; the excess is closed.
    max_connections_per_address: int = 32
    # A request head (request line and headers) larger than this is answered 431 and closed.
    max_head_bytes: int = 64 * 1024

    # GET /api/v1/health/ready: each check (database, store, upload folder) must answer
    # within this many seconds, or it is reported as failed.
    readiness_timeout_seconds: float = 3.0
    # GET /api/v1/metrics answers only a bearer token equal to this file's content (one line,
    # owner-only, e.g. a systemd credential); unset, there is no metrics endpoint (404).
    metrics_token_file: Path | None = None
    # On SIGTERM, requests in flight (a tus PATCH mid-body) have this long to finish before
    # their connections are closed; no new connection is accepted meanwhile. A systemd unit's
    # TimeoutStopSec should be a little longer (deploy/systemd/).
    shutdown_grace_seconds: float = 30.0

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'bwv.sqlite3'}"
        if not self.store_url:
            self.store_url = (self.data_dir / "store").as_uri()
        if self.signing_key_path is None:
            self.signing_key_path = self.data_dir / "keys" / "signing.key"
        if self.upload_dir is None:
            self.upload_dir = self.data_dir / "uploads"
        if self.keyring_path is None:
            self.keyring_path = self.data_dir / "keys" / "keyring.txt"
        return self
