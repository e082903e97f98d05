"""Categories, holds and retention (bwv.services.retention) on a real data dir: records on
SQLite and on
PostgreSQL, objects in a LocalStore, clips ingested through ``finalise`` as the service does."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select, update

from bwv.access.roles import Principal, Role
from bwv.base.clock import MovableClock, as_utc
from bwv.custody.bundle import make_bundle, verify_bundle
from bwv.custody.leaf import format_time, parse_leaf
from bwv.ingest.finalise import Services
from bwv.records.database import _alembic_config, make_engine, upgrade
from bwv.records.tables import Clip, Export
from bwv.services.context import Context
from bwv.services.retention import (
    ClipGone,
    PolicyConflict,
    PolicyError,
    PolicyForbidden,
    categories,
    categorise,
    place_hold,
    release_hold,
    retain_until_for,
    retention_start,
    run_retention,
    set_category,
)
from bwv.store import ObjectStore, StoreError
from bwv.store.local import LocalStore
from tests.support import REPO
from tests.support.cli import bwv
from tests.support.ledger import leaves
from tests.support.records import clip_row
from tests.support.services import (
    ADMIN,
    OFFICER,
    SIX_YEARS,
    add_export,
    ingest_clip,
    make_services,
)

CLIP = Clip.__table__
EXPORT = Export.__table__
CONSTABLE = Principal("pc-1", Role.OFFICER, "192.0.2.9")


# -- helpers ----------------------------------------------------------------------------------


def stored(store: ObjectStore, kind: str, sha256: str) -> bool:
    return store.exists(kind, sha256)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "data", database_url=database_url)
    yield services
    services.ctx.close()


def clock(services: Services) -> MovableClock:
    assert isinstance(services.ctx.clock, MovableClock)
    return services.ctx.clock


def run(services: Services, **kwargs: Any) -> Any:
    return run_retention(services.ctx, services.store, operator="admin-1", dry_run=False, **kwargs)


# -- retention dates ----------------------------------------------------------------------------


def test_ingest_keeps_a_clip_31_days_from_when_it_was_recorded(services: Services) -> None:
    recorded = (datetime.now(UTC) - timedelta(days=200)).replace(microsecond=0)
    clip = clip_row(services.ctx, ingest_clip(services, recorded))
    assert clip.category == "uncategorised"
    assert as_utc(clip.retain_until) == recorded + timedelta(days=31)


def test_ingest_counts_from_ingest_when_the_recording_time_is_unknown(services: Services) -> None:
    clip = clip_row(services.ctx, ingest_clip(services))
    assert as_utc(clip.retain_until) == as_utc(clip.ingested_at) + timedelta(days=31)


def test_categorising_as_evidential_keeps_the_clip_six_years_and_leaves_a_leaf(
    services: Services,
) -> None:
    recorded = datetime.now(UTC) - timedelta(days=2)
    evidence_id = ingest_clip(services, recorded)
    leaf = categorise(
        services.ctx, services.store, evidence_id, "evidential", "CASE-1234", OFFICER, "arrest"
    )
    clip = clip_row(services.ctx, evidence_id)
    assert (clip.category, clip.case_ref) == ("evidential", "CASE-1234")
    assert as_utc(clip.retain_until) == recorded + SIX_YEARS
    [recorded_leaf] = leaves(services.ctx, "clip.categorised", evidence_id)
    assert recorded_leaf["sequence"] == leaf.seq
    assert (recorded_leaf["actor"], recorded_leaf["reason"]) == ("eo-1", "arrest")
    assert recorded_leaf["details"]["from"]["category"] == "uncategorised"
    assert recorded_leaf["details"]["to"] == {
        "category": "evidential",
        "case": "CASE-1234",
        "retain_until": format_time(recorded + SIX_YEARS),
    }
    assert recorded_leaf["details"]["client"] == "192.0.2.7"


def test_an_unknown_category_is_refused_naming_the_choices_and_changes_nothing(
    services: Services,
) -> None:
    evidence_id = ingest_clip(services)
    before = clip_row(services.ctx, evidence_id)
    with pytest.raises(PolicyError, match="evidential, non-evidential, uncategorised") as refused:
        categorise(services.ctx, services.store, evidence_id, "keep-forever", None, OFFICER, "x")
    assert refused.value.status == 400
    assert clip_row(services.ctx, evidence_id) == before
    assert leaves(services.ctx, "clip.categorised") == []


def test_an_unknown_evidence_id_is_404(services: Services) -> None:
    with pytest.raises(PolicyError) as refused:
        place_hold(services.ctx, services.store, "EV-20240101-NOPENOPE", OFFICER, "case")
    assert refused.value.status == 404


def test_changing_a_category_s_period_recomputes_its_clips_and_is_recorded(
    services: Services,
) -> None:
    recorded = datetime.now(UTC) - timedelta(days=1)
    kept = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, kept, "non-evidential", None, OFFICER, "nothing")
    other = ingest_clip(services, recorded)
    changed = set_category(services.ctx, services.store, "non-evidential", 90, ADMIN)
    assert changed == 1
    assert categories(services.ctx.engine)["non-evidential"] == 90
    assert as_utc(clip_row(services.ctx, kept).retain_until) == recorded + timedelta(days=90)
    assert as_utc(clip_row(services.ctx, other).retain_until) == recorded + timedelta(days=31)
    [leaf] = leaves(services.ctx, "category.set")
    assert leaf["details"] == {
        "client": "192.0.2.8",
        "category": "non-evidential",
        "retention_days": 90,
        "previous_days": 31,
        "clips_changed": 1,
        "clips_kept_longer": 0,
    }


def test_a_new_category_can_be_added_and_used(services: Services) -> None:
    assert set_category(services.ctx, services.store, "traffic", 400, ADMIN) == 0
    recorded = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    evidence_id = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, evidence_id, "traffic", None, OFFICER, "collision")
    assert as_utc(clip_row(services.ctx, evidence_id).retain_until) == recorded + timedelta(
        days=400
    )


def test_retain_until_counts_whole_days_from_the_start() -> None:
    start = datetime(2024, 2, 28, 23, 30, tzinfo=UTC)
    assert retain_until_for(start, 2) == datetime(2024, 3, 1, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize("who", [CONSTABLE, ADMIN], ids=["officer", "admin"])
def test_only_an_evidence_officer_may_shorten_a_clip_s_retention(
    services: Services, who: Principal
) -> None:
    evidence_id = ingest_clip(services, datetime.now(UTC) - timedelta(days=2))
    categorise(services.ctx, services.store, evidence_id, "evidential", "CASE-1", OFFICER, "arrest")
    before = clip_row(services.ctx, evidence_id)
    with pytest.raises(PolicyForbidden, match="only an evidence officer may shorten") as refused:
        categorise(services.ctx, services.store, evidence_id, "non-evidential", None, who, "oops")
    assert refused.value.status == 403
    assert clip_row(services.ctx, evidence_id) == before
    assert len(leaves(services.ctx, "clip.categorised", evidence_id)) == 1


def test_an_evidence_officer_may_shorten_a_clip_s_retention(services: Services) -> None:
    recorded = datetime.now(UTC) - timedelta(days=2)
    evidence_id = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, evidence_id, "evidential", None, OFFICER, "arrest")
    categorise(services.ctx, services.store, evidence_id, "non-evidential", None, OFFICER, "nfa")
    clip = clip_row(services.ctx, evidence_id)
    assert as_utc(clip.retain_until) == recorded + timedelta(days=31)


def test_an_officer_may_lengthen_their_clip_s_retention(services: Services) -> None:
    recorded = datetime.now(UTC) - timedelta(days=2)
    evidence_id = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, evidence_id, "evidential", None, CONSTABLE, "arrest")
    assert as_utc(clip_row(services.ctx, evidence_id).retain_until) == recorded + SIX_YEARS


def test_shortening_a_category_s_period_keeps_its_clips_dates_and_applies_to_new_clips(
    services: Services,
) -> None:
    recorded = datetime.now(UTC) - timedelta(days=1)
    set_category(services.ctx, services.store, "traffic", 400, ADMIN)
    kept = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, kept, "traffic", None, OFFICER, "collision")
    assert set_category(services.ctx, services.store, "traffic", 40, ADMIN) == 0
    assert as_utc(clip_row(services.ctx, kept).retain_until) == recorded + timedelta(days=400)
    later = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, later, "traffic", None, OFFICER, "collision")
    assert as_utc(clip_row(services.ctx, later).retain_until) == recorded + timedelta(days=40)
    shortened = leaves(services.ctx, "category.set")[-1]["details"]
    assert (shortened["clips_changed"], shortened["clips_kept_longer"]) == (0, 1)


# -- the camera's clock -------------------------------------------------------------------------


def test_a_camera_clock_reset_to_2000_counts_retention_from_ingest(services: Services) -> None:
    clip = clip_row(services.ctx, ingest_clip(services, datetime(2000, 1, 1, tzinfo=UTC)))
    assert as_utc(clip.recorded_at) == datetime(2000, 1, 1, tzinfo=UTC)  # kept as the camera said
    assert as_utc(clip.retain_until) == as_utc(clip.ingested_at) + timedelta(days=31)
    clock(services).advance(days=1)
    assert run(services).deleted == []  # not due on arrival


def test_a_camera_clock_in_2099_counts_retention_from_ingest_when_categorised_too(
    services: Services,
) -> None:
    evidence_id = ingest_clip(services, datetime(2099, 1, 1, tzinfo=UTC))
    ingested = as_utc(clip_row(services.ctx, evidence_id).ingested_at)
    assert as_utc(clip_row(services.ctx, evidence_id).retain_until) == ingested + timedelta(days=31)
    categorise(services.ctx, services.store, evidence_id, "evidential", None, OFFICER, "arrest")
    assert as_utc(clip_row(services.ctx, evidence_id).retain_until) == ingested + SIX_YEARS


@pytest.mark.parametrize(
    ("recorded", "counted_from"),
    [
        (timedelta(days=-366), "recorded"),
        (timedelta(days=-367), "ingested"),
        (timedelta(hours=24), "recorded"),
        (timedelta(hours=25), "ingested"),
    ],
)
def test_a_recording_time_counts_from_a_year_before_ingest_to_a_day_after(
    recorded: timedelta, counted_from: str
) -> None:
    ingested = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    start = retention_start(ingested + recorded, ingested)
    assert start == (ingested + recorded if counted_from == "recorded" else ingested)


# -- upgrading ----------------------------------------------------------------------------------


def test_upgrading_keeps_clips_recorded_long_before_31_days_from_the_upgrade(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    cfg = _alembic_config()
    with engine.begin() as conn:  # a database as the release before retention left it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    old = sa.table(
        "clip",
        *(sa.column(c) for c in ("evidence_id", "sha256", "size", "status", "ledger_index")),
        sa.column("receipt"),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
        sa.column("ingested_at", sa.DateTime(timezone=True)),
    )
    with engine.begin() as conn:
        conn.execute(
            old.insert().values(
                evidence_id="EV-20250110-OLDCLIP0",
                sha256="a" * 64,
                size=1,
                status="playable",
                ledger_index=0,
                receipt="{}",
                recorded_at=datetime(2025, 1, 10, tzinfo=UTC),
                ingested_at=datetime(2025, 1, 11, tzinfo=UTC),
            )
        )
    before = datetime.now(UTC)
    upgrade(engine)
    with engine.connect() as conn:
        until = as_utc(conn.execute(select(CLIP.c.retain_until)).scalar_one())
    engine.dispose()
    assert before + timedelta(days=31) <= until <= datetime.now(UTC) + timedelta(days=31)


# -- holds --------------------------------------------------------------------------------------


def test_a_held_clip_is_never_deleted_even_long_overdue(services: Services) -> None:
    evidence_id = ingest_clip(services)
    place_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint")
    clock(services).advance(days=400)
    report = run(services)
    assert report.deleted == [] and report.failures == []
    assert [c.evidence_id for c in report.held_past_due] == [evidence_id]
    assert stored(services.store, "originals", clip_row(services.ctx, evidence_id).sha256)
    assert clip_row(services.ctx, evidence_id).deleted_at is None


def test_a_released_hold_lets_retention_delete_the_clip(services: Services) -> None:
    evidence_id = ingest_clip(services)
    place_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint")
    release_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint closed")
    clock(services).advance(days=32)
    assert [c.evidence_id for c in run(services).deleted] == [evidence_id]
    assert [leaf["reason"] for leaf in leaves(services.ctx, "hold.released")] == [
        "complaint closed"
    ]


def test_holding_a_held_clip_or_releasing_an_unheld_one_is_a_conflict(
    services: Services,
) -> None:
    evidence_id = ingest_clip(services)
    with pytest.raises(PolicyConflict, match="not held") as refused:
        release_hold(services.ctx, services.store, evidence_id, OFFICER, "x")
    assert refused.value.status == 409
    place_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint")
    with pytest.raises(PolicyConflict, match="already held"):
        place_hold(services.ctx, services.store, evidence_id, OFFICER, "again")
    assert len(leaves(services.ctx, "hold.placed")) == 1


def test_a_hold_on_a_deleted_clip_is_gone(services: Services) -> None:
    evidence_id = ingest_clip(services)
    clock(services).advance(days=32)
    run(services)
    with pytest.raises(ClipGone, match="deleted on") as refused:
        place_hold(services.ctx, services.store, evidence_id, OFFICER, "too late")
    assert refused.value.status == 410
    assert leaves(services.ctx, "hold.placed") == []


def test_a_clip_being_deleted_cannot_be_held_or_categorised(services: Services) -> None:
    evidence_id = ingest_clip(services)
    claim(services, evidence_id)
    with pytest.raises(ClipGone, match="being deleted"):
        place_hold(services.ctx, services.store, evidence_id, OFFICER, "too late")
    with pytest.raises(ClipGone):
        categorise(services.ctx, services.store, evidence_id, "evidential", None, OFFICER, "x")


# -- retention runs -----------------------------------------------------------------------------


def test_a_dry_run_lists_what_would_go_and_changes_nothing(services: Services) -> None:
    due = ingest_clip(services)
    held = ingest_clip(services)
    kept = ingest_clip(services)
    place_hold(services.ctx, services.store, held, OFFICER, "complaint")
    categorise(services.ctx, services.store, kept, "evidential", None, OFFICER, "arrest")
    as_of = datetime.now(UTC) + timedelta(days=32)
    before = {e: clip_row(services.ctx, e) for e in (due, held, kept)}
    report = run_retention(
        services.ctx, services.store, operator="admin-1", dry_run=True, now=as_of
    )
    assert report.dry_run and report.deleted == []
    assert [(c.evidence_id, c.category, c.size) for c in report.due] == [
        (due, "uncategorised", 4096)
    ]
    assert [c.evidence_id for c in report.held_past_due] == [held]
    assert {e: clip_row(services.ctx, e) for e in before} == before
    assert all(stored(services.store, "originals", r.sha256) for r in before.values())
    assert leaves(services.ctx, "clip.deleted") == []
    [summary] = leaves(services.ctx, "retention.run")
    assert summary["details"]["dry_run"] is True
    assert (summary["details"]["due"], summary["details"]["held_past_due"]) == (1, 1)


def test_past_31_days_uncategorised_clips_and_their_copies_go_leaving_one_tombstone_each(
    services: Services, tmp_path: Path
) -> None:
    gone = [ingest_clip(services) for _ in range(3)]
    copy = add_export(services, gone[0], tmp_path)
    kept = ingest_clip(services)
    categorise(services.ctx, services.store, kept, "evidential", "CASE-9", OFFICER, "arrest")
    clock(services).advance(days=32)
    report = run(services)
    assert sorted(c.evidence_id for c in report.deleted) == sorted(gone)
    assert not stored(services.store, "exports", copy)
    for evidence_id in gone:
        clip = clip_row(services.ctx, evidence_id)
        assert clip.deleted_at is not None
        assert not stored(services.store, "originals", clip.sha256)
        [tombstone] = leaves(services.ctx, "clip.deleted", evidence_id)
        assert tombstone["sha256"] == clip.sha256
        assert (tombstone["actor"], tombstone["role"]) == ("retention", "system")
        assert tombstone["details"]["run_by"] == "admin-1"
        assert tombstone["details"]["category"] == "uncategorised"
    [with_copy] = leaves(services.ctx, "clip.deleted", gone[0])
    assert [e["sha256"] for e in with_copy["details"]["exports_deleted"]] == [copy]
    with services.ctx.engine.connect() as conn:
        assert conn.execute(select(EXPORT.c.sha256)).scalars().all() == [copy]  # the record stays
    assert stored(services.store, "originals", clip_row(services.ctx, kept).sha256)


def test_a_repeated_run_deletes_nothing_more_and_adds_no_tombstone(services: Services) -> None:
    for _ in range(2):
        ingest_clip(services)
    clock(services).advance(days=32)
    assert len(run(services).deleted) == 2
    again = run(services)
    assert (again.due, again.deleted, again.failures) == ([], [], [])
    assert len(leaves(services.ctx, "clip.deleted")) == 2
    assert len(leaves(services.ctx, "retention.run")) == 2


def claim(services: Services, evidence_id: str) -> Any:
    """What a run killed right after claiming a clip leaves behind."""
    with services.ctx.engine.begin() as conn:
        conn.execute(
            update(CLIP)
            .where(CLIP.c.evidence_id == evidence_id)
            .values(deleted_at=clock(services)())
        )
    return clip_row(services.ctx, evidence_id)


def test_a_run_killed_after_claiming_a_clip_is_finished_by_the_next(services: Services) -> None:
    evidence_id = ingest_clip(services)
    clip = claim(services, evidence_id)
    report = run(services)  # not yet due by the clock: finished because it was claimed
    assert [c.evidence_id for c in report.deleted] == [evidence_id]
    assert not stored(services.store, "originals", clip.sha256)
    assert len(leaves(services.ctx, "clip.deleted", evidence_id)) == 1


def test_a_run_killed_after_deleting_the_objects_is_finished_by_the_next(
    services: Services, tmp_path: Path
) -> None:
    evidence_id = ingest_clip(services)
    copy = add_export(services, evidence_id, tmp_path)
    clip = claim(services, evidence_id)
    services.store.expire("exports", copy)
    services.store.expire("originals", clip.sha256)
    run(services)
    [tombstone] = leaves(services.ctx, "clip.deleted", evidence_id)
    assert tombstone["sha256"] == clip.sha256
    assert tombstone["details"]["exports_deleted"][0]["sha256"] == copy


class RefusingStore(LocalStore):
    """A store whose lock on originals has not passed (as S3 object lock refuses)."""

    def expirable(self, kind: str, sha256: str) -> str | None:
        if kind == "originals":
            return f"storage refuses to delete originals/{sha256}: retained until later"
        return super().expirable(kind, sha256)

    def expire(self, kind: str, sha256: str) -> None:
        if (refusal := self.expirable(kind, sha256)) is not None:
            raise StoreError(refusal)
        super().expire(kind, sha256)


def test_a_refused_delete_undoes_the_claim_and_is_recorded_as_failed(services: Services) -> None:
    evidence_id = ingest_clip(services)
    clock(services).advance(days=32)
    assert isinstance(services.store, LocalStore)
    refusing = RefusingStore(services.store.root)
    report = run_retention(services.ctx, refusing, operator="admin-1", dry_run=False)
    assert [f.evidence_id for f in report.failures] == [evidence_id]
    assert "retained until later" in report.failures[0].diagnosis
    assert report.deleted == []
    clip = clip_row(services.ctx, evidence_id)
    assert clip.deleted_at is None and stored(services.store, "originals", clip.sha256)
    [failed] = leaves(services.ctx, "retention.failed", evidence_id)
    assert (failed["outcome"], failed["details"]["run_by"]) == ("failed", "admin-1")
    assert leaves(services.ctx, "clip.deleted") == []
    assert [c.evidence_id for c in run(services).deleted] == [evidence_id]  # lock passed


def test_a_refused_original_keeps_its_copies_too(services: Services, tmp_path: Path) -> None:
    evidence_id = ingest_clip(services)
    copy = add_export(services, evidence_id, tmp_path)
    clock(services).advance(days=32)
    assert isinstance(services.store, LocalStore)
    refusing = RefusingStore(services.store.root)
    report = run_retention(services.ctx, refusing, operator="admin-1", dry_run=False)
    assert [f.evidence_id for f in report.failures] == [evidence_id]
    assert stored(services.store, "exports", copy)
    [failed] = leaves(services.ctx, "retention.failed", evidence_id)
    assert failed["details"]["exports_deleted"] == []


def test_a_deleted_clip_s_custody_history_is_still_provable_and_holds_its_tombstone(
    services: Services,
) -> None:
    evidence_id = ingest_clip(services)
    clock(services).advance(days=32)
    run(services)
    ctx = services.ctx
    bundle = make_bundle(ctx.ledger, evidence_id, ctx.keyring)
    report = verify_bundle(bundle, ctx.keyring, evidence_id=evidence_id)
    actions = [parse_leaf(e["leaf"].encode())["action"] for e in bundle["leaves"]]
    assert actions == ["clip.ingested", "clip.deleted"]
    assert report.clip_sha256 == clip_row(ctx, evidence_id).sha256
    assert parse_leaf(bundle["leaves"][-1]["leaf"].encode())["sha256"] == report.clip_sha256


# -- the one delete -----------------------------------------------------------------------------


def test_only_the_retention_module_calls_the_store_s_delete() -> None:
    sources = [REPO / "cli.py", *(REPO / "bwv").rglob("*.py"), *(REPO / "docks").rglob("*.py")]
    callers = {str(p.relative_to(REPO)) for p in sources if re.search(r"\.expire\(", p.read_text())}
    assert callers == {"bwv/services/retention.py"}
    raw_deletes = {
        str(p.relative_to(REPO))
        for p in sources
        if re.search(r"\bremove_objects?\(", p.read_text())
    }
    assert raw_deletes == {"bwv/store/s3.py"}


# -- kill -9 ------------------------------------------------------------------------------------

_RUN = """
import sys
from bwv.base.settings import Settings
from bwv.services.context import Context
from bwv.services.retention import run_retention
from bwv.store import open_store
ctx = Context(Settings(data_dir=sys.argv[1]))
run_retention(ctx, open_store(ctx.settings.store_url), operator="admin-1", dry_run=False)
"""


def test_a_run_killed_with_sigkill_midway_is_finished_by_the_next(tmp_path: Path) -> None:
    services = make_services(tmp_path / "data")
    ctx, store = services.ctx, services.store
    long_ago = datetime.now(UTC) - timedelta(days=100)
    ids = [ingest_clip(services, long_ago + timedelta(minutes=n)) for n in range(150)]
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(ctx.settings.data_dir)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not leaves(ctx, "clip.deleted") and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert 0 < len(leaves(ctx, "clip.deleted")) < len(ids)  # killed midway

    run_retention(ctx, store, operator="admin-1", dry_run=False, now=datetime.now(UTC))

    tombstones = leaves(ctx, "clip.deleted")
    assert sorted(t["target"] for t in tombstones) == sorted(ids)  # each exactly once
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(CLIP.c.deleted_at.is_(None))).scalar() == 0
        shas = conn.execute(select(CLIP.c.evidence_id, CLIP.c.sha256)).all()
    assert {t["target"]: t["sha256"] for t in tombstones} == dict(shas)
    assert not any(stored(store, "originals", sha) for _, sha in shas)
    ctx.close()


# -- the admin commands -------------------------------------------------------------------------


def test_bwv_categories_set_then_list_shows_the_new_period(tmp_path: Path) -> None:
    services = make_services(tmp_path / "data")
    services.ctx.close()
    changed = bwv(tmp_path / "data", "categories", "set", "traffic", "--days", "400")
    assert changed.returncode == 0, changed.stderr
    assert "traffic: kept 400 days" in changed.stdout
    listed = bwv(tmp_path / "data", "categories", "list")
    assert re.search(r"traffic\s+.\s+400\b", listed.stdout), listed.stdout
    refused = bwv(tmp_path / "data", "categories", "set", "Bad Name", "--days", "4")
    assert refused.returncode == 1 and "category name" in refused.stderr


def test_bwv_retention_run_dry_run_as_of_lists_then_a_run_deletes(tmp_path: Path) -> None:
    services = make_services(tmp_path / "data")
    recorded = datetime.now(UTC) - timedelta(days=100)  # due 69 days ago
    evidence_id = ingest_clip(services, recorded)
    services.ctx.close()
    before, after = (f"{recorded + timedelta(days=d):%Y-%m-%d}" for d in (15, 60))
    refused = bwv(tmp_path / "data", "retention", "run", "--as-of", after)
    assert refused.returncode == 1 and "only for --dry-run" in refused.stderr
    early = bwv(tmp_path / "data", "retention", "run", "--dry-run", "--as-of", before)
    assert early.returncode == 0 and "would delete: 0" in early.stdout
    dry = bwv(tmp_path / "data", "retention", "run", "--dry-run", "--as-of", after)
    assert dry.returncode == 0 and evidence_id in dry.stdout
    done = bwv(tmp_path / "data", "retention", "run")
    assert done.returncode == 0, done.stderr
    assert "deleted: 1" in done.stdout
    ctx = Context(services.ctx.settings)
    assert [t["target"] for t in leaves(ctx, "clip.deleted")] == [evidence_id]
    ctx.close()
