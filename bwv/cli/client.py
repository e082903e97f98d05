"""The service's API as the officer's and auditor's ``bwv`` commands use it: who to ask (saved
credentials, or the environment), how (HTTPS, a bearer token), and what a refusal means (one
line). Nothing here opens the database: the service is the only way to the evidence."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bwv.base.errors import BwvError, ConfigError
from bwv.base.files import replaced_when_done, write_atomic
from bwv.custody.rotation import follow, knows
from bwv.keys import Keyring, VerifierKey

CREDENTIALS_ENV = "BWV_CREDENTIALS"
API = "/api/v1"
_DETAIL_MAX = 500


class ApiError(BwvError):
    """The service refused a request, or could not be reached; ``status`` is the HTTP status
    when there was an answer."""

    # None when the service could not be reached: no HTTP status (BwvError's is always an int).
    status: int | None  # type: ignore[assignment]

    def __init__(self, diagnosis: str, status: int | None = None) -> None:
        super().__init__(diagnosis)
        self.status = status


class DownloadError(BwvError):
    """A download did not arrive whole: wrong SHA-256 or size, or the connection broke off."""


@dataclass(frozen=True)
class Credentials:
    """``service_key`` is the key pinned at login; ``followed_keys`` are the keys the service
    rotated to since, each reached by a rotation statement signed by a key already trusted."""

    url: str
    token: str
    ca: str | None = None
    service_key: str | None = None
    followed_keys: tuple[str, ...] = ()


def credentials_path() -> Path:
    if explicit := os.environ.get(CREDENTIALS_ENV):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "bwv" / "credentials.json"


def _read_file(path: Path) -> dict[str, Any] | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read credentials {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # The file holds a bearer token: anyone who can read it can act as you.
        raise ConfigError(
            f"credentials {path} are readable by others (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}` (or `bwv login` again)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read credentials {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path} is not a bwv credentials file: run `bwv login` again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a bwv credentials file: run `bwv login` again")
    return data


def api_configured() -> bool:
    """Whether this machine talks to a service (a URL in the environment or saved credentials)
    rather than being the server host itself."""
    return bool(os.environ.get("BWV_URL")) or credentials_path().is_file()


def load_credentials() -> Credentials:
    """Saved credentials with ``BWV_URL``, ``BWV_TOKEN``, ``BWV_CA`` and ``BWV_SERVICE_KEY`` laid
    over them."""
    path = credentials_path()
    saved = _read_file(path) or {}
    url = os.environ.get("BWV_URL")
    if url and saved.get("url") and saved["url"] != url:
        saved = {}  # a token saved for one service is never sent to another
    fields = {
        "url": os.environ.get("BWV_URL") or saved.get("url"),
        "token": os.environ.get("BWV_TOKEN") or saved.get("token"),
        "ca": os.environ.get("BWV_CA") or saved.get("ca"),
        "service_key": os.environ.get("BWV_SERVICE_KEY") or saved.get("service_key"),
    }
    if not fields["url"] or not fields["token"]:
        missing = "a service URL" if not fields["url"] else "a token"
        raise ConfigError(
            f"not logged in ({missing} is missing): run `bwv login --url https://HOST:8443` "
            "(or set BWV_URL and BWV_TOKEN)"
        )
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{path}: {name} is not text: run `bwv login` again")
    followed = saved.get("followed_keys") or []
    if saved.get("service_key") != fields["service_key"]:
        followed = []  # learned from another pinned key: follow again from this one
    if not isinstance(followed, list) or not all(isinstance(k, str) for k in followed):
        raise ConfigError(f"{path}: followed_keys is not a list of keys: run `bwv login` again")
    return Credentials(**fields, followed_keys=tuple(followed))  # type: ignore[arg-type]


def save_credentials(credentials: Credentials) -> Path:
    path = credentials_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = asdict(credentials)
        if not data["followed_keys"]:
            del data["followed_keys"]  # only once the service has rotated its key
        write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write credentials {path}: {exc.strerror}") from None
    return path


def pinned_keyring(credentials: Credentials) -> Keyring | None:
    """The pinned service key and the keys followed from it; None if no key is pinned."""
    if not credentials.service_key:
        return None
    keys = [credentials.service_key, *credentials.followed_keys]
    try:
        return Keyring([VerifierKey.parse(k) for k in keys])
    except BwvError as exc:
        raise ConfigError(f"pinned service key is unusable: {exc.diagnosis}") from None


def service_keyring(
    api: ApiClient, credentials: Credentials, signers: list[tuple[str, bytes]]
) -> Keyring | None:
    """The keys to verify a note or receipt claiming ``signers`` (name, key id) with.

    When it names no pinned key (the service rotated its key), the service's rotation
    statements are fetched and followed from the pinned keys, each link signed by a key already
    trusted (:func:`bwv.custody.rotation.follow`); what they lead to is saved with the
    credentials, so the next command need not ask. A forged statement raises
    :class:`~bwv.custody.rotation.RotationError`. Nothing the service sends is trusted unchecked.
    """
    keyring = pinned_keyring(credentials)
    if keyring is None or knows(keyring, signers):
        return keyring
    served = api.get("/keys")
    statements = served.get("rotations") if isinstance(served, dict) else None
    followed = follow(keyring, statements if isinstance(statements, list) else [])
    learned = tuple(str(k) for k in followed if k not in keyring)
    if learned:
        _remember_keys(credentials, learned)
    return followed


def _remember_keys(credentials: Credentials, learned: tuple[str, ...]) -> None:
    """Add followed keys to the saved credentials, if they are these credentials."""
    path = credentials_path()
    try:
        saved = _read_file(path)
    except ConfigError:
        return
    if not saved or saved.get("url") != credentials.url:
        return
    if saved.get("service_key") != credentials.service_key:
        return
    keys = list(saved.get("followed_keys") or [])
    keys += [k for k in learned if k not in keys]
    save_credentials(
        Credentials(
            saved["url"], saved["token"], saved.get("ca"), saved.get("service_key"), tuple(keys)
        )
    )


def forget_credentials() -> Path | None:
    """Remove the saved credentials; the path removed, or None if there were none."""
    path = credentials_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot remove credentials {path}: {exc.strerror}") from None
    return path


def one_line(detail: Any) -> str:
    """The service's ``detail`` as one line: FastAPI's 422 list becomes "where: what; ..."."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        text = "; ".join(parts)
    else:
        text = str(detail)
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[:_DETAIL_MAX] + "..."


