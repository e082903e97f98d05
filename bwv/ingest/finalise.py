"""Turning a complete upload into evidence: verify, probe, store, index, record, receipt.

The order is what keeps the invariants: the bytes are in the store of record before anything
says they are; the index row and the ``clip.ingested`` leaf commit in one transaction; the
receipt exists only after that commit. A failure at any step leaves no receipt and no index
row, and the complete upload stays for a retry (in the store already, if it got that far: a retry
copies it back from there, see :meth:`Uploads.restore`).

Callers hold the upload's lock (:meth:`Uploads.lock`) and read the upload under it, so a
finalisation never runs beside a ``PATCH`` of the same upload or beside another finalisation.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime
from typing import Any, cast

from sqlalchemy.exc import IntegrityError

from bwv.access.docks import officer_for
from bwv.access.roles import Principal
from bwv.base.errors import Failed, NotFound, Unavailable
from bwv.custody.leaf import Event, Outcome, format_time
from bwv.ingest.probe import parse_time, probe_clip
from bwv.ingest.receipts import sign_receipt
from bwv.ingest.uploads import Upload, UploadError
from bwv.records import clips as records
from bwv.services.categories import (
    UNCATEGORISED,
    categories,
    retain_until_for,
    retention_start,
)
from bwv.services.context import Context, Services
from bwv.store import ObjectDamaged, ObjectMissing, StoreUnavailable

__all__ = [
    "Services",  # once defined here; bwv.services.context is its home
    "finalise",
    "finalise_for_dock",
    "new_evidence_id",
    "owned",
    "readable_id",
    "receipt_for_dock",
    "receipt_for_sha256",
]

log = logging.getLogger("bwv.ingest")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def readable_id(prefix: str, when: datetime) -> str:
    """``PREFIX-YYYYMMDD-XXXXXXXX``: a date and 40 random bits in Crockford base 32, easy to
    read out over a radio."""
    code = "".join(secrets.choice(_CROCKFORD) for _ in range(8))
    return f"{prefix}-{when:%Y%m%d}-{code}"


def new_evidence_id(when: datetime) -> str:
    """``EV-YYYYMMDD-XXXXXXXX``, dated by ingest."""
    return readable_id("EV", when)


# What a leaf keeps of each Upload-Metadata value (docs/INGEST.md).
MAX_LEAF_VALUE = 200


def _answered(ctx: Context, stored: str) -> dict[str, Any]:
    """A stored receipt as a dock is answered it: signed by the current key. After a rotation a
    dock takes receipts only from the head of the key chain (a retired key may have leaked), so
    the same fields are signed again rather than the old signature handed back."""
    document = json.loads(stored)
    if document.get("key") == str(ctx.signer.verifier):
        return cast(dict[str, Any], document)
    fields = document["receipt"]
    return sign_receipt(
        ctx.signer,
        evidence_id=fields["evidence_id"],
        sha256=fields["sha256"],
        size=fields["size"],
        ledger_index=fields["ledger_index"],
        received_at=fields["received_at"],
    )


def receipt_for_sha256(services: Services, sha256: str) -> dict[str, Any] | None:
    """The receipt of the stored clip with these bytes; None when none is, or when retention
    has deleted it (a receipt only for what is stored)."""
    with services.ctx.engine.connect() as conn:
        stored = records.live_receipt(conn, sha256)
    return None if stored is None else _answered(services.ctx, stored)


def _previous(services: Services, sha256: str) -> str | None:
    """The evidence id of a clip with these bytes that retention deleted (its tombstone
    written), which new evidence of the same bytes is linked to. A deletion still under way
    (claimed, no tombstone yet) may yet expire the object these bytes would be stored as:
    answered as a fault to retry later."""
    with services.ctx.engine.connect() as conn:
        deleted = records.deleted_with(conn, sha256)
    if any(not gone for _, gone in deleted):
        raise StoreUnavailable("identical bytes are being deleted under retention")
    return deleted[0][0] if deleted else None


def _cut(value: str | None) -> str | None:
    return value if value is None or len(value) <= MAX_LEAF_VALUE else value[:MAX_LEAF_VALUE]


def _restore(services: Services, upload: Upload, sha256: str) -> None:
    """A retry after the store took the bytes and a later step failed: copy them back."""
    try:
        with services.store.open("originals", sha256) as source:
            services.uploads.restore(upload, source)
    except ObjectMissing:
        # Stored never happened after all (the part went with it): the dock sends it again.
        # (StoreUnavailable is not that: the pointer stays and the dock is told to retry, 503.)
        services.uploads.mark_stored(upload, None)


def _committed(services: Services, upload: Upload, sha256: str) -> dict[str, Any] | None:
    """The receipt, if a first attempt committed this upload's clip and then failed before it
    could say so (killed, or the disk full at mark_finalised): no copy back, no second leaf."""
    with services.ctx.engine.connect() as conn:
        row = records.live_from_dock(conn, sha256, upload.dock)
    if row is None:
        return None
    services.uploads.mark_finalised(upload, row.evidence_id)
    return _answered(services.ctx, row.receipt)


def finalise(services: Services, upload: Upload) -> dict[str, Any]:
    """Make a complete upload evidence and return its signed receipt (idempotent)."""
    ctx, uploads = services.ctx, services.uploads
    if upload.evidence_id is not None:
        with ctx.engine.connect() as conn:
            stored = records.receipt_of(conn, upload.evidence_id)
        return _answered(ctx, stored)
    if moved := uploads.stored(upload):
        if (receipt := _committed(services, upload, moved)) is not None:
            return receipt
        if not uploads.part_path(upload).exists():
            _restore(services, upload, moved)
    if uploads.offset(upload) != upload.length:
        raise UploadError(
            409, f"upload is incomplete: {uploads.offset(upload)} of {upload.length} bytes"
        )
    meta = upload.metadata
    sha256 = uploads.sha256(upload)
    claimed = meta.get("sha256")
    details = {
        "dock": upload.dock,
        "bay": _cut(meta.get("bay")),
        "camera": _cut(meta.get("camera")),
        "filename": _cut(meta.get("filename")),
        "size": upload.length,
    }

    if claimed is not None and claimed != sha256:
        ctx.ledger.append(
            Event(
                actor=upload.dock,
                role="dock",
                action="clip.rejected",
                sha256=sha256,
                outcome=Outcome.REFUSED,
                reason="SHA-256 differs from the dock's claim",
                details={**details, "claimed_sha256": claimed},
            )
        )
        uploads.discard(upload)
        raise UploadError(
            422,
            f"whole-file SHA-256 is {sha256}, not the claimed {claimed}: "
            "upload rejected and discarded",
            recorded=True,
        )

    existing = receipt_for_sha256(services, sha256)
    if existing is not None:
        return _duplicate(services, upload, existing, details)
    previous = _previous(services, sha256)

    probe = probe_clip(uploads.part_path(upload))
    now = ctx.ledger.clock()
    # The camera's own record of when it started recording beats the file time the dock saw.
    # A time no datetime can hold (or no camera can mean) is kept as given in the leaf only.
    recorded_at = probe.fields.get("creation_time") or parse_time(meta.get("recorded_at"))
    start = retention_start(recorded_at, now)  # the camera's clock only if it is believable
    retain_until = retain_until_for(start, categories(ctx.engine)[UNCATEGORISED])
    # LocalStore moves the part file into the store (no writer can reach it after): say so
    # first, so that a retry after a later failure knows where the bytes went.
    uploads.mark_stored(upload, sha256)
    services.store.put(
        "originals", sha256, uploads.part_path(upload), adopt=True, retain_until=retain_until
    )
    camera = meta.get("camera") or None
    officer = officer_for(ctx.engine, camera)
    try:
        with ctx.ledger.transaction() as tx:
            evidence_id = new_evidence_id(now)
            leaf = tx.append(
                Event(
                    actor=upload.dock,
                    role="dock",
                    action="clip.ingested",
                    target=evidence_id,
                    sha256=sha256,
                    details={
                        **details,
                        "officer": officer,
                        "status": probe.status,
                        "recorded_at": _cut(meta.get("recorded_at")),
                        "probe_error": probe.error,
                        **({"previous_evidence_id": previous} if previous else {}),
                    },
                )
            )
            receipt = sign_receipt(
                ctx.signer,
                evidence_id=evidence_id,
                sha256=sha256,
                size=upload.length,
                ledger_index=leaf.seq,
                received_at=format_time(now),
            )
            records.add_clip(
                tx.conn,
                evidence_id=evidence_id,
                sha256=sha256,
                size=upload.length,
                status=probe.status,
                camera_serial=camera,
                officer=officer,
                dock=upload.dock,
                bay=meta.get("bay"),
                original_name=meta.get("filename"),
                recorded_at=recorded_at,
                ingested_at=now,
                retain_until=retain_until,
                probe_error=probe.error,
                ledger_index=leaf.seq,
                receipt=json.dumps(receipt),
                **probe.fields,
            )
    except IntegrityError:
        # The same bytes finished finalising through another upload a moment ago.
        existing = receipt_for_sha256(services, sha256)
        if existing is None:
            raise
        return _duplicate(services, upload, existing, details)
    uploads.mark_finalised(upload, evidence_id)
    log.info(
        "ingested %s sha256=%s size=%d status=%s dock=%s",
        evidence_id,
        sha256,
        upload.length,
        probe.status,
        upload.dock,
    )
    return receipt


def _duplicate(
    services: Services, upload: Upload, receipt: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    """Identical bytes are already evidence: no second object, no second clip, same receipt."""
    fields = receipt["receipt"]
    services.ctx.ledger.append(
        Event(
            actor=upload.dock,
            role="dock",
            action="clip.duplicate",
            target=fields["evidence_id"],
            sha256=fields["sha256"],
            reason="identical bytes already stored",
            details=details,
        )
    )
    services.uploads.mark_finalised(upload, fields["evidence_id"])
    return receipt


# --- as a dock is answered -----------------------------------------------------------------------


class StoreDamaged(Failed):
    """The store of record holds damaged bytes where this upload's clip should go; the clip
    was not receipted. A ``store.damaged`` leaf tells of it (500: the server's fault)."""

    recorded = True


class StoreBusy(Unavailable):
    """The store cannot be used just now; the dock retries after ``Retry-After``. Not a leaf:
    a dock retries every few seconds through an outage, which the log records (503)."""

    recorded = True


def owned(services: Services, dock: str, upload_id: str) -> Upload:
    """The upload, read afresh; 404 for none, 403 for another dock's (recorded as refusals by
    whoever answers the dock)."""
    upload = services.uploads.get(upload_id)
    if upload is None:
        raise UploadError(404, "no such upload (unknown, finished or expired)")
    if upload.dock != dock:
        raise UploadError(403, "this upload belongs to another dock")
    return upload


def finalise_for_dock(services: Services, upload: Upload) -> dict[str, Any]:
    """:func:`finalise`, with the store's faults as a dock is answered them: damage found is a
    ``store.damaged`` leaf and :class:`StoreDamaged`; an unreachable store :class:`StoreBusy`
    (retry in 5 s). Neither names a server path. Counted and timed in the service's metrics."""
    metrics = services.metrics
    start = time.monotonic()
    try:
        receipt = _finalise_for_dock(services, upload)
    except BaseException:
        metrics.uploads_failed.inc()
        raise
    finally:
        metrics.finalise_seconds.observe(time.monotonic() - start)
    metrics.uploads_completed.inc()
    return receipt


def _finalise_for_dock(services: Services, upload: Upload) -> dict[str, Any]:
    try:
        return finalise(services, upload)
    except ObjectDamaged as exc:
        fresh = services.uploads.get(upload.id)
        services.ctx.ledger.append(
            Event(
                actor=upload.dock,
                role="dock",
                action="store.damaged",
                sha256=None if fresh is None else services.uploads.stored(fresh),
                outcome=Outcome.FAILED,
                reason=exc.shown,
                details={"upload": upload.id, "found_by": "ingest"},
            )
        )
        log.error("store damaged at finalisation: %s", exc.diagnosis)
        raise StoreDamaged(
            f"the store is damaged, the clip was not receipted: {exc.shown}"
        ) from None
    except StoreUnavailable as exc:
        log.warning("store unavailable at finalisation: %s", exc.diagnosis)
        raise StoreBusy(f"store unavailable, retry later: {exc.shown}", retry_after=5) from None


_NO_RECEIPT = "no stored clip with that SHA-256"


class NoReceipt(NotFound):
    """No receipt for this dock: no stored clip has those bytes, or another dock uploaded it
    (answered alike, so that no dock learns what evidence exists; the leaf says which)."""

    def __init__(self, why: str, target: str) -> None:
        super().__init__(_NO_RECEIPT)
        self._why, self.target = why, target

    @property
    def why(self) -> str:
        return self._why


def receipt_for_dock(services: Services, dock: Principal, sha256: str) -> dict[str, Any]:
    """The receipt of the stored clip with these bytes, if ``dock`` uploaded it, recorded as a
    ``receipt.read`` leaf; :class:`NoReceipt` otherwise."""
    asked = sha256.lower()
    receipt = receipt_for_sha256(services, asked)
    if receipt is None:
        raise NoReceipt(_NO_RECEIPT, sha256)
    evidence_id = receipt["receipt"]["evidence_id"]
    with services.ctx.engine.connect() as conn:
        uploader = records.uploader(conn, evidence_id)
    if uploader != dock.name:
        raise NoReceipt(f"{evidence_id} was uploaded by another dock", evidence_id)
    services.ctx.ledger.append(dock.event("receipt.read", target=evidence_id, sha256=asked))
    return receipt
