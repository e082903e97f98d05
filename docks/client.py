"""A tus 1.0.0 client for the ingest service (see docs/INGEST.md), on httpx over HTTP/1.1.

One call to :meth:`TusClient.upload` is one attempt: it resumes the clip's upload from the
offset the service reports, sends the rest in checksummed chunks and returns the service's
receipt document (unverified: the agent verifies it). Errors worth retrying raise
:class:`ServiceUnavailable` or an ``httpx.TransportError``; a refusal that will not change raises
:class:`UploadRejected`. :class:`RetryPolicy` turns attempts into a tenacity retry loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import tenacity

from bwv.base.errors import BwvError
from docks.config import DockConfig
from docks.watcher import ClipChanged

log = logging.getLogger("bwv.dock")

TUS_VERSION = "1.0.0"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
RECEIPT_HEADER = "Bwv-Receipt"
_PIECE_SIZE = 64 * 1024
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_FINAL_TIMEOUT = httpx.Timeout(600.0, connect=10.0)  # the service stores the clip before answering
# 4xx answers that change on their own: worth retrying, unlike every other 4xx.
_RETRYABLE_4XX = frozenset({404, 408, 409, 410, 423, 425, 429, 460})


class UploadRejected(BwvError):
    """The service refused the clip with a 4xx that sending it again will not change."""

    def __init__(self, diagnosis: str, answered: int | None = None) -> None:
        super().__init__(diagnosis)
        self.answered = answered  # the HTTP status the service answered, if it answered


class ServiceUnavailable(BwvError):
    """A failure worth retrying: 5xx, 460, a lost upload, a receipt not there yet."""

    def __init__(self, diagnosis: str, retry_after: float | None = None) -> None:
        super().__init__(diagnosis)
        self.retry_after = retry_after


class UploadStopped(BwvError):
    """The agent is stopping; the upload resumes from the service's offset next time."""


class _OffsetConflict(Exception):
    """409 on PATCH: the service's offset is not ours."""


def is_retryable(exc: BaseException) -> bool:
    """Network errors, timeouts and :class:`ServiceUnavailable` are retried, forever."""
    return isinstance(exc, httpx.TransportError | ServiceUnavailable)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; never gives up unless ``max_attempts`` is set.

    A ``Retry-After`` from the service is honoured, up to ``max_wait``.
    """

    multiplier: float = 0.5
    max_wait: float = 30.0
    max_attempts: int | None = None

    def wait_seconds(self, retry_state: tenacity.RetryCallState) -> float:
        wait = tenacity.wait_random_exponential(multiplier=self.multiplier, max=self.max_wait)
        seconds = float(wait(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            seconds = max(seconds, min(float(retry_after), self.max_wait))
        return seconds

    def retrying(
        self,
        *,
        stop_event: threading.Event | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity loop; a set ``stop_event`` ends it (re-raising the last error)."""
        stops: list[Any] = []
        sleep: Callable[[float], None] = time.sleep
        if stop_event is not None:
            stops.append(lambda _state: stop_event.is_set())

            def sleep(seconds: float) -> None:  # a set stop_event cuts the wait short
                stop_event.wait(seconds)

        if self.max_attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.max_attempts))
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            wait=self.wait_seconds,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


class RateLimiter:
    """Caps the average byte rate, shared by every upload of the dock.

    Each piece is sent no earlier than the time the previous bytes take at the cap (a virtual
    clock), so over any interval ``t`` at most ``rate * t`` bytes plus one piece go out, and an
    idle period earns no burst.
    """

    def __init__(
        self,
        bytes_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("rate must be positive")
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_mb_s(cls, mb_per_second: float | None) -> RateLimiter | None:
        return None if mb_per_second is None else cls(mb_per_second * 1_000_000)

    def acquire(self, size: int) -> None:
        """Wait until ``size`` more bytes may be sent."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + size / self.bytes_per_second
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True)
class UploadJob:
    """What one upload attempt needs to know about a clip."""

    path: Path
    size: int
    sha256: str
    metadata: dict[str, str]
    upload_url: str | None = None


def encode_metadata(metadata: dict[str, str]) -> str:
    """tus ``Upload-Metadata``: ``key base64(value)`` pairs joined by commas."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items()
    )


