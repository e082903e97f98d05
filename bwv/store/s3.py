"""The store of record on S3 with object lock (Ceph RADOS Gateway, MinIO, AWS S3).

S3 object lock is what makes an S3 bucket fit to hold evidence:

- Object lock can only be enabled when a bucket is created, and it turns on versioning for good
  (versioning can no longer be suspended). Writing to an existing key then adds a new version;
  it never replaces the bytes of an earlier one.
- Each version can carry a retention period. In COMPLIANCE mode nobody, the root account
  included, can delete that version or shorten its retention until the retain-until date has
  passed; GOVERNANCE mode, by contrast, can be bypassed with a special permission, so this store
  uses COMPLIANCE only.
- A legal hold, independent of retention, keeps a version until the hold is removed.

Every object therefore goes in as a new version of ``{kind}/{sha256}`` with COMPLIANCE retention:
until the retention policy's date for the clip (``retain_until``), but never less than
``lock_floor_seconds`` from now (S3 needs a date in the future), or for ``retention_days`` (seven
years by default) when no policy date is given. This store refuses a bucket that exists without
object lock. A plain delete of the key only adds a delete marker; the locked version stays.

The records and the locks move together (``bwv.services.retention``): categorising a clip
lengthens its
objects' locks, a hold places S3 legal holds, and :meth:`S3Store.expire` -- the one delete, once
retention has ended -- removes every version of a key, which the storage refuses while a lock or a
legal hold remains. Locks and holds are applied to every version of a key, so that a duplicate
version (quirk 3) is never the one left unprotected.

Quirks of Ceph RADOS Gateway 16 (Pacific) that this code lives with:

1. after a multipart upload ``put_object()`` returns ``etag=None`` (the server sends an empty
   ETag); ``stat_object()`` has the right one. Nothing here uses the ETag.
2. ``get_object_retention()`` raises ValueError (the date carries nanoseconds), so retention and
   legal hold are read from the ``x-amz-object-lock-*`` headers of ``stat_object()``.
3. ``x-amz-checksum-sha256`` (S3 additional checksums) is accepted but not checked: a wrong value
   is stored without complaint, so it is not sent. ``If-None-Match: *`` on PUT is ignored too,
   so two concurrent puts of the same new bytes may leave two identical locked versions.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.datatypes import Object
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.retention import Retention
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)

from bwv.base.clock import system_clock
from bwv.store.base import (
    ObjectDamaged,
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    StoreUnavailable,
    check_key,
)

DEFAULT_RETENTION_DAYS = 2557  # seven years, leap days included
DEFAULT_LOCK_FLOOR_SECONDS = 86400
DEFAULT_PART_SIZE = 64 << 20
_META_SHA256 = "x-amz-meta-sha256"
_MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchVersion", "ResourceNotFound")
_BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed")
_URL_OPTIONS = ("secure", "region", "retention_days", "lock_floor_seconds")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^')\"]+)")
_LOCK_DATE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


class S3Store(ObjectStore):
    """Originals and disclosure copies as locked versions in one S3 bucket.

    Construction does not touch the network; the bucket is created (with object lock) or checked
    for object lock on the first ``put`` or ``check``.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        lock_floor_seconds: int = DEFAULT_LOCK_FLOOR_SECONDS,
        part_size: int = DEFAULT_PART_SIZE,
        http_client: urllib3.PoolManager | None = None,
    ) -> None:
        """``endpoint`` is ``host:port`` without a scheme; ``region`` None asks the server."""
        if retention_days < 1:
            raise StoreError(f"retention_days must be at least 1, not {retention_days}")
        if lock_floor_seconds < 1:
            raise StoreError(f"lock_floor_seconds must be at least 1, not {lock_floor_seconds}")
        self.lock_floor_seconds = lock_floor_seconds
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.region = region
        self.retention_days = retention_days
        self.part_size = part_size
        self._where = f"{'https' if secure else 'http'}://{endpoint}/{bucket}"
        self._bucket_ready = False
        try:
            self.client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=http_client or _http_client(secure),
            )
        except ValueError as exc:
            raise StoreError(f"unusable S3 store settings for {self._where}: {exc}") from None

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=R&retention_days=N``
        (and ``&lock_floor_seconds=S``).

        The credentials are URL-decoded (write ``@`` as ``%40``, ``/`` as ``%2F``); ``secure``
        defaults to true, ``region`` to asking the server, ``retention_days`` to 2557,
        ``lock_floor_seconds`` to 86400.
        """
        parts = urlsplit(url)
        shown = f"s3://{parts.hostname or ''}{parts.path}"
        if parts.scheme != "s3":
            raise StoreError(f"not an s3:// store URL: {shown}")
        if not parts.hostname:
            raise StoreError(f"store URL {shown} names no host")
        if parts.username is None or parts.password is None:
            raise StoreError(f"store URL {shown} has no ACCESS:SECRET@ credentials")
        bucket = parts.path.strip("/")
        if not bucket or "/" in bucket:
            raise StoreError(f"store URL {shown} must name exactly one bucket: s3://.../bucket")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(_URL_OPTIONS))
        if unknown:
            raise StoreError(
                f"store URL {shown}: unknown option {', '.join(unknown)} "
                f"(known: {', '.join(_URL_OPTIONS)})"
            )
        secure = options.get("secure", "true").lower()
        if secure not in ("true", "false", "1", "0", "yes", "no"):
            raise StoreError(f"store URL {shown}: secure must be true or false, not {secure!r}")
        numbers = {}
        for name, default in (
            ("retention_days", DEFAULT_RETENTION_DAYS),
            ("lock_floor_seconds", DEFAULT_LOCK_FLOOR_SECONDS),
        ):
            try:
                numbers[name] = int(options.get(name, default))
            except ValueError:
                raise StoreError(f"store URL {shown}: {name} must be a whole number") from None
        host = parts.hostname
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            raise StoreError(f"store URL {shown} has an invalid port") from None
        return cls(
            f"{host}:{port}" if port else host,
            unquote(parts.username),
            unquote(parts.password),
            bucket,
            secure=secure in ("true", "1", "yes"),
            region=options.get("region") or None,
            retention_days=numbers["retention_days"],
            lock_floor_seconds=numbers["lock_floor_seconds"],
        )

    # -- the ObjectStore interface -----------------------------------------------------------

    def put(
        self,
        kind: str,
        sha256: str,
        source: Path,
        *,
        adopt: bool = False,
        retain_until: datetime | None = None,
    ) -> StoredObject:
        """Store ``source`` as a new COMPLIANCE-locked version of ``{kind}/{sha256}``, locked
        until ``retain_until`` but at least ``lock_floor_seconds`` from now (``retention_days``
        from now when no date is given). Bytes already stored keep their lock; lengthen it with
        :meth:`extend_retention`.

        ``adopt`` is ignored: the bytes are always copied to the server. The bytes are hashed as
        they are sent and the upload is abandoned (nothing is committed) unless they hash to
        ``sha256``. Over plain HTTP minio signs every request with the SHA-256 of its body
        (``x-amz-content-sha256``) and the server refuses a body that does not match it, so for
        an object sent in one request the server itself checks the object's SHA-256, and for a
        multipart upload it checks each part. Over HTTPS it sends Content-MD5 per request instead.
        """
        key = _key(kind, sha256)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise StoreError(f"cannot read {source}: {exc.strerror}") from None
        if size == 0 and sha256 != hashlib.sha256(b"").hexdigest():
            raise StoreError(
                f"bytes to store hash to {hashlib.sha256(b'').hexdigest()}, not {sha256}"
            )
        self._ensure_bucket()
        existing = self._stat(key)
        if existing is not None:
            return self._existing(kind, sha256, existing, size)
        now = system_clock()
        if retain_until is None:
            lock_until = now + timedelta(days=self.retention_days)
        else:
            lock_until = max(retain_until, now + timedelta(seconds=self.lock_floor_seconds))
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise StoreError(f"cannot read {source}: {exc.strerror}") from None
        with src, self._errors(f"storing {key}"):
            result = self.client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, _HashingReader(src, source, sha256, size)),
                size,
                content_type="application/octet-stream",
                metadata={_META_SHA256: sha256},
                part_size=self.part_size,
                retention=Retention(COMPLIANCE, _whole_second(lock_until)),
            )
        return StoredObject(kind, sha256, size, self._location(key, result.version_id), True)

    def exists(self, kind: str, sha256: str) -> bool:
        return self._stat(_key(kind, sha256)) is not None

    def size(self, kind: str, sha256: str) -> int:
        key = _key(kind, sha256)
        stat = self._stat(key)
        if stat is None:
            raise ObjectMissing(
                f"no {kind} object {sha256} in {self._where}",
                shown=f"no {kind} object {sha256} in the S3 store",
            )
        return cast(int, self._ours(key, sha256, stat).size)

    def open(self, kind: str, sha256: str) -> BinaryIO:
        """The object's bytes as a buffered file; close it (or use ``with``) to free the
        connection. Refuses a current version that this store did not write."""
        return self._get(kind, sha256, ours_only=True)

    def open_current(self, kind: str, sha256: str) -> BinaryIO:
        """The current version's bytes, whoever wrote it (a PUT with the bucket's credentials
        makes a new current version; a DELETE makes a delete marker, :class:`ObjectMissing`)."""
        return self._get(kind, sha256, ours_only=False)

    def _get(self, kind: str, sha256: str, *, ours_only: bool) -> BinaryIO:
        key = _key(kind, sha256)
        with self._errors(f"reading {key}"):
            try:
                response = self.client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    raise ObjectMissing(
                        f"no {kind} object {sha256} in {self._where}",
                        shown=f"no {kind} object {sha256} in the S3 store",
                    ) from None
                raise
        if ours_only and response.headers.get(_META_SHA256) != sha256:
            response.close()
            response.release_conn()
            raise ObjectDamaged(_not_ours(self._where, key), shown=_not_ours("the S3 store", key))
        raw = _ResponseReader(response, self._where, key)
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=1 << 20))

    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the bucket answers now, and
        :class:`StoreError` if it exists without object lock."""
        self._ensure_bucket()
        with self._errors("checking the bucket"):
            if not self.client.bucket_exists(self.bucket):
                raise StoreError(f"bucket {self._where} has disappeared")

    # -- object lock, for holds and retention --------------------------------------------------

    def retention(self, kind: str, sha256: str) -> tuple[str | None, datetime | None]:
        """``(mode, retain_until)`` of the current version, ``(None, None)`` when it has none.

        Read from the ``x-amz-object-lock-*`` headers: radosgw 16 sends a retain-until date with
        nanoseconds that minio's ``get_object_retention`` cannot parse."""
        meta = self._stat_required(_key(kind, sha256)).metadata or {}
        mode = meta.get("x-amz-object-lock-mode") or None
        until = meta.get("x-amz-object-lock-retain-until-date")
        return mode, _parse_lock_date(until) if until else None

    def legal_hold(self, kind: str, sha256: str) -> bool:
        """Whether the current version is under a legal hold (``x-amz-object-lock-legal-hold``)."""
        meta = self._stat_required(_key(kind, sha256)).metadata or {}
        return (meta.get("x-amz-object-lock-legal-hold") or "").upper() == "ON"

    def describe(self) -> str:
        return f"s3://{self.endpoint}/{self.bucket}"

    def extend_retention(self, kind: str, sha256: str, until: datetime) -> None:
        """Lock every version of the object until at least ``until`` (COMPLIANCE retention can
        only be lengthened: a version locked longer keeps its date). A date already past locks
        nothing and is ignored."""
        key = _key(kind, sha256)
        until = _whole_second(until)
        if until <= system_clock():
            return
        versions = self._versions(key, markers=False)
        if not versions:
            raise StoreError(f"no object {key} in {self._where}")
        for version in versions:
            _mode, current, _held = self._lock(key, version)
            if current is None or current < until:
                with self._errors(f"lengthening the retention of {key}"):
                    self.client.set_object_retention(
                        self.bucket, key, Retention(COMPLIANCE, until), version_id=version
                    )

    def set_legal_hold(self, kind: str, sha256: str, on: bool) -> None:
        """Place or remove an S3 legal hold on every version of the object."""
        key = _key(kind, sha256)
        versions = self._versions(key, markers=False)
        if not versions:
            raise StoreError(f"no object {key} in {self._where}")
        action = "placing a legal hold on" if on else "removing the legal hold from"
        with self._errors(f"{action} {key}"):
            for version in versions:
                if on:
                    self.client.enable_object_legal_hold(self.bucket, key, version_id=version)
                else:
                    self.client.disable_object_legal_hold(self.bucket, key, version_id=version)

    def expirable(self, kind: str, sha256: str) -> str | None:
        """None if no version of the key is under a legal hold or locked past now (or it has no
        versions), else why the storage would refuse to delete it. Judged by this machine's
        clock: the server's may disagree, and then :meth:`expire` is refused by the server."""
        key = _key(kind, sha256)
        now = system_clock()
        for version in self._versions(key, markers=False):
            _mode, until, held = self._lock(key, version)
            if held:
                return f"storage refuses to delete {key} in {self._where}: it is under a legal hold"
            if until is not None and until > now:
                return (
                    f"storage refuses to delete {key} in {self._where}: retained until "
                    f"{until:%Y-%m-%d %H:%M:%S} UTC"
                )
        return None

    def expire(self, kind: str, sha256: str) -> None:
        """Delete every version of the key, by version id (a plain delete would only add a
        delete marker and keep the bytes), and its delete markers. Checks every version's lock
        first (:meth:`expirable`), so a refusal normally deletes nothing; the storage refuses
        anyway if it disagrees. Nothing to do if the key has no versions."""
        key = _key(kind, sha256)
        if (refusal := self.expirable(kind, sha256)) is not None:
            raise StoreError(refusal)
        versions = self._versions(key, markers=True)
        for version in versions:
            try:
                with self._errors(f"deleting {key}"):
                    self.client.remove_object(self.bucket, key, version_id=version)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                raise StoreError(
                    f"storage refuses to delete {key} in {self._where}: {exc.diagnosis} "
                    "(a lock or legal hold not yet passed by the server's clock?)"
                ) from None

    # -- inside -----------------------------------------------------------------------------------

    def _versions(self, key: str, *, markers: bool) -> list[str]:
        """The version ids of ``key``, newest first; delete markers too when ``markers``."""
        with self._errors(f"listing the versions of {key}"):
            return [
                o.version_id
                for o in self.client.list_objects(self.bucket, prefix=key, include_version=True)
                if o.object_name == key
                and o.version_id is not None
                and (markers or not o.is_delete_marker)
            ]

    def _lock(self, key: str, version: str) -> tuple[str | None, datetime | None, bool]:
        """``(mode, retain_until, legal_hold)`` of one version, from its headers (quirk 2)."""
        with self._errors(f"looking up {key}"):
            meta = self.client.stat_object(self.bucket, key, version_id=version).metadata or {}
        until = meta.get("x-amz-object-lock-retain-until-date")
        held = (meta.get("x-amz-object-lock-legal-hold") or "").upper() == "ON"
        return (
            meta.get("x-amz-object-lock-mode") or None,
            _parse_lock_date(until) if until else None,
            held,
        )

    def _ensure_bucket(self) -> None:
        """Create the bucket with object lock if it is missing; refuse one without object lock.

        Object lock cannot be switched off once on, so a positive answer is remembered."""
        if self._bucket_ready:
            return
        with self._errors("opening the bucket"):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, self.region, object_lock=True)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise  # another instance may just have created it: check it below
            try:
                self.client.get_object_lock_config(self.bucket)
            except S3Error as exc:
                if exc.code == "ObjectLockConfigurationNotFoundError":
                    raise StoreError(
                        f"bucket {self._where} has no object lock configuration: an evidence "
                        "store without object lock is not acceptable (use a new bucket name, "
                        "which bwv creates with object lock, or one created with object lock)"
                    ) from None
                raise
        self._bucket_ready = True

    def _stat(self, key: str) -> Object | None:
        with self._errors(f"looking up {key}"):
            try:
                return self.client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    return None
                raise

    def _stat_required(self, key: str) -> Object:
        stat = self._stat(key)
        if stat is None:
            raise StoreError(f"no object {key} in {self._where}")
        return stat

    def _ours(self, key: str, sha256: str, stat: Object) -> Object:
        if (stat.metadata or {}).get(_META_SHA256) != sha256:
            raise ObjectDamaged(_not_ours(self._where, key), shown=_not_ours("the S3 store", key))
        return stat

    def _existing(self, kind: str, sha256: str, stat: Object, size: int) -> StoredObject:
        key = _key(kind, sha256)
        self._ours(key, sha256, stat)
        if stat.size != size:
            raise StoreError(
                f"stored object {key} in {self._where} is {stat.size} bytes, not {size}"
            )
        return StoredObject(kind, sha256, size, self._location(key, stat.version_id), False)

    def _location(self, key: str, version_id: str | None) -> str:
        where = f"s3://{self.endpoint}/{self.bucket}/{key}"
        return f"{where}?versionId={version_id}" if version_id else where

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn minio and urllib3 failures into StoreUnavailable (try again later) or
        StoreError (refused), each with a one-line diagnosis naming the endpoint."""
        # Each diagnosis names the endpoint for the operator; ``shown`` (for HTTP answers and
        # leaves) says "the S3 store" instead.
        try:
            yield
        except StoreError:
            raise
        except S3Error as exc:
            status = exc.response.status if exc.response is not None else 0
            detail = f"{exc.code}{': ' + exc.message if exc.message else ''}"
            if status >= 500 and status != 501:
                raise StoreUnavailable(
                    f"S3 store {self._where} failed while {action}: {detail} (HTTP {status})",
                    shown=f"the S3 store failed while {action}: {exc.code} (HTTP {status})",
                ) from None
            if exc.code in _BAD_CREDENTIALS:
                detail += " (check the access key, secret key and region)"
            raise StoreError(
                f"S3 store {self._where} refused {action}: {detail}",
                shown=f"the S3 store refused {action}: {exc.code}",
            ) from None
        except ServerError as exc:
            raise StoreUnavailable(
                f"S3 store {self._where} failed while {action}: HTTP {exc.status_code}",
                shown=f"the S3 store failed while {action}: HTTP {exc.status_code}",
            ) from None
        except InvalidResponseError as exc:
            raise StoreUnavailable(
                f"S3 store {self._where} gave a non-S3 answer while {action}: {exc}",
                shown=f"the S3 store gave a non-S3 answer while {action}",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(
                f"S3 store {self._where} is unreachable while {action}: {_diagnose(exc)}",
                shown=f"the S3 store is unreachable while {action}: {_diagnose(exc)}",
            ) from None


class _HashingReader:
    """Hands the source's bytes to minio, hashing them; raises before the last byte leaves
    (so minio abandons the upload and nothing is committed) unless they hash to ``sha256``."""

    def __init__(self, f: BinaryIO, path: Path, sha256: str, size: int) -> None:
        self._f, self._path, self._sha256, self._size = f, path, sha256, size
        self._digest = hashlib.sha256()
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        want = self._size - self._seen if n < 0 else n
        try:
            data = self._f.read(want)
        except OSError as exc:
            raise StoreError(f"cannot read {self._path}: {exc.strerror}") from None
        self._seen += len(data)
        self._digest.update(data)
        if want and not data and self._seen < self._size:
            raise StoreError(f"{self._path} shrank while being stored")
        if self._seen > self._size:
            raise StoreError(f"{self._path} grew while being stored")
        if self._seen == self._size and data:
            if self._f.read(1):
                raise StoreError(f"{self._path} grew while being stored")
            if self._digest.hexdigest() != self._sha256:
                raise StoreError(
                    f"bytes to store hash to {self._digest.hexdigest()}, not {self._sha256}"
                )
        return data


class _ResponseReader(io.RawIOBase):
    """A streamed GET response as a raw file; ``close`` returns the connection to the pool."""

    def __init__(self, response: urllib3.BaseHTTPResponse, where: str, key: str) -> None:
        super().__init__()
        self._response, self._where, self._key = response, where, key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return self._response.readinto(buffer)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(
                f"S3 store {self._where}: reading {self._key} broke off: {_diagnose(exc)}",
                shown=f"the S3 store: reading {self._key} broke off: {_diagnose(exc)}",
            ) from None

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


def _key(kind: str, sha256: str) -> str:
    check_key(kind, sha256)
    return f"{kind}/{sha256}"


def _not_ours(where: str, key: str) -> str:
    return (
        f"the current version of {key} in {where} was not written by bwv (overwritten outside "
        "the store?); its locked original is among the key's older versions"
    )


def _http_client(secure: bool) -> urllib3.PoolManager:
    """minio's own defaults, but with a short connect timeout and few retries, so that an
    unreachable store is reported in seconds rather than minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=300),
        maxsize=10,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


