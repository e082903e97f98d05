"""``bwv clips``: clips through the service (search, view with custody verified offline,
download the original, categorise). Nothing here opens a database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bwv.base.errors import BundleError, BwvError
from bwv.cli.client import ApiClient
from bwv.cli.common import (
    api_path,
    check_output,
    download,
    followed_keys,
    group,
    rfc3339,
    sendable,
    service,
)
from bwv.cli.options import JsonOpt, OptionalReasonOpt, PageOpt, PerPageOpt, ReasonOpt
from bwv.cli.output import cell, copies_table, counted, escaped, out, pages, say, shown
from bwv.custody.bundle import verify_bundle
from bwv.custody.leaf import parse_leaf
from bwv.keys import Keyring

clips = group("Clips, through the service: search, view, download, categorise.")

EvidenceId = Annotated[str, typer.Argument(metavar="EVIDENCE_ID")]


# --- requests (the demo makes them too) --------------------------------------------------------


def search(api: ApiClient, **query: Any) -> dict[str, Any]:
    return api.get("/clips", **query)  # type: ignore[no-any-return]


def categorise(
    api: ApiClient, evidence_id: str, category: str, reason: str, case: str | None, clear: bool
) -> dict[str, Any]:
    """Set a clip's category (and case, or clear it); the clip as the service now has it."""
    sendable(reason)
    if case is not None and clear:
        raise BwvError("give --case or --clear-case, not both")
    body: dict[str, Any] = {"category": category}
    if case is not None or clear:
        body["case"] = case  # null removes it (an evidence officer's call once one is set)
    return api.request(  # type: ignore[no-any-return]
        "POST",
        api_path("clips", evidence_id, "category"),
        params={"reason": reason},
        json_body=body,
    ).json()


# --- what is shown -----------------------------------------------------------------------------


def show_page(found: dict[str, Any], page: int, per_page: int) -> None:
    table = Table(
        "evidence id",
        "recorded",
        "officer",
        "camera",
        "duration",
        "category",
        "case",
        "status",
        "exports",
    )
    for clip in found["items"]:
        state = "deleted" if clip["deleted_at"] else clip["status"]
        table.add_row(
            *(
                cell(v)
                for v in (
                    clip["evidence_id"],
                    shown(clip["recorded_at"]),
                    clip["officer"],
                    clip["camera"],
                    f"{clip['duration_s']:.1f} s" if clip["duration_s"] else "",
                    clip["category"],
                    clip["case"],
                    state + (", held" if clip["held"] else ""),
                    str(clip["exports"]),
                )
            )
        )
    out.print(table)
    out.print(pages(page, per_page, found["total"], "clip", "clips"))


def clip_line(clip: dict[str, Any]) -> str:
    """A clip's category, case, retention and hold, in one line."""
    case = f", case {clip['case']}" if clip["case"] else ""
    held = ", on legal hold" if clip["held"] else ""
    kept = f", kept until {shown(clip['retain_until'])}" if clip["retain_until"] else ""
    return f"{clip['evidence_id']}: {clip['category']}{case}{kept}{held}"


def custody_verdict(
    bundle: dict[str, Any], clip: dict[str, Any], key: str | None, trusted: Keyring | None
) -> str:
    """Verify a clip's custody bundle offline against ``trusted`` (the pinned ``key`` and the
    keys followed from it); the line that says against what."""
    report = verify_bundle(bundle, trusted, evidence_id=clip["evidence_id"])
    if report.clip_sha256 != clip["sha256"]:
        raise BundleError(
            f"the custody record says {clip['evidence_id']} has SHA-256 {report.clip_sha256}, "
            f"but the service's index says {clip['sha256']}"
        )
    leaves = counted(report.leaves, "leaf", "leaves")
    proven = f"{leaves} proven against a signed checkpoint of {report.tree_size}"
    if key and trusted is not None:
        if len(trusted) > 1:
            return (
                f"custody verified against service key {key} and the {len(trusted) - 1} "
                f"rotation{'s' if len(trusted) > 2 else ''} it signed: {proven}"
            )
        return f"custody verified against service key {key}: {proven}"
    return (
        f"custody NOT verified: no service key pinned ({proven} under keys the service itself "
        "sent); pin one with `bwv login --service-key KEY` (`bwv keys list` on the server host)"
    )


def _media(clip: dict[str, Any]) -> str:
    parts = (
        f"{clip['video_codec']} {clip['width']}x{clip['height']} {clip['frame_rate']:g} fps"
        if clip["video_codec"]
        else "",
        clip["audio_codec"] or "",
        f"{clip['duration_s']:.1f} s" if clip["duration_s"] else "",
    )
    return ", ".join(part for part in parts if part)


# --- commands ----------------------------------------------------------------------------------


