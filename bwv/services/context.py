"""Wiring from settings to the parts: database engine, keys, ledger, store of record. Built
lazily, so a command that needs only the keyring never opens the database.

:class:`Context` is what every use case is handed; :class:`Services` is what the running
service's requests share besides (the store it checked at start, the uploads in flight)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bwv.base.clock import Clock, system_clock
from bwv.base.errors import BwvError
from bwv.base.settings import Settings
from bwv.custody.leaf import Event
from bwv.custody.ledger import AppendedLeaf, Ledger
from bwv.ingest.uploads import Limits, Uploads
from bwv.keys import Keyring, SigningKey, load_keyring, load_signing_key
from bwv.records import database as db
from bwv.services.metrics import Metrics, from_settings
from bwv.store import ObjectStore, open_store

log = logging.getLogger("bwv.keys")
_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    """What changes when the file is replaced or rewritten (one stat: cheap at every signing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)


class _ReloadingLedger(Ledger):
    """A ledger that signs checkpoints with the key the Context holds at that moment."""

    def __init__(self, ctx: Context, *args: Any, **kwargs: Any) -> None:
        self._ctx = ctx
        super().__init__(*args, **kwargs)

    @property
    def signer(self) -> SigningKey:
        return self._ctx.signer

    @signer.setter
    def signer(self, value: SigningKey | None) -> None:
        pass  # always the Context's current key


class Context:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = system_clock  # tests replace it with a MovableClock
        self._keys_lock = threading.Lock()
        self._signer: SigningKey | None = None
        self._signer_stamp: _Stamp = None
        self._keyring: Keyring | None = None
        self._keyring_stamp: _Stamp = None
        self._clip_locks: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._clip_locks_guard = threading.Lock()

    @contextmanager
    def clip_lock(self, evidence_id: str) -> Iterator[None]:
        """Serialise the changes to one clip's keeping (holds, retention dates, its copies'
        locks) in this process, while they call the store: the store is changed outside the
        ledger's append lock (which no other clip's change then waits for), and a change that
        removes a hold in the store must not interleave with one that places it. Taken before
        a ledger transaction, never inside one. The API is the one process that changes holds;
        ``bwv categories set`` (another process) only lengthens locks, which commutes."""
        with self._clip_locks_guard:
            lock, users = self._clip_locks.setdefault(evidence_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._clip_locks_guard:
                users[0] -= 1
                if not users[0]:
                    del self._clip_locks[evidence_id]

    @cached_property
    def engine(self) -> Engine:
        return db.open_engine(self.settings.database_url)

    @cached_property
    def store(self) -> ObjectStore:
        """The store of record, opened once (not checked: :meth:`ObjectStore.check` does)."""
        return open_store(self.settings.store_url)

    @property
    def keyring(self) -> Keyring:
        """Every verifier key the service has used, re-read when the keyring file changes."""
        assert self.settings.keyring_path is not None
        path = self.settings.keyring_path
        stamp = _stamp(path)
        with self._keys_lock:
            if self._keyring is None or stamp != self._keyring_stamp:
                self._keyring, self._keyring_stamp = load_keyring(path), stamp
            return self._keyring

    @property
    def rotations(self) -> list[str]:
        """The key rotation statements, oldest first (bwv.custody.rotation); none if never
        rotated."""
        from bwv.custody.rotation import load_statements, rotations_path

        assert self.settings.keyring_path is not None
        return load_statements(rotations_path(self.settings.keyring_path))

    @property
    def signer(self) -> SigningKey:
        """The signing key, reloaded when its file changes (``bwv keys rotate`` while serving):
        no restart, and every signature is made whole by one key. A replaced file that cannot be
        loaded keeps the last good key signing, with an error logged once."""
        assert self.settings.signing_key_path is not None
        path = self.settings.signing_key_path
        stamp = _stamp(path)
        if self._signer is not None and stamp == self._signer_stamp:
            return self._signer
        with self._keys_lock:
            if self._signer is not None and stamp == self._signer_stamp:
                return self._signer
            keyring_path = self.settings.keyring_path
            assert keyring_path is not None
            try:
                key = load_signing_key(
                    path, self.settings.ledger_origin, load_keyring(keyring_path)
                )
            except BwvError as exc:
                if self._signer is None:
                    raise
                log.error(
                    "signing key not reloaded, still signing with %s: %s",
                    self._signer.verifier,
                    exc.diagnosis,
                )
                self._signer_stamp = stamp
                return self._signer
            if self._signer is not None and key.verifier != self._signer.verifier:
                log.warning("signing key changed: now signing with %s", key.verifier)
            self._signer, self._signer_stamp = key, stamp
            return key

    @cached_property
    def ledger(self) -> Ledger:
        s = self.settings
        return _ReloadingLedger(
            self,
            self.engine,
            s.ledger_origin,
            self.signer,
            checkpoint_every_leaves=s.checkpoint_every_leaves,
            checkpoint_every_seconds=s.checkpoint_every_seconds,
        )

    def record(self, role: str, action: str, **fields: Any) -> AppendedLeaf:
        """Append an event done by the local operator (``settings.actor``)."""
        return self.ledger.append(
            Event(actor=self.settings.actor, role=role, action=action, **fields)
        )

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


@dataclass
class Services:
    """What the service's requests share: the context, the store of record (checked when the
    service started), the uploads in flight and the instance's metrics."""

    ctx: Context
    store: ObjectStore
    uploads: Uploads
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        s = self.ctx.settings  # the per-dock caps and free space kept, from the settings
        self.metrics = from_settings(lambda: self.ctx.ledger.size(), s.metrics_token_file)
        self.uploads.limits = Limits(
            s.dock_max_uploads, s.dock_max_reserved_bytes, s.upload_min_free_bytes
        )
