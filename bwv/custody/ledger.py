"""The custody ledger: append events, serve proofs, issue signed checkpoints.

Appends are serialised by the database (SQLite's write lock taken at ``BEGIN IMMEDIATE``;
a transaction-scoped advisory lock on PostgreSQL), so concurrent requests and processes get
unique, gap-free sequence numbers. Within one process, concurrent appends are committed together
(group commit): one durable transaction carries every event that arrived while the previous one
was being written, and each caller returns only once its own leaf is on disk.

Every event has an id (``Event.id``), kept in a unique column beside its leaf: appending an event
whose id is already in the ledger returns the leaf it has (its bytes re-made from the event must
be the stored ones, else :class:`EventIdReused`). So :meth:`Ledger.append` and
:meth:`Ledger.append_many` can retry an append that failed with the connection (the server went
away, a failover, a COMMIT whose answer was lost) on a new connection, with a bounded back-off:
the caller sees one leaf, committed once. With a libpq multi-host URL and
``target_session_attrs=read-write`` the new connection finds the promoted primary.

Nothing outside the database is called while the append lock is held (no store call: see
``bwv.services.holds``); :meth:`Ledger.locked` says whether it is held in this process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TypeVar

import tenacity
from sqlalchemy import Connection, Engine, TextClause, bindparam, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import col

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError, Conflict, ProofError, TamperError, Unavailable
from bwv.custody import merkle
from bwv.custody.leaf import Event, parse_leaf
from bwv.custody.note import Checkpoint, sign_note
from bwv.keys import SigningKey
from bwv.records.database import WRITE
from bwv.records.tables import LedgerCheckpoint, LedgerLeaf, MerkleNode, table_of

LEAF = table_of(LedgerLeaf)
NODE = table_of(MerkleNode)
CHECKPOINT = table_of(LedgerCheckpoint)
# What a leaf and a checkpoint are read as (typed rows: the model's columns through col()).
_LEAF_COLUMNS = select(col(LedgerLeaf.seq), col(LedgerLeaf.leaf_hash), col(LedgerLeaf.body))
# Leaves by event id: built once (an append runs it every transaction).
_BY_EVENT_IDS = text(
    "SELECT event_id, seq, leaf_hash, body FROM ledger_leaf WHERE event_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_CHECKPOINT_COLUMNS = select(
    col(LedgerCheckpoint.id), col(LedgerCheckpoint.note), col(LedgerCheckpoint.issued_at)
)

_T = TypeVar("_T")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # bwv.custody.leaf.format_time's


class EventIdReused(Conflict):
    """An event's id is in the ledger already, for a leaf with other contents."""


class LedgerUnavailable(Unavailable):
    """The database could not be reached (or kept) for an append within the retry window."""


@dataclass(frozen=True)
class AppendedLeaf:
    seq: int
    leaf_hash: bytes
    body: bytes


