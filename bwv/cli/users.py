"""``bwv users``: people who may use the service, their roles and tokens (on the server host)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from bwv.cli.common import group, session
from bwv.cli.options import DaysOpt
from bwv.cli.output import note, out, say
from bwv.services import admin
from bwv.services.context import Context

users = group("People who may use the service, their roles and tokens (on the server host).")

UserName = Annotated[str, typer.Argument(metavar="NAME")]


def _login_command(context: Context) -> str:
    """The whole ``bwv login`` a user runs with the token: the service key to pin, and the CA
    if the service's certificate needs one (the URL is the host's to give)."""
    return (
        f"bwv login --url https://HOST:8443 --ca CA.pem --service-key {context.signer.verifier}"
        " (paste the token when asked, or pipe it in with --token-stdin)"
    )


def _show_token(context: Context, name: str, token: str, expires: datetime) -> None:
    say(f"token:       {token}")
    out.print(f"expires:     {expires:%Y-%m-%d %H:%M} UTC")
    note(
        f"the token is shown only this once and will not be shown again: give it to {name} now; "
        f"they run: {_login_command(context)}"
    )


@users.command("add")
def users_add(
    ctx: typer.Context,
    name: UserName,
    role: Annotated[
        str,
        typer.Option(
            metavar="ROLE", help="officer, evidence-officer, auditor or admin.", show_default=False
        ),
    ],
    days: DaysOpt = 90,
) -> None:
    """Add a user with a role; prints their first token (shown once)."""
    context = session(ctx).context()
    issued = admin.add_user(context, name, role, days)
    say(f"user:        {name}")
    say(f"role:        {role}")
    _show_token(context, name, issued.token, issued.expires)
    context.close()


@users.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every user: role, when added, whether revoked, how many live tokens."""
    context = session(ctx).context()
    table = Table("name", "role", "added", "revoked", "live tokens")
    for user in admin.list_users(context):
        table.add_row(
            user.name,
            str(user.role),
            f"{user.created_at:%Y-%m-%d %H:%M}",
            f"{user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else "",
            str(user.tokens),
        )
    out.print(table)
    context.close()


@users.command("token")
def users_token(ctx: typer.Context, name: UserName, days: DaysOpt = 90) -> None:
    """Issue another token for a user (their others stay valid until they expire)."""
    context = session(ctx).context()
    issued = admin.issue_token(context, name, days)
    say(f"user:        {name}")
    _show_token(context, name, issued.token, issued.expires)
    context.close()


@users.command("revoke")
def users_revoke(ctx: typer.Context, name: UserName) -> None:
    """Revoke a user: every token they hold is refused from now on."""
    context = session(ctx).context()
    ended = admin.revoke_user(context, name)
    say(f"user {name} revoked ({ended} live {'token' if ended == 1 else 'tokens'} ended)")
    context.close()
