"""Disclosure copies of ingested evidence: stored as new objects beside untouched originals,
indexed, recorded with their lineage, signed with C2PA, refused cleanly on bad input.

The clips are ingested the real way (a ``bwv serve`` process, tus over TLS) once per module."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bwv.base.settings import Settings
from bwv.ingest.finalise import Services
from bwv.records.tables import Clip, Export
from bwv.redact.plan import Options, PlanError
from bwv.redact.provenance import read_disclosure
from bwv.services.context import Context
from bwv.services.disclosure import (
    ExportFailed,
    ExportGone,
    ExportRefused,
    export_clip,
    plan_clip,
)
from bwv.services.retention import run_retention
from bwv.services.samples import make_sample_clip, make_street_clip
from bwv.store import open_store
from tests.support import sha256_of
from tests.support.ingestserver import make_server
from tests.support.ledger import leaves
from tests.support.services import ingest_bytes, make_services
from tests.support.tus import Dock

CLIP, EXPORT = Clip.__table__, Export.__table__


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A street clip (playable) and a truncated one (unplayable), ingested by a dock."""
    root = tmp_path_factory.mktemp("export")
    street, _ = make_street_clip(root / "street.mp4", seconds=1.2, width=640, height=360)
    other = make_sample_clip(root / "other.mp4", seconds=1, seed=3)
    broken = root / "broken.mp4"
    data = other.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    server = make_server(root / "server")
    server.start()
    try:
        dock = Dock(server)
        for path in (street, other, broken):
            assert dock.upload(path, sha256=sha256_of(path)).status_code == 204
        dock.http.close()
    finally:
        server.stop()
    ids = {}
    ctx = Context(server.settings)
    with ctx.engine.connect() as conn:
        for name, path in (("street", street), ("other", other), ("broken", broken)):
            ids[name] = conn.execute(
                select(CLIP.c.evidence_id).where(CLIP.c.sha256 == sha256_of(path))
            ).scalar_one()
    ctx.close()
    yield {"settings": server.settings, "ids": ids, "street": street, "root": root}


@pytest.fixture
def ctx(evidence: dict[str, Any]) -> Iterator[Context]:
    context = Context(evidence["settings"])
    yield context
    context.close()


