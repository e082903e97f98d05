"""What every store of record promises (invariants 1 and 2 of ARCHITECTURE.md live here)."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from bwv.base.errors import BwvError
from bwv.base.files import replaced_when_done

# Originals; disclosure copies; the redaction plans the copies were rendered from.
KINDS = ("originals", "exports", "plans")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoreError(BwvError):
    """The store refused or failed an operation.

    ``diagnosis`` may name where the store is (a local root path, an S3 endpoint): it is for
    the operator and the log. ``shown`` is the same line without that, for HTTP answers and
    leaves (which are permanent and shown to auditors and officers)."""

    status = 503  # the store's fault, never the caller's

    def __init__(self, diagnosis: str, *, shown: str | None = None) -> None:
        super().__init__(diagnosis)
        self.shown = shown or diagnosis


class StoreUnavailable(StoreError):
    """The store cannot be reached or written just now; retrying later may succeed."""


class ObjectDamaged(StoreError):
    """A stored object is not what was stored under its SHA-256: its bytes or size differ, or
    (S3) its current version was not written by bwv."""

    status = 500  # no retry mends it


class ObjectMissing(ObjectDamaged):
    """The store holds no object under that SHA-256 (deleted, or a delete marker on S3)."""


@dataclass(frozen=True)
class StoredObject:
    kind: str
    sha256: str
    size: int
    location: str
    created: bool  # False when identical bytes were already stored


def check_key(kind: str, sha256: str) -> None:
    if kind not in KINDS:
        raise StoreError(f"unknown object kind {kind!r}")
    if not _SHA256.fullmatch(sha256):
        raise StoreError(f"not a lowercase hex SHA-256: {sha256!r}")


class ObjectStore(ABC):
    """Content-addressed, write-once object storage.

    ``put`` stores a file's bytes under their SHA-256 (which the caller has computed while the
    bytes arrived; the store checks it where it reads the bytes anyway). Storing the same bytes
    again creates nothing new. Nothing here overwrites an object, and only :meth:`expire` deletes
    one: it is called by ``bwv.services.retention`` alone, for a clip whose retention has ended
    with no hold (invariant 1). ``adopt`` lets a store take over the (fsynced, no longer
    written) source file instead of copying it.

    ``retain_until``, :meth:`extend_retention` and :meth:`set_legal_hold` keep a store that can
    lock objects (S3 object lock) in step with the records; a store that cannot treats them as
    no-ops, and then the records alone enforce the policy.
    """

    @abstractmethod
    def put(
        self,
        kind: str,
        sha256: str,
        source: Path,
        *,
        adopt: bool = False,
        retain_until: datetime | None = None,
    ) -> StoredObject: ...

    @abstractmethod
    def exists(self, kind: str, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, kind: str, sha256: str) -> int: ...

    @abstractmethod
    def open(self, kind: str, sha256: str) -> BinaryIO: ...

    def read_chunks(self, kind: str, sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self.open(kind, sha256) as f:
            while data := f.read(chunk):
                yield data

    def open_current(self, kind: str, sha256: str) -> BinaryIO:
        """The bytes the store now holds under the key, whoever wrote them, for a fixity check
        (``bwv.services.fixity``); :class:`ObjectMissing` if it holds none."""
        return self.open(kind, sha256)

    def fetch(self, kind: str, sha256: str, dest: Path) -> None:
        """Copy an object to ``dest`` whole or not at all, checking on the way that its bytes
        still have the SHA-256 they are stored under (a mismatch is a damaged store)."""
        digest = hashlib.sha256()
        with replaced_when_done(dest) as partial:
            with partial.open("wb") as out:
                for data in self.read_chunks(kind, sha256):
                    digest.update(data)
                    out.write(data)
            if digest.hexdigest() != sha256:
                raise ObjectDamaged(
                    f"stored {kind} object {sha256} does not match its SHA-256 "
                    f"(its bytes hash to {digest.hexdigest()}): the store is damaged"
                )

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store can take writes now."""

    def describe(self) -> str:
        """Where the objects are, for the records (no credentials)."""
        return type(self).__name__

    @abstractmethod
    def extend_retention(self, kind: str, sha256: str, until: datetime) -> None:
        """Keep the object locked until at least ``until``; a lock is never shortened."""

    @abstractmethod
    def set_legal_hold(self, kind: str, sha256: str, on: bool) -> None:
        """Place (``on``) or remove a legal hold: while placed, the object cannot be deleted."""

    @abstractmethod
    def expirable(self, kind: str, sha256: str) -> str | None:
        """Whether :meth:`expire` may delete the object now: None if it may (or it is already
        gone), else the one-line reason the store would refuse (a lock, a legal hold). Retention
        asks this of every object of a clip before deleting any of them."""

    @abstractmethod
    def expire(self, kind: str, sha256: str) -> None:
        """Delete the object for good (every stored version of it); nothing to do if it is gone.

        Raises :class:`StoreError` if the store refuses: a lock not yet passed, a legal hold.
        Only ``bwv.services.retention`` calls this (a test holds the source tree to that)."""
