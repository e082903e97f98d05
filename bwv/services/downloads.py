"""Handing out stored footage, an original or a disclosure copy: checked whole against its
SHA-256 before the first byte leaves (fail closed: a damaged original is never served as the
original, invariant 2), with the store's faults said as the server's, never the caller's."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from bwv.base.errors import Failed, Unavailable
from bwv.services.fixity import damaged_diagnosis, verified_chunks
from bwv.store import StoreError, StoreUnavailable
from bwv.store.base import ObjectStore

log = logging.getLogger("bwv.ingest")


def footage(
    store: ObjectStore, kind: str, evidence_id: str, sha256: str, size: int
) -> Iterator[bytes]:
    """The object's bytes (:func:`~bwv.services.fixity.verified_chunks`). :class:`Unavailable`
    (retry in 30 s) while the store cannot be read, :class:`Failed` for a damaged or missing
    object; neither names a server path (the log has it)."""
    try:
        return verified_chunks(store, kind, sha256, size)
    except StoreUnavailable as exc:
        why = f"the store of record cannot be read just now: {exc.shown}"
        log.error("%s (%s)", why, exc.diagnosis)
        raise Unavailable(why, retry_after=30) from None
    except StoreError as exc:
        why = damaged_diagnosis(kind, evidence_id, exc)
        log.error("%s (%s)", why, exc.diagnosis)
        raise Failed(why) from None
