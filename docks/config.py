"""The dock's settings: where the service is, how to trust it, which bays to watch.

The configuration lives as JSON in the dock's state directory (``dock.json``, mode 0600 because
it holds the dock token). The service is trusted through two pins: its TLS certificate must chain
to the configured CA file (and to nothing else: no system store, no environment overrides), and
its receipts must be signed by one of the pinned verifier keys.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import ssl
import stat
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bwv.base.errors import BwvError, ConfigError
from bwv.base.files import write_atomic
from bwv.keys import Keyring, VerifierKey

CONFIG_NAME = "dock.json"
CA_NAME = "service-ca.pem"
MIB = 1024 * 1024


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DockConfig:
    """Everything a dock agent needs. Paths are absolute once loaded or validated.

    ``service_url`` must be ``https://`` (verified against ``ca_file`` only); plain ``http://``
    is accepted for a loopback host alone, where no network sees the token.
    ``max_rate_mb_s`` caps the dock's total upload rate in megabytes (10**6 bytes) per second.
    """

    service_url: str
    dock_name: str
    token: str
    verifier_keys: list[str]
    state_dir: Path
    ca_file: Path | None = None
    bays: list[Path] = field(default_factory=list)
    parallel: int = 2
    max_rate_mb_s: float | None = None
    chunk_size: int = 8 * MIB
    # Off by default: TLS already authenticates every byte and the service compares the whole
    # file's SHA-256; without a per-chunk checksum a broken-off PATCH keeps the bytes that did
    # arrive, which matters on a link that drops every few megabytes.
    chunk_checksums: bool = False
    settle_seconds: float = 2.0
    poll_interval: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).expanduser().absolute())
        object.__setattr__(self, "bays", [Path(b).expanduser().absolute() for b in self.bays])
        if self.ca_file is not None:
            object.__setattr__(self, "ca_file", Path(self.ca_file).expanduser().absolute())
        if isinstance(self.verifier_keys, str):
            object.__setattr__(self, "verifier_keys", [self.verifier_keys])
        self._check()

    def _check(self) -> None:
        url = urlsplit(self.service_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ConfigError(f"service URL {self.service_url!r} is not an https:// URL")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise ConfigError(
                f"service URL {self.service_url} is plain http to another host: use https:// "
                "with the service's CA file"
            )
        if url.scheme == "https" and self.ca_file is None:
            raise ConfigError("an https service needs the CA file its certificate chains to")
        if not self.token or any(c.isspace() for c in self.token):
            raise ConfigError("the dock token is empty or contains whitespace")
        if not self.verifier_keys:
            raise ConfigError("no service verifier key pinned: receipts could not be checked")
        self.keyring()  # parses every pinned key
        if self.parallel < 1:
            raise ConfigError(f"parallel uploads must be at least 1, not {self.parallel}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1 byte, not {self.chunk_size}")
        if self.max_rate_mb_s is not None and self.max_rate_mb_s <= 0:
            raise ConfigError(f"max rate must be positive, not {self.max_rate_mb_s} MB/s")
        if self.settle_seconds < 0 or self.poll_interval <= 0:
            raise ConfigError("settle seconds must be >= 0 and poll interval > 0")

    def keyring(self) -> Keyring:
        """The pinned service keys; receipts signed by any other key are refused."""
        try:
            return Keyring([VerifierKey.parse(k) for k in self.verifier_keys])
        except BwvError as exc:
            raise ConfigError(f"pinned service key is unusable: {exc.diagnosis}") from None

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the configured CA file and nothing else."""
        if self.ca_file is None:
            raise ConfigError("no CA file configured for the service's TLS certificate")
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        except FileNotFoundError:
            raise ConfigError(f"CA file {self.ca_file} does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"CA file {self.ca_file} is not usable: {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def queue_path(self) -> Path:
        return self.state_dir / "queue.sqlite3"

    @property
    def receipts_path(self) -> Path:
        return self.state_dir / "receipts.jsonl"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif f.name == "bays":
                value = [str(b) for b in value]
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DockConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"dock configuration has unknown settings: {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"dock configuration is incomplete: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> DockConfig:
        """Read ``path`` (the JSON file, or a state directory holding ``dock.json``).

        Refuses a file others can read: it holds the dock token.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"no dock configuration at {path}: enrol the dock first (bwv docks enroll)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read dock configuration {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"dock configuration {path} is readable by others (mode {mode & 0o777:o}) and "
                "holds the dock token; chmod 600 it"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"dock configuration {path} is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"dock configuration {path} is not a JSON object")
        return cls.from_json(data)

    def save(self, path: Path | None = None) -> Path:
        """Write the configuration atomically as a 0600 file; default ``state_dir/dock.json``."""
        path = Path(path) if path is not None else self.state_dir / CONFIG_NAME
        if path.is_dir():
            path = path / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", mode=0o600)
        return path


def pin_keys(state_dir: Path, keys: list[str]) -> bool:
    """Add ``keys`` (verified by following rotation statements) to the pinned service keys in
    the dock's saved configuration, keeping the old ones; only that setting is rewritten, so a
    ``--bay`` given to one run is not saved. False if no configuration is saved there."""
    path = Path(state_dir) / CONFIG_NAME
    if not path.exists():
        return False
    saved = DockConfig.load(path)
    pinned = list(saved.verifier_keys)
    pinned += [k for k in keys if k not in pinned]
    if pinned != saved.verifier_keys:
        replace(saved, verifier_keys=pinned).save(path)
    return True


def write_enrollment(
    state_dir: Path,
    url: str,
    name: str,
    token: str,
    verifier_key: str | list[str],
    ca_file: Path | None,
    *,
    bays: list[Path] | None = None,
) -> DockConfig:
    """Write the dock's configuration after ``bwv docks enroll NAME`` on the service.

    The CA file is copied into the state directory, so the pin does not depend on where the
    administrator left it. Returns the saved configuration.
    """
    state_dir = Path(state_dir).expanduser().absolute()
    keys = [verifier_key] if isinstance(verifier_key, str) else list(verifier_key)
    pinned_ca: Path | None = None
    if ca_file is not None:
        ca_file = Path(ca_file).expanduser()
        if not ca_file.is_file():
            raise ConfigError(f"CA file {ca_file} does not exist")
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pinned_ca = state_dir / CA_NAME
        if ca_file.absolute() != pinned_ca:
            shutil.copyfile(ca_file, pinned_ca)
    config = DockConfig(
        service_url=url,
        dock_name=name,
        token=token,
        verifier_keys=keys,
        state_dir=state_dir,
        ca_file=pinned_ca,
        bays=list(bays or []),
    )
    if config.ca_file is not None:
        config.ssl_context()  # refuse a CA file that is not a certificate now, not at upload
    config.save()
    return config
