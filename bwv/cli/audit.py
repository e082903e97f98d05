"""``bwv audit``: the auditor's tools for the custody ledger (RFC 9162 Merkle log, C2SP signed
checkpoints). Logged in (or with BWV_URL set) they work through the service; on the server host
with a data directory, from the local ledger; ``verify-bundle`` needs neither."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bwv.base.errors import ConfigError, TamperError
from bwv.cli.client import ApiClient
from bwv.cli.clips import EvidenceId
from bwv.cli.common import (
    api_path,
    followed_keys,
    group,
    sendable,
    service,
    session,
    trusted_keys,
)
from bwv.cli.options import KeysOpt, OptionalReasonOpt, OutputOpt
from bwv.cli.output import counted, emit, note, on_bar, out, progress, say, write_file
from bwv.custody.bundle import load_bundle, verify_bundle
from bwv.custody.leaf import parse_leaf
from bwv.custody.note import Checkpoint
from bwv.custody.verify import LedgerReport
from bwv.custody.witness import witness
from bwv.services import admin
from bwv.services.context import Context
from bwv.services.fixity import FixityDamage

audit = group("Auditor tools for the custody ledger.")


def report_ledger(report: LedgerReport) -> None:
    """OK in one line, or the first findings and a TamperError naming the first bad index."""
    if report.ok:
        out.print(
            f"[green]OK[/green] ledger of {report.size} leaves verified: every leaf "
            f"hash, {report.nodes} proof nodes, {report.checkpoints} signed checkpoints "
            "and their consistency"
        )
        return
    first = report.first
    assert first is not None
    for finding in sorted(report.findings, key=lambda f: (f.rank, f.index or 0))[:20]:
        out.print(f"  - {finding.message}", soft_wrap=True, highlight=False, markup=False)
    raise TamperError(
        f"ledger verification FAILED ({counted(len(report.findings), 'problem')}); first bad index "
        f"{first.index}: {first.message}",
        index=first.index,
    )


def verify_local_ledger(context: Context) -> None:
    """Verify every leaf and checkpoint of the local ledger (a bar on a terminal), record that
    it was done, and report."""
    with progress() as bar:
        done = admin.verify_whole_ledger(
            context, progress=on_bar(bar, "verifying the whole ledger")
        )
    if done.not_recorded:
        note(f"warning: could not record this verification in the ledger: {done.not_recorded}")
    report_ledger(done.report)


def _verify_through_service() -> None:
    """Every leaf fetched, the tree recomputed here (:func:`admin.recompute_ledger`), its root
    held against a checkpoint signed by the pinned service key."""
    with service() as (api, credentials):
        if not credentials.service_key:
            raise ConfigError(
                "no service key pinned, so a checkpoint cannot be trusted: "
                "bwv login --service-key KEY (or set BWV_SERVICE_KEY)"
            )
        note_text = api.request("GET", "/ledger/checkpoint").text
        keyring = followed_keys(api, credentials, note_text)
        assert keyring is not None

        def page(start: int, end: int) -> list[bytes]:
            found = api.get("/ledger/leaves", start=start, end=end)
            return [base64.b64decode(leaf) for leaf in found["leaves"]]

        with progress() as bar:
            checkpoint = admin.recompute_ledger(
                note_text, keyring, page, progress=on_bar(bar, "fetching and hashing leaves")
            )
    name, key_id = credentials.service_key.split("+")[:2]
    say(
        f"OK ledger of {checkpoint.size} leaves recomputed here from their bytes: the root "
        f"matches the checkpoint signed by {name} (key {key_id})"
    )


@audit.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Recompute the tree from the leaves; check every checkpoint's signature and consistency.
    Logged in, an auditor does it from afar: every leaf fetched, the tree recomputed here, the
    root compared with a checkpoint signed by the pinned service key."""
    if session(ctx).through_service():
        _verify_through_service()
        return
    verify_local_ledger(session(ctx).context())


