"""Disclosure copies of evidence: plan, render, sign, store, record.

The original is read from the store of record and checked against its SHA-256 before anything
is done with it; the copy is a new object (kind ``exports``), indexed as an export of its clip,
with an ``export.created`` leaf that names the parent, the copy, the plan and the detector
models. Anything that stops an export -- a bad plan, an unplayable clip, a frame that will not
decode, a detector that fails, the clip deleted under retention meanwhile -- leaves no copy, and
the officer's request is still a leaf (``export.refused`` for what the officer can fix,
``export.failed`` for what broke; ``redact.refused`` and ``redact.failed`` for a plan), holding
the reason the officer gave and, in ``details.why``, what stopped it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bwv.access import MAX_REASON, Principal, ReasonError, Role, check_reason, shown_reason
from bwv.base.clock import as_utc, system_clock
from bwv.base.errors import BwvError, Failed, Gone, Refused, Unavailable
from bwv.base.files import file_sha256, replaced_when_done
from bwv.custody.leaf import Outcome
from bwv.custody.ledger import AppendedLeaf
from bwv.ingest.finalise import readable_id
from bwv.ingest.probe import PLAYABLE
from bwv.records import clips as records
from bwv.redact.engine import make_plan
from bwv.redact.plan import NotApplicable, Options, Plan, PlanError, first_error, read_plan_bytes
from bwv.redact.render import render
from bwv.redact.sheet import write_sheet
from bwv.services import retention
from bwv.services.clips import (
    Clip,
    ClipGone,
    ClipNotFound,
    Moved,
    live_clip,
    settled,
)
from bwv.services.context import Context
from bwv.services.fixity import damaged_diagnosis
from bwv.store import StoreError, StoreUnavailable

log = logging.getLogger("bwv.redact")
Progress = Callable[[str, int, int], None]  # stage, done, total


class ExportRefused(Refused):
    """The request cannot be carried out as asked; it was recorded as refused (400)."""


class ExportGone(ExportRefused, Gone):
    """The clip was deleted under retention (before or while the copy was made) (410)."""


class ExportFailed(Failed):
    """Something broke while planning or exporting; no copy was made, and it was recorded
    (500)."""


class ExportUnavailable(ExportFailed, Unavailable):
    """The store of record cannot be reached just now; trying again later may succeed (503)."""


def _store_failure(exc: StoreError) -> ExportFailed:
    """The server's fault, never the caller's: 503 while the store is unreachable, else 500;
    the pathless line (``shown``), as the answer and the leaf are seen by others."""
    if isinstance(exc, StoreUnavailable):
        return ExportUnavailable(f"the store of record cannot be used just now: {exc.shown}")
    return ExportFailed(exc.shown)


@contextmanager
def _recorded(
    ctx: Context,
    who: Principal,
    request: str,
    target: str,
    details: dict[str, Any] | None = None,
    *,
    reason: str | None = None,
) -> Iterator[None]:
    """Whatever stops ``request`` is a leaf (refused or failed) before it reaches the caller;
    ``reason`` is the one the person gave, ``details`` (read when it stops) add to the leaf."""
    try:
        yield
    except StoreError as exc:
        failure = _store_failure(exc)
        record_refusal(ctx, who, request, target, failure, reason=reason, **(details or {}))
        raise failure from None
    except BwvError as exc:
        exc.diagnosis = without_paths(ctx, exc.diagnosis)  # the leaf and the answer alike
        exc.shown = exc.diagnosis
        record_refusal(ctx, who, request, target, exc, reason=reason, **(details or {}))
        raise
    except Exception as exc:
        failure = ExportFailed(
            without_paths(ctx, f"{request} of {target} failed: {type(exc).__name__}: {exc}")
        )
        record_refusal(ctx, who, request, target, failure, reason=reason, **(details or {}))
        raise failure from exc


def without_paths(ctx: Context, text: str) -> str:
    """``text`` with every path under the service's own folders cut to its last part: leaves
    are permanent and shown to officers and auditors, and the server's layout is no part of
    a diagnosis (FFmpeg and the OS name files by their full path)."""
    s = ctx.settings
    roots = {str(s.data_dir), str(s.data_dir.resolve()), tempfile.gettempdir()}
    if s.store_url.startswith("file://"):
        roots.add(s.store_url.removeprefix("file://"))
    for folder in (s.upload_dir, s.signing_key_path):
        if folder is not None:
            roots.add(str(folder.parent if folder == s.signing_key_path else folder))
    pattern = "|".join(re.escape(r.rstrip("/")) for r in sorted(roots, key=len, reverse=True))
    return re.sub(
        rf"(?:{pattern})(?:/[^\s'\",:;)]*)?",
        lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "the data folder",
        text,
    )


def _write_out(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replaced_when_done(dest) as partial:
        shutil.copyfile(source, partial)


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    evidence_id: str
    sha256: str
    size: int
    plan_sha256: str
    ledger_index: int
    tracks: int
    path: Path | None = None  # where a copy was also written for the officer


@dataclass(frozen=True)
class PlanResult:
    plan_path: Path
    sheet_path: Path
    plan_sha256: str
    tracks: int
    ledger_index: int


def new_export_id(when: datetime) -> str:
    """``DC-YYYYMMDD-XXXXXXXX``: a disclosure copy, named like evidence ids."""
    return readable_id("DC", when)


def _check_reason(reason: str | None) -> str:
    try:
        checked = check_reason(reason, required=True)
    except ReasonError as exc:
        raise PlanError(exc.diagnosis) from None
    assert checked is not None
    return checked


def work_dir(ctx: Context) -> tempfile.TemporaryDirectory[str]:
    """A private scratch directory under the data dir (footage never goes to the system tmp),
    removed when done or on any error; named for this process, so that what a crash left is
    known as such (:func:`sweep_work`)."""
    work = ctx.settings.data_dir / "work"
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-", dir=work)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def sweep_work(data_dir: Path) -> int:
    """Remove the scratch a process that died mid-plan or mid-export left in ``data/work``
    (copies of originals, renders): a killed process runs no cleanup. Scratch of a process
    still running is left alone. Returns how many were removed."""
    work = data_dir / "work"
    removed = 0
    for entry in work.iterdir() if work.is_dir() else ():
        owner, _, _ = entry.name.partition("-")
        if owner.isdigit() and (int(owner) == os.getpid() or _alive(int(owner))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d scratch folders left by a stopped process in data/work", removed)
    return removed


@contextmanager
def _original(ctx: Context, clip: Clip) -> Iterator[Path]:
    """The original's bytes in a private temporary file, checked against the indexed SHA-256."""
    with work_dir(ctx) as tmp:
        suffix = Path(clip.original_name or "").suffix.lower()
        if not suffix or "mp4" in (clip.container or ""):
            suffix = ".mp4"  # the ISO BMFF family, whatever the camera called it
        path = Path(tmp) / f"{clip.evidence_id}{suffix}"
        try:
            ctx.store.fetch("originals", clip.sha256, path)
        except StoreUnavailable:
            raise
        except StoreError as exc:  # damaged or missing: say whose original, as a server fault
            raise ExportFailed(damaged_diagnosis("originals", clip.evidence_id, exc)) from None
        yield path