def decode_receipt_header(value: str) -> dict[str, Any] | None:
    """The ``Bwv-Receipt`` header: base64url JSON, padding optional. None if unreadable."""
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _detail(response: httpx.Response) -> str:
    """The service's one-line ``detail``, or the start of whatever it sent."""
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        detail = response.text.strip() or response.reason_phrase
    text = " ".join(str(detail).split())
    return text[:300]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _check(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"{what}: {status} {_detail(response)}"
    if status >= 500 or status in _RETRYABLE_4XX:
        raise ServiceUnavailable(message, _retry_after(response))
    raise UploadRejected(message, status)


class TusClient:
    """Talks tus and the receipts API to one service, as one dock."""

    def __init__(
        self,
        service_url: str,
        token: str,
        *,
        http_client: httpx.Client | None = None,
        verify: Any = True,
        chunk_size: int = 8 * 1024 * 1024,
        limiter: RateLimiter | None = None,
        chunk_checksums: bool = False,
    ) -> None:
        self.service_url = service_url.rstrip("/") + "/"
        self.chunk_size = chunk_size
        self.chunk_checksums = chunk_checksums
        self.limiter = limiter
        self._headers = {"Tus-Resumable": TUS_VERSION, "Authorization": f"Bearer {token}"}
        self._own_client = http_client is None
        self._http = http_client or httpx.Client(
            verify=verify, timeout=_TIMEOUT, follow_redirects=False, trust_env=False, http2=False
        )
        origin = urlsplit(self.service_url)
        self._origin = (origin.scheme, origin.netloc)

    @classmethod
    def from_config(
        cls, config: DockConfig, *, http_client: httpx.Client | None = None
    ) -> TusClient:
        """A client that trusts only the configured CA (https) and sends at most the cap."""
        https = urlsplit(config.service_url).scheme == "https"
        verify: Any = config.ssl_context() if https and http_client is None else True
        return cls(
            config.service_url,
            config.token,
            http_client=http_client,
            verify=verify,
            chunk_size=config.chunk_size,
            limiter=RateLimiter.from_mb_s(config.max_rate_mb_s),
            chunk_checksums=config.chunk_checksums,
        )

    def close(self) -> None:
        if self._own_client:
            self._http.close()

    # --- single requests -----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.service_url, path.lstrip("/"))

    def _upload_url(self, location: str) -> str:
        url = urljoin(self.service_url, location)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise UploadRejected(f"the service named an upload on another origin: {url}")
        return url

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        return self._http.request(method, url, headers=headers, **kwargs)

    def create(self, size: int, metadata: dict[str, str]) -> str:
        """``POST /files/``: a new upload; returns its absolute URL."""
        response = self._request(
            "POST",
            self._url("files/"),
            headers={
                "Upload-Length": str(size),
                "Upload-Metadata": encode_metadata(metadata),
                "Content-Length": "0",
            },
        )
        _check(response, "creating the upload")
        location = response.headers.get("Location")
        if not location:
            raise ServiceUnavailable("the service created an upload but named no Location")
        return self._upload_url(location)

    def offset(self, url: str) -> int | None:
        """``HEAD``: the service's offset, or None when the upload is unknown or expired."""
        response = self._request("HEAD", url)
        if response.status_code in (404, 410):
            return None
        if response.status_code == 403:
            log.warning("upload %s belongs to another dock identity; starting a new one", url)
            return None
        _check(response, "asking the upload's offset")
        return _header_int(response, "Upload-Offset")

    def patch(self, url: str, offset: int, chunk: bytes, *, final: bool) -> tuple[int, Any]:
        """``PATCH`` one chunk; returns (new offset, receipt document from the header or None)."""
        headers = {
            "Upload-Offset": str(offset),
            "Content-Type": OFFSET_OCTET_STREAM,
            "Content-Length": str(len(chunk)),
        }
        if self.chunk_checksums:
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            headers["Upload-Checksum"] = f"sha256 {digest}"
        response = self._request(
            "PATCH",
            url,
            headers=headers,
            content=self._body(chunk),
            timeout=_FINAL_TIMEOUT if final else _TIMEOUT,
        )
        if response.status_code == 409:
            raise _OffsetConflict
        if response.status_code == 460:
            raise ServiceUnavailable(f"the chunk at offset {offset} failed its checksum; resending")
        _check(response, f"sending bytes from offset {offset}")
        new_offset = _header_int(response, "Upload-Offset")
        header = response.headers.get(RECEIPT_HEADER)
        return new_offset, decode_receipt_header(header) if header else None

    def _body(self, chunk: bytes) -> Iterator[bytes]:
        view = memoryview(chunk)
        for start in range(0, len(chunk), _PIECE_SIZE):
            piece = view[start : start + _PIECE_SIZE]
            if self.limiter is not None:
                self.limiter.acquire(len(piece))
            yield bytes(piece)

    def finalise(self, url: str) -> Any:
        """``POST /api/v1/uploads/<id>/finalise``: the receipt JSON, or None if unknown."""
        upload_id = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        response = self._request(
            "POST", self._url(f"api/v1/uploads/{upload_id}/finalise"), timeout=_FINAL_TIMEOUT
        )
        if response.status_code == 404:
            return None
        _check(response, "finalising the upload")
        return _json(response)

    def receipt(self, sha256: str) -> Any:
        """``GET /api/v1/receipts/<sha256>``: the stored clip's receipt JSON, or None."""
        response = self._request("GET", self._url(f"api/v1/receipts/{sha256}"))
        if response.status_code == 404:
            return None
        _check(response, "fetching the receipt")
        return _json(response)

    def keys(self) -> Any:
        """``GET /api/v1/keys``: the service's keys and rotation statements (unverified: the
        agent follows them from its pinned keys), or None if the service serves none."""
        response = self._request("GET", self._url("api/v1/keys"))
        if response.status_code == 404:
            return None
        _check(response, "fetching the service's key rotations")
        return _json(response)

    # --- one attempt ---------------------------------------------------------------------------

    def upload(
        self,
        job: UploadJob,
        *,
        on_progress: Callable[[str, int], None] = lambda url, offset: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Any:
        """Resume (or start) the clip's upload and return the service's receipt document.

        ``on_progress(url, offset)`` is called when an upload is created and after every
        acknowledged chunk, so the caller can persist the URL and resume after a restart.
        """
        url = job.upload_url
        offset: int | None = None
        if url is not None:
            offset = self.offset(url)
            if offset is None:
                log.info("upload %s is gone; checking for a receipt of %s", url, job.sha256)
                url = None
        if url is None or offset is None:
            # Only an upload of ours that is gone may have finished: a clip never sent is not
            # asked about (each unknown SHA-256 asked would be a refusal leaf in the ledger).
            if job.upload_url is not None:
                existing = self.receipt(job.sha256)
                if existing is not None:
                    return existing
            url = self.create(job.size, job.metadata)
            offset = 0
            on_progress(url, 0)
        if offset > job.size:
            raise UploadRejected(f"the service holds {offset} bytes of a {job.size}-byte clip")

        document: Any = None
        with open(job.path, "rb") as f:
            while offset < job.size:
                if should_stop():
                    raise UploadStopped(f"stopped at byte {offset} of {job.path.name}")
                f.seek(offset)
                chunk = f.read(min(self.chunk_size, job.size - offset))
                if not chunk:
                    raise ClipChanged(f"{job.path} is shorter than when it was hashed")
                end = offset + len(chunk)
                try:
                    new_offset, document = self.patch(url, offset, chunk, final=end == job.size)
                except _OffsetConflict:
                    server = self.offset(url)
                    if server is None:
                        raise ServiceUnavailable("the upload vanished during a conflict") from None
                    log.info("offset conflict on %s: continuing from %d", url, server)
                    offset = server
                    continue
                if not offset < new_offset <= end:
                    raise ServiceUnavailable(
                        f"the service answered offset {new_offset} to bytes {offset}..{end}"
                    )
                offset = new_offset
                on_progress(url, offset)

        if document is not None:
            return document
        document = self.finalise(url)
        if document is None:
            document = self.receipt(job.sha256)
        if document is None:
            raise ServiceUnavailable("the upload is complete but the service has no receipt yet")
        return document


def _header_int(response: httpx.Response, name: str) -> int:
    try:
        value = int(response.headers[name])
    except (KeyError, ValueError):
        raise ServiceUnavailable(f"the service answered without a valid {name}") from None
    if value < 0:
        raise ServiceUnavailable(f"the service answered a negative {name}")
    return value


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceUnavailable("the service answered a receipt that is not JSON") from None
