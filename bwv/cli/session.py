"""An officer's or auditor's workstation and the service: ``bwv login``, ``logout``, ``whoami``.
The token is kept in a file only its owner can read; the service key pinned here is what every
custody history is verified against."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bwv.base.errors import BwvError, ConfigError
from bwv.cli.client import (
    ApiClient,
    ApiError,
    Credentials,
    credentials_path,
    forget_credentials,
    save_credentials,
)
from bwv.cli.common import service
from bwv.cli.output import err, note, out, say, shown
from bwv.custody.rotation import follow
from bwv.keys import Keyring, VerifierKey


def login(
    url: Annotated[
        str,
        typer.Option(
            envvar="BWV_URL", metavar="URL", help="The service, e.g. https://evidence:8443"
        ),
    ],
    ca: Annotated[
        Path | None,
        typer.Option(
            envvar="BWV_CA", metavar="FILE", help="CA that signed the service's TLS certificate."
        ),
    ] = None,
    service_key: Annotated[
        str | None,
        typer.Option(
            metavar="KEY", help="The service's verifier key (`bwv keys list` on the server host)."
        ),
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin, not a prompt.")
    ] = False,
) -> None:
    """Check a token with the service and save it (file mode 0600) for the other commands."""
    if service_key is not None:
        VerifierKey.parse(service_key)
    if ca is not None and not ca.is_file():
        raise ConfigError(f"CA file {ca}: no such file")
    ca_file = str(ca.resolve()) if ca else None
    if token_stdin:
        token = sys.stdin.readline().strip()
    elif not sys.stdin.isatty():  # a prompt would warn it cannot hide the input, then read it
        raise ConfigError(
            "stdin is not a terminal, so there is no prompt for the token: to pipe it in, add "
            "--token-stdin (e.g. `echo TOKEN | bwv login --url URL --token-stdin`)"
        )
    else:
        token = typer.prompt("token", hide_input=True).strip()
    if not token:
        raise ConfigError(
            "no token given: paste the token `bwv users add` or `bwv users token` printed"
        )
    with ApiClient(url, token, ca_file) as api:
        me = api.get("/me")
        unreachable = _pinned_key_unreachable(api, service_key) if service_key else None
    if me["role"] == "dock":
        raise ConfigError("that is a dock's token: log in with a user's token (bwv users token)")
    path = save_credentials(Credentials(api.url, token, ca_file, service_key))
    say(
        f"logged in to {api.url} as {me['name']} ({me['role']}); token expires "
        f"{shown(me['token_expires_at'])} UTC"
    )
    say(f"credentials saved to {path} (mode 0600)")
    if unreachable:
        note(f"warning: {unreachable}")
    if service_key is None:
        note(
            "note: no service key pinned, so custody histories will not be verified; log in "
            "again with --service-key KEY (`bwv keys list` on the server host prints it)"
        )


def _pinned_key_unreachable(api: ApiClient, service_key: str) -> str | None:
    """Why the key pinned at login will not verify what the service signs now, or None: it
    must be the service's current key or lead to it through rotation statements it signed."""
    try:
        served = api.get("/keys")
    except ApiError:
        return None  # a service from before rotation statements: nothing to check against
    try:
        current = VerifierKey.parse(str(served.get("current", "")))
        trusted = follow(Keyring([VerifierKey.parse(service_key)]), served.get("rotations") or [])
    except BwvError as exc:
        return f"the service's keys do not verify from the pinned key: {exc.diagnosis}"
    if current in trusted:
        return None
    return (
        f"the service signs with {current.name}+{current.key_id.hex()}, which the pinned key "
        "does not lead to: custody will not verify; check the key (`bwv keys list` on the "
        "server host)"
    )


def logout() -> None:
    """Forget the saved credentials (the token itself stays valid until revoked or expired)."""
    removed = forget_credentials()
    if removed is None:
        out.print(f"not logged in (no credentials at {credentials_path()})", markup=False)
    else:
        out.print(f"credentials removed: {removed}", markup=False)
    if os.environ.get("BWV_TOKEN"):
        err.print("note: BWV_TOKEN is still set in this environment")


def whoami() -> None:
    """Who the service takes you for, and when your token expires."""
    with service() as (api, credentials):
        me = api.get("/me")
    expires = shown(me["token_expires_at"]) + " UTC" if me["token_expires_at"] else "never"
    pinned = credentials.service_key or "none (custody histories are not verified)"
    say(f"{me['name']} ({me['role']}) at {api.url}")
    say(f"token expires: {expires}")
    say(f"service key:   {pinned}")
    for key in credentials.followed_keys:  # reached by rotation statements the pinned key signed
        say(f"rotated to:    {key}")
