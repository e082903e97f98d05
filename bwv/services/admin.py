"""Administration on the server host: the data folder and its schema, signing keys, docks and
cameras, users and their tokens, the auditor's whole-ledger check and bundles, categories.

Each function is one use case the command line calls (it never touches the database itself):
it does the work through the domain packages and records it as a leaf where the service would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bwv import access
from bwv.access import docks as dock_access
from bwv.access.files import make_private, tighten
from bwv.access.roles import Principal, Role
from bwv.base.errors import BwvError, NoteError, TamperError
from bwv.base.settings import Settings
from bwv.custody import merkle
from bwv.custody.bundle import make_bundle
from bwv.custody.leaf import Outcome, parse_leaf
from bwv.custody.note import Checkpoint, open_checkpoint
from bwv.custody.rotation import load_statements, rotate_keys, rotations_path
from bwv.custody.verify import LedgerReport, verify_ledger
from bwv.custody.witness import WitnessState
from bwv.keys import Keyring, VerifierKey, init_keys
from bwv.records import clips as records
from bwv.records import database as db
from bwv.services import retention
from bwv.services.context import Context
from bwv.services.fixity import check_store, record_fixity
from bwv.store import ObjectStore, open_store
from bwv.store.local import LocalStore

Progress = Callable[[int, int | None], None]


# --- the data folder --------------------------------------------------------------------------


def private_roots(s: Settings) -> list[Path]:
    """The folders that hold evidence or its records: the data folder, and a local store or
    upload folder configured outside it."""
    roots = [s.data_dir]
    if s.store_url.startswith("file:"):
        roots.append(LocalStore.from_url(s.store_url).root)
    if s.upload_dir is not None:
        roots.append(s.upload_dir)
    return [r for n, r in enumerate(roots) if not any(r.is_relative_to(o) for o in roots[:n])]


def initialise(ctx: Context) -> list[str]:
    """Make the data folder owner-only, bring the schema to head, make a signing key if none:
    one line for each thing done (none if it was all in place)."""
    s = ctx.settings
    done = []
    for root in private_roots(s):  # an existing folder left open: closed before adding to it
        if changed := tighten(root):
            done.append(f"{root} was open to group or others: {changed} paths made owner-only")
    s.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = db.make_engine(s.database_url)
    try:
        before = db.current_revision(engine)
        db.upgrade(engine)
        if before != db.head_revision():
            done.append(f"database schema {before or 'empty'} -> {db.head_revision()}")
    finally:
        engine.dispose()
    assert s.signing_key_path and s.keyring_path
    if not s.signing_key_path.exists():
        key = init_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
        ctx.record("admin", "key.created", details={"verifier_key": str(key.verifier)})
        done.append(f"signing key created; verifier key: {key.verifier}")
    tighten(s.data_dir)  # the keyring is written world-readable (it holds only public keys)
    return done


def make_install_private(ctx: Context) -> str | None:
    """For ``bwv serve`` on an install an older bwv made (or one copied): as :func:`initialise`
    does, one line saying what was tightened, or None."""
    return make_private(private_roots(ctx.settings), ctx.settings.database_url)


# --- signing keys -----------------------------------------------------------------------------


def create_signing_key(ctx: Context) -> VerifierKey:
    """Make the Ed25519 signing key (file mode 0600); its verifier key."""
    s = ctx.settings
    assert s.signing_key_path and s.keyring_path
    return init_keys(s.signing_key_path, s.keyring_path, s.ledger_origin).verifier


def rotate_signing_key(ctx: Context) -> VerifierKey:
    """Sign with a new key from now on (the old one signs the rotation statement); recorded,
    and a checkpoint issued under the new key. The new verifier key."""
    s = ctx.settings
    assert s.signing_key_path and s.keyring_path
    ctx.engine  # noqa: B018 - refuse before rotating if the database is unusable
    old, new = rotate_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
    ctx.record(
        "admin",
        "key.rotated",
        details={"old_verifier_key": str(old.verifier), "verifier_key": str(new.verifier)},
    )
    ctx.ledger.checkpoint()
    return new.verifier


@dataclass(frozen=True)
class KeyringView:
    keys: list[VerifierKey]  # oldest first
    current: VerifierKey | None  # the one signing now (None if there is no signing key)
    rotations: int  # rotation statements, each signed by the key it replaces


def keyring_view(ctx: Context) -> KeyringView:
    assert ctx.settings.signing_key_path is not None and ctx.settings.keyring_path is not None
    current = ctx.signer.verifier if ctx.settings.signing_key_path.exists() else None
    statements = load_statements(rotations_path(ctx.settings.keyring_path))
    return KeyringView(list(ctx.keyring), current, len(statements))


# --- docks and cameras ------------------------------------------------------------------------


def enroll_dock(ctx: Context, name: str) -> str:
    """Enrol a dock; its token (shown once, stored only as a hash)."""
    token = dock_access.enroll_dock(ctx.engine, name)
    ctx.record("admin", "dock.enrolled", details={"dock": name})
    return token


def revoke_dock(ctx: Context, name: str) -> None:
    dock_access.revoke_dock(ctx.engine, name)
    ctx.record("admin", "dock.revoked", details={"dock": name})


def assign_device(ctx: Context, serial: str, officer: str) -> None:
    """Issue camera ``serial`` to ``officer``: clips from it are indexed under that officer."""
    dock_access.assign_device(ctx.engine, serial, officer)
    ctx.record("admin", "device.assigned", details={"camera": serial, "officer": officer})


# --- users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once: only its hash is kept
    expires: datetime


def add_user(ctx: Context, name: str, role: str, days: int) -> IssuedToken:
    now = ctx.clock()
    token = access.add_user(ctx.engine, name, role, now, days)
    expires = now + timedelta(days=days)
    ctx.record(
        "admin",
        "user.added",
        details={"user": name, "role": role, "token_expires_at": expires.isoformat()},
    )
    return IssuedToken(token, expires)


def issue_token(ctx: Context, name: str, days: int) -> IssuedToken:
    now = ctx.clock()
    token = access.issue_token(ctx.engine, name, now, days)
    expires = now + timedelta(days=days)
    ctx.record(
        "admin",
        "user.token.issued",
        details={"user": name, "token_expires_at": expires.isoformat()},
    )
    return IssuedToken(token, expires)


def list_users(ctx: Context) -> list[Any]:
    return access.list_users(ctx.engine, ctx.clock())


def revoke_user(ctx: Context, name: str) -> int:
    """Revoke a user; how many live tokens ended."""
    ended = access.revoke_user(ctx.engine, name, ctx.clock())
    ctx.record("admin", "user.revoked", details={"user": name, "tokens_revoked": ended})
    return ended


# --- categories -------------------------------------------------------------------------------


def evidence_store(ctx: Context) -> ObjectStore:
    return open_store(ctx.settings.store_url)


def category_periods(ctx: Context) -> dict[str, int]:
    """Each category and how many days its clips are kept."""
    return retention.categories(ctx.engine)


def set_category(ctx: Context, name: str, days: int) -> int:
    """Add a category or change its period, as the local administrator; how many clips'
    retention dates changed."""
    who = Principal(ctx.settings.actor, Role.ADMIN)
    return retention.set_category(ctx, evidence_store(ctx), name, days, who)


# --- the auditor on the server host -----------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A check's result, and why it could not be recorded as a leaf (None if it was)."""

    report: Any
    not_recorded: str | None