@audit.command("fixity")
def audit_fixity(ctx: typer.Context) -> None:
    """Re-hash every original, disclosure copy and plan in the store against the index and the
    ledger (on the server host). Exit 2 if any is damaged or missing; recorded as leaves."""
    context = session(ctx).context()
    with progress(transfer=True) as bar:
        done = admin.check_fixity(context, progress=on_bar(bar, "re-hashing the store"))
    if done.not_recorded:
        note(f"warning: could not record this fixity check in the ledger: {done.not_recorded}")
    report = done.report
    for damage in report.damaged:
        out.print(f"  - {damage.diagnosis}", soft_wrap=True, highlight=False, markup=False)
    if not report.ok:
        raise FixityDamage(report.summary())
    say(report.summary())


def fetch_bundle(api: ApiClient, credentials: Any, evidence_id: str, reason: str | None) -> Any:
    """A clip's custody bundle from the service, verified against the pinned keys if any:
    a bundle that does not verify is never handed on."""
    sendable(reason)
    bundle = api.get(api_path("clips", evidence_id, "custody"), reason=reason)
    pinned = followed_keys(api, credentials, bundle.get("checkpoint"))
    if pinned is not None:
        verify_bundle(bundle, pinned, evidence_id=evidence_id)
    return bundle


@audit.command("bundle")
def audit_bundle(
    ctx: typer.Context,
    evidence_id: EvidenceId,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to write the bundle.")
    ],
    reason: OptionalReasonOpt = None,
) -> None:
    """Write a self-contained custody bundle for one clip: leaves, proofs, checkpoint, keys.

    Through the service when logged in (or BWV_URL is set); from the local ledger otherwise."""
    if session(ctx).through_service():
        with service() as (api, credentials):
            bundle = fetch_bundle(api, credentials, evidence_id, reason)
    else:
        bundle = admin.issue_bundle(session(ctx).context(), evidence_id)
    write_file(output, json.dumps(bundle, indent=2) + "\n")
    size = Checkpoint.from_note(bundle["checkpoint"]).size
    leaves = counted(len(bundle["leaves"]), "leaf", "leaves")
    out.print(
        f"bundle for {evidence_id}: {leaves} proven against checkpoint of size {size} -> {output}"
    )


@audit.command("verify-bundle")
def audit_verify_bundle(
    bundle_file: Annotated[Path, typer.Argument(metavar="FILE")],
    file: Annotated[
        Path | None, typer.Option("--file", metavar="CLIP", help="The clip: check its SHA-256.")
    ] = None,
    key: KeysOpt = None,
    evidence_id: Annotated[
        str | None, typer.Option(metavar="EVIDENCE_ID", help="Insist on this evidence id.")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(metavar="ORIGIN", help="Insist on this log origin.")
    ] = None,
) -> None:
    """Verify a bundle offline: no database, no server."""
    bundle = load_bundle(bundle_file)
    report = verify_bundle(
        bundle, trusted_keys(key), evidence_id=evidence_id, origin=origin, clip=file
    )
    leaves = f"{report.leaves} leaves for {report.evidence_id} are"
    if report.leaves == 1:
        leaves = f"1 leaf for {report.evidence_id} is"
    out.print(
        f"[green]OK[/green] {leaves} in the log of {report.tree_size} leaves under its signed "
        "checkpoint"
    )
    if report.file_checked:
        out.print(f"[green]OK[/green] {file} is the original: SHA-256 {report.clip_sha256}")
    if not report.keys_pinned:
        note(
            "note: checked against the keys inside the bundle; pass --key with the "
            "log's verifier key to not depend on whoever handed you the bundle"
        )


