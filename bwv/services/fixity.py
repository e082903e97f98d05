"""Fixity: do the stored objects still hash to what the ledger recorded?

Every original, disclosure copy and redaction plan the records name is read back from the store
of record and re-hashed (SHA-256, FIPS 180-4), and its size and digest are compared with the
index row and with the leaf that recorded it (``clip.ingested``, ``export.created``). A damaged
object -- bytes differ, size differs, or gone -- is named by evidence id (and export id for a
copy), as is one that cannot be read (an I/O error, or one object the store will not serve
while it answers for the rest). Objects of clips that retention deleted are expected to be
absent, but only where a ``clip.deleted`` leaf says so: an index that marks a clip deleted
with no tombstone in the ledger is itself a damage.

One run is one ``store.verified`` leaf (objects, bytes, when; outcome ``failed`` if anything was
damaged) and one ``store.damaged`` leaf per damaged object. ``bwv audit fixity`` runs it on the
server host; the service runs it on a schedule (``BWV_FIXITY_EVERY_SECONDS``). Downloads use
:func:`verified_chunks`, which refuses an original that no longer matches before a byte leaves.

Here rather than in ``bwv.custody``: it reads the records and the store, as
``bwv.services.retention``
does, while ``bwv.custody`` holds only what an auditor needs to check the ledger offline.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.custody.leaf import Event, Outcome, format_time, parse_leaf
from bwv.records import clips as records
from bwv.services.context import Context
from bwv.store import ObjectDamaged, ObjectMissing, ObjectStore, StoreError, StoreUnavailable

SCRUB_ACTOR, SCRUB_ROLE = "fixity", "system"
_SETTLE_SECONDS = 2.0  # how long a retention run in progress is given to write its tombstone
_CHUNK = 1 << 20
_NOUN = {"originals": "original", "exports": "disclosure copy", "plans": "redaction plan"}

Progress = Callable[[int, int], None]  # bytes done, bytes expected


class FixityDamage(BwvError):
    """Stored objects are damaged or missing (exit status 2, like a failed verification)."""

    exit_code = 2


class FixityStopped(BwvError):
    """The run was asked to stop (the service is shutting down); nothing was recorded."""


@dataclass(frozen=True)
class Expected:
    """One object the records say the store holds."""

    kind: str
    sha256: str
    size: int | None  # None for a plan: no record holds its size
    evidence_id: str
    export_id: str | None = None
    gone: bool = False  # its clip was deleted under retention (a tombstone): absence expected
    disagreement: str | None = None  # the index and the ledger differ about it
    unrecorded_deletion: bool = False  # the index marks the clip deleted; no tombstone (yet)


@dataclass(frozen=True)
class Damage:
    expected: Expected
    problem: str  # "missing", "size differs", "bytes differ", "bytes unreadable",
    # "index differs from the ledger"
    found_sha256: str | None = None
    found_size: int | None = None
    error: str | None = None  # why the bytes could not be read (no server path)

    @property
    def diagnosis(self) -> str:
        """One line naming the object and what is wrong with it (no server paths)."""
        e = self.expected
        what = f"the stored {_NOUN[e.kind]} of {e.evidence_id}"
        if e.export_id:
            what += f" (disclosure copy {e.export_id})" if e.kind == "exports" else ""
            what += f" (plan of {e.export_id})" if e.kind == "plans" else ""
        if self.problem == "missing":
            also = f" ({e.disagreement})" if e.disagreement else ""
            return f"{what} is missing: the store holds no object {e.sha256}{also}"
        if self.problem == "bytes unreadable":
            return f"{what} is damaged: its bytes cannot be read ({self.error})"
        if self.problem == "size differs":
            return (
                f"{what} is damaged: it is {self.found_size} bytes, not the {e.size} recorded "
                f"(SHA-256 {self.found_sha256}, not {e.sha256})"
            )
        if self.problem == "bytes differ":
            return (
                f"{what} is damaged: its bytes hash to {self.found_sha256}, not the recorded "
                f"{e.sha256}"
            )
        return f"{what}: {e.disagreement}"

    def details(self) -> dict[str, Any]:
        e = self.expected
        return {
            "kind": e.kind,
            "export_id": e.export_id,
            "problem": self.problem,
            "expected_sha256": e.sha256,
            "expected_size": e.size,
            "found_sha256": self.found_sha256,
            "found_size": self.found_size,
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class FixityReport:
    started: datetime
    finished: datetime | None = None
    objects: int = 0  # read back and compared
    bytes: int = 0
    absent_as_expected: int = 0  # deleted under retention
    damaged: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def summary(self) -> str:
        absent = (
            f"; {self.absent_as_expected} deleted under retention, absent as expected"
            if self.absent_as_expected
            else ""
        )
        if self.ok:
            return (
                f"OK {self.objects} stored objects ({self.bytes} bytes) re-hashed: every "
                f"original, disclosure copy and plan is what the ledger recorded{absent}"
            )
        named = ", ".join(dict.fromkeys(d.expected.evidence_id for d in self.damaged))
        return (
            f"fixity FAILED: {len(self.damaged)} of {self.objects + self.absent_as_expected} "
            f"stored objects damaged or missing ({named}){absent}"
        )


# -- what the records say is stored ---------------------------------------------------------


def _leaf(body: bytes | None, action: str, evidence_id: str) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        fields = parse_leaf(bytes(body))
    except BwvError:
        return None
    if fields.get("action") != action or fields.get("target") != evidence_id:
        return None
    return fields


def expected_objects(ctx: Context) -> list[Expected]:
    """Every object the index names, each checked against the leaf that recorded it: the
    ledger's SHA-256 and size are the ones the store is held to (the index is a copy)."""
    found: list[Expected] = []
    with ctx.engine.connect() as conn:
        clips = records.indexed_originals(conn)
        exports = records.indexed_copies(conn)
        # Few clips are deleted: look their tombstones up by target, not the whole ledger.
        deleted = [c.evidence_id for c in clips if c.deleted_at is not None]
        tombstoned = records.tombstoned(conn, deleted)
    for c in clips:
        leaf = _leaf(c.leaf_body, "clip.ingested", c.evidence_id)
        sha, size, disagreement = c.sha256, c.size, None
        if leaf is None:
            disagreement = "no clip.ingested leaf at the index's ledger position"
        else:
            recorded_size = (leaf.get("details") or {}).get("size")
            if leaf.get("sha256") != c.sha256 or (
                recorded_size is not None and recorded_size != c.size
            ):
                disagreement = (
                    f"the index says SHA-256 {c.sha256} and {c.size} bytes, the ledger "
                    f"{leaf.get('sha256')} and {recorded_size} bytes"
                )
                sha = leaf.get("sha256") or c.sha256
                size = recorded_size if isinstance(recorded_size, int) else c.size
        gone, unrecorded = _deletion(c.evidence_id, c.deleted_at, tombstoned)
        if unrecorded and disagreement is None:
            disagreement = UNRECORDED_DELETION
        found.append(
            Expected("originals", sha, size, c.evidence_id, None, gone, disagreement, unrecorded)
        )
    plans: set[str] = set()
    for e in exports:
        leaf = _leaf(e.leaf_body, "export.created", e.evidence_id)
        sha, disagreement = e.sha256, None
        if leaf is None:
            disagreement = "no export.created leaf at the index's ledger position"
        elif leaf.get("sha256") != e.sha256:
            disagreement = f"the index says SHA-256 {e.sha256}, the ledger {leaf.get('sha256')}"
            sha = leaf.get("sha256") or e.sha256
        gone, unrecorded = _deletion(e.evidence_id, e.deleted_at, tombstoned)
        if unrecorded and disagreement is None:
            disagreement = UNRECORDED_DELETION
        found.append(
            Expected(
                "exports", sha, e.size, e.evidence_id, e.export_id, gone, disagreement, unrecorded
            )
        )
        # The plan rendered, and the officer's reviewed plan it was merged from (kept beside).
        reviewed = ((leaf or {}).get("details") or {}).get("reviewed_plan_sha256")
        for plan_sha in (e.plan_sha256, reviewed):
            if isinstance(plan_sha, str) and plan_sha not in plans:
                plans.add(plan_sha)
                why = UNRECORDED_DELETION if unrecorded else None
                plan = Expected(
                    "plans", plan_sha, None, e.evidence_id, e.export_id, gone, why, unrecorded
                )
                found.append(plan)
    return found


