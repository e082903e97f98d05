"""Disclosure copies: ``bwv export`` makes one on the service (faces and plates hidden, signed
with C2PA, stored, recorded); ``bwv exports`` lists and downloads them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bwv.cli.client import ApiClient
from bwv.cli.clips import EvidenceId
from bwv.cli.common import api_path, check_output, download, group, sendable, service
from bwv.cli.options import (
    JsonOpt,
    OptionalReasonOpt,
    PageOpt,
    PerPageOpt,
    Redaction,
    redaction_options,
)
from bwv.cli.output import copies_table, out, pages, say, waiting
from bwv.cli.redact import options_request, reviewed_plan_request
from bwv.redact.plan import Plan, read_plan_bytes

exports = group("Disclosure copies: list and download.")


def export_request(plan: Path | None, redaction: Redaction) -> dict[str, Any]:
    """What an export asks for: a reviewed plan, byte for byte, with only what may change it;
    or the options to plan with."""
    if plan is None:
        return {"plan": None, **options_request(redaction)}
    raw = read_plan_bytes(plan)
    reviewed = Plan.parse(raw, str(plan))  # a broken plan is named here, not sent
    # The exact bytes reviewed, so with nothing more asked the leaf's plan SHA-256 is this
    # file's; what is asked is sent only once it is known the service will honour it.
    return {"plan": raw.decode("utf-8"), **reviewed_plan_request(reviewed, redaction)}


def request_export(
    api: ApiClient, evidence_id: str, reason: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Ask the service to render, sign, store and record a disclosure copy; its record."""
    return api.request(  # type: ignore[no-any-return]
        "POST",
        api_path("clips", evidence_id, "exports"),
        params={"reason": reason},
        json_body=body,
        timeout=None,  # rendering takes as long as the clip needs
    ).json()


def download_copy(api: ApiClient, made: dict[str, Any], output: Path, reason: str) -> None:
    path = api_path("exports", made["export_id"], "content")
    download(api, path, output, reason, made["sha256"])


def show_made(made: dict[str, Any], output: Path | None) -> None:
    say(
        f"disclosure copy {made['export_id']} of {made['evidence_id']}: SHA-256 {made['sha256']}, "
        f"{made['size']} bytes, hiding {made['classes']}, plan SHA-256 {made['plan_sha256']}"
    )
    if output is not None:
        say(f"written to {output} (SHA-256 checked)")


@redaction_options
def export(
    evidence_id: EvidenceId,
    reason: Annotated[
        str, typer.Option(metavar="TEXT", help="Why this copy is made (recorded in the ledger).")
    ],
    redaction: Redaction,
    plan: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A reviewed plan (bwv redact plan).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Also download the copy to here."),
    ] = None,
) -> None:
    """Make a disclosure copy on the service: faces and plates hidden, signed (C2PA), stored,
    recorded; -o downloads it too.

    With --plan, --mute spans are added to the reviewed plan and --mode, --shape, --padding
    (more only) and --audio applied to it; --classes and the detection schedule are fixed when
    a plan is made, so a different value is refused here rather than sent."""
    body = export_request(plan, redaction)
    sendable(reason)
    if output is not None:
        check_output(output)
    with service() as (api, _):
        with waiting(f"the service is rendering a disclosure copy of {evidence_id}"):
            made = request_export(api, evidence_id, reason, body)
        if output is not None:
            download_copy(api, made, output, reason)
    show_made(made, output)


@exports.command("list")
def exports_list(
    evidence_id: Annotated[
        str | None, typer.Argument(metavar="EVIDENCE_ID", help="Only this clip's copies.")
    ] = None,
    page: PageOpt = 1,
    per_page: PerPageOpt = 50,
    reason: OptionalReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disclosure copies made, newest first."""
    sendable(reason)
    with service() as (api, _):
        found = api.get(
            "/exports",
            evidence_id=evidence_id,
            limit=per_page,
            offset=(page - 1) * per_page,
            reason=reason,
        )
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    out.print(copies_table(found["items"], evidence_id=True))
    out.print(pages(page, per_page, found["total"], "copy", "copies"))


@exports.command("get")
def exports_get(
    export_id: Annotated[str, typer.Argument(metavar="EXPORT_ID")],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Where to write the copy.")
    ],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why it is downloaded (recorded).")],
) -> None:
    """Download a disclosure copy (checked against its SHA-256; recorded in the ledger)."""
    sendable(reason)
    check_output(output)
    with service() as (api, _):
        digest = download(api, api_path("exports", export_id, "content"), output, reason, None)
    out.print(f"{export_id} written to {output} (SHA-256 {digest}, checked)", markup=False)