def record_refusal(
    ctx: Context,
    who: Principal,
    request: str,
    evidence_id: str,
    error: BwvError,
    *,
    reason: str | None = None,
    **details: Any,
) -> None:
    """An officer's request (``redact.plan``, ``export``, ``export.download``) that was not
    carried out, as a leaf: ``redact.*`` or ``export.*``, ``refused`` for what the officer can
    fix and ``failed`` for what broke; the reason they gave (capped: it may be the problem) and,
    in ``details.why``, the diagnosis. The leaf is the error's record: the API records no other."""
    error.recorded = True
    outcome = Outcome.REFUSED if isinstance(error, PlanError | Refused) else Outcome.FAILED
    kind = "redact" if request == "redact.plan" else "export"
    stated = reason.strip() if reason else None
    ctx.ledger.append(
        who.event(
            f"{kind}.{outcome.value}",
            target=evidence_id,
            outcome=outcome,
            reason=shown_reason(stated) or None,
            details={"request": request, "why": error.diagnosis[:MAX_REASON], **details},
        )
    )


def _playable_clip(ctx: Context, evidence_id: str) -> Clip:
    """The clip (:func:`~bwv.services.clips.live_clip`), if it decodes."""
    try:
        with ctx.engine.connect() as conn:
            clip = live_clip(conn, evidence_id)
    except ClipNotFound as exc:
        raise ExportRefused(exc.diagnosis) from None
    except ClipGone as exc:
        raise ExportGone(exc.diagnosis) from None
    if clip.status != PLAYABLE:
        raise ExportRefused(
            f"{evidence_id} is {clip.status} ({clip.probe_error or 'no reason recorded'}): "
            "a disclosure copy needs a clip that decodes"
        )
    return clip


