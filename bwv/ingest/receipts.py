"""Signed ingest receipts: the proof a dock needs before it may wipe a camera.

A receipt is a JSON document ``{"receipt": {...}, "key": VERIFIER_KEY, "signature": BASE64}``
where the signature is Ed25519 over the RFC 8785 canonical JSON of ``receipt``:
``{"v", "evidence_id", "sha256", "size", "ledger_index", "received_at", "origin"}``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import rfc8785

from bwv.base.errors import BwvError
from bwv.keys import Keyring, SigningKey, VerifierKey

RECEIPT_VERSION = 1


class ReceiptError(BwvError):
    """A receipt is malformed, signed by an untrusted key, or names other bytes."""


class UnpinnedKey(ReceiptError):
    """The receipt names a key that is not pinned: after a rotation, the dock may follow the
    service's rotation statements from its pinned keys (bwv.custody.rotation) and try again."""

    def __init__(self, diagnosis: str, key: VerifierKey) -> None:
        super().__init__(diagnosis)
        self.key = key


def sign_receipt(
    signer: SigningKey,
    *,
    evidence_id: str,
    sha256: str,
    size: int,
    ledger_index: int,
    received_at: str,
) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "v": RECEIPT_VERSION,
        "evidence_id": evidence_id,
        "sha256": sha256,
        "size": size,
        "ledger_index": ledger_index,
        "received_at": received_at,
        "origin": signer.name,
    }
    signature = signer.sign(rfc8785.dumps(receipt))
    return {
        "receipt": receipt,
        "key": str(signer.verifier),
        "signature": base64.b64encode(signature).decode(),
    }


def verify_receipt(
    document: Any, trusted: Keyring, *, sha256: str, size: int | None = None
) -> dict[str, Any]:
    """Check a receipt against pinned keys and the exact bytes it must name; return its fields.

    The key named in the document is only used to pick among ``trusted`` keys: a receipt signed
    by any other key is refused, whatever key it carries.
    """
    if not isinstance(document, dict) or not isinstance(document.get("receipt"), dict):
        raise ReceiptError("not a bwv receipt")
    receipt: dict[str, Any] = document["receipt"]
    try:
        named = VerifierKey.parse(str(document.get("key", "")))
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except (BwvError, binascii.Error):
        raise ReceiptError("receipt key or signature is malformed") from None
    key = trusted.find(named.name, named.key_id)
    if key is None:
        raise UnpinnedKey(
            f"receipt is signed by {named}, which is not the pinned service key (nor announced "
            "by a rotation statement it signed)",
            named,
        )
    if key != named:
        raise ReceiptError(f"receipt is signed by {named}, which is not the pinned service key")
    if not key.verify(rfc8785.dumps(receipt), signature):
        raise ReceiptError("receipt signature does not verify")
    if receipt.get("sha256") != sha256:
        raise ReceiptError(f"receipt names SHA-256 {receipt.get('sha256')}, not {sha256}")
    if size is not None and receipt.get("size") != size:
        raise ReceiptError(f"receipt names {receipt.get('size')} bytes, not {size}")
    return receipt