UNRECORDED_DELETION = "the index marks its clip deleted, but no clip.deleted leaf records that"


def _deletion(evidence_id: str, deleted_at: Any, tombstoned: set[str]) -> tuple[bool, bool]:
    """(gone, unrecorded): deleted with a tombstone, or marked deleted in the index only."""
    if deleted_at is None:
        return False, False
    gone = evidence_id in tombstoned
    return gone, not gone


# -- reading objects back ---------------------------------------------------------------------


def check_object(
    store: ObjectStore,
    expected: Expected,
    on_bytes: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[Damage | None, int]:
    """Read one object back and compare it; ``(damage or None, bytes read)``.
    :class:`~bwv.store.StoreUnavailable` (the store cannot be read now) is raised, not judged."""
    digest, size = hashlib.sha256(), 0
    try:
        with store.open_current(expected.kind, expected.sha256) as f:
            while data := f.read(_CHUNK):
                if stop is not None and stop.is_set():
                    raise FixityStopped("the fixity check was stopped")
                digest.update(data)
                size += len(data)
                if on_bytes:
                    on_bytes(len(data))
    except ObjectMissing:
        return Damage(expected, "missing"), 0
    except OSError as exc:  # EIO and the like, mid-read: the object is there but unreadable
        why = exc.strerror or type(exc).__name__
        return Damage(expected, "bytes unreadable", error=why), size
    found = digest.hexdigest()
    if expected.size is not None and size != expected.size:
        return Damage(expected, "size differs", found, size), size
    if found != expected.sha256:
        return Damage(expected, "bytes differ", found, size), size
    if expected.disagreement:
        return Damage(expected, "index differs from the ledger", found, size), size
    return None, size


def _still_expected(ctx: Context, expected: Expected) -> bool:
    """Retention may have deleted the clip while this run read the store: then the object is
    absent as expected, not missing. Retention marks the clip, deletes its objects, then writes
    the tombstone: a clip marked deleted with no tombstone is given a moment to get one."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        with ctx.engine.connect() as conn:
            clip = records.clip(conn, expected.evidence_id)
            if clip is None or clip.deleted_at is None:
                return True
            if records.has_tombstone(conn, expected.evidence_id):
                return False
        if time.monotonic() >= deadline:
            return True  # marked deleted in the index only: the object is still owed
        time.sleep(0.1)


def _check_reachable(
    store: ObjectStore,
    expected: Expected,
    advance: Callable[[int], None],
    stop: threading.Event | None,
) -> tuple[Damage | None, int]:
    """Check one object; if the store will not serve it, try once more, then ask the store
    itself: a store that does not answer at all stops the run (``StoreUnavailable``, exit 1),
    one object it will not serve while it answers is named as unreadable."""
    try:
        return check_object(store, expected, advance, stop)
    except StoreUnavailable:
        pass
    try:
        return check_object(store, expected, advance, stop)
    except StoreUnavailable as exc:
        store.check()  # raises while the store is wholly unreachable
        return Damage(expected, "bytes unreadable", error=exc.shown), 0


def check_store(
    ctx: Context,
    store: ObjectStore,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> FixityReport:
    """Re-hash every object the records name; nothing is recorded (see :func:`run_fixity`)."""
    report = FixityReport(started=system_clock())
    objects = expected_objects(ctx)
    total = sum(o.size or 0 for o in objects if not o.gone)
    done = 0

    def advance(n: int) -> None:
        nonlocal done, total
        done += n
        total = max(total, done)
        if progress:
            progress(done, total)

    for expected in objects:
        damage, size = _check_reachable(store, expected, advance, stop)
        missing = damage is not None and damage.problem == "missing"
        if missing and (expected.gone or not _still_expected(ctx, expected)):
            report.absent_as_expected += 1
            continue
        # Marked deleted with no tombstone (so a damage as read): unless a retention run was
        # between its two steps and has now written the tombstone.
        if (
            expected.unrecorded_deletion
            and damage is not None
            and damage.problem in ("missing", "index differs from the ledger")
            and not _still_expected(ctx, expected)
        ):
            report.absent_as_expected += 1
            continue
        report.objects += 1
        report.bytes += size
        if damage is not None:
            report.damaged.append(damage)
    report.finished = system_clock()
    return report


def record_fixity(
    ctx: Context, store: ObjectStore, report: FixityReport, actor: str, role: str
) -> None:
    """One ``store.damaged`` leaf per damaged object, then the ``store.verified`` summary."""
    events = [
        Event(
            actor,
            role,
            "store.damaged",
            target=d.expected.evidence_id,
            sha256=d.expected.sha256,
            outcome=Outcome.FAILED,
            reason=d.diagnosis,
            details=d.details(),
        )
        for d in report.damaged
    ]
    assert report.finished is not None
    events.append(
        Event(
            actor,
            role,
            "store.verified",
            outcome=Outcome.OK if report.ok else Outcome.FAILED,
            details={
                "store": type(store).__name__,
                "objects": report.objects,
                "bytes": report.bytes,
                "damaged": len(report.damaged),
                "absent_as_expected": report.absent_as_expected,
                "started": format_time(report.started),
                "finished": format_time(report.finished),
            },
        )
    )
    ctx.ledger.append_many(events)


def run_fixity(
    ctx: Context,
    store: ObjectStore,
    *,
    actor: str,
    role: str,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> FixityReport:
    """Check the whole store and record the result (the CLI and the service's scrub)."""
    report = check_store(ctx, store, progress=progress, stop=stop)
    record_fixity(ctx, store, report, actor, role)
    return report


def last_verified(ctx: Context) -> datetime | None:
    """When the store was last verified: the last ``store.verified`` leaf (of any instance or
    the CLI); before the first, when the ledger began (a new install is not scrubbed at its
    first start-up); None for an empty ledger."""
    with ctx.engine.connect() as conn:
        body = records.last_leaf_body(conn, "store.verified") or records.first_leaf_body(conn)
    if body is None:
        return None
    return datetime.fromisoformat(parse_leaf(bytes(body))["time"].replace("Z", "+00:00"))


# -- serving an original ----------------------------------------------------------------------


def damaged_diagnosis(kind: str, evidence_id: str, exc: StoreError) -> str:
    """What to answer (and record) when a stored object turns out damaged on its way out."""
    noun = _NOUN.get(kind, kind)
    if isinstance(exc, ObjectMissing):
        return f"the stored {noun} of {evidence_id} is missing: {exc.shown}"
    return f"the stored {noun} of {evidence_id} is damaged: {exc.shown}"


def verified_chunks(store: ObjectStore, kind: str, sha256: str, size: int) -> Iterator[bytes]:
    """The object's bytes, refused before the first one is handed out unless they hash to
    ``sha256`` and number ``size`` (fail closed: a damaged original is never served as the
    original). Read twice, so the second read is checked too: the last chunk is held back until
    the digest agrees, so a change in between breaks the transfer off short of its length.

    Raises :class:`~bwv.store.ObjectDamaged` / ``ObjectMissing`` / ``StoreUnavailable`` up
    front; the returned iterator raises ``ObjectDamaged`` in place of its last chunk."""
    expected = Expected(kind, sha256, size, "")
    damage, _ = check_object(store, expected)
    if damage is not None:
        if damage.problem == "missing":
            raise ObjectMissing(f"no {kind} object {sha256} in the store")
        if damage.problem == "bytes unreadable":
            raise ObjectDamaged(f"its bytes cannot be read ({damage.error})")
        raise ObjectDamaged(
            f"{damage.problem}: {damage.found_size} bytes hashing to {damage.found_sha256}, "
            f"not the recorded {size} bytes hashing to {sha256}"
        )
    return _held_back(store.open(kind, sha256), kind, sha256)  # opened now: refusals up front


def _held_back(f: BinaryIO, kind: str, sha256: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    held: bytes | None = None
    with f:
        while data := f.read(_CHUNK):
            digest.update(data)
            if held is not None:
                yield held
            held = data
    if digest.hexdigest() != sha256:
        raise ObjectDamaged(f"stored {kind} object {sha256} changed while it was being sent")
    if held is not None:
        yield held