def verify_whole_ledger(ctx: Context, progress: Progress | None = None) -> Recorded:
    """Verify every leaf, node and checkpoint (:func:`bwv.custody.verify.verify_ledger`) and
    record that it was done: a damaged ledger may refuse the record, which does not hide the
    result."""
    report: LedgerReport = verify_ledger(
        ctx.engine, ctx.keyring, ctx.settings.ledger_origin, progress=progress
    )
    try:
        ctx.record(
            "auditor",
            "ledger.verified",
            outcome=Outcome.OK if report.ok else Outcome.FAILED,
            details={"tree_size": report.size, "problems": len(report.findings)},
        )
    except BwvError as exc:
        return Recorded(report, exc.diagnosis)
    return Recorded(report, None)


def check_fixity(ctx: Context, progress: Progress | None = None) -> Recorded:
    """Re-hash the whole store against the index and the ledger, and record the result."""
    store = evidence_store(ctx)
    report = check_store(ctx, store, progress=progress)
    try:
        record_fixity(ctx, store, report, ctx.settings.actor, "auditor")
    except BwvError as exc:
        return Recorded(report, exc.diagnosis)
    return Recorded(report, None)


def issue_bundle(ctx: Context, evidence_id: str) -> dict[str, Any]:
    """Record the bundle's issue (an access to the clip's record), then make the bundle, which
    therefore proves its own issue too."""
    if not ctx.ledger.leaves_for(evidence_id):
        raise BwvError(f"no custody record for evidence id {evidence_id!r}")
    ctx.record("auditor", "audit.bundle", target=evidence_id)
    return make_bundle(ctx.ledger, evidence_id, ctx.keyring, ctx.rotations)


def latest_checkpoint(ctx: Context) -> str:
    """The latest signed checkpoint's note, issuing one if the log grew."""
    return ctx.ledger.checkpoint(force=True).note


