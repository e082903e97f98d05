"""Wiring from settings to the parts: database engine, keys, ledger. Built lazily, so a command
that needs only the keyring never opens the database."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine

from bwv import db
from bwv.clock import Clock
from bwv.config import Settings
from bwv.custody.leaf import Event
from bwv.custody.ledger import AppendedLeaf, Ledger
from bwv.keys import Keyring, SigningKey, load_keyring, load_signing_key


class Context:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = Clock()  # tests replace it with a MovableClock

    @cached_property
    def engine(self) -> Engine:
        return db.open_engine(self.settings.database_url)

    @cached_property
    def keyring(self) -> Keyring:
        assert self.settings.keyring_path is not None
        return load_keyring(self.settings.keyring_path)

    @cached_property
    def signer(self) -> SigningKey:
        assert self.settings.signing_key_path is not None
        return load_signing_key(
            self.settings.signing_key_path, self.settings.ledger_origin, self.keyring
        )

    @cached_property
    def ledger(self) -> Ledger:
        s = self.settings
        return Ledger(
            self.engine,
            s.ledger_origin,
            self.signer,
            checkpoint_every_leaves=s.checkpoint_every_leaves,
            checkpoint_every_seconds=s.checkpoint_every_seconds,
        )

    def record(self, role: str, action: str, **fields: object) -> AppendedLeaf:
        """Append an event done by the local operator (``settings.actor``)."""
        return self.ledger.append(
            Event(actor=self.settings.actor, role=role, action=action, **fields)
        )  # type: ignore[arg-type]

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
