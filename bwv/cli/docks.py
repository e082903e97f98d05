"""Docks and cameras on the server host: ``bwv docks enroll|revoke`` (which docking stations may
upload) and ``bwv devices assign`` (which officer a camera is issued to)."""

from __future__ import annotations

from typing import Annotated

import typer

from bwv.cli.common import group, session
from bwv.cli.output import note, out
from bwv.services import admin

docks = group(
    "Docking stations allowed to upload (on the server host; the dock itself runs `bwv dock`)."
)
devices = group("Body-worn cameras and the officers they are issued to.")

DockName = Annotated[str, typer.Argument(metavar="NAME", help="The dock's name.")]


@docks.command("enroll")
def docks_enroll(ctx: typer.Context, name: DockName) -> None:
    """Enrol a dock: prints its token (shown once) and the service key the dock must pin."""
    context = session(ctx).context()
    token = admin.enroll_dock(context, name)
    out.print(f"dock:        {name}")
    out.print(f"token:       {token}")
    out.print(f"service key: {context.signer.verifier}")
    note("the token is shown only this once: give it to the dock now")


@docks.command("revoke")
def docks_revoke(ctx: typer.Context, name: DockName) -> None:
    """Revoke a dock: its token is refused from now on."""
    admin.revoke_dock(session(ctx).context(), name)
    out.print(f"dock {name} revoked")


@devices.command("assign")
def devices_assign(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(metavar="SERIAL")],
    officer: Annotated[str, typer.Argument(metavar="OFFICER")],
) -> None:
    """Issue camera SERIAL to OFFICER: clips from it are indexed under that officer."""
    admin.assign_device(session(ctx).context(), serial, officer)
    out.print(f"camera {serial} -> {officer}")
