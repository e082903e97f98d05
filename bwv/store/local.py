"""The embedded store: files under one directory, each written once and then made read-only.

A put writes to a temporary file in the same directory, fsyncs it, renames it into place with
``link`` (which fails rather than replace an existing name), fsyncs the directory, and drops the
write permission. A crash at any point leaves either no object or a complete one.

A local filesystem has no object lock: ``retain_until``, :meth:`LocalStore.extend_retention` and
:meth:`LocalStore.set_legal_hold` do nothing, and the records (retention dates, holds, the
ledger) alone enforce the policy. Use an S3 store with object lock where the storage itself must
refuse an early delete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from bwv.fsio import fsync_dir
from bwv.store.base import ObjectStore, StoredObject, StoreError, StoreUnavailable, check_key

_COPY_CHUNK = 1 << 20


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_url(cls, url: str) -> LocalStore:
        return cls(Path(unquote(urlsplit(url).path)))

    def _path(self, kind: str, sha256: str) -> Path:
        check_key(kind, sha256)
        return self.root / kind / sha256[:2] / sha256[2:4] / sha256

    def exists(self, kind: str, sha256: str) -> bool:
        return self._path(kind, sha256).exists()

    def size(self, kind: str, sha256: str) -> int:
        try:
            return self._path(kind, sha256).stat().st_size
        except FileNotFoundError:
            raise StoreError(f"no {kind} object {sha256}") from None

    def open(self, kind: str, sha256: str) -> BinaryIO:
        try:
            return open(self._path(kind, sha256), "rb")
        except FileNotFoundError:
            raise StoreError(f"no {kind} object {sha256}") from None

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreUnavailable(
                f"local store {self.root} is not writable: {exc.strerror}"
            ) from None

    def put(
        self,
        kind: str,
        sha256: str,
        source: Path,
        *,
        adopt: bool = False,
        retain_until: datetime | None = None,
    ) -> StoredObject:
        final = self._path(kind, sha256)
        size = source.stat().st_size
        if final.exists():
            return self._existing(kind, sha256, final, size)
        if adopt and self._adopt(source, final):
            return StoredObject(kind, sha256, size, str(final), created=True)
        tmp = final.parent / f".{sha256}.{secrets.token_hex(4)}.tmp"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != sha256:
                raise StoreError(f"bytes to store hash to {digest.hexdigest()}, not {sha256}")
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, final)  # never replaces: an existing name makes this fail
            except FileExistsError:
                return self._existing(kind, sha256, final, size)
            fsync_dir(final.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to the local store {self.root}: {exc.strerror}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        return StoredObject(kind, sha256, size, str(final), created=True)

    def describe(self) -> str:
        return self.root.as_uri()

    def extend_retention(self, kind: str, sha256: str, until: datetime) -> None:
        check_key(kind, sha256)  # no lock to extend (see the module docstring)

    def set_legal_hold(self, kind: str, sha256: str, on: bool) -> None:
        check_key(kind, sha256)  # no hold to set (see the module docstring)

    def expirable(self, kind: str, sha256: str) -> str | None:
        check_key(kind, sha256)  # no lock to refuse (see the module docstring)
        return None

    def expire(self, kind: str, sha256: str) -> None:
        final = self._path(kind, sha256)
        try:
            final.unlink()  # the file is read-only, but unlinking needs only the directory
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"cannot delete {kind} object {sha256} from the local store {self.root}: "
                f"{exc.strerror}"
            ) from None
        fsync_dir(final.parent)

    def _adopt(self, source: Path, final: Path) -> bool:
        """Link an already fsynced file into place without copying it (same filesystem only).

        Returns False when a copy is needed instead (another filesystem)."""
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(source, 0o444)
            os.link(source, final)
        except FileExistsError:
            return False  # put() then finds the existing object and compares sizes
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return False
            raise StoreUnavailable(
                f"cannot write to the local store {self.root}: {exc.strerror}"
            ) from None
        fsync_dir(final.parent)
        return True

    def _existing(self, kind: str, sha256: str, final: Path, size: int) -> StoredObject:
        stored = final.stat().st_size
        if stored != size:
            raise StoreError(f"stored {kind} object {sha256} is {stored} bytes, not {size}")
        return StoredObject(kind, sha256, size, str(final), created=False)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
