"""``bwv redact``: plan what to hide in a clip (``plan ID``, on the service) and review it, or
redact a local file with the same engine (``FILE -o OUT``, no ledger). The redaction options are
declared once, in :mod:`bwv.cli.options`."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from bwv.base.files import file_sha256
from bwv.cli.client import ApiClient
from bwv.cli.clips import EvidenceId
from bwv.cli.common import PlainGroup, api_path, group, sendable, service
from bwv.cli.options import SCHEDULE, ReasonOpt, Redaction, redaction_options
from bwv.cli.output import counted, frames_bar, out, progress, say, waiting, write_file
from bwv.redact.plan import CLASS_CHOICES, NotApplicable, Options, Plan, PlanError

if TYPE_CHECKING:
    # The click typer subclasses (typer vendors it as typer._click; not exported under a
    # public name).
    from typer._click import Command, Context


class _RedactGroup(PlainGroup):
    """``bwv redact FILE`` and ``bwv redact plan ID``: a first argument that is not a
    subcommand is the file to redact."""

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["file", *args]
        return super().resolve_command(ctx, args)


redact = group(
    "Redaction: plan what to hide in a clip (plan ID), or redact a local file (FILE -o OUT).",
    cls=_RedactGroup,
)


# --- the options, checked here so a bad one is named by its flag and never sent ----------------


def engine_options(r: Redaction) -> Options:
    """The engine's options from the command line's."""
    chosen = tuple(c.strip() for c in r.classes.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CLASS_CHOICES]
    if unknown or not chosen:
        raise PlanError(
            f"unknown class {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(CLASS_CHOICES)}"
        )
    given = {
        f"{name}_s": value
        for name, value in zip(SCHEDULE, r.schedule, strict=True)
        if value is not None
    }
    try:
        return Options(
            classes=chosen,
            mode=r.mode,
            shape=r.shape,
            padding=r.padding,
            audio=r.audio,
            **given,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = str(error["loc"][0]).removesuffix("_s").replace("_", "-")
        raise PlanError(f"--{flag}: {error['msg']}") from None


def mute_spans(spans: tuple[str, ...]) -> tuple[tuple[float, float], ...]:
    found = []
    for span in spans:
        try:
            start, end = (float(v) for v in span.split("-", 1))
        except ValueError:
            raise PlanError(
                f"--mute {span!r}: expected START-END in seconds, e.g. 12.5-20"
            ) from None
        if not 0 <= start < end:
            raise PlanError(f"--mute {span!r}: the span must start at 0 or later and end after it")
        found.append((start, end))
    return tuple(found)


def options_request(r: Redaction) -> dict[str, Any]:
    """The redaction part of a plan or export request."""
    return {
        "options": engine_options(r).model_dump(mode="json"),
        "mute": [list(span) for span in mute_spans(r.mute)],
    }


def reviewed_plan_request(reviewed: Plan, r: Redaction) -> dict[str, Any]:
    """The options and mute spans of an export of a reviewed plan: only the flags given, and
    only if the plan can take them (checked as the service will: :meth:`Plan.merged`)."""
    spans = mute_spans(r.mute)
    typed = r.given - {"mute"}
    chosen: dict[str, Any] = {}
    options = None
    if typed:
        kept = reviewed.options
        schedule: dict[str, Any] = {n: getattr(r, n) if n in typed else None for n in SCHEDULE}
        full = engine_options(
            Redaction(
                classes=r.classes if "classes" in typed else ",".join(kept.classes),
                mode=r.mode if "mode" in typed else kept.mode,
                shape=r.shape if "shape" in typed else kept.shape,
                padding=r.padding if "padding" in typed else kept.padding,
                audio=r.audio if "audio" in typed else kept.audio,
                **schedule,
            )
        )
        fields = {f"{n}_s" if n in SCHEDULE else n for n in typed}
        options = Options.model_validate(full.model_dump(include=fields))
        chosen = options.model_dump(mode="json", include=fields)
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


# --- planning on the service --------------------------------------------------------------------


def request_plan(
    api: ApiClient, evidence_id: str, reason: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Ask the service to find what to hide; its answer (plan text, its SHA-256, sheet PNG)."""
    return api.request(  # type: ignore[no-any-return]
        "POST",
        api_path("clips", evidence_id, "plan"),
        params={"reason": reason},
        json_body=body,
        timeout=None,  # detection takes as long as the clip needs
    ).json()