def consistency_proof(ctx: Context, size1: int, size2: int | None) -> tuple[int, list[bytes]]:
    """RFC 9162 §2.1.4 between two tree sizes (``size2`` None: the latest checkpoint's)."""
    if size2 is None:
        size2 = ctx.ledger.checkpoint(force=True).size
    return size2, ctx.ledger.consistency_proof(size1, size2)


@dataclass(frozen=True)
class WitnessInput:
    note: str  # the latest signed checkpoint
    proof: list[bytes]  # consistency with the one the witness verified last (or empty)
    keyring: Keyring  # the server's keyring, pinned on a witness's first use
    rotations: list[str]


def local_witness_input(ctx: Context, state: Path) -> WitnessInput:
    """What a witness on the server host checks: the latest checkpoint and its consistency
    proof from the one recorded in ``state``."""
    assert ctx.settings.keyring_path is not None
    statements = load_statements(rotations_path(ctx.settings.keyring_path))
    latest = ctx.ledger.checkpoint(force=True)
    previous = WitnessState.load(state)
    proof: list[bytes] = []
    if previous is not None and previous.checkpoint_note:
        old = Checkpoint.from_note(previous.checkpoint_note)
        if 0 < old.size < latest.size:
            proof = ctx.ledger.consistency_proof(old.size, latest.size)
    return WitnessInput(latest.note, proof, ctx.keyring, statements)


def recent_leaves(ctx: Context, evidence_id: str | None, last: int) -> list[dict[str, Any]]:
    """The latest ``last`` leaves (those naming ``evidence_id`` if given), parsed, oldest
    first."""
    ledger = ctx.ledger
    if evidence_id:
        leaves = ledger.leaves_for(evidence_id)[-last:]
    else:
        size = ledger.size()
        leaves = [ledger.leaf(i) for i in range(max(0, size - last), size)]
    return [parse_leaf(leaf.body) for leaf in leaves]


# --- the auditor from afar: the tree recomputed from the leaves' bytes -------------------------


def recompute_ledger(
    note: str,
    keyring: Keyring,
    pages: Callable[[int, int], list[bytes]],
    progress: Progress | None = None,
) -> Checkpoint:
    """RFC 9162 §2.1.1 from the leaves' bytes alone: nothing the service says about hashes or
    roots is believed, only its signature on ``note`` (C2SP signed note) under ``keyring``.
    ``pages(start, end)`` fetches the next leaves; the checkpoint they were proven against."""
    try:
        checkpoint = open_checkpoint(note, keyring)
    except NoteError as exc:  # verification found something wrong: exit 2
        raise TamperError(f"the service's checkpoint fails: {exc.diagnosis}") from None
    hashes: list[bytes] = []
    while len(hashes) < checkpoint.size:
        page = pages(len(hashes), checkpoint.size)
        if not page:
            raise TamperError(
                f"the service has {len(hashes)} leaves, but signed a checkpoint of "
                f"{checkpoint.size}",
                len(hashes),
            )
        for leaf in page:
            index = len(hashes)
            if parse_leaf(leaf).get("sequence") != index:
                raise TamperError(f"leaf {index} does not carry sequence {index}", index)
            hashes.append(merkle.leaf_hash(leaf))
        if progress:
            progress(len(hashes), checkpoint.size)
    levels = merkle.tree_levels(hashes)
    if merkle.root_hash(merkle.levels_lookup(levels), checkpoint.size) != checkpoint.root:
        raise TamperError(
            f"the {checkpoint.size} leaves the service sent do not hash to the root it signed"
        )
    return checkpoint


# --- the index, as the demo shows it ----------------------------------------------------------


@dataclass(frozen=True)
class IndexedClip:
    evidence_id: str
    camera: str | None
    officer: str | None
    recorded_at: datetime | None
    duration_s: float | None
    video: str | None  # codec, size and frame rate
    audio_codec: str | None
    status: str
    sha256: str
    ledger_index: int | None


def indexed_clips(ctx: Context, evidence_ids: Iterable[str]) -> list[IndexedClip]:
    """The index's record of these clips, in order of recording."""
    with ctx.engine.connect() as conn:
        rows = records.clips_named(conn, list(evidence_ids))
    return [
        IndexedClip(
            r.evidence_id,
            r.camera_serial,
            r.officer,
            r.recorded_at,
            r.duration_s,
            f"{r.video_codec} {r.width}x{r.height} {r.frame_rate:g} fps" if r.video_codec else None,
            r.audio_codec,
            r.status,
            r.sha256,
            r.ledger_index,
        )
        for r in rows
    ]
