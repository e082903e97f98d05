"""C2PA Content Credentials for disclosure copies, signed under bwv's own PKI.

A disclosure copy (a redacted MP4 rendered from an original evidence clip) carries an embedded
C2PA manifest (C2PA Technical Specification 2.x, "Manifests" / "Embedding manifests into
assets", BMFF ``uuid`` box) whose claim names the original clip as its **parent ingredient**
("Ingredients": ``relationship: parentOf``) and lists what was done to it ("Actions").

The signing credential comes from bwv's own keys, not from a public CA ("Trust model"): a root
CA certificate self-signed by bwv's Ed25519 signing key is the force's trust anchor, and it
issues the end-entity certificate that signs claims. Anyone holding ``anchors.pem`` can check a
copy offline with any C2PA validator.

Everything here works offline: no time-stamp authority is used, OCSP and remote-manifest
fetching are off, and ``core.allowed_network_hosts`` is empty so c2pa-rs refuses any URL.

Validation states (c2pa-rs 0.91, as exposed by c2pa-python 0.38 ``Reader.json()``):

* ``Invalid``: a failure other than an untrusted credential (hash mismatch, bad signature, ...).
* ``Valid``: well-formed and intact, but the signing certificate does not chain to a configured
  anchor; ``validation_status`` then holds ``signingCredential.untrusted``.
* ``Trusted``: valid, and ``signingCredential.trusted`` is in the active manifest's successes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

import bwv
from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.base.files import file_sha256, fsync_dir, write_atomic
from bwv.keys import SigningKey, read_private_key


class ProvenanceError(BwvError):
    """A C2PA identity, manifest or signature cannot be made or read."""


ALG = "ed25519"
PARENT_LABEL = "bwv-parent"
DISCLOSURE_ASSERTION = "bwv.disclosure"
ID_KP_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # RFC 9336
# RFC 5280 §4.1.2.5: "no well-defined expiration date". Without a time-stamp the validator
# checks the certificate against the time of *validation*, so any real expiry would turn every
# copy already disclosed Invalid on that day. Distrust is by dropping an anchor instead.
NO_EXPIRY = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
CLOCK_SKEW = dt.timedelta(hours=1)
_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}


@dataclass(frozen=True)
class C2paIdentity:
    """What signs a C2PA claim: the x5chain, its private key and every anchor ever issued.

    ``chain_pem`` is the end-entity certificate first, then the CA (the COSE ``x5chain`` order,
    C2PA 2.x "Digital signatures"). ``anchors_pem`` holds the current and all earlier CA
    certificates, so copies signed before a key rotation stay trusted.
    """

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    anchors_pem: bytes
    alg: str = ALG


@dataclass(frozen=True)
class ManifestReport:
    """What a C2PA validator says about a disclosure copy.

    ``valid`` is ``validation_state`` in {Valid, Trusted}; ``trusted`` is ``validation_state ==
    "Trusted"``, i.e. the signing certificate chains to one of the anchors given (C2PA 2.x
    "Trust model"; status code ``signingCredential.trusted``). ``status`` lists the codes c2pa
    reports in ``validation_status`` (failures, e.g. ``signingCredential.untrusted`` or
    ``assertion.bmffHash.mismatch``).
    """

    valid: bool
    trusted: bool
    validation_state: str
    status: list[str]
    parent_title: str | None
    parent_sha256: str | None
    actions: list[str]
    manifest: dict[str, Any]


def redaction_action(description: str, **parameters: Any) -> dict[str, Any]:
    """A ``c2pa.edited`` action describing hidden faces, plates or speech.

    Not ``c2pa.redacted``: in C2PA 2.x "Actions" that action records the redaction of an
    *assertion* from an ingredient's manifest and needs ``parameters.redacted`` (the JUMBF URI
    of that assertion); c2pa-rs fails such a claim with ``assertion.action.redactionMismatch``.
    Blurring pixels is an edit of the content.
    """
    action: dict[str, Any] = {"action": "c2pa.edited", "description": description}
    if parameters:
        action["parameters"] = parameters
    return action


# --- identity -------------------------------------------------------------------------------


def ensure_identity(keys_dir: Path, signing_key: SigningKey) -> C2paIdentity:
    """Load the C2PA signing identity kept in ``keys_dir/c2pa/``, making it on first use.

    Files: ``ca.pem`` (root CA, self-signed by ``signing_key``), ``leaf.pem`` and ``leaf.key``
    (mode 0600; the claim-signing end-entity key, Ed25519), ``anchors.pem`` (every CA issued).
    When ``signing_key`` no longer matches the CA's public key (the key was rotated), or the
    files disagree with one another (a crash between writes), a new CA and leaf are issued and
    the new CA is appended to ``anchors.pem``.
    """
    directory = keys_dir / "c2pa"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(directory):
            identity = _load_identity(directory, signing_key)
            if identity is None:
                _issue_identity(directory, signing_key)
                identity = _load_identity(directory, signing_key)
    except OSError as exc:
        raise ProvenanceError(f"cannot use C2PA keys in {directory}: {exc.strerror}") from None
    if identity is None:  # pragma: no cover - only if the files change under the lock
        raise ProvenanceError(f"C2PA identity in {directory} is inconsistent after reissue")
    return identity


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two processes issuing at once could pair one's leaf.key with the other's leaf.pem.
    fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise ProvenanceError(f"{path} is not a PEM certificate") from None


def _load_identity(directory: Path, signing_key: SigningKey) -> C2paIdentity | None:
    """The identity on disk, or None when it is missing, stale or its parts disagree."""
    ca_path, leaf_path, key_path = (directory / n for n in ("ca.pem", "leaf.pem", "leaf.key"))
    if not (ca_path.exists() and leaf_path.exists() and key_path.exists()):
        return None
    ca, leaf = _read_cert(ca_path), _read_cert(leaf_path)
    key_pem, leaf_key = read_private_key(key_path, "C2PA key", ProvenanceError)
    ca_public = ca.public_key()
    if not isinstance(ca_public, Ed25519PublicKey):
        return None
    if _public_raw(ca_public) != signing_key.verifier.public:
        return None  # signing key rotated: this CA can no longer issue
    leaf_public = leaf.public_key()
    if not isinstance(leaf_public, Ed25519PublicKey):
        return None
    if _public_raw(leaf_public) != _public_raw(leaf_key.public_key()):
        return None
    try:
        leaf.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return None
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    anchors = _read_anchors(directory / "anchors.pem")
    if ca not in anchors:
        anchors.append(ca)
        write_atomic(directory / "anchors.pem", _pem_bundle(anchors))
    return C2paIdentity(
        chain_pem=leaf.public_bytes(serialization.Encoding.PEM) + ca_pem,
        key_pem=key_pem,
        anchors_pem=_pem_bundle(anchors),
    )


def _read_anchors(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProvenanceError(f"{path} is not a PEM certificate bundle") from None


def _pem_bundle(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bwv"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_identity(directory: Path, signing_key: SigningKey) -> None:
    """Issue a root CA under ``signing_key`` and a claim-signing certificate beneath it.

    The end-entity profile follows C2PA 2.x "Trust model" / "Certificate profile": not a CA,
    keyUsage digitalSignature (critical), an extendedKeyUsage without anyExtendedKeyUsage,
    SKI and AKI. c2pa-rs 0.91 with a private anchor and no trust_config rejects a certificate
    whose only EKU is id-kp-documentSigning ("certificate missing required EKU") and accepts
    id-kp-emailProtection, so both are present. Ed25519 (COSE EdDSA) is on the spec's list of
    claim-signature algorithms and is what bwv's keys already are; c2pa-rs signs with it in ms.

    Write order: anchors first, so no leaf is ever in use whose CA is not anchored; ``ca.pem``
    last, so a crash before it leaves a set that :func:`_load_identity` rejects and reissues.
    """
    now = system_clock()
    ca_key = signing_key._private  # the CA key IS bwv's signing key
    kid = signing_key.key_id.hex()
    ca_name = _name(f"bwv C2PA root {signing_key.name} {kid}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, None)
    )
    leaf_key = Ed25519PrivateKey.generate()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"bwv disclosure signer {signing_key.name} {kid}"))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, ID_KP_DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, None)
    )
    anchors = _read_anchors(directory / "anchors.pem")
    write_atomic(directory / "anchors.pem", _pem_bundle([*anchors, ca]))
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(directory / "leaf.key", key_pem, mode=0o600)
    write_atomic(directory / "leaf.pem", leaf.public_bytes(serialization.Encoding.PEM))
    write_atomic(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))


# --- signing and reading --------------------------------------------------------------------


def _settings(anchors_pem: bytes | None) -> dict[str, Any]:
    """c2pa-rs settings: our anchors only, verification on, and no network at all."""
    settings: dict[str, Any] = {
        "verify": {
            "verify_trust": True,
            "verify_after_reading": True,
            "verify_after_sign": True,
            "ocsp_fetch": False,
            "remote_manifest_fetch": False,
        },
        # An empty allow-list makes c2pa-rs refuse every URL ("not permitted by the allowed list").
        "core": {"allowed_network_hosts": []},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if anchors_pem and anchors_pem.strip():
        try:
            x509.load_pem_x509_certificates(anchors_pem)
        except ValueError:
            raise ProvenanceError("trust anchors are not a PEM certificate bundle") from None
        # trust_anchors replaces c2pa's anchor set; user_anchors would add to it.
        settings["trust"] = {"trust_anchors": anchors_pem.decode("ascii")}
    return settings


def _mime(path: Path) -> str:
    try:
        return _MIME[path.suffix.lower()]
    except KeyError:
        raise ProvenanceError(
            f"{path.name}: C2PA signing here supports {', '.join(sorted(_MIME))} files only"
        ) from None


def _diagnosis(exc: c2pa.C2paError) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


def _claim_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The caller's actions, with ``c2pa.opened`` of the parent first (C2PA 2.x "Actions":
    a claim with a parentOf ingredient starts with c2pa.opened naming that ingredient)."""
    agent = {"name": "bwv", "version": bwv.__version__}
    out: list[dict[str, Any]] = []
    for action in actions:
        name = action.get("action") if isinstance(action, dict) else None
        if not isinstance(name, str) or not name:
            raise ProvenanceError(f"C2PA action {action!r} has no 'action' name")
        if name == "c2pa.redacted" and "redacted" not in action.get("parameters", {}):
            raise ProvenanceError(
                "c2pa.redacted is for assertions removed from an ingredient manifest; "
                "describe hidden faces/plates with c2pa.edited (see redaction_action)"
            )
        out.append({"softwareAgent": agent, **action})
    if not out or out[0]["action"] != "c2pa.opened":
        opened = {"action": "c2pa.opened", "softwareAgent": agent}
        out.insert(0, {**opened, "parameters": {"ingredientIds": [PARENT_LABEL]}})
    return out


