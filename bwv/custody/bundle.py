"""Audit bundles: everything needed to check a clip's custody history offline.

A bundle is one JSON object (format ``bwv.custody-bundle/1``, see docs/AUDIT.md): the clip's
leaves as canonical JSON text, each with its RFC 9162 inclusion proof against one signed C2SP
checkpoint, and the verifier keys. Verifying needs no database and no trust in the server, only
a key the auditor trusts (pinned with ``--key``; otherwise the keys the bundle carries).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bwv.base import files as fsio
from bwv.base.errors import BundleError, BwvError
from bwv.custody import merkle
from bwv.custody.leaf import parse_leaf
from bwv.custody.ledger import Ledger, SignedCheckpoint
from bwv.custody.note import open_checkpoint
from bwv.custody.rotation import follow
from bwv.keys import Keyring, VerifierKey

FORMAT = "bwv.custody-bundle/1"
INGEST_ACTION = "clip.ingested"


def make_bundle(
    ledger: Ledger, evidence_id: str, keyring: Keyring, rotations: list[str] | None = None
) -> dict[str, Any]:
    """A bundle of every leaf naming ``evidence_id``, proven against a fresh checkpoint; with
    the log's key rotation statements, if it has any, so that whoever pinned an older key can
    follow it to the one that signed the checkpoint (bwv.custody.rotation)."""
    leaves = ledger.leaves_for(evidence_id)
    if not leaves:
        raise BwvError(f"no custody record for evidence id {evidence_id!r}")
    checkpoint: SignedCheckpoint = ledger.checkpoint(force=True)
    size = checkpoint.size
    extra = {"key_rotations": list(rotations)} if rotations else {}
    return {
        "format": FORMAT,
        "evidence_id": evidence_id,
        "origin": ledger.origin,
        "checkpoint": checkpoint.note,
        "verifier_keys": [str(k) for k in keyring],
        "leaves": [
            {
                "index": leaf.seq,
                "leaf": leaf.body.decode("utf-8"),
                "inclusion_proof": [
                    base64.b64encode(p).decode() for p in ledger.inclusion_proof(leaf.seq, size)
                ],
            }
            for leaf in leaves
            if leaf.seq < size
        ],
        **extra,
    }


@dataclass(frozen=True)
class BundleReport:
    evidence_id: str
    tree_size: int
    leaves: int
    clip_sha256: str | None
    keys_pinned: bool
    file_checked: bool


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BundleError(f"{what} is not valid base64") from None


def load_bundle(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not a JSON bundle: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{path} is not a {FORMAT} bundle")
    return data


def file_sha256(path: Path) -> str:
    try:
        return fsio.file_sha256(path)
    except OSError as exc:
        raise BundleError(f"cannot read clip {path}: {exc.strerror}") from None


def verify_bundle(
    bundle: dict[str, Any],
    trusted: Keyring | None = None,
    *,
    evidence_id: str | None = None,
    origin: str | None = None,
    clip: Path | None = None,
) -> BundleReport:
    """Check a bundle offline; raise :class:`BundleError` naming the first thing that fails."""
    bundle_id = bundle.get("evidence_id")
    if not isinstance(bundle_id, str):
        raise BundleError("bundle names no evidence id")
    if evidence_id is not None and bundle_id != evidence_id:
        raise BundleError(f"bundle is for evidence id {bundle_id!r}, not {evidence_id!r}")
    pinned = trusted is not None
    rotations = bundle.get("key_rotations")
    if trusted is not None and rotations is not None:
        if not isinstance(rotations, list):
            raise BundleError("bundle key_rotations is not a list of statements")
        try:
            trusted = follow(trusted, rotations)
        except BwvError as exc:
            raise BundleError(f"bundle key rotation: {exc.diagnosis}") from None
    if trusted is None:
        keys = bundle.get("verifier_keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BundleError("bundle carries no verifier keys and none were given")
        trusted = Keyring([VerifierKey.parse(k) for k in keys])
    note = bundle.get("checkpoint")
    if not isinstance(note, str):
        raise BundleError("bundle carries no checkpoint")
    try:
        checkpoint = open_checkpoint(note, trusted, origin or bundle.get("origin"))
    except BwvError as exc:
        raise BundleError(f"bundle checkpoint: {exc.diagnosis}") from None

    entries = bundle.get("leaves")
    if not isinstance(entries, list) or not entries:
        raise BundleError("bundle holds no leaves")
    clip_sha256 = None
    for n, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or type(entry.get("index")) is not int
            or not isinstance(entry.get("leaf"), str)
            or not isinstance(entry.get("inclusion_proof"), list)
        ):
            raise BundleError(f"bundle leaf entry {n} is malformed")
        index, text = entry["index"], entry["leaf"]
        body = text.encode("utf-8")
        try:
            fields = parse_leaf(body)
        except BwvError as exc:
            raise BundleError(f"leaf {index}: {exc.diagnosis}") from None
        if fields.get("sequence") != index:
            raise BundleError(f"leaf {index}: says it is sequence {fields.get('sequence')}")
        if fields.get("target") != bundle_id:
            raise BundleError(f"leaf {index}: concerns {fields.get('target')!r}, not {bundle_id!r}")
        proof = [_b64(p, f"leaf {index} proof element") for p in entry["inclusion_proof"]]
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(body), index, checkpoint.size, proof, checkpoint.root
            )
        except BwvError as exc:
            raise BundleError(f"leaf {index}: {exc.diagnosis}") from None
        if fields.get("action") == INGEST_ACTION and fields.get("outcome") == "ok":
            if clip_sha256 is not None and fields.get("sha256") != clip_sha256:
                raise BundleError(f"leaf {index}: a second ingest names another SHA-256")
            clip_sha256 = fields.get("sha256")

    if clip is not None:
        if clip_sha256 is None:
            raise BundleError(f"bundle holds no {INGEST_ACTION} leaf naming the clip's SHA-256")
        actual = file_sha256(clip)
        if actual != clip_sha256:
            raise BundleError(
                f"{clip} has SHA-256 {actual}, but the ledger recorded "
                f"{clip_sha256} for {bundle_id}: not the original"
            )
    return BundleReport(
        bundle_id,
        checkpoint.size,
        len(entries),
        clip_sha256,
        keys_pinned=pinned,
        file_checked=clip is not None,
    )
