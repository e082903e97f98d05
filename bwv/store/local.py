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
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from bwv.base.clock import system_clock
from bwv.base.files import file_sha256, fsync_dir
from bwv.store.base import (
    ObjectDamaged,
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    StoreUnavailable,
    check_key,
)

_COPY_CHUNK = 1 << 20
# Owner only: another local account must not hash an original (or list what is stored).
_DIR_MODE = 0o700
_OBJECT_MODE = 0o400
# A put's temporary file older than this was left by a killed process: removed by the next put.
_STALE_TMP_SECONDS = 300


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
            raise ObjectMissing(f"no {kind} object {sha256}") from None
        except OSError as exc:
            raise self._unreadable(kind, sha256, exc) from None

    def open(self, kind: str, sha256: str) -> BinaryIO:
        try:
            return open(self._path(kind, sha256), "rb")
        except FileNotFoundError:
            raise ObjectMissing(f"no {kind} object {sha256}") from None
        except OSError as exc:
            raise self._unreadable(kind, sha256, exc) from None

    def _unreadable(self, kind: str, sha256: str, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(
            f"cannot read {kind} object {sha256} in the local store {self.root}: {exc.strerror}",
            shown=f"cannot read {kind} object {sha256} in the local store: {exc.strerror}",
        )

    def check(self) -> None:
        try:
            _make_dirs(self.root)
            probe = self.root / f".probe-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreUnavailable(
                f"local store {self.root} is not writable: {exc.strerror}",
                shown=f"the local store is not writable: {exc.strerror}",
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
            _make_dirs(final.parent)
            _remove_stale_tmps(final.parent, sha256)
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != sha256:
                raise StoreError(f"bytes to store hash to {digest.hexdigest()}, not {sha256}")
            os.chmod(tmp, _OBJECT_MODE)
            try:
                os.link(tmp, final)  # never replaces: an existing name makes this fail
            except FileExistsError:
                return self._existing(kind, sha256, final, size)
            fsync_dir(final.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to the local store {self.root}: {exc.strerror}",
                shown=f"cannot write to the local store: {exc.strerror}",
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
                f"{exc.strerror}",
                shown=f"cannot delete {kind} object {sha256} from the local store: {exc.strerror}",
            ) from None
        fsync_dir(final.parent)

    def _adopt(self, source: Path, final: Path) -> bool:
        """Move an already fsynced file into place without copying it (same filesystem only):
        linked under its final name (which never replaces one), then unlinked from where it was,
        so the object shares its inode with nothing a writer of the source can reach.

        Returns False when a copy is needed instead (another filesystem)."""
        try:
            _make_dirs(final.parent)
            os.chmod(source, _OBJECT_MODE)
            os.link(source, final)
            source.unlink()
        except FileExistsError:
            return False  # put() then finds the existing object and compares sizes
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return False
            raise StoreUnavailable(
                f"cannot write to the local store {self.root}: {exc.strerror}",
                shown=f"cannot write to the local store: {exc.strerror}",
            ) from None
        fsync_dir(final.parent)
        return True

    def _existing(self, kind: str, sha256: str, final: Path, size: int) -> StoredObject:
        """Identical bytes are already stored -- if the object still is what it was stored as.
        Re-hashed (a duplicate put is rare): a same-size damaged object must not be kept and
        answered for as the new bytes."""
        try:
            stored = final.stat().st_size
            if stored != size:
                raise ObjectDamaged(
                    f"stored {kind} object {sha256} is {stored} bytes, not {size}: "
                    "the store is damaged"
                )
            found = file_sha256(final)
        except OSError as exc:
            raise self._unreadable(kind, sha256, exc) from None
        if found != sha256:
            raise ObjectDamaged(
                f"stored {kind} object {sha256} does not match its SHA-256 (its bytes hash to "
                f"{found}): the store is damaged"
            )
        return StoredObject(kind, sha256, size, str(final), created=False)


def _make_dirs(folder: Path) -> None:
    """``mkdir -p`` with every folder it makes owner-only (``Path.mkdir`` gives the parents it
    makes the umask's default)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=_DIR_MODE)
        fsync_dir(path.parent)  # the new folder's name is durable before an object is in it


def _remove_stale_tmps(folder: Path, sha256: str) -> None:
    """A killed put leaves ``.<sha256>.<random>.tmp``: a retry of the same bytes clears it."""
    for stray in folder.glob(f".{sha256}.*.tmp"):
        with contextlib.suppress(OSError):
            if stray.stat().st_mtime + _STALE_TMP_SECONDS < system_clock().timestamp():
                stray.unlink()