def save_plan(planned: dict[str, Any], plan_path: Path, sheet_path: Path) -> Plan:
    """Write the plan byte for byte (its hash is recorded) and its contact sheet."""
    plan = Plan.parse(planned["plan"].encode(), "the service's plan")
    write_file(sheet_path, base64.b64decode(planned["sheet_png"]))
    write_file(plan_path, planned["plan"].encode())
    return plan


def plan_paths(evidence_id: str, output: Path | None, sheet: Path | None) -> tuple[Path, Path]:
    plan_path = output or Path(f"{evidence_id}.plan.json")
    return plan_path, sheet or plan_path.with_name(
        plan_path.name.removesuffix(".plan.json") + ".sheet.png"
    )


@redact.command("plan")
@redaction_options
def redact_plan(
    evidence_id: EvidenceId,
    reason: ReasonOpt,
    redaction: Redaction,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Plan file (default ID.plan.json)."),
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Contact sheet PNG (default ID.sheet.png).")
    ] = None,
) -> None:
    """Find faces and plates in a clip (on the service) and write a plan and a contact sheet
    to review.

    Edit the plan (set "keep": true on a track, add "manual" boxes or "mute" spans), then
    render it with: bwv export ID --plan PLAN --reason TEXT
    """
    body = options_request(redaction)
    sendable(reason)
    plan_path, sheet_path = plan_paths(evidence_id, output, sheet)
    with service() as (api, _), waiting(f"finding faces and plates in {evidence_id}"):
        planned = request_plan(api, evidence_id, reason, body)
    plan = save_plan(planned, plan_path, sheet_path)
    tracks = counted(len(plan.tracks), "track")
    say(f"plan: {plan_path} ({tracks}, SHA-256 {planned['plan_sha256']})")
    say(f"contact sheet: {sheet_path}")
    say(f"render with: bwv export {evidence_id} --plan {plan_path} --reason TEXT")


# --- a local file -------------------------------------------------------------------------------


@redact.command("file")
@redaction_options
def redact_file(
    source: Annotated[Path, typer.Argument(metavar="FILE", help="Any local video file.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="The redacted MP4.")
    ],
    redaction: Redaction,
    plan: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Render this plan instead of detecting.")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Also write a contact sheet PNG.")
    ] = None,
) -> None:
    """Redact a local file with the same engine (no ledger: for trying it and for benchmarks)."""
    # The engine, the renderer and the sheet bring in PyAV, OpenCV and the detectors' runtimes
    # (seconds to import): only this command needs them, so every other bwv starts quickly.
    from bwv.redact.engine import make_plan
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
        options = engine_options(redaction)
        with progress() as bar:
            advance = frames_bar(bar, f"detecting in {source.name}", None)
            planned = make_plan(
                source,
                options,
                source_sha256=sha256,
                progress=advance,
                mute=mute_spans(redaction.mute),
            )
        chosen = planned.plan
        if sheet is not None:
            write_sheet(chosen, planned.thumbnails, planned.crops, sheet)
    with progress() as bar:
        advance = frames_bar(bar, f"rendering {output.name}", chosen.frames)
        rendered = render(source, chosen, output, progress=advance)
    seconds = time.perf_counter() - started
    out.print(
        f"{output}: {rendered.frames} frames, {counted(len(chosen.tracks), 'track')} hidden, audio "
        f"{rendered.audio}; {rendered.frames / seconds:.1f} frames/s"
    )
    if sheet is not None and plan is None:
        out.print(f"contact sheet: {sheet}")