def sign_disclosure(
    source: Path,
    dest: Path,
    *,
    parent: Path,
    parent_title: str,
    actions: list[dict[str, Any]],
    identity: C2paIdentity,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``dest``: the redacted ``source`` with an embedded, signed C2PA manifest.

    ``parent`` (the original clip) becomes the parentOf ingredient titled ``parent_title``
    (C2PA 2.x "Ingredients"). An ingredient without its own manifest carries no hash of the
    parent's bytes, so its SHA-256 goes into a ``bwv.disclosure`` assertion together with
    ``metadata`` (must be JSON). ``dest`` appears only once signed and verified by c2pa
    (``verify_after_sign``): c2pa writes its output before verifying, so it writes a temporary
    file that is renamed into place on success.
    """
    for path, what in ((source, "redacted copy"), (parent, "original clip")):
        if not path.is_file():
            raise ProvenanceError(f"no {what} at {path}")
    if dest.resolve() in (source.resolve(), parent.resolve()):
        raise ProvenanceError(f"refusing to overwrite {dest} with its own disclosure copy")
    fmt, parent_fmt = _mime(source), _mime(parent)
    claim_actions = _claim_actions(actions)
    disclosure = {
        "parent": {"title": parent_title, "sha256": file_sha256(parent)},
        "metadata": metadata or {},
    }
    try:
        json.dumps(disclosure)
    except (TypeError, ValueError) as exc:
        raise ProvenanceError(f"disclosure metadata is not JSON: {exc}") from None
    definition = {
        "claim_generator_info": [{"name": "bwv", "version": bwv.__version__}],
        "title": dest.name,
        "format": fmt,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": claim_actions}},
            {"label": DISCLOSURE_ASSERTION, "data": disclosure},
        ],
    }
    ingredient = {"title": parent_title, "relationship": "parentOf", "label": PARENT_LABEL}
    try:
        alg = c2pa.C2paSigningAlg[identity.alg.upper()]
    except KeyError:
        raise ProvenanceError(f"C2PA signing algorithm {identity.alg!r} is unknown") from None
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        info = c2pa.C2paSignerInfo(
            alg,
            identity.chain_pem,
            identity.key_pem,
            None,  # no time-stamp authority: offline
        )
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Context.from_dict(_settings(identity.anchors_pem)) as context,
            c2pa.Builder(definition, context=context) as builder,
        ):
            with parent.open("rb") as f:
                builder.add_ingredient(ingredient, parent_fmt, f)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            with source.open("rb") as src, os.fdopen(fd, "w+b") as out:
                builder.sign(signer, fmt, src, out)
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"cannot sign {dest.name}: {_diagnosis(exc)}") from None
    except OSError as exc:
        raise ProvenanceError(f"cannot write {dest}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_disclosure(path: Path, anchors_pem: bytes) -> ManifestReport:
    """Validate the C2PA manifest embedded in ``path`` against ``anchors_pem`` (offline).

    Trust is judged only against the anchors given (c2pa ``trust.trust_anchors``); an empty
    bundle trusts nothing. See :class:`ManifestReport` for how the verdict maps.
    """
    if not path.is_file():
        raise ProvenanceError(f"no disclosure copy at {path}")
    try:
        with (
            c2pa.Context.from_dict(_settings(anchors_pem)) as context,
            path.open("rb") as f,
            c2pa.Reader(_MIME.get(path.suffix.lower()), f, context=context) as reader,
        ):
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        raise ProvenanceError(f"{path.name} carries no C2PA manifest") from None
    except c2pa.C2paError as exc:
        raise ProvenanceError(
            f"cannot read C2PA manifest of {path.name}: {_diagnosis(exc)}"
        ) from None
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    state = str(store.get("validation_state", "Invalid"))
    parent = next(
        (i for i in manifest.get("ingredients", []) if i.get("relationship") == "parentOf"), None
    )
    actions: list[str] = []
    disclosure: dict[str, Any] = {}
    for assertion in manifest.get("assertions", []):
        label = assertion.get("label", "")
        if label == "c2pa.actions" or label.startswith("c2pa.actions.v"):
            actions += [a.get("action", "") for a in assertion.get("data", {}).get("actions", [])]
        elif label == DISCLOSURE_ASSERTION:
            disclosure = assertion.get("data", {})
    return ManifestReport(
        valid=state in ("Valid", "Trusted"),
        trusted=state == "Trusted",
        validation_state=state,
        status=[s.get("code", "") for s in store.get("validation_status", [])],
        parent_title=parent.get("title") if parent else None,
        parent_sha256=disclosure.get("parent", {}).get("sha256"),
        actions=actions,
        manifest=manifest,
    )