def plan_clip(
    ctx: Context,
    evidence_id: str,
    options: Options,
    *,
    plan_path: Path,
    sheet_path: Path,
    mute: tuple[tuple[float, float], ...] = (),
    progress: Callable[[int], None] | None = None,
    who: Principal | None = None,
    reason: str | None = None,
) -> PlanResult:
    """Detect and track on a clip; write the plan and its contact sheet; record the viewing."""
    who = who or local_officer(ctx)
    with _recorded(ctx, who, "redact.plan", evidence_id, reason=reason):
        clip = _playable_clip(ctx, evidence_id)
        _spans_fit(clip, mute)
        with _original(ctx, clip) as original:
            planned = _planned(
                original,
                options,
                evidence_id=evidence_id,
                source_sha256=clip.sha256,
                progress=progress,
                mute=mute,
            )
        write_sheet(planned.plan, planned.thumbnails, planned.crops, sheet_path)
        plan_sha256 = planned.plan.save(plan_path)
    leaf = ctx.ledger.append(
        who.event(
            "redact.planned",
            target=evidence_id,
            sha256=clip.sha256,
            reason=reason,
            details={
                "plan_sha256": plan_sha256,
                "tracks": len(planned.plan.tracks),
                "detectors": [d.model_dump() for d in planned.plan.detectors],
            },
        )
    )
    return PlanResult(plan_path, sheet_path, plan_sha256, len(planned.plan.tracks), leaf.seq)


def _spans_fit(clip: Clip, mute: tuple[tuple[float, float], ...]) -> None:
    """Mute spans inside the clip as indexed, before any detection is spent on it."""
    if clip.duration_s is None:
        return  # the plan's own check (after detection) still applies
    slack = 1 / clip.frame_rate if clip.frame_rate else 1.0
    for start, end in mute:
        if end > clip.duration_s + slack:
            raise NotApplicable(
                f"mute span [{start:g}, {end:g}] ends past the clip's end "
                f"({clip.duration_s:.3f} s)",
                "mute",
            )


def _planned(original: Path, options: Options, **kwargs: Any) -> Any:
    """:func:`make_plan`, with a plan the request makes invalid (a mute span past the clip's
    decoded end) refused in one line rather than failed."""
    try:
        return make_plan(original, options, **kwargs)
    except ValidationError as exc:
        field = "mute" if any("mute" in e["loc"] for e in exc.errors()) else "options"
        raise NotApplicable(first_error(exc), field) from None


def export_clip(
    ctx: Context,
    evidence_id: str,
    *,
    reason: str,
    plan_path: Path | None = None,
    plan_bytes: bytes | None = None,
    options: Options | None = None,
    output: Path | None = None,
    sheet_path: Path | None = None,
    mute: tuple[tuple[float, float], ...] = (),
    progress: Progress | None = None,
    who: Principal | None = None,
    plan_label: str | None = None,
) -> ExportResult:
    """Make, sign, store and record a disclosure copy of ``evidence_id``.

    With a reviewed plan (``plan_bytes``, or the file ``plan_path``) the plan is rendered with
    what the request asks as well (:meth:`Plan.merged`: ``mute`` spans added, the render
    ``options`` it set applied; what cannot apply is refused); the plan rendered is the one
    stored and recorded, beside the reviewed one when they differ. Without a plan the clip is
    planned with ``options`` and rendered in one go. ``plan_label`` names the plan in a
    diagnosis (``plan {label} is not JSON``) instead of its path, which may be the server's own.
    """
    who = who or local_officer(ctx)
    details: dict[str, Any] = {}
    reviewed = plan_path is not None or plan_bytes is not None
    with _recorded(ctx, who, "export", evidence_id, details, reason=reason):
        reason = _check_reason(reason)
        if reviewed:
            if plan_bytes is None:
                assert plan_path is not None
                plan_bytes = _read_plan(plan_path, plan_label)  # hashed, parsed, stored as is
            plan_sha256 = details["plan_sha256"] = hashlib.sha256(plan_bytes).hexdigest()
            plan = Plan.parse(plan_bytes, plan_label or str(plan_path))
        clip = _playable_clip(ctx, evidence_id)
        if reviewed:
            plan.for_clip(evidence_id, clip.sha256)
            plan.check_cost()
            asked = plan.merged(options, mute)
            reviewed_bytes = plan_bytes
            if asked is not plan:
                plan, plan_bytes = asked, asked.to_json()
                details["reviewed_plan_sha256"] = plan_sha256
                plan_sha256 = details["plan_sha256"] = hashlib.sha256(plan_bytes).hexdigest()
        else:
            _spans_fit(clip, mute)
        with _original(ctx, clip) as original:
            work = original.parent
            if not reviewed:
                planned = _planned(
                    original,
                    options or Options(),
                    evidence_id=evidence_id,
                    source_sha256=clip.sha256,
                    progress=(lambda n: progress("detect", n, 0)) if progress else None,
                    mute=mute,
                )
                plan = planned.plan
                plan_bytes = plan.to_json()
                plan_sha256 = details["plan_sha256"] = hashlib.sha256(plan_bytes).hexdigest()
                if sheet_path is not None:
                    write_sheet(plan, planned.thumbnails, planned.crops, sheet_path)
            rendered = render(
                original,
                plan,
                work / "rendered.mp4",
                progress=(lambda n: progress("render", n, plan.frames)) if progress else None,
            )
            signed = work / "disclosure.mp4"
            _sign(ctx, rendered.path, signed, original, evidence_id, plan, plan_sha256)
            store = ctx.store
            assert plan_bytes is not None
            if "reviewed_plan_sha256" in details:  # what the officer reviewed, and what was done
                assert reviewed_bytes is not None
                (work / "reviewed.json").write_bytes(reviewed_bytes)
                store.put("plans", details["reviewed_plan_sha256"], work / "reviewed.json")
            (work / "plan.json").write_bytes(plan_bytes)
            store.put("plans", plan_sha256, work / "plan.json")
            return _store_and_record(
                ctx, who, clip, plan, plan_sha256, reason, signed, rendered.audio, output, details
            )