@clips.command("list")
def clips_list(
    officer: Annotated[
        str | None, typer.Option(metavar="NAME", help="Recorded by this officer.")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(metavar="SERIAL", help="Recorded on this camera (serial).")
    ] = None,
    dock: Annotated[str | None, typer.Option(metavar="NAME", help="Uploaded by this dock.")] = None,
    recorded_from: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Recorded at or after (date or RFC 3339 time)."),
    ] = None,
    recorded_to: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Recorded at or before.")
    ] = None,
    ingested_from: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Ingested at or after.")
    ] = None,
    ingested_to: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Ingested at or before.")
    ] = None,
    category: Annotated[str | None, typer.Option(metavar="NAME", help="In this category.")] = None,
    case: Annotated[
        str | None, typer.Option(metavar="REF", help="With this case reference.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(metavar="STATUS", help="playable, unplayable or deleted.")
    ] = None,
    has_exports: Annotated[
        bool | None,
        typer.Option("--has-exports/--no-exports", help="With (or without) disclosure copies."),
    ] = None,
    page: PageOpt = 1,
    per_page: PerPageOpt = 50,
    reason: OptionalReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search clips, most recently recorded first (an officer sees their own)."""
    sendable(reason)
    query = {
        "officer": officer,
        "camera": camera,
        "dock": dock,
        "recorded_from": rfc3339(recorded_from, "--recorded-from"),
        "recorded_to": rfc3339(recorded_to, "--recorded-to", end=True),
        "ingested_from": rfc3339(ingested_from, "--ingested-from"),
        "ingested_to": rfc3339(ingested_to, "--ingested-to", end=True),
        "category": category,
        "case": case,
        "status": status,
        "has_exports": None if has_exports is None else str(has_exports).lower(),
        "limit": per_page,
        "offset": (page - 1) * per_page,
        "reason": reason,
    }
    with service() as (api, _):
        found = search(api, **query)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    show_page(found, page, per_page)


@clips.command("show")
def clips_show(evidence_id: EvidenceId, reason: OptionalReasonOpt = None) -> None:
    """A clip's record, its disclosure copies and its custody history, verified offline."""
    sendable(reason)
    with service() as (api, credentials):
        clip = api.get(api_path("clips", evidence_id), reason=reason)
        bundle = api.get(api_path("clips", evidence_id, "custody"), reason=reason)
        trusted = followed_keys(api, credentials, bundle.get("checkpoint"))
    verdict = custody_verdict(bundle, clip, credentials.service_key, trusted)
    held = "yes (legal hold)" if clip["held"] else "no"
    rows = [
        ("evidence id", clip["evidence_id"]),
        ("sha256", clip["sha256"]),
        ("size", f"{clip['size']} bytes"),
        ("status", clip["status"]),
        ("officer", clip["officer"]),
        ("camera", clip["camera"]),
        ("dock, bay", ", ".join(p for p in (clip["dock"], clip["bay"]) if p)),
        ("original name", clip["original_name"]),
        ("recorded", shown(clip["recorded_at"])),
        ("ingested", shown(clip["ingested_at"])),
        ("media", _media(clip)),
        ("category", clip["category"] + (f" (case {clip['case']})" if clip["case"] else "")),
        ("retain until", shown(clip["retain_until"])),
        ("held", held),
        ("deleted", shown(clip["deleted_at"]) or "no"),
    ]
    for label, value in rows:
        say(f"{label + ':':15}{escaped(value or '')}")
    if clip["export_list"]:
        out.print(copies_table(clip["export_list"], evidence_id=False, title="exports"))
    history = Table("seq", "time", "actor", "role", "action", "outcome", "reason", title="custody")
    for entry in bundle["leaves"]:
        f = parse_leaf(entry["leaf"].encode("utf-8"))
        fields = ("sequence", "time", "actor", "role", "action", "outcome", "reason")
        history.add_row(*(cell(str(f[n]) if n == "sequence" else f[n]) for n in fields))
    out.print(history)
    say(verdict)


@clips.command("get")
def clips_get(
    evidence_id: EvidenceId,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to write the original.")
    ],
    reason: ReasonOpt,
) -> None:
    """Download a clip's original, checked against its SHA-256 (recorded in the ledger)."""
    sendable(reason)
    check_output(output)
    with service() as (api, _):
        clip = api.get(api_path("clips", evidence_id), reason=reason)
        digest = download(
            api, api_path("clips", evidence_id, "original"), output, reason, clip["sha256"]
        )
    say(
        f"{evidence_id} written to {output}: {clip['size']} bytes, SHA-256 {digest} "
        "(as the service sent and as indexed at ingest)"
    )


@clips.command("categorize")
def clips_categorize(
    evidence_id: EvidenceId,
    category: Annotated[str, typer.Argument(metavar="CATEGORY")],
    reason: ReasonOpt,
    case: Annotated[
        str | None, typer.Option(metavar="REF", help="Case reference, e.g. CASE-1234.")
    ] = None,
    clear_case: Annotated[
        bool, typer.Option("--clear-case", help="Remove the clip's case reference.")
    ] = False,
) -> None:
    """Set a clip's category (and case); its retention period follows from the category.
    Without --case the clip keeps its case reference."""
    sendable(reason)
    if case is not None and clear_case:
        raise BwvError("give --case or --clear-case, not both")
    with service() as (api, _):
        clip = categorise(api, evidence_id, category, reason, case, clear_case)
    say(clip_line(clip))
