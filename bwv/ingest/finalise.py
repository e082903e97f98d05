"""Turning a complete upload into evidence: verify, probe, store, index, record, receipt.

The order is what keeps the invariants: the bytes are in the store of record before anything
says they are; the index row and the ``clip.ingested`` leaf commit in one transaction; the
receipt exists only after that commit. A failure at any step leaves no receipt and no index
row, and the complete upload stays for a retry.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from bwv.context import Context
from bwv.custody.leaf import Event, Outcome, format_time
from bwv.ingest.docks import officer_for
from bwv.ingest.probe import parse_time, probe_clip
from bwv.ingest.receipts import sign_receipt
from bwv.ingest.uploads import Upload, UploadError, Uploads
from bwv.models import Clip
from bwv.retention import UNCATEGORISED, categories, retain_until_for, retention_start
from bwv.store import ObjectStore

log = logging.getLogger("bwv.ingest")
CLIP = Clip.__table__
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass
class Services:
    """What the service's requests share."""

    ctx: Context
    store: ObjectStore
    uploads: Uploads


def readable_id(prefix: str, when: datetime) -> str:
    """``PREFIX-YYYYMMDD-XXXXXXXX``: a date and 40 random bits in Crockford base 32, easy to
    read out over a radio."""
    code = "".join(secrets.choice(_CROCKFORD) for _ in range(8))
    return f"{prefix}-{when:%Y%m%d}-{code}"


def new_evidence_id(when: datetime) -> str:
    """``EV-YYYYMMDD-XXXXXXXX``, dated by ingest."""
    return readable_id("EV", when)


def receipt_for_sha256(services: Services, sha256: str) -> dict[str, Any] | None:
    with services.ctx.engine.connect() as conn:
        stored = conn.execute(select(CLIP.c.receipt).where(CLIP.c.sha256 == sha256)).scalar()
    return None if stored is None else json.loads(stored)


def finalise(services: Services, upload: Upload) -> dict[str, Any]:
    """Make a complete upload evidence and return its signed receipt (idempotent)."""
    ctx, uploads = services.ctx, services.uploads
    if upload.evidence_id is not None:
        with ctx.engine.connect() as conn:
            stored = conn.execute(
                select(CLIP.c.receipt).where(CLIP.c.evidence_id == upload.evidence_id)
            ).scalar_one()
        return json.loads(stored)
    if uploads.offset(upload) != upload.length:
        raise UploadError(
            409, f"upload is incomplete: {uploads.offset(upload)} of {upload.length} bytes"
        )
    meta = upload.metadata
    sha256 = uploads.sha256(upload)
    claimed = meta.get("sha256")
    details = {
        "dock": upload.dock,
        "bay": meta.get("bay"),
        "camera": meta.get("camera"),
        "filename": meta.get("filename"),
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
        )

    existing = receipt_for_sha256(services, sha256)
    if existing is not None:
        return _duplicate(services, upload, existing, details)

    probe = probe_clip(uploads.part_path(upload))
    now = ctx.ledger.clock()
    # The camera's own record of when it started recording beats the file time the dock saw.
    recorded_at = probe.fields.get("creation_time") or parse_time(meta.get("recorded_at"))
    start = retention_start(recorded_at, now)  # the camera's clock only if it is believable
    retain_until = retain_until_for(start, categories(ctx.engine)[UNCATEGORISED])
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
                        "recorded_at": meta.get("recorded_at"),
                        "probe_error": probe.error,
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
            tx.conn.execute(
                insert(CLIP).values(
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
