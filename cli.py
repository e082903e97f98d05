"""The ``bwv`` command: thin over the library. It parses, calls, prints.

Errors the product expects (:class:`bwv.base.errors.BwvError`) become one line on stderr and a
non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from bwv.access.text import shown_badly
from bwv.base.errors import BwvError, ConfigError, KeyError_, NoteError, TamperError
from bwv.base.files import write_atomic
from bwv.base.net import free_port
from bwv.base.settings import Settings
from bwv.custody.bundle import load_bundle, make_bundle, verify_bundle
from bwv.custody.leaf import Outcome, parse_leaf
from bwv.custody.note import Checkpoint
from bwv.custody.verify import LedgerReport, verify_ledger
from bwv.custody.witness import witness
from bwv.keys import Keyring, VerifierKey, init_keys, rotate_keys
from bwv.records import database as db
from bwv.services.context import Context

if TYPE_CHECKING:
    from bwv.cli.client import ApiClient, Credentials

app = typer.Typer(
    help="bwv: evidence system for body-worn video (ingest, redaction, custody ledger).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Signing keys: create, rotate, list.", no_args_is_help=True)
audit_app = typer.Typer(help="Auditor tools for the custody ledger.", no_args_is_help=True)
docks_app = typer.Typer(help="Docking stations allowed to upload.", no_args_is_help=True)
devices_app = typer.Typer(
    help="Body-worn cameras and the officers they are issued to.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
dock_app = typer.Typer(help="The dock agent on a docking-station PC.", no_args_is_help=True)
app.add_typer(docks_app, name="docks")
app.add_typer(dock_app, name="dock")
app.add_typer(devices_app, name="devices")
users_app = typer.Typer(
    help="People who may use the service, their roles and tokens (on the server host).",
    no_args_is_help=True,
)
clips_app = typer.Typer(
    help="Clips, through the service: search, view, download, categorise.", no_args_is_help=True
)
hold_app = typer.Typer(help="Legal holds, through the service.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(clips_app, name="clips")
app.add_typer(hold_app, name="hold")


class _RedactGroup(TyperGroup):
    """``bwv redact FILE`` and ``bwv redact plan ID``: a first argument that is not a
    subcommand is the file to redact."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["file", *args]
        return super().resolve_command(ctx, args)


redact_app = typer.Typer(
    cls=_RedactGroup,
    help="Redaction: plan what to hide in a clip (plan ID), or redact a local file (FILE -o OUT).",
    no_args_is_help=True,
)
exports_app = typer.Typer(help="Disclosure copies: list and download.", no_args_is_help=True)
app.add_typer(redact_app, name="redact")
app.add_typer(exports_app, name="exports")