def _read_plan(path: Path, label: str | None) -> bytes:
    if label is None:
        return read_plan_bytes(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan {label}: {exc.strerror}") from exc


def _actions(plan: Plan) -> list[dict[str, Any]]:
    from bwv.redact.provenance import redaction_action

    hidden = sorted(
        {t.cls for t in plan.tracks if not t.keep} | ({"manual"} if plan.manual else set())
    )
    return [
        redaction_action(
            "bwv disclosure redaction: faces, plates or text hidden; audio as planned",
            classes=hidden,
            tracks_hidden=sum(1 for t in plan.tracks if not t.keep),
            tracks_kept=[t.id for t in plan.tracks if t.keep],
            manual_boxes=len(plan.manual),
            mode=plan.options.mode,
            audio=plan.options.audio,
            mute_spans=[[s.start_s, s.end_s] for s in plan.mute],
        ),
        {"action": "c2pa.transcoded", "parameters": {"video": "h264", "audio": "aac"}},
    ]


def _sign(
    ctx: Context,
    rendered: Path,
    signed: Path,
    original: Path,
    evidence_id: str,
    plan: Plan,
    plan_sha256: str,
) -> None:
    from bwv.redact.provenance import ensure_identity, sign_disclosure

    assert ctx.settings.signing_key_path is not None
    identity = ensure_identity(ctx.settings.signing_key_path.parent, ctx.signer)
    sign_disclosure(
        rendered,
        signed,
        parent=original,
        parent_title=f"{evidence_id}.mp4",
        actions=_actions(plan),
        identity=identity,
        metadata={"evidence_id": evidence_id, "plan_sha256": plan_sha256},
    )


def _store_and_record(
    ctx: Context,
    who: Principal,
    clip: Clip,
    plan: Plan,
    plan_sha256: str,
    reason: str,
    signed: Path,
    audio: str,
    output: Path | None,
    refusal: dict[str, Any],
) -> ExportResult:
    """Store the copy and record it; ``refusal`` is what a refusal's leaf would add."""
    sha256, size = file_sha256(signed), signed.stat().st_size
    store = ctx.store
    assert clip.id is not None
    # A copy is kept, locked and held as its clip is, and deleted with it
    # (bwv/services/retention.py).
    retain_until = as_utc(clip.retain_until) if clip.retain_until else None
    stored = store.put("exports", sha256, signed, retain_until=retain_until)
    now = system_clock()
    export_id = new_export_id(now)
    details = {
        "export_id": export_id,
        "parent_sha256": clip.sha256,
        "output_sha256": sha256,
        "plan_sha256": plan_sha256,
        **{k: refusal[k] for k in ("reviewed_plan_sha256",) if k in refusal},
        "detectors": [d.model_dump() for d in plan.detectors],
        "classes": list(plan.options.classes),
        "tracks_hidden": sum(1 for t in plan.tracks if not t.keep),
        "tracks_kept": [t.id for t in plan.tracks if t.keep],
        "manual_boxes": len(plan.manual),
        "mode": plan.options.mode,
        "audio": audio,
        "mute_spans": [[m.start_s, m.end_s] for m in plan.mute],
        "officer": who.name,
        "store": _where(stored),
    }
    try:
        with ctx.clip_lock(clip.evidence_id):
            leaf = settled(
                clip.evidence_id,
                lambda: _record_copy(
                    ctx, who, clip, plan, reason, details, retain_until, size, now
                ),
            )
    except ExportGone:
        # Recorded, a copy would be deleted with its clip; unrecorded, no run ever would.
        refusal["copy_sha256"] = sha256
        if (left := retention.discard_copy(ctx, store, sha256)) is not None:
            refusal["copy_left"] = left
        raise
    copy_path = None
    if output is not None:  # only a copy that is stored and recorded is handed out
        _write_out(signed, output)
        copy_path = output
        _record_download(ctx, who, clip.evidence_id, export_id, sha256, copy_path.name, reason)
    return ExportResult(
        export_id,
        clip.evidence_id,
        sha256,
        size,
        plan_sha256,
        leaf.seq,
        sum(1 for t in plan.tracks if not t.keep),
        copy_path,
    )


def _record_copy(
    ctx: Context,
    who: Principal,
    clip: Clip,
    plan: Plan,
    reason: str,
    details: dict[str, Any],
    retain_until: datetime | None,
    size: int,
    now: datetime,
) -> AppendedLeaf:
    """Record a stored copy as the clip's. The clip as it is now, not as it was when rendering
    began: retention may have deleted it, a hold or a later date may have come meanwhile; the
    copy is held and locked as the clip is in the store first, outside the ledger's
    transaction, and the transaction starts again (:class:`Moved`) if the clip moved since."""
    store, sha256, export_id = ctx.store, details["output_sha256"], details["export_id"]
    assert clip.id is not None
    with ctx.engine.connect() as conn:
        fresh = records.clip_by_id(conn, clip.id)
    if fresh.deleted_at is not None:
        raise ExportGone(f"{clip.evidence_id} was deleted under retention while the copy was made")
    if fresh.held:
        store.set_legal_hold("exports", sha256, True)
    fresh_until = as_utc(fresh.retain_until) if fresh.retain_until else None
    if fresh_until is not None and (retain_until is None or fresh_until > retain_until):
        store.extend_retention("exports", sha256, fresh_until)
    with ctx.ledger.transaction() as tx:
        now_clip = records.clip_by_id(tx.conn, clip.id)
        if now_clip.deleted_at is not None:
            raise ExportGone(
                f"{clip.evidence_id} was deleted under retention while the copy was made"
            )
        now_until = as_utc(now_clip.retain_until) if now_clip.retain_until else None
        if (now_clip.held and not fresh.held) or (
            now_until is not None and (fresh_until is None or now_until > fresh_until)
        ):
            raise Moved  # held or kept longer meanwhile (another process): cover the copy too
        leaf = tx.append(
            who.event(
                "export.created",
                target=clip.evidence_id,
                sha256=sha256,
                reason=reason,
                details=details,
            )
        )
        records.add_export(
            tx.conn,
            export_id=export_id,
            clip_id=clip.id,
            evidence_id=clip.evidence_id,
            sha256=sha256,
            size=size,
            parent_sha256=clip.sha256,
            plan_sha256=details["plan_sha256"],
            classes=",".join(plan.options.classes),
            officer=who.name,
            reason=reason,
            created_at=now,
            ledger_index=leaf.seq,
        )
    return leaf


def _where(stored: Any) -> str:
    """Where the copy is kept, without the server's filesystem layout: an S3 location (its
    version is what a lock holds) or the store's own key."""
    if "://" in stored.location:
        return str(stored.location)
    return f"{stored.kind}/{stored.sha256}"


def _record_download(
    ctx: Context,
    who: Principal,
    evidence_id: str,
    export_id: str,
    sha256: str,
    to: str | None,
    reason: str,
) -> int:
    return ctx.ledger.append(
        who.event(
            "export.downloaded",
            target=evidence_id,
            sha256=sha256,
            reason=reason,
            details={"export_id": export_id, "to": to},
        )
    ).seq


def local_officer(ctx: Context) -> Principal:
    """The person at this machine's keyboard, acting as an evidence officer (server host)."""
    return Principal(ctx.settings.actor, Role.EVIDENCE_OFFICER)
