"""``bwv demo``: the main job end to end on the embedded default, in this one process: cameras
in dock bays, the ingest service on loopback over TLS, the dock agent, an evidence officer over
the API, retention, and the auditor's checks. It calls the application services and the API
client, as the commands do, and prints each step as the command that would do it."""

from __future__ import annotations

import json
import secrets
import shlex
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.base.net import free_port
from bwv.base.tls import make_ca
from bwv.cli.audit import verify_local_ledger
from bwv.cli.client import ApiClient
from bwv.cli.clips import categorise, clip_line, search, show_page
from bwv.cli.common import session
from bwv.cli.exports import download_copy, export_request, request_export, show_made
from bwv.cli.holds import place_hold
from bwv.cli.options import Redaction
from bwv.cli.output import counted, on_bar, out, progress, say, write_file
from bwv.cli.redact import options_request, plan_paths, request_plan, save_plan
from bwv.cli.retention import show_retention
from bwv.cli.serve import serve_in_background
from bwv.custody.bundle import load_bundle, verify_bundle
from bwv.services import admin
from bwv.services.retention import run_retention
from docks import DockAgent, status, write_enrollment


def _command(*words: object) -> str:
    """A command as it would be typed: every word quoted for a POSIX shell where needed."""
    return "$ bwv " + " ".join(shlex.quote(str(w)) for w in words)


def _show_indexed(clips: list[admin.IndexedClip]) -> None:
    table = Table(
        "evidence id",
        "camera",
        "officer",
        "recorded",
        "duration",
        "video",
        "audio",
        "status",
        "sha256",
        "ledger",
    )
    for c in clips:
        table.add_row(
            c.evidence_id,
            c.camera or "",
            c.officer or "",
            f"{c.recorded_at:%Y-%m-%d %H:%M}" if c.recorded_at else "",
            f"{c.duration_s:.1f} s" if c.duration_s else "",
            c.video or "",
            c.audio_codec or "",
            c.status,
            c.sha256[:12] + "...",
            str(c.ledger_index),
        )
    out.print(table)


def demo(
    ctx: typer.Context,
    clips: Annotated[
        int, typer.Option(metavar="N", help="How many sample clips (one per bay).")
    ] = 3,
) -> None:
    """The main job end to end on the embedded default: sample clips from cameras in dock bays
    are uploaded over TLS to the ingest service, stored, indexed and receipted; the cameras are
    wiped only after their receipts verify; then an audit bundle and the whole ledger are
    verified."""
    # The sample clips are made with PyAV (slow to import): only the demo needs it.
    from bwv.services.demo import docked_cameras, evidence_officer, stored_original

    context = session(ctx).context()
    s = context.settings
    for line in admin.initialise(context):
        out.print(f"init: {line}")
    data_dir = s.data_dir.resolve()
    here = ("--data-dir", data_dir)  # every command echoed works from any folder
    work = data_dir / "demo" / f"{system_clock():%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"

    with progress() as bar:
        task = bar.add_task("recording sample clips (PyAV, H.264 + AAC)", total=clips)
        bays = docked_cameras(context, work / "bays", clips, lambda: bar.advance(task))
    out.print(f"{counted(clips, 'camera')} docked in {work / 'bays'}")

    # The ingest service on loopback, over TLS with a throwaway CA.
    ca, cert, key = make_ca(work / "tls")
    dock_name = f"demo-dock-{secrets.token_hex(2)}"
    token = admin.enroll_dock(context, dock_name)
    server = serve_in_background(s, free_port(), cert, key)
    url = f"https://127.0.0.1:{server.config.port}"
    service_key = str(context.signer.verifier)
    out.print(f"ingest service on {url} (TLS, pinned key {context.signer.verifier.key_id.hex()})")

    # The dock agent: hash, upload (tus), verify receipts, wipe.
    config = write_enrollment(work / "dock", url, dock_name, token, [service_key], ca, bays=bays)
    report = _run_dock(config, clips)
    wiped = len(report.wiped)
    left = sorted(p.name for bay in bays for p in bay.glob("*.mp4"))
    out.print(
        f"receipts verified for {wiped} of {counted(clips, 'clip')}; cameras wiped "
        f"(clips left on cameras: {', '.join(left) or 'none'})"
    )
    rows = status(config.state_dir)
    _show_indexed(admin.indexed_clips(context, [r["evidence_id"] for r in rows]))

    # The auditor's view.
    out.print("\nsigned checkpoint (C2SP tlog-checkpoint, signed note):")
    say(admin.latest_checkpoint(context))
    evidence_id = rows[0]["evidence_id"]
    bundle_path = work / f"{evidence_id}.bundle.json"
    write_file(bundle_path, json.dumps(admin.issue_bundle(context, evidence_id), indent=2) + "\n")
    original = stored_original(context, rows[0]["sha256"])
    bundle_report = verify_bundle(load_bundle(bundle_path), context.keyring, clip=original)
    out.print(
        f"bundle {bundle_path}: {bundle_report.leaves} leaves proven against tree size "
        f"{bundle_report.tree_size}; the stored original matches the ledger's SHA-256"
    )

    # An evidence officer, over the service API as any officer's CLI would be.
    officer, officer_token = evidence_officer(context)
    street = next(r for r in rows if r["camera"] == "BWC-0001")
    held = next(r for r in rows if r["camera"] == "BWC-0002")
    out.print(f"\nevidence officer {officer}, over the API at {url}, logged in with:")
    say(_command("login", "--url", url, "--ca", ca, "--service-key", service_key, "--token-stdin"))
    with ApiClient(url, officer_token, str(ca)) as api:
        _officer(api, work, dock_name, street["evidence_id"], held["evidence_id"])
    server.should_exit = True

    # The retention policy, 40 days on: uncategorised clips are due; the evidential and the held
    # clip are kept.
    as_of = f"{context.clock() + timedelta(days=40):%Y-%m-%d}"
    out.print("")
    say(_command(*here, "retention", "run", "--dry-run", "--as-of", as_of))
    retention = run_retention(
        context,
        admin.evidence_store(context),
        operator=s.actor,
        dry_run=True,
        now=datetime.fromisoformat(as_of).replace(tzinfo=UTC),
    )
    show_retention(retention, dry_run=True)
    verify_local_ledger(context)
    out.print(f"\ndata directory: {data_dir}\ntry:")
    for words in (
        (*here, "audit", "log", evidence_id),
        ("dock", "status", "--state", config.state_dir.resolve()),
        ("audit", "verify-bundle", bundle_path, "--key", service_key),
    ):
        say("  " + _command(*words).removeprefix("$ "))
    context.close()
    if wiped != clips:
        raise BwvError(f"only {wiped} of {clips} clips were receipted; see bwv dock status")