def store_objects(settings: Settings, kind: str) -> set[str]:
    root = Path(settings.store_url.removeprefix("file://")) / kind
    return {p.name for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def exported(evidence: dict[str, Any]) -> dict[str, Any]:
    ctx = Context(evidence["settings"])
    out = evidence["root"] / "copy.mp4"
    result = export_clip(
        ctx, evidence["ids"]["street"], reason="CPS disclosure, case 1234", output=out
    )
    ctx.close()
    return {"result": result, "copy": out}


def test_the_copy_is_a_new_stored_object_and_the_original_is_untouched(
    evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    result = exported["result"]
    store = open_store(evidence["settings"].store_url)
    assert store.exists("exports", result.sha256)
    assert sha256_of(exported["copy"]) == result.sha256
    original_sha = sha256_of(evidence["street"])
    assert result.sha256 != original_sha
    digest = hashlib.sha256(b"".join(store.read_chunks("originals", original_sha))).hexdigest()
    assert digest == original_sha


def test_the_plan_the_copy_was_rendered_from_is_stored_under_its_sha256(
    evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    store = open_store(evidence["settings"].store_url)
    plan_sha256 = exported["result"].plan_sha256
    plan = json.loads(b"".join(store.read_chunks("plans", plan_sha256)))
    assert plan["evidence_id"] == evidence["ids"]["street"]
    assert plan["source_sha256"] == sha256_of(evidence["street"])


def test_the_copy_is_indexed_as_an_export_of_its_clip(
    ctx: Context, evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(EXPORT).where(EXPORT.c.export_id == exported["result"].export_id)
        ).one()
    assert row.evidence_id == evidence["ids"]["street"]
    assert row.parent_sha256 == sha256_of(evidence["street"])
    assert row.reason == "CPS disclosure, case 1234"


def test_the_export_leaf_names_parent_copy_plan_models_officer_and_reason(
    ctx: Context, evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    result = exported["result"]
    leaf = next(
        lf for lf in leaves(ctx, "export.created") if lf["details"]["export_id"] == result.export_id
    )
    details = leaf["details"]
    assert leaf["target"] == evidence["ids"]["street"] and leaf["sha256"] == result.sha256
    assert details["parent_sha256"] == sha256_of(evidence["street"])
    assert details["output_sha256"] == result.sha256
    assert details["plan_sha256"] == result.plan_sha256 and len(result.plan_sha256) == 64
    models = {d["name"]: d for d in details["detectors"]}
    assert set(models) == {"centerface", "ppocr-v4-det", "ppocr-v4-rec"}  # rec: plate reader
    assert all(len(m["sha256"]) == 64 and m["version"] for m in models.values())
    assert details["officer"] == ctx.settings.actor
    assert leaf["reason"] == "CPS disclosure, case 1234"
    assert leaf["sequence"] == result.ledger_index


def test_the_copy_carries_a_trusted_c2pa_manifest_with_the_original_as_parent(
    ctx: Context, evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    anchors = (ctx.settings.signing_key_path.parent / "c2pa" / "anchors.pem").read_bytes()
    report = read_disclosure(exported["copy"], anchors)
    assert report.valid and report.trusted, report.status
    assert report.parent_title == f"{evidence['ids']['street']}.mp4"
    assert report.parent_sha256 == sha256_of(evidence["street"])
    assert "c2pa.edited" in report.actions


def test_a_reviewed_plan_with_a_kept_track_is_rendered_as_edited(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    evidence_id = evidence["ids"]["street"]
    planned = plan_clip(
        ctx, evidence_id, Options(), plan_path=tmp_path / "p.json", sheet_path=tmp_path / "s.png"
    )
    assert (tmp_path / "s.png").stat().st_size > 10_000
    plan = json.loads((tmp_path / "p.json").read_text())
    plan["tracks"][0]["keep"] = True
    (tmp_path / "p.json").write_text(json.dumps(plan))
    result = export_clip(ctx, evidence_id, reason="victim request", plan_path=tmp_path / "p.json")
    leaf = leaves(ctx, "export.created")[-1]
    assert leaf["details"]["tracks_kept"] == [plan["tracks"][0]["id"]]
    assert result.plan_sha256 == sha256_of(tmp_path / "p.json") != planned.plan_sha256
    assert leaves(ctx, "redact.planned")[-1]["details"]["plan_sha256"] == planned.plan_sha256


# --- refusals: nothing stored, a leaf written ----------------------------------------------------


def refused(
    ctx: Context, settings: Settings, call: Any, error: type[Exception], match: str
) -> None:
    before_objects = store_objects(settings, "exports")
    before = len(leaves(ctx, "export.refused"))
    with pytest.raises(error, match=match):
        call()
    assert store_objects(settings, "exports") == before_objects
    assert len(leaves(ctx, "export.refused")) == before + 1


def test_an_unplayable_clip_is_refused(ctx: Context, evidence: dict[str, Any]) -> None:
    refused(
        ctx,
        evidence["settings"],
        lambda: export_clip(ctx, evidence["ids"]["broken"], reason="case 9"),
        ExportRefused,
        "unplayable",
    )


def test_an_unknown_evidence_id_is_refused(ctx: Context, evidence: dict[str, Any]) -> None:
    refused(
        ctx,
        evidence["settings"],
        lambda: export_clip(ctx, "EV-20260101-NOTHING0", reason="case 9"),
        ExportRefused,
        "no clip with evidence id",
    )


@pytest.mark.parametrize(
    ("reason", "kept"),
    [("", None), ("   ", None), ("x" * 100_000, "x" * 200 + "... (100000 characters)")],
    ids=["empty", "blank", "huge"],
)
def test_an_empty_or_huge_reason_is_refused_and_kept_short(
    ctx: Context, evidence: dict[str, Any], reason: str, kept: str | None
) -> None:
    refused(
        ctx,
        evidence["settings"],
        lambda: export_clip(ctx, evidence["ids"]["street"], reason=reason),
        PlanError,
        "reason",
    )
    assert leaves(ctx, "export.refused")[-1]["reason"] == kept


def test_a_refusal_leaf_holds_the_stated_reason_and_the_diagnosis_apart(
    ctx: Context, evidence: dict[str, Any]
) -> None:
    with pytest.raises(ExportRefused):
        export_clip(ctx, evidence["ids"]["broken"], reason="case 9 disclosure")
    leaf = leaves(ctx, "export.refused")[-1]
    assert (leaf["reason"], leaf["details"]["request"]) == ("case 9 disclosure", "export")
    assert "unplayable" in leaf["details"]["why"]


def test_a_refused_plan_is_recorded_as_redact_refused_with_its_reason(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    before = len(leaves(ctx, "export.refused"))
    with pytest.raises(ExportRefused, match="unplayable"):
        plan_clip(
            ctx,
            evidence["ids"]["broken"],
            Options(),
            plan_path=tmp_path / "p.json",
            sheet_path=tmp_path / "s.png",
            reason="review for case 9",
        )
    leaf = leaves(ctx, "redact.refused")[-1]
    assert (leaf["reason"], leaf["outcome"]) == ("review for case 9", "refused")
    assert leaf["details"]["request"] == "redact.plan" and "unplayable" in leaf["details"]["why"]
    assert len(leaves(ctx, "export.refused")) == before


def test_a_plan_that_breaks_midway_is_recorded_as_redact_failed(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    failed = len(leaves(ctx, "redact.failed"))
    sheet = tmp_path / "not-a-dir" / "sheet"  # no image extension: OpenCV cannot write it
    with pytest.raises(ExportFailed, match=r"redact\.plan of EV-"):
        plan_clip(
            ctx,
            evidence["ids"]["street"],
            Options(),
            plan_path=tmp_path / "p.json",
            sheet_path=sheet,
            reason="review",
        )
    after = leaves(ctx, "redact.failed")
    assert len(after) == failed + 1 and after[-1]["reason"] == "review"


def test_a_bad_plan_is_named_by_its_label_not_by_the_server_s_path(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / "work" / "plan.json"
    bad.parent.mkdir()
    bad.write_bytes(b"{ not a plan")
    with pytest.raises(PlanError, match=r"^plan in the request is not JSON") as refused_plan:
        export_clip(
            ctx,
            evidence["ids"]["street"],
            reason="case 9",
            plan_path=bad,
            plan_label="in the request",
        )
    assert str(tmp_path) not in refused_plan.value.diagnosis
    assert str(tmp_path) not in leaves(ctx, "export.refused")[-1]["details"]["why"]


def test_a_plan_for_another_clip_is_refused(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    plan_clip(
        ctx,
        evidence["ids"]["other"],
        Options(),
        plan_path=tmp_path / "p.json",
        sheet_path=tmp_path / "s.png",
    )
    refused(
        ctx,
        evidence["settings"],
        lambda: export_clip(
            ctx, evidence["ids"]["street"], reason="case 9", plan_path=tmp_path / "p.json"
        ),
        PlanError,
        "plan is for",
    )


def test_a_corrupt_plan_is_refused_and_its_hash_recorded(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00\x01 not a plan")
    refused(
        ctx,
        evidence["settings"],
        lambda: export_clip(ctx, evidence["ids"]["street"], reason="case 9", plan_path=bad),
        PlanError,
        "not JSON",
    )
    assert leaves(ctx, "export.refused")[-1]["details"]["plan_sha256"] == sha256_of(bad)


def test_the_disclosure_copy_plays_in_ffmpeg_with_the_original_s_frames_and_duration(
    evidence: dict[str, Any], exported: dict[str, Any]
) -> None:
    import ffmpeg

    def streams(path: Path) -> dict[str, dict[str, Any]]:
        found = ffmpeg.probe(str(path), count_frames=None)["streams"]
        return {s["codec_type"]: s for s in found}

    original, copy = streams(evidence["street"]), streams(exported["copy"])
    assert copy["video"]["codec_name"] == "h264" and copy["audio"]["codec_name"] == "aac"
    for key in ("nb_read_frames", "r_frame_rate", "width", "height"):
        assert copy["video"][key] == original["video"][key], key
    assert float(copy["video"]["duration"]) == pytest.approx(float(original["video"]["duration"]))
    _, errors = (
        ffmpeg.input(str(exported["copy"]))
        .output("-", format="null")
        .global_args("-hide_banner", "-v", "error")
        .run(capture_stdout=True, capture_stderr=True)
    )
    assert errors == b""


def test_an_export_that_breaks_midway_leaves_no_copy_anywhere_and_is_recorded_as_failed(
    ctx: Context, evidence: dict[str, Any], tmp_path: Path
) -> None:
    before = store_objects(evidence["settings"], "exports")
    failed = len(leaves(ctx, "export.failed"))
    out = tmp_path / "copy.mp4"
    sheet = tmp_path / "not-a-dir" / "sheet"  # no image extension: OpenCV cannot write it
    with pytest.raises(ExportFailed, match="export of EV-"):
        export_clip(ctx, evidence["ids"]["street"], reason="case 7", output=out, sheet_path=sheet)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    assert store_objects(evidence["settings"], "exports") == before
    assert len(leaves(ctx, "export.failed")) == failed + 1


# --- retention meanwhile: a data dir of its own, so that its clip can be deleted -----------------


@pytest.fixture
def own(evidence: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Services, str]]:
    """A data dir of its own with the street clip ingested (as the service does)."""
    services = make_services(tmp_path / "own")
    yield services, ingest_bytes(services, evidence["street"].read_bytes())
    services.ctx.close()


def delete_under_retention(services: Services) -> None:
    when = datetime.now(UTC) + timedelta(days=400)
    ctx, store = services.ctx, services.store
    report = run_retention(ctx, store, operator="admin-1", dry_run=False, now=when)
    assert len(report.deleted) == 1


def test_an_export_whose_clip_retention_deletes_meanwhile_is_refused_and_leaves_no_copy(
    own: tuple[Services, str],
) -> None:
    services, evidence_id = own
    ctx = services.ctx
    ran: list[str] = []

    def meanwhile(stage: str, done: int, total: int) -> None:
        if not ran:  # the original is read; the copy is not yet stored
            ran.append(stage)
            delete_under_retention(services)

    with pytest.raises(ExportGone, match="deleted under retention while the copy was made"):
        export_clip(ctx, evidence_id, reason="CPS disclosure", progress=meanwhile)
    assert ran
    with ctx.engine.connect() as conn:
        assert conn.execute(select(EXPORT)).all() == []
    assert store_objects(ctx.settings, "exports") == set()
    [leaf] = leaves(ctx, "export.refused")
    assert (leaf["target"], leaf["reason"]) == (evidence_id, "CPS disclosure")
    assert "while the copy was made" in leaf["details"]["why"]
    assert len(leaf["details"]["copy_sha256"]) == 64 and "copy_left" not in leaf["details"]
    assert leaves(ctx, "export.created") == []


def test_a_plan_of_a_clip_deleted_under_retention_is_refused_as_gone(
    own: tuple[Services, str], tmp_path: Path
) -> None:
    services, evidence_id = own
    delete_under_retention(services)
    with pytest.raises(ExportGone, match="only its custody record remains") as gone:
        plan_clip(
            services.ctx,
            evidence_id,
            Options(),
            plan_path=tmp_path / "p.json",
            sheet_path=tmp_path / "s.png",
            reason="review",
        )
    assert gone.value.status == 410
    [leaf] = leaves(services.ctx, "redact.refused")
    assert leaf["target"] == evidence_id and "deleted under retention" in leaf["details"]["why"]
