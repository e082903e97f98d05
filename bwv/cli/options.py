"""Options more than one command takes, declared once: paging, reasons, JSON, and the nine
redaction options that ``redact plan``, ``redact FILE`` and ``export`` share."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

PageOpt = Annotated[int, typer.Option(min=1, metavar="N", help="Which page of results.")]
PerPageOpt = Annotated[int, typer.Option(min=1, max=500, metavar="N", help="Results per page.")]
ReasonOpt = Annotated[
    str, typer.Option(metavar="TEXT", help="Why you ask (recorded in the ledger).")
]
OptionalReasonOpt = Annotated[
    str | None,
    typer.Option(metavar="TEXT", help="Why you ask (recorded in the ledger with the request)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The service's answer, as JSON.")]
OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE")]
DaysOpt = Annotated[
    int, typer.Option("--days", metavar="DAYS", help="How long the token is valid, in days.")
]
KeysOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key", metavar="KEY", help="Trusted verifier key (or a file of them); repeatable."
    ),
]

# --- redaction ---------------------------------------------------------------------------------

# The detection schedule's flags (in seconds; the engine's options add "_s").
SCHEDULE = ("face_every", "face_full_every", "text_every")


@dataclass(frozen=True)
class Redaction:
    """What the redaction options asked for; ``given`` names those typed on the command line
    (not left at their defaults), which is what an export of a reviewed plan may change."""

    classes: str = "faces,plates"
    mode: str = "blur"
    shape: str = "box"
    padding: float = 0.15
    audio: str = "keep"
    mute: tuple[str, ...] = ()
    face_every: float | None = None
    face_full_every: float | None = None
    text_every: float | None = None
    given: frozenset[str] = field(default=frozenset())

    @property
    def schedule(self) -> tuple[float | None, float | None, float | None]:
        return (self.face_every, self.face_full_every, self.text_every)


_FIELD_DEFAULT: Any = object()


def _option(
    name: str, kind: Any, *declarations: str, default: Any = _FIELD_DEFAULT, **option: Any
) -> inspect.Parameter:
    """One redaction option as a keyword parameter Typer reads; its default is the
    :class:`Redaction` field's unless given."""
    if default is _FIELD_DEFAULT:
        default = Redaction.__dataclass_fields__[name].default
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[kind, typer.Option(*declarations, **option)],
    )


_REDACTION_OPTIONS = [
    _option(
        "classes",
        str,
        "--classes",
        metavar="LIST",
        help="What to hide: faces, plates, text (comma-separated).",
    ),
    _option("mode", str, metavar="MODE", help="blur, pixelate or solid."),
    _option("shape", str, metavar="SHAPE", help="box or ellipse."),
    _option(
        "padding",
        float,
        metavar="FRACTION",
        help="Grow each box by this fraction of its size, each side.",
    ),
    _option("audio", str, metavar="AUDIO", help="keep, mute or strip."),
    _option(
        "mute",
        list[str] | None,
        "--mute",
        default=None,  # Typer's "not given" for a repeatable option; Redaction keeps ()
        metavar="START-END",
        help="Mute START-END seconds, e.g. 12.5-20 (repeatable).",
    ),
    _option(
        "face_every",
        float | None,
        metavar="SECONDS",
        help="Detect faces (downscaled) every SECONDS of the clip [default: 0.2].",
    ),
    _option(
        "face_full_every",
        float | None,
        metavar="SECONDS",
        help="Detect faces at full resolution every SECONDS [default: 0.8].",
    ),
    _option(
        "text_every",
        float | None,
        metavar="SECONDS",
        help="Detect plates/text in the whole frame every SECONDS [default: 1.6]; in "
        "between, wherever the picture shows something new.",
    ),
]
# A parameter Typer fills with the command's context: which options were typed.
_CONTEXT = inspect.Parameter(
    "redaction_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
)
_DEFAULTS = ("DEFAULT", "DEFAULT_MAP")  # parameter sources meaning "not typed"

F = TypeVar("F", bound=Callable[..., Any])


def redaction_options(command: F) -> F:
    """Give ``command`` the nine redaction options, handed to it as one ``redaction:
    Redaction`` argument (Typer reads a command's options from its signature)."""
    signature = inspect.signature(command, eval_str=True)  # the command's own module's names
    kept = [p for p in signature.parameters.values() if p.name != "redaction"]

    @functools.wraps(command)
    def with_redaction(*args: Any, **kwargs: Any) -> Any:
        values = {p.name: kwargs.pop(p.name) for p in _REDACTION_OPTIONS}
        ctx = kwargs.pop(_CONTEXT.name)
        sources = {name: ctx.get_parameter_source(name) for name in values}
        given = frozenset(
            n for n, s in sources.items() if s is not None and s.name not in _DEFAULTS
        )
        values["mute"] = tuple(values["mute"] or ())
        return command(*args, redaction=Redaction(**values, given=given), **kwargs)

    with_redaction.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*kept, *_REDACTION_OPTIONS, _CONTEXT]
    )
    with_redaction.__annotations__ = {
        p.name: p.annotation for p in [*kept, *_REDACTION_OPTIONS, _CONTEXT]
    } | {"return": signature.return_annotation}
    del with_redaction.__wrapped__  # Typer must read the new signature, not the command's
    return with_redaction  # type: ignore[return-value]