def _diagnose(exc: BaseException) -> str:
    """One line saying why a request did not get through."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, NewConnectionError):  # before ConnectTimeoutError: urllib3 2 subclass
        found = _ERRNO_TEXT.search(str(exc))
        reason = found.group(1).strip().lower() if found else "cannot connect"
        return f"{reason} (is the gateway running?)"
    if isinstance(exc, ConnectTimeoutError):
        return "connection timed out (is the address right and the port open?)"
    if isinstance(exc, ReadTimeoutError):
        return "the server stopped answering (read timed out)"
    if isinstance(exc, ProtocolError):
        return "the connection broke off"
    if isinstance(exc, ResponseError):
        return f"the server kept failing ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


def _whole_second(when: datetime) -> datetime:
    """``when`` rounded up to a whole second, in UTC: S3 dates carry milliseconds at most, and a
    lock must never end before the date asked for."""
    when = when.astimezone(UTC)
    return when.replace(microsecond=0) + timedelta(seconds=1 if when.microsecond else 0)


def _parse_lock_date(text: str) -> datetime:
    """An ISO 8601 retain-until date, tolerating radosgw's nanoseconds."""
    found = _LOCK_DATE.fullmatch(text.strip())
    if not found:
        raise StoreError(f"unreadable object lock date {text!r}")
    whole, fraction, zone = found.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{whole}.{micro}{offset}").astimezone(UTC)
