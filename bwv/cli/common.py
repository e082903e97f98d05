"""What every command group shares: the session (``--data-dir``, ``--debug``) carried in Typer's
context, the entry point that turns a :class:`BwvError` into one line, and the officer's way to
the service (credentials, paths, reasons, checked downloads)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from typer.core import TyperArgument, TyperGroup

from bwv.access.reasons import MAX_REASON, ReasonError
from bwv.base.errors import BwvError, ConfigError, KeyError_, NoteError, TamperError
from bwv.base.settings import Settings
from bwv.cli.client import (
    ApiClient,
    Credentials,
    api_configured,
    load_credentials,
    service_keyring,
)
from bwv.cli.output import on_bar, progress
from bwv.custody.note import note_signers
from bwv.custody.rotation import RotationError
from bwv.keys import Keyring, VerifierKey
from bwv.services.context import Context


@dataclass
class Session:
    """The root options, for every command (Typer's ``ctx.obj``)."""

    data_dir: Path | None = None
    debug: bool = False

    def context(self) -> Context:
        overrides = {"data_dir": self.data_dir} if self.data_dir else {}
        return Context(Settings(**overrides))  # type: ignore[arg-type]

    def through_service(self) -> bool:
        """Commands that work on the server host too ask the service when this machine is
        logged in (or BWV_URL is set), unless --data-dir names a local data directory."""
        return self.data_dir is None and api_configured()


def session(ctx: typer.Context) -> Session:
    return ctx.ensure_object(Session)


def root_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Data directory (env BWV_DATA_DIR).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    state = session(ctx)
    state.data_dir, state.debug = data_dir, debug


def group(help: str, **settings: Any) -> typer.Typer:
    """A command group: plain help (no ``<bool>`` type column, no ``<str>`` after an
    argument), help when run bare."""
    settings.setdefault("cls", PlainGroup)
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **settings)


class _PlainArgument(TyperArgument):
    """An argument's help as a newcomer reads it: its name alone (not ``EVIDENCE_ID <str>``),
    and in the usage line ``NAME`` when required, ``[NAME]`` when not (not typer's ``{NAME}``)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 else name + "..."


class PlainGroup(TyperGroup):
    """A command group whose commands' arguments are shown as :class:`_PlainArgument`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            for param in command.params:
                if type(param) is TyperArgument:
                    param.__class__ = _PlainArgument


def run(app: typer.Typer) -> None:
    """Run ``app`` as ``bwv``: an error the product expects is one line on stderr and its exit
    code; ``--debug`` shows the traceback."""
    state = Session()
    try:
        app(obj=state, prog_name="bwv")
    except BwvError as exc:
        if state.debug:
            traceback.print_exc()
        print(f"bwv: error: {exc.diagnosis}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("bwv: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        print(
            f"bwv: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        sys.exit(70)


# --- the service, as an officer's or auditor's workstation reaches it --------------------------


@contextmanager
def service() -> Iterator[tuple[ApiClient, Credentials]]:
    """The saved (or environment's) credentials and a client for the service they name."""
    credentials = load_credentials()
    with ApiClient.from_credentials(credentials) as api:
        yield api, credentials


def api_path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def sendable(reason: str | None) -> None:
    """The service judges (and records) a bad reason; one too long to go in a URL at all is
    refused here, in the words the service would use."""
    if reason is not None and len(quote(reason, safe="")) > 16 * MAX_REASON:
        raise ReasonError(f"the reason is {len(reason)} characters; at most {MAX_REASON}")


def rfc3339(value: str | None, flag: str, *, end: bool = False) -> str | None:
    """An RFC 3339 time for the service: a bare date is the start of that day (UTC), or its end
    for a ``--...-to`` bound; a time without a zone is UTC."""
    if value is None:
        return None
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


def check_output(output: Path) -> None:
    """Before asking the service (which records the download): can we write there at all?"""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"cannot write {output}: no such directory {folder}")
    if output.is_dir():
        raise ConfigError(f"cannot write {output}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {output}: directory {folder} is not writable")


def download(api: ApiClient, path: str, output: Path, reason: str, sha256: str | None) -> str:
    """Download to ``output`` with a progress bar; the SHA-256 that was checked."""
    with progress(transfer=True) as bar:
        digest, _ = api.download(
            path,
            output,
            params={"reason": reason},
            expect_sha256=sha256,
            progress=on_bar(bar, f"downloading {output.name}"),
        )
    return digest


def trusted_keys(keys: list[str] | None) -> Keyring | None:
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


def followed_keys(api: ApiClient, credentials: Credentials, note: Any) -> Keyring | None:
    """The pinned keys, followed through the service's key rotations if ``note`` (a signed
    checkpoint) names none of them; a forged rotation statement is a failed verification."""
    try:
        signers = note_signers(note) if isinstance(note, str) else []
    except NoteError:
        signers = []
    try:
        return service_keyring(api, credentials, signers)
    except RotationError as exc:
        raise TamperError(f"the service's key rotation does not verify: {exc.diagnosis}") from None