def _tls_context(ca: str | None) -> ssl.SSLContext:
    if ca is None:
        return ssl.create_default_context()  # the system's trust store
    try:
        return ssl.create_default_context(cafile=ca)
    except FileNotFoundError:
        raise ConfigError(f"CA file {ca}: no such file (give --ca or BWV_CA)") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"CA file {ca} is not a PEM certificate: {exc}") from None


def _cause(exc: BaseException) -> BaseException:
    """The innermost cause httpx wrapped (e.g. the ssl error under a ConnectError)."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


class ApiClient:
    """HTTPS to the service with a bearer token; every failure is one :class:`BwvError` line."""

    def __init__(
        self, url: str, token: str, ca: str | None = None, *, timeout: float = 60.0
    ) -> None:
        url = url.rstrip("/")
        if not url.startswith("https://"):
            raise ConfigError(f"service URL {url!r} must start with https:// (tokens go over TLS)")
        self.url, self.ca = url, ca
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=_tls_context(ca),
            timeout=timeout,
            trust_env=False,  # no proxy or CA from the environment: only what was configured
        )

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> ApiClient:
        return cls(credentials.url, credentials.token, credentials.ca)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.HTTPError) -> ApiError:
        cause = _cause(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            trusted = f"CA file {self.ca}" if self.ca else "the system's CA store"
            why = cause.verify_message or str(cause)
            return ApiError(
                f"TLS: the certificate of {self.url} does not verify against {trusted} ({why}); "
                "give the CA that signed it with --ca (or BWV_CA)"
            )
        if isinstance(cause, ssl.SSLError):
            return ApiError(f"TLS with {self.url} failed: {cause.reason or cause}")
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(f"the service at {self.url} did not answer in time")
        if isinstance(exc, httpx.ConnectError):
            why = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
            return ApiError(f"cannot reach the service at {self.url}: {why}")
        return ApiError(
            f"the connection to {self.url} failed: {one_line(exc) or type(exc).__name__}"
        )

    def _refused(self, response: httpx.Response) -> ApiError:
        try:
            detail = one_line(response.json().get("detail"))
        except (ValueError, AttributeError):
            detail = one_line(response.text) or response.reason_phrase
        hint = ""
        if response.status_code == 401:
            hint = " (run `bwv login` for a new token)"
        return ApiError(
            f"the service refused ({response.status_code}): {detail}{hint}", response.status_code
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | object | None = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method,
                API + path,
                params=query,
                json=json_body,
                timeout=timeout,  # type: ignore[arg-type]
            )
        except httpx.InvalidURL as exc:
            raise ApiError(f"the request cannot be sent: {exc}") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise self._refused(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    @contextmanager
    def _stream(self, path: str, params: dict[str, Any]) -> Iterator[httpx.Response]:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream("GET", API + path, params=query) as response:
                if response.is_error:
                    response.read()
                    raise self._refused(response)
                yield response
        except httpx.InvalidURL as exc:
            raise ApiError(f"the request cannot be sent: {exc}") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def download(
        self,
        path: str,
        dest: Path,
        *,
        params: dict[str, Any],
        expect_sha256: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[str, int]:
        """Stream ``path`` to ``dest``, checked against the service's ``X-Bwv-Sha256`` and
        ``expect_sha256`` (what the index says the object is). Nothing is left at ``dest``
        unless every check passes. Returns (SHA-256, size)."""
        digest, size, receiving = hashlib.sha256(), 0, False
        try:
            with self._stream(path, params) as response, replaced_when_done(dest) as partial:
                receiving = True
                announced = response.headers.get("x-bwv-sha256")
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                with open(partial, "wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        if progress:
                            progress(size, total)
                    f.flush()
                    os.fsync(f.fileno())
                actual = digest.hexdigest()
                if announced is None:
                    raise DownloadError(
                        f"the service sent no X-Bwv-Sha256 for {path}: nothing written to {dest}"
                    )
                if total is not None and size != total:
                    raise DownloadError(
                        f"download of {path} is {size} bytes, not the {total} announced: "
                        f"nothing written to {dest}"
                    )
                for what, wanted in (("the service", announced), ("the index", expect_sha256)):
                    if wanted is not None and actual != wanted.lower():
                        raise DownloadError(
                            f"download of {path} has SHA-256 {actual}, but {what} says "
                            f"{wanted}: nothing written to {dest}"
                        )
        except ApiError as exc:
            if receiving:  # broke off midway
                raise DownloadError(
                    f"{exc.diagnosis} (after {size} bytes): nothing written to {dest}"
                ) from None
            raise
        except OSError as exc:
            raise DownloadError(f"cannot write {dest}: {exc.strerror}") from None
        return actual, size
