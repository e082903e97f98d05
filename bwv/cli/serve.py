"""``bwv serve``: the HTTP service (ingest from docks, the officers' and auditors' API) under
uvicorn, with the limits of :mod:`bwv.api.limits`.

The command line and the HTTP API are sibling interfaces; this module is the one place the
command line starts the other (``bwv serve`` and the demo's loopback service), an exception
named in .importlinter.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bwv.access.clients import trusted_proxies
from bwv.access.files import private_umask
from bwv.base.errors import BwvError, ConfigError
from bwv.base.settings import Settings
from bwv.cli.common import session
from bwv.cli.output import note
from bwv.services import admin

if TYPE_CHECKING:
    import uvicorn

# The service (FastAPI, its routes, uvicorn) takes about a second to import: it is imported
# where it is started, so that every other bwv command starts without it.


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8443,
    cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="TLS certificate chain (PEM).")
    ] = None,
    key: Annotated[Path | None, typer.Option(metavar="FILE", help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="uvicorn log level.")] = "info",
) -> None:
    """Run the ingest service (tus uploads from docks) under uvicorn: TLS 1.2+ with AEAD
    suites only, deadlines on request heads and bodies, a connection limit."""
    from bwv.api import limits
    from bwv.api.app import create_app

    if (cert is None) != (key is None):
        raise ConfigError("give both --cert and --key for TLS, or neither")
    if cert is None and not limits.is_loopback(host):
        raise ConfigError(
            f"refusing plain HTTP on {host}: tokens and footage would cross the network in "
            "clear; give --cert and --key, or listen on 127.0.0.1"
        )
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise ConfigError(f"no such file: {path}")
    private_umask()  # store, uploads, database: for the service's user only
    context = session(ctx).context()
    # An install made by an older bwv (or copied) may be open to other local users: as init.
    if tightened := admin.make_install_private(context):
        note(tightened)
    proxies = trusted_proxies(context.settings.trusted_proxies)
    limits.run(
        create_app(context.settings),
        context.settings,
        host=host,
        port=port,
        cert=str(cert) if cert else None,
        key=str(key) if key else None,
        log_level=log_level,
        # X-Forwarded-For only from the proxies named in BWV_TRUSTED_PROXIES (uvicorn's own
        # default believes any loopback peer): the client address is a leaf's "where from".
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


def serve_in_background(settings: Settings, port: int, cert: Path, key: Path) -> uvicorn.Server:
    """The service on loopback over TLS in a thread of this process (the demo's); stop it by
    setting ``should_exit``."""
    import uvicorn

    from bwv.api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise BwvError("the demo's ingest service did not start")
        time.sleep(0.05)
    return server