def _run_dock(config: Any, clips: int) -> Any:
    """The dock agent once over every bay, in a thread, with its queue's progress on a bar."""
    done = threading.Event()
    result: dict[str, Any] = {}

    def run_dock() -> None:
        try:
            with DockAgent(config) as agent:
                result["report"] = agent.run(once=True)
        except BaseException as exc:  # said by the demo, not lost with the thread
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run_dock, daemon=True).start()
    with progress() as bar:
        advance = on_bar(bar, "uploading to the ingest service", clips * 100)
        while not done.wait(0.2):
            advance(int(sum(float(r["progress"]) for r in status(config.state_dir))), clips * 100)
    if "error" in result:
        raise result["error"]
    return result["report"]


def _officer(api: ApiClient, work: Path, dock: str, street: str, held: str) -> None:
    """What an evidence officer does with the new clips: search, categorise and charge, hold,
    plan a disclosure copy and make it."""
    say(_command("clips", "list", "--dock", dock))
    show_page(search(api, dock=dock, limit=50, offset=0), 1, 50)
    case = f"DEMO-{secrets.randbelow(9000) + 1000}"
    reason = "charged"
    say(_command("clips", "categorize", street, "evidential", "--case", case, "--reason", reason))
    say(clip_line(categorise(api, street, "evidential", reason, case, False)))
    reason = f"CPS request, case {case}"
    say(_command("hold", "place", held, "--reason", reason))
    say(clip_line(place_hold(api, held, reason)))

    plan, sheet = plan_paths(street, work / "street.plan.json", work / "street.sheet.png")
    reason = f"disclosure, case {case}"
    say(_command("redact", "plan", street, "--reason", reason, "-o", plan, "--sheet", sheet))
    planned = request_plan(api, street, reason, options_request(Redaction()))
    reviewed = save_plan(planned, plan, sheet)
    say(
        f"plan: {plan} ({counted(len(reviewed.tracks), 'track')}, SHA-256 {planned['plan_sha256']})"
    )
    say(f"contact sheet: {sheet}")

    disclosure = work / "disclosure.mp4"
    reason = f"disclosure to defence, case {case}"
    say(_command("export", street, "--plan", plan, "-o", disclosure, "--reason", reason))
    made = request_export(api, street, reason, export_request(plan, Redaction()))
    download_copy(api, made, disclosure, reason)
    show_made(made, disclosure)
