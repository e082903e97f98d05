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
    upload_dir: Path | None = None
    tus_max_size: int = 64 * 1024**3
    upload_expiry_seconds: float = 24 * 3600.0

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