@dataclass(frozen=True)
class StoredLeaf:
    seq: int
    leaf_hash: bytes
    body: bytes


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as issued, with the signed note that carries it."""

    id: int
    checkpoint: Checkpoint
    note: str
    issued_at: datetime

    @property
    def size(self) -> int:
        return self.checkpoint.size


class _Slot:
    __slots__ = ("done", "error", "event", "result")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.done = False
        self.result: AppendedLeaf | None = None
        self.error: BaseException | None = None


class _GroupCommit:
    """Leader/follower batching: while one thread writes a batch, the others queue their events;
    when it finishes, the next thread to run becomes leader and writes everything queued.

    Like PostgreSQL's ``commit_delay``: a new leader waits a moment (at most ``delay`` seconds)
    for threads that have just been answered and are about to submit again, so one commit carries
    them too instead of the next batch holding a single event.
    """

    def __init__(
        self, write: Callable[[list[Event]], list[AppendedLeaf]], delay: float = 0.0005
    ) -> None:
        self._write = write
        self._delay = delay
        self._pending: list[_Slot] = []
        self._writing = False
        self._active = 0  # threads inside submit()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._arrived = threading.Condition(lock)

    def submit(self, event: Event) -> AppendedLeaf:
        slot = _Slot(event)
        with self._cond:
            self._active += 1
            self._pending.append(slot)
            self._arrived.notify()
            while not slot.done and self._writing:
                self._cond.wait()
            if not slot.done:
                self._writing = True
                if self._active > len(self._pending):
                    self._arrived.wait_for(
                        lambda: len(self._pending) >= self._active, timeout=self._delay
                    )
                batch, self._pending = self._pending, []
        try:
            if not slot.done:
                try:
                    results = self._write([s.event for s in batch])
                except BaseException as exc:
                    for s in batch:
                        s.error = exc
                else:
                    for s, result in zip(batch, results, strict=True):
                        s.result = result
                with self._cond:
                    for s in batch:
                        s.done = True
                    self._writing = False
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._active -= 1
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result


class Ledger:
    """An RFC 9162 log of custody events kept in the records database."""

    def __init__(
        self,
        engine: Engine,
        origin: str,
        signer: SigningKey | None = None,
        *,
        checkpoint_every_leaves: int = 1000,
        checkpoint_every_seconds: float = 60.0,
        clock: Callable[[], datetime] = system_clock,
        retry_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.retry_seconds = retry_seconds
        self.origin = origin
        self.signer = signer
        self.checkpoint_every_leaves = checkpoint_every_leaves
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.clock = clock
        self._group = _GroupCommit(self._write_batch)
        self._write_lock = threading.Lock()
        # The frontier (compact range) after the last batch this object wrote, so the next append
        # need not read it back; used only while the stored size still equals _frontier_size.
        self._frontier: dict[merkle.NodeKey, bytes] = {}
        self._frontier_size = -1
        self._latest: SignedCheckpoint | None = None

    # --- writing -------------------------------------------------------------------------------

    def append(self, event: Event) -> AppendedLeaf:
        """Append one event; returns once it is durably stored. A connection lost on the way
        (before, during or after COMMIT) is retried on a new one for up to ``retry_seconds``
        with the same event id, so the event is one leaf whatever happened to the first try;
        then :class:`LedgerUnavailable`."""
        return self._retrying(lambda: self._group.submit(event))

    def append_many(self, events: Sequence[Event]) -> list[AppendedLeaf]:
        """Append several events in one transaction (all or none), retried as :meth:`append`."""
        batch = list(events)
        return self._retrying(lambda: self._write_batch(batch)) if batch else []

    def locked(self) -> bool:
        """Whether a write transaction of this ledger (the append lock) is open in this
        process: no call outside the database may run while it is (a test holds the services
        to that)."""
        return self._write_lock.locked()

    def _connection_lost(self, exc: BaseException) -> bool:
        """An error that a new connection may not have: the connection was lost or could not be
        made (PostgreSQL: any OperationalError, e.g. a server shut down, a standby refused by
        ``target_session_attrs``). SQLite's are not: a locked file waits in busy_timeout."""
        if not isinstance(exc, DBAPIError):
            return False
        if exc.connection_invalidated:
            return True
        return isinstance(exc, OperationalError) and self.engine.dialect.name != "sqlite"

    def _retrying(self, write: Callable[[], _T]) -> _T:
        try:  # the first try outside tenacity: its set-up per append costs the hot path
            return write()
        except DBAPIError as exc:
            if not self._connection_lost(exc):
                raise
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._connection_lost),
            stop=tenacity.stop_after_delay(self.retry_seconds),
            wait=tenacity.wait_exponential(multiplier=0.05, max=1.0)
            + tenacity.wait_random(0, 0.05),
            reraise=True,
        )
        try:
            return retrying(write)
        except DBAPIError as exc:
            if not self._connection_lost(exc):
                raise
            why = (str(exc.orig).strip() or type(exc.orig).__name__).splitlines()[0]
            raise LedgerUnavailable(
                f"the ledger's database is unreachable (retried for {self.retry_seconds:g} s): "
                f"{why}",
                retry_after=30,
            ) from exc

    def checkpoint(self, *, force: bool = True) -> SignedCheckpoint:
        """Issue a checkpoint for the current tree if it grew since the last one (``force``), or
        only when one is due by the leaf/time schedule; return the latest checkpoint."""
        with self._write_lock, self._write_transaction() as conn:
            size = _lock_and_size(conn)
            latest = self._latest_checkpoint(conn)
            now = self.clock()
            if (latest is None or latest.size < size) and (force or self._due(latest, size, now)):
                frontier = self._fetch(conn, set(merkle.frontier(size)))
                latest = self._issue(conn, size, merkle.root_hash(_lookup(frontier), size), now)
        self._latest = latest
        if latest is None:
            raise BwvError("the ledger has no checkpoint yet")
        return latest

    def current_checkpoint(self) -> SignedCheckpoint:
        """The latest checkpoint, read without the append lock (a reader never waits for, or
        holds up, writers); one is issued under the lock only if none exists yet or the
        schedule says one is due (as :meth:`checkpoint_if_due` would)."""
        with self._read() as conn:
            latest = self._latest_checkpoint(conn)
            size = self._size(conn)
        if latest is not None and not self._due(latest, size, self.clock()):
            return latest
        return self.checkpoint(force=False)

    def checkpoint_if_due(self) -> SignedCheckpoint | None:
        """Issue a checkpoint if the schedule says one is due (for a periodic caller)."""
        if self.size() == 0:
            return None
        return self.checkpoint(force=False)

    def _write_transaction(self) -> _WriteTransaction:
        conn = self.engine.connect().execution_options(**WRITE)
        return _WriteTransaction(conn)

    def _write_batch(self, events: list[Event]) -> list[AppendedLeaf]:
        """The events in a transaction of their own. Their ids are not looked up first (a query
        every append would pay for): the unique index refuses an id the ledger holds, and then
        the batch is written again, looking them up."""
        try:
            with self.transaction(look_up_ids=False) as tx:
                return tx.append_many(events)
        except IntegrityError:
            with self.transaction() as tx:
                return tx.append_many(events)

    @contextmanager
    def transaction(self, *, look_up_ids: bool = True) -> Iterator[LedgerTransaction]:
        """A write transaction that holds the append lock until it commits.

        Leaves appended through it commit or roll back together with whatever else is written on
        ``tx.conn`` -- e.g. a clip's index row with its ``clip.ingested`` leaf. An event whose id
        the ledger holds is not appended again: its leaf is returned (unless ``look_up_ids`` is
        False, when the unique index refuses it with an IntegrityError, for :meth:`_write_batch`).
        """
        with self._write_lock:
            with self._write_transaction() as conn:
                tx = LedgerTransaction(self, conn, look_up_ids)
                yield tx
                tx._finish()
            # Only what has committed may be remembered.
            self._frontier = {k: tx._known[k] for k in merkle.frontier(tx.size)}
            self._frontier_size = tx.size
            if tx._issued is not None:
                self._latest = tx._issued

    def _latest_cached(self, conn: Connection) -> SignedCheckpoint | None:
        if self._latest is None:
            self._latest = self._latest_checkpoint(conn)
        return self._latest

    def _due(self, latest: SignedCheckpoint | None, size: int, now: datetime) -> bool:
        if latest is None:
            return size > 0
        if size <= latest.size:
            return False
        if size // self.checkpoint_every_leaves > latest.size // self.checkpoint_every_leaves:
            return True
        return (now - latest.issued_at).total_seconds() >= self.checkpoint_every_seconds

    def _issue(self, conn: Connection, size: int, root: bytes, now: datetime) -> SignedCheckpoint:
        if self.signer is None:
            raise BwvError("no signing key loaded: cannot issue a checkpoint")
        checkpoint = Checkpoint(self.origin, size, root)
        note = sign_note(checkpoint.body(), [self.signer])
        new_id = conn.execute(
            insert(CHECKPOINT).returning(CHECKPOINT.c.id),
            {"tree_size": size, "root": root, "note": note, "issued_at": now},
        ).scalar_one()
        return SignedCheckpoint(new_id, checkpoint, note, now)

    # --- reading -------------------------------------------------------------------------------

    def size(self) -> int:
        with self.engine.connect() as conn:
            return self._size(conn)

    @staticmethod
    def _size(conn: Connection) -> int:
        last = conn.execute(select(func.max(col(LedgerLeaf.seq)))).scalar()
        return 0 if last is None else last + 1

    def root(self, size: int) -> bytes:
        return self._compute(lambda get: merkle.root_hash(get, size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._compute(lambda get: merkle.inclusion_path(get, index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self._compute(lambda get: merkle.consistency_path(get, size1, size2))

    def leaf(self, seq: int) -> StoredLeaf:
        with self.engine.connect() as conn:
            row = conn.execute(_LEAF_COLUMNS.where(col(LedgerLeaf.seq) == seq)).first()
        if row is None:
            raise BwvError(f"no leaf {seq} in the ledger")
        return StoredLeaf(*row)

    def leaves_for(self, target: str) -> list[StoredLeaf]:
        """Every leaf that names ``target`` (an evidence id), in sequence order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                _LEAF_COLUMNS.where(col(LedgerLeaf.target) == target).order_by(col(LedgerLeaf.seq))
            ).all()
        return [StoredLeaf(*r) for r in rows]

    def checkpoints(self) -> list[SignedCheckpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(_CHECKPOINT_COLUMNS.order_by(col(LedgerCheckpoint.id))).all()
        return [_signed_checkpoint(*r) for r in rows]

    @staticmethod
    def _latest_checkpoint(conn: Connection) -> SignedCheckpoint | None:
        row = conn.execute(
            _CHECKPOINT_COLUMNS.order_by(col(LedgerCheckpoint.id).desc()).limit(1)
        ).first()
        return None if row is None else _signed_checkpoint(*row)

    def _compute(self, fn: Callable[[merkle.NodeLookup], _T]) -> _T:
        """Run a proof or root computation on stored nodes fetched in one query."""
        keys = merkle.nodes_needed(fn)
        with self._read() as conn:
            found = self._fetch(conn, keys)
        return fn(_lookup(found))

    def _read(self) -> Connection:
        conn = self.engine.connect()
        if conn.dialect.name == "postgresql":
            # Single-statement reads need no transaction: save the BEGIN/ROLLBACK round trips.
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    @staticmethod
    def _fetch(conn: Connection, keys: set[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
        """Stored hashes for ``keys`` in one indexed query; a missing one is tampering."""
        if not keys:
            return {}
        leaf_ids = [i for level, i in keys if level == 0]
        node_keys = [(level, i) for level, i in keys if level > 0]
        params: dict[str, int] = {}
        for n, seq in enumerate(leaf_ids):
            params[f"s{n}"] = seq
        for n, (level, i) in enumerate(node_keys):
            params[f"l{n}"], params[f"i{n}"] = level, i
        rows = conn.execute(_hashes_query(len(leaf_ids), len(node_keys)), params)
        found = {(level, i): h for level, i, h in rows}
        missing = keys - found.keys()
        if missing:
            level, i = min(missing)
            first = i << level
            size = Ledger._size(conn)
            if first >= size:
                raise ProofError(f"the ledger holds {size} leaves; leaf {first} is not in it")
            raise TamperError(
                f"stored Merkle node for leaves {first}..{((i + 1) << level) - 1} is missing",
                index=first,
            )
        return found


@functools.cache
def _hashes_query(leaf_count: int, node_count: int) -> TextClause:
    parts = []
    if leaf_count:
        marks = ", ".join(f":s{n}" for n in range(leaf_count))
        parts.append(
            f"SELECT 0 AS level, seq AS idx, leaf_hash AS hash FROM ledger_leaf "
            f"WHERE seq IN ({marks})"
        )
    if node_count:
        # OR of point lookups, not a row-value IN: SQLite searches the primary key for each term.
        terms = " OR ".join(f"(level = :l{n} AND idx = :i{n})" for n in range(node_count))
        parts.append(f"SELECT level, idx, hash FROM merkle_node WHERE {terms}")
    return text(" UNION ALL ".join(parts))


def _lock_and_size(conn: Connection) -> int:
    """Take the append lock for the rest of the transaction; return the ledger's size.

    SQLite's lock was taken by BEGIN IMMEDIATE (see bwv.records.database); PostgreSQL takes a
        transaction-scoped
    advisory lock (key 0x62777601) inside bwv_ledger_lock_size(), defined by the migration.
    """
    if conn.dialect.name == "postgresql":
        size: int = conn.exec_driver_sql("SELECT bwv_ledger_lock_size()").scalar_one()
        return size
    return Ledger._size(conn)


class LedgerTransaction:
    """Appends inside one database transaction; see :meth:`Ledger.transaction`."""

    def __init__(self, ledger: Ledger, conn: Connection, look_up_ids: bool = True) -> None:
        self.ledger = ledger
        self.conn = conn
        self._look_up_ids = look_up_ids
        self.size = _lock_and_size(conn)
        if ledger._frontier_size == self.size:
            self._known = dict(ledger._frontier)
        else:
            self._known = ledger._fetch(conn, set(merkle.frontier(self.size)))
        self._issued: SignedCheckpoint | None = None
        self._now: datetime | None = None  # time of the last append: the checkpoint's time

    def append(self, event: Event) -> AppendedLeaf:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[Event]) -> list[AppendedLeaf]:
        """Append the events in order; one whose id the ledger holds (or an earlier event of
        ``events`` has) is not appended again: its leaf is returned."""
        first = self.size
        now = self._now = self.ledger.clock()
        ids = {e.id for e in events}
        leaves = _leaves_with_ids(self.conn, ids) if self._look_up_ids else {}
        out: list[AppendedLeaf] = []
        new: list[tuple[Event, AppendedLeaf]] = []
        for e in events:
            if (had := leaves.get(e.id)) is not None:
                _same_event(e, had)
                out.append(had)
                continue
            body = e.leaf(first + len(new), now)
            leaf = leaves[e.id] = AppendedLeaf(first + len(new), merkle.leaf_hash(body), body)
            new.append((e, leaf))
            out.append(leaf)
        if not new:
            return out
        nodes = merkle.append_nodes(first, [leaf.leaf_hash for _, leaf in new], self._known)
        self.conn.execute(
            insert(LEAF),
            [
                {
                    "seq": leaf.seq,
                    "leaf_hash": leaf.leaf_hash,
                    "body": leaf.body,
                    "action": e.action,
                    "target": e.target,
                    "sha256": e.sha256,
                    "event_id": e.id,
                }
                for e, leaf in new
            ],
        )
        if nodes:
            self.conn.execute(
                insert(NODE), [{"level": lv, "idx": i, "hash": h} for (lv, i), h in nodes.items()]
            )
        self.size += len(new)
        return out

    def _finish(self) -> None:
        ledger, now = self.ledger, self._now or self.ledger.clock()
        # The cached latest checkpoint says whether one may be due; another process may have
        # issued one meanwhile, so decide on fresh data.
        if (
            ledger.signer is not None
            and ledger._due(ledger._latest_cached(self.conn), self.size, now)
            and ledger._due(ledger._latest_checkpoint(self.conn), self.size, now)
        ):
            root = merkle.root_hash(_lookup(self._known), self.size)
            self._issued = ledger._issue(self.conn, self.size, root, now)


class _WriteTransaction:
    """A write transaction (SQLite: holding the write lock from BEGIN) on its own connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self._tx = self.conn.begin()
        return self.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self.conn.close()


def _leaves_with_ids(conn: Connection, ids: set[str]) -> dict[str, AppendedLeaf]:
    """The stored leaves of the events with these ids, by id (indexed queries of at most
    500 ids: SQLite bounds a statement's parameters)."""
    wanted, found = sorted(ids), {}
    for n in range(0, len(wanted), 500):
        for event_id, seq, h, body in conn.execute(_BY_EVENT_IDS, {"ids": wanted[n : n + 500]}):
            found[event_id] = AppendedLeaf(seq, bytes(h), bytes(body))
    return found


def _same_event(event: Event, leaf: AppendedLeaf) -> None:
    """Refuse an event whose id names a leaf that is not this event's: the leaf's bytes re-made
    from the event at the stored leaf's sequence and time must be the stored bytes."""
    when = datetime.strptime(parse_leaf(leaf.body)["time"], _TIME_FORMAT).replace(tzinfo=UTC)
    if event.leaf(leaf.seq, when) != leaf.body:
        raise EventIdReused(
            f"event id {event.id!r} is in the ledger already, as leaf {leaf.seq}, for another "
            f"event: not appended again"
        )


def _lookup(nodes: dict[merkle.NodeKey, bytes]) -> merkle.NodeLookup:
    return lambda level, index: nodes[(level, index)]


def _signed_checkpoint(row_id: int | None, note: str, issued_at: datetime) -> SignedCheckpoint:
    assert row_id is not None  # a stored row has its key
    issued = issued_at if issued_at.tzinfo else issued_at.replace(tzinfo=UTC)  # SQLite: naive UTC
    return SignedCheckpoint(row_id, Checkpoint.from_note(note), note, issued)