out = Console(soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # tables piped to a file or a test should not be squeezed to 80 columns
err = Console(stderr=True)
_debug = False
_data_dir: Path | None = None


def _context() -> Context:
    overrides = {"data_dir": _data_dir} if _data_dir else {}
    return Context(Settings(**overrides))  # type: ignore[arg-type]


def _write_atomic(path: Path, data: str | bytes) -> None:
    """Write all or nothing: a failed command leaves no half-written file behind."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


class _Quiet:
    """Progress for a non-terminal stderr: nothing at all (not even rich's blank line)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        return None

    advance = update


def _emit(text: str, output: Path | None) -> None:
    """To the file (all or nothing), or to stdout."""
    if output:
        _write_atomic(output, text)
    else:
        sys.stdout.write(text)


def _progress(transfer: bool = False) -> Progress | _Quiet:
    """Bars on a terminal's stderr; ``transfer`` counts bytes (size and speed) not items."""
    if not err.is_terminal:
        return _Quiet()
    counts = (DownloadColumn(), TransferSpeedColumn()) if transfer else (MofNCompleteColumn(),)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.callback()
def _options(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (env BWV_DATA_DIR).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    global _debug, _data_dir
    _debug, _data_dir = debug, data_dir


# --- set-up -----------------------------------------------------------------------------------


def _private_roots(s: Settings) -> list[Path]:
    """The folders that hold evidence or its records: the data folder, and a local store or
    upload folder configured outside it."""
    from bwv.store.local import LocalStore

    roots = [s.data_dir]
    if s.store_url.startswith("file:"):
        roots.append(LocalStore.from_url(s.store_url).root)
    if s.upload_dir is not None:
        roots.append(s.upload_dir)
    return [r for n, r in enumerate(roots) if not any(r.is_relative_to(o) for o in roots[:n])]


def _initialise(ctx: Context) -> list[str]:
    from bwv.access.files import tighten

    s = ctx.settings
    done = []
    for root in _private_roots(s):  # an existing folder left open: closed before adding to it
        if changed := tighten(root):
            done.append(f"{root} was open to group or others: {changed} paths made owner-only")
    s.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = db.make_engine(s.database_url)
    try:
        before = db.current_revision(engine)
        db.upgrade(engine)
        if before != db.head_revision():
            done.append(f"database schema {before or 'empty'} -> {db.head_revision()}")
    finally:
        engine.dispose()
    assert s.signing_key_path and s.keyring_path
    if not s.signing_key_path.exists():
        key = init_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
        ctx.record("admin", "key.created", details={"verifier_key": str(key.verifier)})
        done.append(f"signing key created; verifier key: {key.verifier}")
    tighten(s.data_dir)  # the keyring is written world-readable (it holds only public keys)
    return done


@app.command()
def init() -> None:
    """Create the data directory, apply database migrations, and make a signing key if none.
    Everything it makes is for the service's user only; an existing folder open to group or
    others is made owner-only, or refused if it belongs to someone else."""
    from bwv.access.files import private_umask

    private_umask()
    ctx = _context()
    try:
        done = _initialise(ctx)
    finally:
        ctx.close()
    for line in done or ["already initialised; nothing to do"]:
        out.print(line)


# --- keys -------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init() -> None:
    """Make the Ed25519 signing key (file mode 0600) and print its verifier key."""
    ctx = _context()
    s = ctx.settings
    assert s.signing_key_path and s.keyring_path
    key = init_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
    out.print(str(key.verifier), soft_wrap=True)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Sign with a new key from now on; the old public key stays in the keyring."""
    ctx = _context()
    s = ctx.settings
    assert s.signing_key_path and s.keyring_path
    ctx.engine  # noqa: B018 - refuse before rotating if the database is unusable
    old, new = rotate_keys(s.signing_key_path, s.keyring_path, s.ledger_origin)
    ctx.record(
        "admin",
        "key.rotated",
        details={"old_verifier_key": str(old.verifier), "verifier_key": str(new.verifier)},
    )
    ctx.ledger.checkpoint()
    ctx.close()
    out.print(str(new.verifier), soft_wrap=True)
    for line in (
        "a running service signs with this key from its next signature: no restart needed",
        "docks, officers' clients and witnesses follow the rotation statement the old key signed "
        "(GET /api/v1/keys): nobody enrols again; what the old key signed stays valid",
    ):
        err.print(line, highlight=False, markup=False, soft_wrap=True)


@keys_app.command("list")
def keys_list() -> None:
    """The keyring: every verifier key, oldest first; the one signing now is marked."""
    ctx = _context()
    current = ctx.signer.verifier if ctx.settings.signing_key_path.exists() else None  # type: ignore[union-attr]
    for key in ctx.keyring:
        mark = "*" if key == current else " "
        out.print(f"{mark} {key}", soft_wrap=True)
    from bwv.custody.rotation import load_statements, rotations_path

    assert ctx.settings.keyring_path is not None
    statements = load_statements(rotations_path(ctx.settings.keyring_path))
    if statements:
        err.print(
            f"{len(statements)} rotation statement(s), each signed by the key it replaces: "
            "pinned old keys follow them to the current one",
            highlight=False,
            markup=False,
        )


# --- ingest service, docks, devices ----------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8443,
    cert: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM).")] = None,
    key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
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
    from bwv.access.clients import trusted_proxies
    from bwv.access.files import make_private, private_umask

    private_umask()  # store, uploads, database: for the service's user only
    ctx = _context()
    # An install made by an older bwv (or copied) may be open to other local users: as init.
    if tightened := make_private(_private_roots(ctx.settings), ctx.settings.database_url):
        err.print(tightened, highlight=False, markup=False, soft_wrap=True)
    proxies = trusted_proxies(ctx.settings.trusted_proxies)
    application = create_app(ctx.settings)
    limits.run(
        application,
        ctx.settings,
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


@docks_app.command("enroll")
def docks_enroll(name: str) -> None:
    """Enrol a dock: prints its token (shown once) and the service key the dock must pin."""
    from bwv.access.docks import enroll_dock

    ctx = _context()
    token = enroll_dock(ctx.engine, name)
    ctx.record("admin", "dock.enrolled", details={"dock": name})
    out.print(f"dock:        {name}")
    out.print(f"token:       {token}")
    out.print(f"service key: {ctx.signer.verifier}")
    err.print("the token is shown only this once: give it to the dock now")


@docks_app.command("revoke")
def docks_revoke(name: str) -> None:
    """Revoke a dock: its token is refused from now on."""
    from bwv.access.docks import revoke_dock

    ctx = _context()
    revoke_dock(ctx.engine, name)
    ctx.record("admin", "dock.revoked", details={"dock": name})
    out.print(f"dock {name} revoked")


@devices_app.command("assign")
def devices_assign(serial: str, officer: str) -> None:
    """Issue camera SERIAL to OFFICER: clips from it are indexed under that officer."""
    from bwv.access.docks import assign_device

    ctx = _context()
    assign_device(ctx.engine, serial, officer)
    ctx.record("admin", "device.assigned", details={"camera": serial, "officer": officer})
    out.print(f"camera {serial} -> {officer}")


# --- users (on the server host) ---------------------------------------------------------------

DaysOpt = Annotated[int, typer.Option("--days", help="How long the token is valid, in days.")]


def _show_token(name: str, token: str, expires: datetime) -> None:
    out.print(f"token:       {token}", soft_wrap=True, highlight=False, markup=False)
    out.print(f"expires:     {expires:%Y-%m-%d %H:%M} UTC")
    err.print(
        f"the token is shown only this once and will not be shown again: give it to {name} now "
        "(they run `bwv login --url URL`)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[
        str, typer.Option(help="officer, evidence-officer, auditor or admin.", show_default=False)
    ],
    days: DaysOpt = 90,
) -> None:
    """Add a user with a role; prints their first token (shown once)."""
    from bwv.access import add_user

    ctx = _context()
    now = ctx.clock.now()
    token = add_user(ctx.engine, name, role, now, days)
    expires = now + timedelta(days=days)
    ctx.record(
        "admin",
        "user.added",
        details={"user": name, "role": role, "token_expires_at": expires.isoformat()},
    )
    out.print(f"user:        {name}", highlight=False, markup=False)
    out.print(f"role:        {role}", highlight=False, markup=False)
    _show_token(name, token, expires)
    ctx.close()


@users_app.command("list")
def users_list() -> None:
    """Every user: role, when added, whether revoked, how many live tokens."""
    from bwv.access import list_users

    ctx = _context()
    table = Table("name", "role", "added", "revoked", "live tokens")
    for user in list_users(ctx.engine, ctx.clock.now()):
        table.add_row(
            user.name,
            str(user.role),
            f"{user.created_at:%Y-%m-%d %H:%M}",
            f"{user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else "",
            str(user.tokens),
        )
    out.print(table)
    ctx.close()


@users_app.command("token")
def users_token(name: str, days: DaysOpt = 90) -> None:
    """Issue another token for a user (their others stay valid until they expire)."""
    from bwv.access import issue_token

    ctx = _context()
    now = ctx.clock.now()
    token = issue_token(ctx.engine, name, now, days)
    expires = now + timedelta(days=days)
    ctx.record(
        "admin",
        "user.token.issued",
        details={"user": name, "token_expires_at": expires.isoformat()},
    )
    out.print(f"user:        {name}", highlight=False, markup=False)
    _show_token(name, token, expires)
    ctx.close()


@users_app.command("revoke")
def users_revoke(name: str) -> None:
    """Revoke a user: every token they hold is refused from now on."""
    from bwv.access import revoke_user

    ctx = _context()
    ended = revoke_user(ctx.engine, name, ctx.clock.now())
    ctx.record("admin", "user.revoked", details={"user": name, "tokens_revoked": ended})
    out.print(f"user {name} revoked ({ended} live tokens ended)", highlight=False, markup=False)
    ctx.close()


# --- the dock agent (runs on the docking-station PC) -------------------------------------------

DockState = Annotated[
    Path,
    typer.Option(
        "--state",
        envvar="BWV_DOCK_STATE",
        help="The dock's state directory (config, queue, receipts).",
    ),
]


DEFAULT_DOCK_STATE = Path.home() / ".local" / "share" / "bwv-dock"


@dock_app.command("enroll")
def dock_enroll(
    url: Annotated[str, typer.Option(help="The ingest service, e.g. https://evidence:8443")],
    name: Annotated[str, typer.Option(help="This dock's name, as enrolled on the service.")],
    token: Annotated[str, typer.Option(help="The token `bwv docks enroll` printed.")],
    service_key: Annotated[list[str], typer.Option(help="The service's verifier key to pin.")],
    ca_file: Annotated[
        Path | None,
        typer.Option(help="CA that signed the service's TLS certificate (only it is trusted)."),
    ] = None,
    state: DockState = DEFAULT_DOCK_STATE,
) -> None:
    """Store this dock's enrolment: service URL, token, pinned service key and CA."""
    from docks import write_enrollment

    for key in service_key:
        VerifierKey.parse(key)
    config = write_enrollment(state, url, name, token, service_key, ca_file)
    out.print(f"dock {config.dock_name} enrolled with {config.service_url}; state in {state}")


@dock_app.command("run")
def dock_run(
    bay: Annotated[
        list[Path] | None, typer.Option(help="A bay folder (one per docked camera); repeatable.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Take what is finished now, then stop.")] = False,
    parallel: Annotated[int | None, typer.Option(help="Uploads at once.")] = None,
    max_rate: Annotated[float | None, typer.Option(help="Upload cap, MB/s.")] = None,
    settle: Annotated[
        float | None,
        typer.Option(help="Seconds a clip's size must be stable (without a .done marker)."),
    ] = None,
    poll: Annotated[float | None, typer.Option(help="Seconds between bay scans.")] = None,
    chunk_size: Annotated[
        float | None, typer.Option(help="MiB per PATCH: an interrupted chunk is sent again whole.")
    ] = None,
    state: DockState = DEFAULT_DOCK_STATE,
) -> None:
    """Upload finished clips from the bays; wipe each only after its signed receipt verifies."""
    import dataclasses
    import logging
    import signal
    import threading

    from docks import DockAgent, DockConfig

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    config = DockConfig.load(state)
    changes = {
        k: v
        for k, v in {
            "parallel": parallel,
            "max_rate_mb_s": max_rate,
            "settle_seconds": settle,
            "poll_interval": poll,
            "chunk_size": int(chunk_size * 1024 * 1024) if chunk_size else None,
        }.items()
        if v is not None
    }
    if bay:
        for folder in bay:
            if not folder.is_dir():
                raise ConfigError(f"bay folder {folder} does not exist")
        changes["bays"] = list(bay)
    config = dataclasses.replace(config, **changes)
    if not config.bays:
        raise ConfigError("no bay folders: give --bay DIR (one per docked camera)")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with DockAgent(config) as agent:
        report = agent.run(stop_event=stop, once=once)
    out.print(
        f"wiped {len(report.wiped)} (receipted), rejected {len(report.rejected)}, "
        f"failed {len(report.failed)}, pending {len(report.pending)}, "
        f"non-clip files {len(report.non_clips)}"
    )
    for clip in report.rejected + report.failed:
        out.print(f"  kept on camera: {clip.path}: {clip.last_error}", markup=False)
    if report.rejected or report.failed:
        raise typer.Exit(3)


@dock_app.command("status")
def dock_status(
    state: DockState = DEFAULT_DOCK_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """The dock's queue: every clip, its state and upload progress."""
    from docks import status

    if not (state / "queue.sqlite3").exists() and not state.exists():
        raise ConfigError(f"no dock state at {state}: run `bwv dock enroll` first")
    rows = status(state)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table("id", "bay", "file", "state", "progress", "tries", "evidence id", "last error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["bay"]),
            str(row["file"]),
            row["state"],
            f"{row['progress']:.0f}%",
            str(row["attempts"]),
            row.get("evidence_id") or "",
            (row.get("last_error") or "")[:60],
        )
    out.print(table)


# --- officers and auditors: the service's API (never the database) ---------------------------


@contextmanager
def _api() -> Iterator[tuple[ApiClient, Credentials]]:
    from bwv.cli.client import ApiClient, load_credentials

    credentials = load_credentials()
    with ApiClient.from_credentials(credentials) as api:
        yield api, credentials


def _through_service() -> bool:
    """Commands that work on the server host too ask the service when this machine is logged
    in (or BWV_URL is set), unless --data-dir names a local data directory."""
    from bwv.cli.client import api_configured

    return _data_dir is None and api_configured()


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def _sendable(reason: str | None) -> None:
    """The service judges (and records) a bad reason; one too long to go in a URL at all is
    refused here, in the words the service would use."""
    from bwv.access.reasons import MAX_REASON, ReasonError

    if reason is not None and len(quote(reason, safe="")) > 16 * MAX_REASON:
        raise ReasonError(f"the reason is {len(reason)} characters; at most {MAX_REASON}")


def _when(value: str | None, flag: str, *, end: bool = False) -> str | None:
    """An RFC 3339 time for the service: a bare date is the start of that day (UTC), or its end
    for a ``--...-to`` bound; a time without a zone is UTC."""
    if value is None:
        return None
    from datetime import date, time

    try:
        if len(value) <= 10:
            day = date.fromisoformat(value)
            when = datetime.combine(day, time.max if end else time.min, UTC)
        else:
            when = datetime.fromisoformat(value)
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        raise BwvError(
            f"{flag} {value[:40]!r} is not a date or time (e.g. 2026-03-01 or 2026-03-01T14:30:00Z)"
        ) from None
    return when.isoformat()


def _shown(when: str | None) -> str:
    return when[:16].replace("T", " ") if when else ""


def _pages(page: int, per_page: int, total: int, what: str) -> str:
    pages = max(1, -(-total // per_page))
    return f"page {page} of {pages}, {total} {what}"


def _bar(bar: Any, label: str) -> Any:
    """A progress callback (bytes done, total if known) on a new bar."""
    task = bar.add_task(label, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def _spinner(text: str) -> Any:
    return err.status(text) if err.is_terminal else nullcontext()


PageOpt = Annotated[int, typer.Option(min=1, help="Which page of results.")]
PerPageOpt = Annotated[int, typer.Option(min=1, max=500, help="Results per page.")]
ReasonOpt = Annotated[str, typer.Option(help="Why you ask (recorded in the ledger).")]
OptionalReasonOpt = Annotated[
    str | None, typer.Option(help="Why you ask (recorded in the ledger with the request).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The service's answer, as JSON.")]


@app.command()
def login(
    url: Annotated[
        str, typer.Option(envvar="BWV_URL", help="The service, e.g. https://evidence:8443")
    ],
    ca: Annotated[
        Path | None,
        typer.Option(envvar="BWV_CA", help="CA that signed the service's TLS certificate."),
    ] = None,
    service_key: Annotated[
        str | None,
        typer.Option(help="The service's verifier key (`bwv keys list` on the server host)."),
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin, not a prompt.")
    ] = False,
) -> None:
    """Check a token with the service and save it (file mode 0600) for the other commands."""
    from bwv.cli.client import ApiClient, Credentials, save_credentials

    if service_key is not None:
        VerifierKey.parse(service_key)
    if ca is not None and not ca.is_file():
        raise ConfigError(f"CA file {ca}: no such file")
    ca_file = str(ca.resolve()) if ca else None
    if token_stdin:
        token = sys.stdin.readline().strip()
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
    out.print(
        f"logged in to {api.url} as {me['name']} ({me['role']}); token expires "
        f"{_shown(me['token_expires_at'])} UTC",
        highlight=False,
        markup=False,
    )
    out.print(f"credentials saved to {path} (mode 0600)", highlight=False, markup=False)
    if unreachable:
        err.print(f"warning: {unreachable}", highlight=False, markup=False, soft_wrap=True)
    if service_key is None:
        err.print(
            "note: no service key pinned, so custody histories will not be verified; log in "
            "again with --service-key KEY (`bwv keys list` on the server host prints it)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _pinned_key_unreachable(api: ApiClient, service_key: str) -> str | None:
    """Why the key pinned at login will not verify what the service signs now, or None: it
    must be the service's current key or lead to it through rotation statements it signed."""
    from bwv.cli.client import ApiError
    from bwv.custody.rotation import follow

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


@app.command()
def logout() -> None:
    """Forget the saved credentials (the token itself stays valid until revoked or expired)."""
    from bwv.cli.client import credentials_path, forget_credentials

    removed = forget_credentials()
    if removed is None:
        out.print(f"not logged in (no credentials at {credentials_path()})", markup=False)
    else:
        out.print(f"credentials removed: {removed}", markup=False)
    if os.environ.get("BWV_TOKEN"):
        err.print("note: BWV_TOKEN is still set in this environment")


@app.command()
def whoami() -> None:
    """Who the service takes you for, and when your token expires."""
    with _api() as (api, credentials):
        me = api.get("/me")
    expires = _shown(me["token_expires_at"]) + " UTC" if me["token_expires_at"] else "never"
    pinned = credentials.service_key or "none (custody histories are not verified)"
    out.print(f"{me['name']} ({me['role']}) at {api.url}", highlight=False, markup=False)
    out.print(f"token expires: {expires}", highlight=False, markup=False)
    out.print(f"service key:   {pinned}", highlight=False, markup=False)
    for key in credentials.followed_keys:  # reached by rotation statements the pinned key signed
        out.print(f"rotated to:    {key}", highlight=False, markup=False)


def _escaped(value: object) -> str:
    """A value from the service as a terminal may show it: what a clip's name or a camera
    serial could use to retitle, clear or reorder the screen is written as an escape."""
    if value is None:
        return ""
    text = str(value)
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if shown_badly(c)  # C0, DEL, C1 and bidirectional controls
        else c
        for c in text
    )


def _cell(value: object) -> Text:
    """A table cell: escaped, and never read as Rich markup."""
    return Text(_escaped(value))


@clips_app.command("list")
def clips_list(
    officer: Annotated[str | None, typer.Option(help="Recorded by this officer.")] = None,
    camera: Annotated[str | None, typer.Option(help="Recorded on this camera (serial).")] = None,
    dock: Annotated[str | None, typer.Option(help="Uploaded by this dock.")] = None,
    recorded_from: Annotated[
        str | None, typer.Option(help="Recorded at or after (date or RFC 3339 time).")
    ] = None,
    recorded_to: Annotated[str | None, typer.Option(help="Recorded at or before.")] = None,
    ingested_from: Annotated[str | None, typer.Option(help="Ingested at or after.")] = None,
    ingested_to: Annotated[str | None, typer.Option(help="Ingested at or before.")] = None,
    category: Annotated[str | None, typer.Option(help="In this category.")] = None,
    case: Annotated[str | None, typer.Option(help="With this case reference.")] = None,
    status: Annotated[str | None, typer.Option(help="playable, unplayable or deleted.")] = None,
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
    _sendable(reason)
    query = {
        "officer": officer,
        "camera": camera,
        "dock": dock,
        "recorded_from": _when(recorded_from, "--recorded-from"),
        "recorded_to": _when(recorded_to, "--recorded-to", end=True),
        "ingested_from": _when(ingested_from, "--ingested-from"),
        "ingested_to": _when(ingested_to, "--ingested-to", end=True),
        "category": category,
        "case": case,
        "status": status,
        "has_exports": None if has_exports is None else str(has_exports).lower(),
        "limit": per_page,
        "offset": (page - 1) * per_page,
        "reason": reason,
    }
    with _api() as (api, _):
        found = api.get("/clips", **query)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
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
                _cell(v)
                for v in (
                    clip["evidence_id"],
                    _shown(clip["recorded_at"]),
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
    out.print(_pages(page, per_page, found["total"], "clips"))


def _custody(
    bundle: dict[str, Any], clip: dict[str, Any], key: str | None, trusted: Keyring | None
) -> str:
    """Verify a clip's custody bundle offline against ``trusted`` (the pinned ``key`` and the
    keys followed from it); the line that says against what."""
    from bwv.base.errors import BundleError

    report = verify_bundle(bundle, trusted, evidence_id=clip["evidence_id"])
    if report.clip_sha256 != clip["sha256"]:
        raise BundleError(
            f"the custody record says {clip['evidence_id']} has SHA-256 {report.clip_sha256}, "
            f"but the service's index says {clip['sha256']}"
        )
    proven = f"{report.leaves} leaves proven against a signed checkpoint of {report.tree_size}"
    if key and trusted is not None:
        if len(trusted) > 1:
            return (
                f"custody verified against service key {key} and the {len(trusted) - 1} "
                f"rotation(s) it signed: {proven}"
            )
        return f"custody verified against service key {key}: {proven}"
    return (
        f"custody NOT verified: no service key pinned ({proven} under keys the service itself "
        "sent); pin one with `bwv login --service-key KEY` (`bwv keys list` on the server host)"
    )


def _followed_keys(api: ApiClient, credentials: Credentials, note: Any) -> Keyring | None:
    """The pinned keys, followed through the service's key rotations if ``note`` (a signed
    checkpoint) names none of them; a forged rotation statement is a failed verification."""
    from bwv.cli.client import service_keyring
    from bwv.custody.note import note_signers
    from bwv.custody.rotation import RotationError

    try:
        signers = note_signers(note) if isinstance(note, str) else []
    except NoteError:
        signers = []
    try:
        return service_keyring(api, credentials, signers)
    except RotationError as exc:
        raise TamperError(f"the service's key rotation does not verify: {exc.diagnosis}") from None


@clips_app.command("show")
def clips_show(evidence_id: str, reason: OptionalReasonOpt = None) -> None:
    """A clip's record, its disclosure copies and its custody history, verified offline."""
    _sendable(reason)
    with _api() as (api, credentials):
        clip = api.get(_path("clips", evidence_id), reason=reason)
        bundle = api.get(_path("clips", evidence_id, "custody"), reason=reason)
        trusted = _followed_keys(api, credentials, bundle.get("checkpoint"))
    verdict = _custody(bundle, clip, credentials.service_key, trusted)
    media = ", ".join(
        part
        for part in (
            f"{clip['video_codec']} {clip['width']}x{clip['height']} {clip['frame_rate']:g} fps"
            if clip["video_codec"]
            else "",
            clip["audio_codec"] or "",
            f"{clip['duration_s']:.1f} s" if clip["duration_s"] else "",
        )
        if part
    )
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
        ("recorded", _shown(clip["recorded_at"])),
        ("ingested", _shown(clip["ingested_at"])),
        ("media", media),
        ("category", clip["category"] + (f" (case {clip['case']})" if clip["case"] else "")),
        ("retain until", _shown(clip["retain_until"])),
        ("held", held),
        ("deleted", _shown(clip["deleted_at"]) or "no"),
    ]
    for label, value in rows:
        out.print(f"{label + ':':15}{_escaped(value or '')}", highlight=False, markup=False)
    if clip["export_list"]:
        exports = Table("export id", "created", "officer", "sha256", "reason", title="exports")
        for e in clip["export_list"]:
            exports.add_row(
                *(
                    _cell(v)
                    for v in (
                        e["export_id"],
                        _shown(e["created_at"]),
                        e["officer"],
                        e["sha256"][:12] + "...",
                        e["reason"],
                    )
                )
            )
        out.print(exports)
    history = Table("seq", "time", "actor", "role", "action", "outcome", "reason", title="custody")
    for entry in bundle["leaves"]:
        f = parse_leaf(entry["leaf"].encode("utf-8"))
        history.add_row(
            *(
                _cell(v)
                for v in (
                    str(f["sequence"]),
                    f["time"],
                    f["actor"],
                    f["role"],
                    f["action"],
                    f["outcome"],
                    f["reason"],
                )
            )
        )
    out.print(history)
    out.print(verdict, highlight=False, markup=False)


def _check_output(output: Path) -> None:
    """Before asking the service (which records the download): can we write there at all?"""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {output}: no such directory {folder}")
    if output.is_dir():
        raise ConfigError(f"cannot write {output}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {output}: directory {folder} is not writable")


def _download(api: ApiClient, path: str, output: Path, reason: str, sha256: str | None) -> str:
    """Download to ``output`` with a progress bar; the SHA-256 that was checked."""
    with _progress(transfer=True) as bar:
        digest, _ = api.download(
            path,
            output,
            params={"reason": reason},
            expect_sha256=sha256,
            progress=_bar(bar, f"downloading {output.name}"),
        )
    return digest


@clips_app.command("get")
def clips_get(
    evidence_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the original.")],
    reason: ReasonOpt,
) -> None:
    """Download a clip's original, checked against its SHA-256 (recorded in the ledger)."""
    _sendable(reason)
    _check_output(output)
    with _api() as (api, _):
        clip = api.get(_path("clips", evidence_id), reason=reason)
        digest = _download(
            api, _path("clips", evidence_id, "original"), output, reason, clip["sha256"]
        )
    out.print(
        f"{evidence_id} written to {output}: {clip['size']} bytes, SHA-256 {digest} "
        "(as the service sent and as indexed at ingest)",
        highlight=False,
        markup=False,
    )


def _clip_line(clip: dict[str, Any]) -> str:
    case = f", case {clip['case']}" if clip["case"] else ""
    held = ", on legal hold" if clip["held"] else ""
    kept = f", kept until {_shown(clip['retain_until'])}" if clip["retain_until"] else ""
    return f"{clip['evidence_id']}: {clip['category']}{case}{kept}{held}"


@clips_app.command("categorize")
def clips_categorize(
    evidence_id: str,
    category: str,
    reason: ReasonOpt,
    case: Annotated[str | None, typer.Option(help="Case reference, e.g. CASE-1234.")] = None,
    clear_case: Annotated[
        bool, typer.Option("--clear-case", help="Remove the clip's case reference.")
    ] = False,
) -> None:
    """Set a clip's category (and case); its retention period follows from the category.
    Without --case the clip keeps its case reference."""
    _sendable(reason)
    if case is not None and clear_case:
        raise BwvError("give --case or --clear-case, not both")
    body: dict[str, Any] = {"category": category}
    if case is not None or clear_case:
        body["case"] = case  # null removes it (an evidence officer's call once one is set)
    with _api() as (api, _):
        clip = api.request(
            "POST",
            _path("clips", evidence_id, "category"),
            params={"reason": reason},
            json_body=body,
        ).json()
    out.print(_clip_line(clip), highlight=False, markup=False)


def _hold(method: str, evidence_id: str, reason: str) -> None:
    _sendable(reason)
    with _api() as (api, _):
        clip = api.request(method, _path("clips", evidence_id, "hold"), params={"reason": reason})
    out.print(_clip_line(clip.json()), highlight=False, markup=False)


@hold_app.command("place")
def hold_place(evidence_id: str, reason: ReasonOpt) -> None:
    """Place a legal hold: the clip is kept, whatever its retention date, until released."""
    _hold("PUT", evidence_id, reason)


@hold_app.command("release")
def hold_release(evidence_id: str, reason: ReasonOpt) -> None:
    """Release a legal hold: the clip's retention date applies again."""
    _hold("DELETE", evidence_id, reason)


# --- audit ------------------------------------------------------------------------------------


def _trusted_keys(keys: list[str] | None) -> Keyring | None:
    """Keys given on the command line, each a verifier key or a file of them."""
    if not keys:
        return None
    found: list[VerifierKey] = []
    for item in keys:
        if "+" in item and not Path(item).exists():
            found.append(VerifierKey.parse(item))
            continue
        try:
            found.extend(Keyring.parse(Path(item).read_text(encoding="utf-8")))
        except OSError as exc:
            raise KeyError_(f"cannot read key file {item}: {exc.strerror}") from None
    return Keyring(found)


def _report_ledger(report: LedgerReport) -> None:
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
        f"ledger verification FAILED ({len(report.findings)} problems); first bad index "
        f"{first.index}: {first.message}",
        index=first.index,
    )


def _verify_whole_ledger(ctx: Context) -> None:
    """Verify every leaf and checkpoint (progress bar on a terminal), record that it was done,
    and report: OK, or a TamperError naming the first bad index."""
    with _progress() as bar:
        task = bar.add_task("verifying the whole ledger", total=None)
        report = verify_ledger(
            ctx.engine,
            ctx.keyring,
            ctx.settings.ledger_origin,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    try:
        ctx.record(
            "auditor",
            "ledger.verified",
            outcome=Outcome.OK if report.ok else Outcome.FAILED,
            details={"tree_size": report.size, "problems": len(report.findings)},
        )
    except BwvError as exc:
        err.print(f"warning: could not record this verification in the ledger: {exc.diagnosis}")
    _report_ledger(report)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the tree from the leaves; check every checkpoint's signature and consistency.
    Logged in, an auditor does it from afar: every leaf fetched, the tree recomputed here, the
    root compared with a checkpoint signed by the pinned service key."""
    if _through_service():
        _verify_through_service()
        return
    _verify_whole_ledger(_context())


@audit_app.command("fixity")
def audit_fixity() -> None:
    """Re-hash every original, disclosure copy and plan in the store against the index and the
    ledger (on the server host). Exit 2 if any is damaged or missing; recorded as leaves."""
    from bwv.services.fixity import FixityDamage, check_store, record_fixity
    from bwv.store import open_store

    ctx = _context()
    store = open_store(ctx.settings.store_url)
    with _progress(transfer=True) as bar:
        task = bar.add_task("re-hashing the store", total=None)
        report = check_store(
            ctx, store, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    try:
        record_fixity(ctx, store, report, ctx.settings.actor, "auditor")
    except BwvError as exc:
        err.print(f"warning: could not record this fixity check in the ledger: {exc.diagnosis}")
    for damage in report.damaged:
        out.print(f"  - {damage.diagnosis}", soft_wrap=True, highlight=False, markup=False)
    if not report.ok:
        raise FixityDamage(report.summary())
    out.print(report.summary(), highlight=False, markup=False)


def _verify_through_service() -> None:
    """RFC 9162 §2.1.1 from the leaves' bytes alone: nothing the service says about hashes or
    roots is believed, only its signature under the pinned key (C2SP signed note)."""
    from bwv.custody import merkle
    from bwv.custody.note import open_checkpoint

    with _api() as (api, credentials):
        if not credentials.service_key:
            raise ConfigError(
                "no service key pinned, so a checkpoint cannot be trusted: "
                "bwv login --service-key KEY (or set BWV_SERVICE_KEY)"
            )
        note = api.request("GET", "/ledger/checkpoint").text
        keyring = _followed_keys(api, credentials, note)
        assert keyring is not None
        try:
            checkpoint = open_checkpoint(note, keyring)
        except NoteError as exc:  # verification found something wrong: exit 2
            raise TamperError(f"the service's checkpoint fails: {exc.diagnosis}") from None
        hashes: list[bytes] = []
        with _progress() as bar:
            task = bar.add_task("fetching and hashing leaves", total=checkpoint.size)
            while len(hashes) < checkpoint.size:
                found = api.get("/ledger/leaves", start=len(hashes), end=checkpoint.size)
                page = found["leaves"]
                if not page:
                    raise TamperError(
                        f"the service has {len(hashes)} leaves, but signed a checkpoint of "
                        f"{checkpoint.size}",
                        len(hashes),
                    )
                for encoded in page:
                    leaf = base64.b64decode(encoded)
                    index = len(hashes)
                    if parse_leaf(leaf).get("sequence") != index:
                        raise TamperError(f"leaf {index} does not carry sequence {index}", index)
                    hashes.append(merkle.leaf_hash(leaf))
                bar.update(task, completed=len(hashes))
    levels = merkle.tree_levels(hashes)
    if merkle.root_hash(merkle.levels_lookup(levels), checkpoint.size) != checkpoint.root:
        raise TamperError(
            f"the {checkpoint.size} leaves the service sent do not hash to the root it signed"
        )
    out.print(
        f"OK ledger of {checkpoint.size} leaves recomputed here from their bytes: the root "
        f"matches the checkpoint signed by {credentials.service_key.split('+')[0]} "
        f"(key {credentials.service_key.split('+')[1]})",
        highlight=False,
        markup=False,
    )


def _issue_bundle(ctx: Context, evidence_id: str, output: Path) -> dict[str, Any]:
    """Record the bundle's issue (an access to the clip's record), then write the bundle, which
    therefore proves its own issue too."""
    if not ctx.ledger.leaves_for(evidence_id):
        raise BwvError(f"no custody record for evidence id {evidence_id!r}")
    ctx.record("auditor", "audit.bundle", target=evidence_id)
    bundle = make_bundle(ctx.ledger, evidence_id, ctx.keyring, ctx.rotations)
    _write_atomic(output, json.dumps(bundle, indent=2) + "\n")
    return bundle


@audit_app.command("bundle")
def audit_bundle(
    evidence_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the bundle.")],
    reason: OptionalReasonOpt = None,
) -> None:
    """Write a self-contained custody bundle for one clip: leaves, proofs, checkpoint, keys.

    Through the service when logged in (or BWV_URL is set); from the local ledger otherwise."""
    if _through_service():
        with _api() as (api, credentials):
            _sendable(reason)
            bundle = api.get(_path("clips", evidence_id, "custody"), reason=reason)
            pinned = _followed_keys(api, credentials, bundle.get("checkpoint"))
        if pinned is not None:  # never hand on a bundle that does not verify
            verify_bundle(bundle, pinned, evidence_id=evidence_id)
        _write_atomic(output, json.dumps(bundle, indent=2) + "\n")
    else:
        bundle = _issue_bundle(_context(), evidence_id, output)
    size = Checkpoint.from_note(bundle["checkpoint"]).size
    out.print(
        f"bundle for {evidence_id}: {len(bundle['leaves'])} leaves proven against "
        f"checkpoint of size {size} -> {output}"
    )


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    bundle_file: Annotated[Path, typer.Argument(metavar="FILE")],
    file: Annotated[
        Path | None, typer.Option("--file", help="The clip: check its SHA-256.")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Trusted verifier key (or a file of them); repeatable."),
    ] = None,
    evidence_id: Annotated[str | None, typer.Option(help="Insist on this evidence id.")] = None,
    origin: Annotated[str | None, typer.Option(help="Insist on this log origin.")] = None,
) -> None:
    """Verify a bundle offline: no database, no server."""
    bundle = load_bundle(bundle_file)
    report = verify_bundle(
        bundle, _trusted_keys(key), evidence_id=evidence_id, origin=origin, clip=file
    )
    out.print(
        f"[green]OK[/green] {report.leaves} leaves for {report.evidence_id} are in the log "
        f"of {report.tree_size} leaves under its signed checkpoint"
    )
    if report.file_checked:
        out.print(f"[green]OK[/green] {file} is the original: SHA-256 {report.clip_sha256}")
    if not report.keys_pinned:
        err.print(
            "note: checked against the keys inside the bundle; pass --key with the "
            "log's verifier key to not depend on whoever handed you the bundle"
        )


@audit_app.command("checkpoint")
def audit_checkpoint(
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """Print (or write) the latest signed checkpoint, issuing one if the log grew.

    Through the service when logged in (or BWV_URL is set); from the local ledger otherwise."""
    if _through_service():
        with _api() as (api, _):
            note = api.request("GET", "/ledger/checkpoint").text
        _emit(note, output)
        return
    _emit(_context().ledger.checkpoint(force=True).note, output)


@audit_app.command("consistency")
def audit_consistency(
    size1: int,
    size2: Annotated[
        int | None, typer.Option("--to", help="Default: the latest checkpoint.")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """A consistency proof (RFC 9162 §2.1.4) between two tree sizes, as JSON."""
    ctx = _context()
    if size2 is None:
        size2 = ctx.ledger.checkpoint(force=True).size
    proof = ctx.ledger.consistency_proof(size1, size2)
    text = (
        json.dumps(
            {
                "size1": size1,
                "size2": size2,
                "proof": [base64.b64encode(p).decode() for p in proof],
            },
            indent=2,
        )
        + "\n"
    )
    _emit(text, output)


@audit_app.command("witness")
def audit_witness(
    state: Annotated[Path, typer.Option(help="The witness's own state file.")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="New signed checkpoint (default: ask the local ledger).")
    ] = None,
    proof: Annotated[
        Path | None, typer.Option(help="Consistency proof JSON from `bwv audit consistency`.")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Trust this verifier key (or file of them); repeatable."),
    ] = None,
    rotations: Annotated[
        Path | None,
        typer.Option(
            help="The log's key rotation statements (GET /api/v1/keys, or rotations.json)."
        ),
    ] = None,
) -> None:
    """Accept a new checkpoint only if it extends the last one this witness verified; follow
    the log's key rotations from the keys this witness trusts."""
    extra = list(_trusted_keys(key) or [])
    statements = _read_rotations(rotations) if rotations else None
    if checkpoint is not None:
        try:
            note = checkpoint.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read checkpoint {checkpoint}: {exc.strerror}") from None
        path_proof = _read_proof(proof) if proof else []
    else:
        ctx = _context()
        if not extra and not state.exists():
            extra = list(ctx.keyring)  # first use on the server host: pin its keyring
        if statements is None:
            from bwv.custody.rotation import load_statements, rotations_path

            assert ctx.settings.keyring_path is not None
            statements = load_statements(rotations_path(ctx.settings.keyring_path))
        note, path_proof = _local_checkpoint_and_proof(ctx, state)
    result = witness(state, note, path_proof, extra, statements)
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


def _local_checkpoint_and_proof(ctx: Context, state: Path) -> tuple[str, list[bytes]]:
    from bwv.custody.witness import WitnessState

    latest = ctx.ledger.checkpoint(force=True)
    previous = WitnessState.load(state)
    if previous is None or not previous.checkpoint_note:
        return latest.note, []
    old = Checkpoint.from_note(previous.checkpoint_note)
    if 0 < old.size < latest.size:
        return latest.note, ctx.ledger.consistency_proof(old.size, latest.size)
    return latest.note, []


@audit_app.command("log")
def audit_log(
    evidence_id: Annotated[str | None, typer.Argument(help="Only leaves naming this clip.")] = None,
    last: Annotated[int, typer.Option(help="How many of the latest leaves.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One leaf per line, as JSON (for scripts).")
    ] = False,
) -> None:
    """Show ledger leaves: who did what to which clip, when, with what outcome."""
    ctx = _context()
    ledger = ctx.ledger
    if evidence_id:
        leaves = ledger.leaves_for(evidence_id)[-last:]
    else:
        size = ledger.size()
        leaves = [ledger.leaf(i) for i in range(max(0, size - last), size)]
    if as_json:
        for leaf in leaves:
            sys.stdout.write(json.dumps(parse_leaf(leaf.body), sort_keys=True) + "\n")
        return
    table = Table("seq", "time", "actor", "role", "action", "target", "outcome", "reason")
    for leaf in leaves:
        f = parse_leaf(leaf.body)
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


# --- redaction and disclosure copies ----------------------------------------------------------

ClassesOpt = Annotated[
    str, typer.Option("--classes", help="What to hide: faces, plates, text (comma-separated).")
]
ModeOpt = Annotated[str, typer.Option(help="blur, pixelate or solid.")]
ShapeOpt = Annotated[str, typer.Option(help="box or ellipse.")]
PaddingOpt = Annotated[
    float, typer.Option(help="Grow each box by this fraction of its size, each side.")
]
AudioOpt = Annotated[str, typer.Option(help="keep, mute or strip.")]
MuteOpt = Annotated[
    list[str] | None,
    typer.Option("--mute", help="Mute START-END seconds, e.g. 12.5-20 (repeatable)."),
]
FaceEveryOpt = Annotated[
    float | None,
    typer.Option(help="Detect faces (downscaled) every SECONDS of the clip [default: 0.2]."),
]
FaceFullEveryOpt = Annotated[
    float | None,
    typer.Option(help="Detect faces at full resolution every SECONDS [default: 0.8]."),
]
TextEveryOpt = Annotated[
    float | None,
    typer.Option(
        help="Detect plates/text in the whole frame every SECONDS [default: 1.6]; in between, "
        "wherever the picture shows something new."
    ),
]


# The detection schedule's flags (in seconds; the options' fields add "_s").
SCHEDULE = ("face_every", "face_full_every", "text_every")


def _redact_options(
    classes: str,
    mode: str,
    shape: str,
    padding: float,
    audio: str,
    schedule: tuple[float | None, float | None, float | None],
) -> Any:
    from pydantic import ValidationError

    from bwv.redact.plan import CLASS_CHOICES, Options, PlanError

    chosen = tuple(c.strip() for c in classes.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CLASS_CHOICES]
    if unknown or not chosen:
        raise PlanError(
            f"unknown class {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(CLASS_CHOICES)}"
        )
    given = {
        f"{name}_s": value
        for name, value in zip(SCHEDULE, schedule, strict=True)
        if value is not None
    }
    try:
        return Options(
            classes=chosen,  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            shape=shape,  # type: ignore[arg-type]
            padding=padding,
            audio=audio,  # type: ignore[arg-type]
            **given,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = str(error["loc"][0]).removesuffix("_s").replace("_", "-")
        raise PlanError(f"--{flag}: {error['msg']}") from None


def _mute_spans(spans: list[str] | None) -> tuple[tuple[float, float], ...]:
    from bwv.redact.plan import PlanError

    out = []
    for span in spans or []:
        try:
            start, end = (float(v) for v in span.split("-", 1))
        except ValueError:
            raise PlanError(
                f"--mute {span!r}: expected START-END in seconds, e.g. 12.5-20"
            ) from None
        if not 0 <= start < end:
            raise PlanError(f"--mute {span!r}: the span must start at 0 or later and end after it")
        out.append((start, end))
    return tuple(out)


def _request_options(
    classes: str,
    mode: str,
    shape: str,
    padding: float,
    audio: str,
    schedule: tuple[float | None, float | None, float | None],
    mute: list[str] | None,
) -> dict[str, Any]:
    """The redaction part of a plan or export request, checked here so a bad option is named
    by its flag and never sent."""
    options = _redact_options(classes, mode, shape, padding, audio, schedule)
    return {
        "options": options.model_dump(mode="json"),
        "mute": [list(span) for span in _mute_spans(mute)],
    }


def _plan_request(reviewed: Any, given: dict[str, Any], mute: list[str] | None) -> dict[str, Any]:
    """The options and mute spans of an export of a reviewed plan: only the flags given, and
    only if the plan can take them (checked as the service will: :meth:`Plan.merged`)."""
    import re

    from bwv.redact.plan import NotApplicable, Options, PlanError

    spans = _mute_spans(mute)
    chosen: dict[str, Any] = {}
    if given:
        defaults = {"classes": ",".join(reviewed.options.classes), "mode": reviewed.options.mode}
        defaults |= {"shape": reviewed.options.shape, "padding": reviewed.options.padding}
        defaults |= {"audio": reviewed.options.audio}
        merged = {**defaults, **given}
        schedule = tuple(merged.get(n) for n in SCHEDULE)
        full = _redact_options(
            merged["classes"],
            merged["mode"],
            merged["shape"],
            merged["padding"],
            merged["audio"],
            schedule,
        )
        fields = {f"{n}_s" if n in SCHEDULE else n for n in given}
        options = Options.model_validate(full.model_dump(include=fields))
        chosen = options.model_dump(mode="json", include=fields)
    else:
        options = None
    try:
        reviewed.check_cost()
        reviewed.merged(options, spans)
    except NotApplicable as exc:
        flagged = re.sub(
            r"options\.(\w+)",
            lambda m: "--" + m.group(1).removesuffix("_s").replace("_", "-"),
            exc.diagnosis,
        )
        raise PlanError(flagged.replace("mute span", "--mute span", 1)) from None
    return {"options": chosen or None, "mute": [list(span) for span in spans]}


def _frame_bar(bar: Any, label: str, total: int | None) -> Any:
    """A progress callback: frames done so far, on a new bar."""
    task = bar.add_task(label, total=total or None)
    return lambda n: bar.update(task, completed=n)


@redact_app.command("plan")
def redact_plan(
    evidence_id: str,
    reason: ReasonOpt,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Plan file (default ID.plan.json).")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(help="Contact sheet PNG (default ID.sheet.png).")
    ] = None,
    classes: ClassesOpt = "faces,plates",
    mode: ModeOpt = "blur",
    shape: ShapeOpt = "box",
    padding: PaddingOpt = 0.15,
    audio: AudioOpt = "keep",
    mute: MuteOpt = None,
    face_every: FaceEveryOpt = None,
    face_full_every: FaceFullEveryOpt = None,
    text_every: TextEveryOpt = None,
) -> None:
    """Find faces and plates in a clip (on the service) and write a plan and a contact sheet
    to review.

    Edit the plan (set "keep": true on a track, add "manual" boxes or "mute" spans), then
    render it with: bwv export ID --plan PLAN --reason TEXT
    """
    from bwv.redact.plan import Plan

    body = _request_options(
        classes, mode, shape, padding, audio, (face_every, face_full_every, text_every), mute
    )
    _sendable(reason)
    plan_path = output or Path(f"{evidence_id}.plan.json")
    sheet_path = sheet or plan_path.with_name(
        plan_path.name.removesuffix(".plan.json") + ".sheet.png"
    )
    with _api() as (api, _), _spinner(f"finding faces and plates in {evidence_id}"):
        planned = api.request(
            "POST",
            _path("clips", evidence_id, "plan"),
            params={"reason": reason},
            json_body=body,
            timeout=None,  # detection takes as long as the clip needs
        ).json()
    plan = Plan.parse(planned["plan"].encode(), "the service's plan")
    _write_atomic(sheet_path, base64.b64decode(planned["sheet_png"]))
    _write_atomic(plan_path, planned["plan"].encode())  # byte for byte: its hash is recorded
    out.print(
        f"plan: {plan_path} ({len(plan.tracks)} tracks, SHA-256 {planned['plan_sha256']})",
        highlight=False,
        markup=False,
    )
    out.print(f"contact sheet: {sheet_path}", highlight=False, markup=False)
    out.print(
        f"render with: bwv export {evidence_id} --plan {plan_path} --reason TEXT",
        highlight=False,
        markup=False,
    )


@redact_app.command("file")
def redact_file(
    source: Annotated[Path, typer.Argument(help="Any local video file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The redacted MP4.")],
    plan: Annotated[
        Path | None, typer.Option(help="Render this plan instead of detecting.")
    ] = None,
    sheet: Annotated[Path | None, typer.Option(help="Also write a contact sheet PNG.")] = None,
    classes: ClassesOpt = "faces,plates",
    mode: ModeOpt = "blur",
    shape: ShapeOpt = "box",
    padding: PaddingOpt = 0.15,
    audio: AudioOpt = "keep",
    mute: MuteOpt = None,
    face_every: FaceEveryOpt = None,
    face_full_every: FaceFullEveryOpt = None,
    text_every: TextEveryOpt = None,
) -> None:
    """Redact a local file with the same engine (no ledger: for trying it and for benchmarks)."""
    import time

    from bwv.base.files import file_sha256
    from bwv.redact.engine import make_plan
    from bwv.redact.plan import Plan
    from bwv.redact.render import RenderError, render
    from bwv.redact.sheet import write_sheet

    if not source.is_file():
        raise RenderError(f"{source}: no such file")
    if output.resolve() == source.resolve():
        raise RenderError(f"{output}: the redacted copy cannot replace the file it is made from")
    started = time.perf_counter()
    sha256 = file_sha256(source)
    if plan is not None:
        chosen = Plan.load(plan).for_clip(None, sha256)
    else:
        options = _redact_options(
            classes, mode, shape, padding, audio, (face_every, face_full_every, text_every)
        )
        with _progress() as bar:
            advance = _frame_bar(bar, f"detecting in {source.name}", None)
            planned = make_plan(
                source, options, source_sha256=sha256, progress=advance, mute=_mute_spans(mute)
            )
        chosen = planned.plan
        if sheet is not None:
            write_sheet(chosen, planned.thumbnails, planned.crops, sheet)
    with _progress() as bar:
        advance = _frame_bar(bar, f"rendering {output.name}", chosen.frames)
        rendered = render(source, chosen, output, progress=advance)
    seconds = time.perf_counter() - started
    out.print(
        f"{output}: {rendered.frames} frames, {len(chosen.tracks)} tracks hidden, audio "
        f"{rendered.audio}; {rendered.frames / seconds:.1f} frames/s"
    )
    if sheet is not None and plan is None:
        out.print(f"contact sheet: {sheet}")


@app.command("export")
def export(
    evidence_id: str,
    reason: Annotated[str, typer.Option(help="Why this copy is made (recorded in the ledger).")],
    plan: Annotated[Path | None, typer.Option(help="A reviewed plan (bwv redact plan).")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also download the copy to here.")
    ] = None,
    classes: ClassesOpt = "faces,plates",
    mode: ModeOpt = "blur",
    shape: ShapeOpt = "box",
    padding: PaddingOpt = 0.15,
    audio: AudioOpt = "keep",
    mute: MuteOpt = None,
    face_every: FaceEveryOpt = None,
    face_full_every: FaceFullEveryOpt = None,
    text_every: TextEveryOpt = None,
    # Which options were typed (None: called directly). Typer finds the context only by a bare
    # typer.Context annotation: "typer.Context | None" is never filled in.
    flags: typer.Context = None,  # type: ignore[assignment]
) -> None:
    """Make a disclosure copy on the service: faces and plates hidden, signed (C2PA), stored,
    recorded; -o downloads it too.

    With --plan, --mute spans are added to the reviewed plan and --mode, --shape, --padding
    (more only) and --audio applied to it; --classes and the detection schedule are fixed when
    a plan is made, so a different value is refused here rather than sent."""
    from bwv.redact.plan import Plan, read_plan_bytes

    if plan is not None:
        raw = read_plan_bytes(plan)
        reviewed = Plan.parse(raw, str(plan))  # a broken plan is named here, not sent
        values = {
            "classes": classes,
            "mode": mode,
            "shape": shape,
            "padding": padding,
            "audio": audio,
            "face_every": face_every,
            "face_full_every": face_full_every,
            "text_every": text_every,
        }
        unset = (None, click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)
        given = {
            n: v
            for n, v in values.items()
            if flags is not None and flags.get_parameter_source(n) not in unset
        }
        # The exact bytes reviewed, so with nothing more asked the leaf's plan SHA-256 is this
        # file's; what is asked is sent only once it is known the service will honour it.
        body: dict[str, Any] = {
            "plan": raw.decode("utf-8"),
            **_plan_request(reviewed, given, mute),
        }
    else:
        schedule = (face_every, face_full_every, text_every)
        body = {
            "plan": None,
            **_request_options(classes, mode, shape, padding, audio, schedule, mute),
        }
    _sendable(reason)
    if output is not None:
        _check_output(output)
    with _api() as (api, _):
        with _spinner(f"the service is rendering a disclosure copy of {evidence_id}"):
            made = api.request(
                "POST",
                _path("clips", evidence_id, "exports"),
                params={"reason": reason},
                json_body=body,
                timeout=None,  # rendering takes as long as the clip needs
            ).json()
        if output is not None:
            _download(
                api, _path("exports", made["export_id"], "content"), output, reason, made["sha256"]
            )
    out.print(
        f"disclosure copy {made['export_id']} of {made['evidence_id']}: SHA-256 {made['sha256']}, "
        f"{made['size']} bytes, hiding {made['classes']}, plan SHA-256 {made['plan_sha256']}",
        highlight=False,
        markup=False,
    )
    if output is not None:
        out.print(f"written to {output} (SHA-256 checked)", highlight=False, markup=False)


@exports_app.command("list")
def exports_list(
    evidence_id: Annotated[str | None, typer.Argument(help="Only this clip's copies.")] = None,
    page: PageOpt = 1,
    per_page: PerPageOpt = 50,
    reason: OptionalReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disclosure copies made, newest first."""
    _sendable(reason)
    with _api() as (api, _):
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
    table = Table("export id", "evidence id", "created", "officer", "sha256", "reason")
    for e in found["items"]:
        table.add_row(
            e["export_id"],
            e["evidence_id"],
            _shown(e["created_at"]),
            e["officer"],
            e["sha256"][:12] + "...",
            e["reason"],
        )
    out.print(table)
    out.print(_pages(page, per_page, found["total"], "copies"))


@exports_app.command("get")
def exports_get(
    export_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the copy.")],
    reason: Annotated[str, typer.Option(help="Why it is downloaded (recorded).")],
) -> None:
    """Download a disclosure copy (checked against its SHA-256; recorded in the ledger)."""
    _sendable(reason)
    _check_output(output)
    with _api() as (api, _):
        digest = _download(api, _path("exports", export_id, "content"), output, reason, None)
    out.print(f"{export_id} written to {output} (SHA-256 {digest}, checked)", markup=False)


# --- categories and retention (admin, on the server host) -------------------------------------

categories_app = typer.Typer(
    help="Clip categories and how long each is kept.", no_args_is_help=True
)
retention_app = typer.Typer(
    help="Retention: delete clips whose period has ended.", no_args_is_help=True
)
app.add_typer(categories_app, name="categories")
app.add_typer(retention_app, name="retention")


@categories_app.command("list")
def categories_list() -> None:
    """Each category and its retention period, counted from when a clip was recorded."""
    from bwv.services.retention import categories

    ctx = _context()
    table = Table("category", "kept (days)", "about")
    for name, days in categories(ctx.engine).items():
        table.add_row(name, str(days), f"{days / 365.25:.1f} years" if days >= 365 else "")
    out.print(table)
    ctx.close()


@categories_app.command("set")
def categories_set(
    name: str,
    days: Annotated[int, typer.Option("--days", help="How long clips in it are kept.")],
) -> None:
    """Add category NAME, or change how long its clips are kept (their dates are recomputed)."""
    from bwv.access.roles import Principal, Role
    from bwv.services.retention import set_category
    from bwv.store import open_store

    ctx = _context()
    who = Principal(ctx.settings.actor, Role.ADMIN)
    changed = set_category(ctx, open_store(ctx.settings.store_url), name, days, who)
    out.print(f"category {name}: kept {days} days; {changed} clips' retention dates changed")
    ctx.close()


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; change nothing.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="With --dry-run: as if it were this date (YYYY-MM-DD)."),
    ] = None,
) -> None:
    """Delete every clip past its retention date with no hold, leaving a tombstone leaf each."""
    from datetime import UTC, datetime

    from bwv.services.retention import run_retention
    from bwv.store import open_store

    when = None
    if as_of is not None:
        if not dry_run:
            raise ConfigError("--as-of is only for --dry-run: a real run deletes as of now")
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    ctx = _context()
    with _progress() as bar:
        task = bar.add_task("retention", total=None)
        report = run_retention(
            ctx,
            open_store(ctx.settings.store_url),
            operator=ctx.settings.actor,
            dry_run=dry_run,
            now=when,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    ctx.close()
    listed = [
        ("would delete" if dry_run else "due", report.due),
        ("held past its date", report.held_past_due),
    ]
    for title, clips in listed:
        table = Table("evidence id", "category", "case", "recorded", "retain until", "size")
        for c in clips:
            table.add_row(
                c.evidence_id,
                c.category,
                c.case_ref or "",
                f"{c.recorded_at:%Y-%m-%d %H:%M}" if c.recorded_at else "unknown",
                f"{c.retain_until:%Y-%m-%d}" if c.retain_until else "",
                str(c.size),
            )
        out.print(f"{title}: {len(clips)}")
        if clips:
            out.print(table)
    if not dry_run:
        out.print(f"deleted: {len(report.deleted)} (one clip.deleted leaf each)")
    for failure in report.failures:
        err.print(f"not deleted: {failure.evidence_id}: {failure.diagnosis}", markup=False)
    if report.failures:
        raise BwvError(f"{len(report.failures)} clips could not be deleted (see above)")


# --- the main job -----------------------------------------------------------------------------


@app.command()
def demo(
    clips: Annotated[int, typer.Option(help="How many sample clips (one per bay).")] = 3,
) -> None:
    """The main job end to end on the embedded default: sample clips from cameras in dock bays
    are uploaded over TLS to the ingest service, stored, indexed and receipted; the cameras are
    wiped only after their receipts verify; then an audit bundle and the whole ledger are
    verified."""
    import threading
    import time
    from datetime import UTC, datetime, timedelta

    import uvicorn

    from bwv.access import add_user
    from bwv.access.docks import assign_device, enroll_dock
    from bwv.api.app import create_app
    from bwv.base.tls import make_ca
    from bwv.services.samples import make_sample_clip, make_street_clip
    from docks import DockAgent, status, write_enrollment

    ctx = _context()
    s = ctx.settings
    for line in _initialise(ctx):
        out.print(f"init: {line}")
    run = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    work = s.data_dir / "demo" / run

    # Cameras in bays, each issued to an officer, each holding one finished clip.
    started = datetime.now(UTC) - timedelta(minutes=30)
    bays = []
    with _progress() as bar:
        task = bar.add_task("recording sample clips (PyAV, H.264 + AAC)", total=clips)
        for n in range(1, clips + 1):
            serial, bay = f"BWC-{n:04d}", work / "bays" / f"bay-{n}"
            bay.mkdir(parents=True)
            (bay / "CAMERA").write_text(serial + "\n")
            recorded = started + timedelta(minutes=5 * n)
            if n == 1:  # a street: a face and a number plate for the disclosure copy
                clip, _ = make_street_clip(
                    bay / f"{serial}_0001.mp4",
                    seconds=3,
                    width=960,
                    height=540,
                    recorded_at=recorded,
                )
            else:
                clip = make_sample_clip(
                    bay / f"{serial}_0001.mp4", seconds=2 + n, seed=n, recorded_at=recorded
                )
            finished = (recorded + timedelta(seconds=2 + n)).timestamp()
            os.utime(clip, (finished, finished))  # as the camera wrote it
            clip.with_name(clip.name + ".done").touch()
            assign_device(ctx.engine, serial, f"PC {4520 + n}")
            bays.append(bay)
            bar.advance(task)
    out.print(f"{clips} cameras docked in {work / 'bays'}")

    # The ingest service on loopback, over TLS with a throwaway CA.
    ca, cert, key = make_ca(work / "tls")
    dock_name = f"demo-dock-{secrets.token_hex(2)}"
    token = enroll_dock(ctx.engine, dock_name)
    ctx.record("admin", "dock.enrolled", details={"dock": dock_name})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(s),
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
    url = f"https://127.0.0.1:{port}"
    out.print(f"ingest service on {url} (TLS, pinned key {ctx.signer.verifier.key_id.hex()})")

    # The dock agent: hash, upload (tus), verify receipts, wipe.
    config = write_enrollment(
        work / "dock", url, dock_name, token, [str(ctx.signer.verifier)], ca, bays=bays
    )
    agent_done = threading.Event()
    result: dict[str, object] = {}

    def run_dock() -> None:
        with DockAgent(config) as agent:
            result["report"] = agent.run(once=True)
        agent_done.set()

    threading.Thread(target=run_dock, daemon=True).start()
    with _progress() as bar:
        task = bar.add_task("uploading to the ingest service", total=clips * 100)
        while not agent_done.wait(0.2):
            rows = status(config.state_dir)
            bar.update(task, completed=sum(float(r["progress"]) for r in rows))
    report = result["report"]
    wiped = len(report.wiped)  # type: ignore[attr-defined]
    left = sorted(p.name for bay in bays for p in bay.glob("*.mp4"))
    out.print(
        f"receipts verified for {wiped} of {clips} clips; cameras wiped "
        f"(clips left on cameras: {', '.join(left) or 'none'})"
    )
    _show_clips(ctx, [r["evidence_id"] for r in status(config.state_dir)])

    # The auditor's view.
    checkpoint = ctx.ledger.checkpoint(force=True)
    out.print("\nsigned checkpoint (C2SP tlog-checkpoint, signed note):")
    out.print(checkpoint.note, highlight=False, markup=False)
    rows = status(config.state_dir)
    evidence_id, sha = rows[0]["evidence_id"], rows[0]["sha256"]
    bundle_path = work / f"{evidence_id}.bundle.json"
    _issue_bundle(ctx, evidence_id, bundle_path)
    from bwv.store import open_store

    original = Path(open_store(s.store_url).open("originals", sha).name)
    bundle_report = verify_bundle(load_bundle(bundle_path), ctx.keyring, clip=original)
    out.print(
        f"bundle {bundle_path}: {bundle_report.leaves} leaves proven against tree size "
        f"{bundle_report.tree_size}; the stored original matches the ledger's SHA-256"
    )
    # An evidence officer, over the service API as any officer's CLI would be.
    street = next(r for r in rows if r["camera"] == "BWC-0001")
    held = next(r for r in rows if r["camera"] == "BWC-0002")
    officer = f"demo-eo-{secrets.token_hex(2)}"
    officer_token = add_user(ctx.engine, officer, "evidence-officer", ctx.clock.now(), days=1)
    ctx.record("admin", "user.added", details={"user": officer, "role": "evidence-officer"})
    with _signed_in(url, officer_token, ca, str(ctx.signer.verifier)):
        out.print(f"\nevidence officer {officer}, over the API at {url}:")
        out.print(f"$ bwv clips list --dock {dock_name}")
        clips_list(dock=dock_name)
        case = f"DEMO-{secrets.randbelow(9000) + 1000}"
        out.print(f"$ bwv clips categorize {street['evidence_id']} evidential --case {case}")
        clips_categorize(street["evidence_id"], "evidential", reason="charged", case=case)
        out.print(f"$ bwv hold place {held['evidence_id']}")
        hold_place(held["evidence_id"], reason=f"CPS request, case {case}")
        plan, sheet = work / "street.plan.json", work / "street.sheet.png"
        disclosure = work / "disclosure.mp4"
        out.print(f"$ bwv redact plan {street['evidence_id']} -o {plan.name}")
        redact_plan(
            street["evidence_id"], reason=f"disclosure, case {case}", output=plan, sheet=sheet
        )
        out.print(f"$ bwv export {street['evidence_id']} --plan {plan.name} -o {disclosure.name}")
        export(
            street["evidence_id"],
            reason=f"disclosure to defence, case {case}",
            plan=plan,
            output=disclosure,
        )
    server.should_exit = True

    # The retention policy, 40 days on: uncategorised clips are due; the evidential and the held
    # clip are kept.
    as_of = ctx.clock.now() + timedelta(days=40)
    out.print(f"\n$ bwv retention run --dry-run --as-of {as_of:%Y-%m-%d}")
    retention_run(dry_run=True, as_of=f"{as_of:%Y-%m-%d}")
    _verify_whole_ledger(ctx)
    out.print(
        f"\ndata directory: {s.data_dir}\n"
        f"try: bwv audit log {evidence_id}\n"
        f"     bwv dock status --state {config.state_dir}\n"
        f"     bwv audit verify-bundle {bundle_path} --key {ctx.signer.verifier}"
    )
    ctx.close()
    if wiped != clips:
        raise BwvError(f"only {wiped} of {clips} clips were receipted; see bwv dock status")


@contextmanager
def _signed_in(url: str, token: str, ca: Path, service_key: str) -> Iterator[None]:
    """As a logged-in officer's CLI would be (environment, not the credentials file)."""
    names = ("BWV_URL", "BWV_TOKEN", "BWV_CA", "BWV_SERVICE_KEY")
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(zip(names, (url, token, str(ca), service_key), strict=True))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _show_clips(ctx: Context, evidence_ids: list[str]) -> None:
    from sqlalchemy import select

    from bwv.records.tables import Clip

    clip = Clip.__table__
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(clip).where(clip.c.evidence_id.in_(evidence_ids)).order_by(clip.c.recorded_at)
        ).all()
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
    for r in rows:
        table.add_row(
            r.evidence_id,
            r.camera_serial or "",
            r.officer or "",
            f"{r.recorded_at:%Y-%m-%d %H:%M}" if r.recorded_at else "",
            f"{r.duration_s:.1f} s" if r.duration_s else "",
            f"{r.video_codec} {r.width}x{r.height} {r.frame_rate:g} fps" if r.video_codec else "",
            r.audio_codec or "",
            r.status,
            r.sha256[:12] + "...",
            str(r.ledger_index),
        )
    out.print(table)


# --- entry point ------------------------------------------------------------------------------


def main() -> None:
    try:
        app()
    except BwvError as exc:
        if _debug:
            traceback.print_exc()
        print(f"bwv: error: {exc.diagnosis}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("bwv: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _debug:
            traceback.print_exc()
        print(
            f"bwv: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
