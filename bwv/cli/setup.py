"""Setting up the server host: ``bwv init`` and the signing keys (``bwv keys``)."""

from __future__ import annotations

import typer

from bwv.access.files import private_umask
from bwv.cli.common import group, session
from bwv.cli.output import counted, note, out
from bwv.services import admin

keys = group("Signing keys: create, rotate, list.")


def init(ctx: typer.Context) -> None:
    """Create the data directory, apply database migrations, and make a signing key if none.
    Everything it makes is for the service's user only; an existing folder open to group or
    others is made owner-only, or refused if it belongs to someone else."""
    private_umask()
    context = session(ctx).context()
    try:
        done = admin.initialise(context)
    finally:
        context.close()
    for line in done or ["already initialised; nothing to do"]:
        out.print(line)


@keys.command("init")
def keys_init(ctx: typer.Context) -> None:
    """Make the Ed25519 signing key (file mode 0600) and print its verifier key."""
    out.print(str(admin.create_signing_key(session(ctx).context())), soft_wrap=True)


@keys.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """Sign with a new key from now on; the old public key stays in the keyring."""
    context = session(ctx).context()
    try:
        new = admin.rotate_signing_key(context)
    finally:
        context.close()
    out.print(str(new), soft_wrap=True)
    note("a running service signs with this key from its next signature: no restart needed")
    note(
        "docks, officers' clients and witnesses follow the rotation statement the old key signed "
        "(GET /api/v1/keys): nobody enrols again; what the old key signed stays valid"
    )


@keys.command("list")
def keys_list(ctx: typer.Context) -> None:
    """The keyring: every verifier key, oldest first; the one signing now is marked."""
    view = admin.keyring_view(session(ctx).context())
    for key in view.keys:
        mark = "*" if key == view.current else " "
        out.print(f"{mark} {key}", soft_wrap=True)
    if view.rotations:
        note(
            f"{counted(view.rotations, 'rotation statement')}, each signed by the key it "
            "replaces: pinned old keys follow them to the current one"
        )