@audit.command("checkpoint")
def audit_checkpoint(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Print (or write) the latest signed checkpoint, issuing one if the log grew.

    Through the service when logged in (or BWV_URL is set); from the local ledger otherwise."""
    if session(ctx).through_service():
        with service() as (api, _):
            emit(api.request("GET", "/ledger/checkpoint").text, output)
        return
    emit(admin.latest_checkpoint(session(ctx).context()), output)


@audit.command("consistency")
def audit_consistency(
    ctx: typer.Context,
    size1: Annotated[int, typer.Argument(metavar="SIZE")],
    size2: Annotated[
        int | None, typer.Option("--to", metavar="SIZE", help="Default: the latest checkpoint.")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """A consistency proof (RFC 9162 §2.1.4) between two tree sizes, as JSON."""
    size2, proof = admin.consistency_proof(session(ctx).context(), size1, size2)
    encoded = [base64.b64encode(p).decode() for p in proof]
    emit(json.dumps({"size1": size1, "size2": size2, "proof": encoded}, indent=2) + "\n", output)


@audit.command("witness")
def audit_witness(
    ctx: typer.Context,
    state: Annotated[Path, typer.Option(metavar="FILE", help="The witness's own state file.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="New signed checkpoint (default: ask the local ledger)."),
    ] = None,
    proof: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Consistency proof JSON from `bwv audit consistency`."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", metavar="KEY", help="Trust this verifier key (or file of them); repeatable."
        ),
    ] = None,
    rotations: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The log's key rotation statements (GET /api/v1/keys, or rotations.json).",
        ),
    ] = None,
) -> None:
    """Accept a new checkpoint only if it extends the last one this witness verified; follow
    the log's key rotations from the keys this witness trusts."""
    extra = list(trusted_keys(key) or [])
    statements = _read_rotations(rotations) if rotations else None
    if checkpoint is not None:
        try:
            note_text = checkpoint.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read checkpoint {checkpoint}: {exc.strerror}") from None
        path_proof = _read_proof(proof) if proof else []
    else:
        local = admin.local_witness_input(session(ctx).context(), state)
        if not extra and not state.exists():
            extra = list(local.keyring)  # first use on the server host: pin its keyring
        if statements is None:
            statements = local.rotations
        note_text, path_proof = local.note, local.proof
    result = witness(state, note_text, path_proof, extra, statements)
    before = f"{result.previous.size}" if result.previous else "nothing (first use)"
    out.print(
        f"[green]accepted[/green] checkpoint of size {result.accepted.size} "
        f"(previously verified: {before})"
    )


def _read_rotations(path: Path) -> list[str]:
    """Rotation statements from what GET /api/v1/keys answers or the service's rotations.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read key rotations {path}: {exc}") from None
    found = data.get("rotations", data.get("statements")) if isinstance(data, dict) else None
    if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
        raise ConfigError(f"{path} holds no key rotation statements")
    return found


def _read_proof(path: Path) -> list[bytes]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [base64.b64decode(p, validate=True) for p in data["proof"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a consistency proof file: {exc}") from None


def _service_leaves(evidence_id: str | None, last: int) -> list[dict[str, Any]]:
    """The latest leaves as the service shows them to this user: a clip's custody history, or
    (for an auditor) the log's last leaves under its signed checkpoint."""
    with service() as (api, _):
        if evidence_id:
            bundle = api.get(api_path("clips", evidence_id, "custody"))
            leaves = [entry["leaf"].encode("utf-8") for entry in bundle["leaves"]][-last:]
        else:
            size = Checkpoint.from_note(api.request("GET", "/ledger/checkpoint").text).size
            leaves = []
            while len(leaves) < min(last, size):
                start = max(0, size - last) + len(leaves)
                found = api.get("/ledger/leaves", start=start, end=size)["leaves"]
                if not found:
                    break
                leaves.extend(base64.b64decode(leaf) for leaf in found)
    return [parse_leaf(leaf) for leaf in leaves]


@audit.command("log")
def audit_log(
    ctx: typer.Context,
    evidence_id: Annotated[
        str | None, typer.Argument(metavar="EVIDENCE_ID", help="Only leaves naming this clip.")
    ] = None,
    last: Annotated[int, typer.Option(metavar="N", help="How many of the latest leaves.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One leaf per line, as JSON (for scripts).")
    ] = False,
) -> None:
    """Show ledger leaves: who did what to which clip, when, with what outcome.

    Through the service when logged in (or BWV_URL is set): a clip's custody history as the
    service shows it to you, or the log's latest leaves (for an auditor); from the local ledger
    on the server host otherwise."""
    if session(ctx).through_service():
        leaves = _service_leaves(evidence_id, last)
    else:
        leaves = admin.recent_leaves(session(ctx).context(), evidence_id, last)
    if as_json:
        for fields in leaves:
            sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
        return
    table = Table("seq", "time", "actor", "role", "action", "target", "outcome", "reason")
    for f in leaves:
        table.add_row(
            str(f["sequence"]),
            f["time"],
            f["actor"],
            f["role"],
            f["action"],
            f["target"] or "",
            f["outcome"],
            f["reason"] or "",
        )
    out.print(table)
