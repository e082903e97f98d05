"""Retention and holds kept in step with S3 object lock, on a real Ceph RADOS Gateway: the
storage's locks and legal holds follow the records, and the storage itself refuses an early
delete."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bwv.base.clock import MovableClock, as_utc
from bwv.ingest.finalise import Services
from bwv.services.disclosure import export_clip
from bwv.services.retention import categorise, place_hold, release_hold, run_retention, set_category
from bwv.services.samples import make_street_clip
from bwv.store.s3 import S3Store
from tests.support.ledger import leaves
from tests.support.records import clip_row
from tests.support.rgwserver import RgwServer
from tests.support.services import ADMIN, OFFICER, SIX_YEARS, add_export, ingest_bytes, ingest_clip
from tests.support.services import make_services as make_local_services


@pytest.fixture
def services(rgw: RgwServer, tmp_path: Path) -> Iterator[Services]:
    url = f"{rgw.url(f'bwv-ret-{uuid.uuid4().hex[:12]}')}&lock_floor_seconds=1"
    services = make_local_services(tmp_path / "data", store_url=url)
    assert isinstance(services.store, S3Store)
    yield services
    services.ctx.close()


def s3(services: Services) -> S3Store:
    assert isinstance(services.store, S3Store)
    return services.store


def whole_second(when: datetime) -> datetime:
    return when.replace(microsecond=0) + timedelta(seconds=1 if when.microsecond else 0)


def test_ingest_locks_the_original_until_its_retention_date(services: Services) -> None:
    recorded = datetime.now(UTC) - timedelta(days=3)
    clip = clip_row(services.ctx, ingest_clip(services, recorded))
    assert s3(services).retention("originals", clip.sha256) == (
        "COMPLIANCE",
        whole_second(recorded + timedelta(days=31)),
    )


def test_categorising_as_evidential_lengthens_the_locks_of_the_original_and_its_copies(
    services: Services, tmp_path: Path
) -> None:
    recorded = datetime.now(UTC) - timedelta(days=3)
    evidence_id = ingest_clip(services, recorded)
    copy = add_export(services, evidence_id, tmp_path)
    categorise(services.ctx, services.store, evidence_id, "evidential", "CASE-7", OFFICER, "arrest")
    six_years = ("COMPLIANCE", whole_second(recorded + SIX_YEARS))
    assert s3(services).retention("originals", clip_row(services.ctx, evidence_id).sha256) == (
        six_years
    )
    assert s3(services).retention("exports", copy) == six_years


def test_lengthening_a_category_s_period_lengthens_its_clips_locks(services: Services) -> None:
    recorded = datetime.now(UTC) - timedelta(days=3)
    evidence_id = ingest_clip(services, recorded)
    categorise(services.ctx, services.store, evidence_id, "non-evidential", None, OFFICER, "x")
    set_category(services.ctx, services.store, "non-evidential", 90, ADMIN)
    assert s3(services).retention("originals", clip_row(services.ctx, evidence_id).sha256) == (
        "COMPLIANCE",
        whole_second(recorded + timedelta(days=90)),
    )


def test_a_hold_places_legal_holds_on_the_original_and_copies_and_a_release_removes_them(
    services: Services, tmp_path: Path
) -> None:
    evidence_id = ingest_clip(services)
    copy = add_export(services, evidence_id, tmp_path)
    sha256 = clip_row(services.ctx, evidence_id).sha256
    place_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint")
    assert s3(services).legal_hold("originals", sha256) and s3(services).legal_hold("exports", copy)
    release_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint closed")
    assert not s3(services).legal_hold("originals", sha256)
    assert not s3(services).legal_hold("exports", copy)


def test_the_storage_refuses_an_early_delete_and_retention_deletes_once_the_lock_passes(
    services: Services,
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=3)
    evidence_id = ingest_clip(services, soon - timedelta(days=31))
    sha256 = clip_row(services.ctx, evidence_id).sha256
    _mode, locked_until = s3(services).retention("originals", sha256)
    assert locked_until is not None
    services.ctx.clock = MovableClock(datetime.now(UTC) + timedelta(days=1))  # a clock too fast
    early = run_retention(services.ctx, services.store, operator="admin-1", dry_run=False)
    assert [f.evidence_id for f in early.failures] == [evidence_id]
    assert "storage refuses to delete" in early.failures[0].diagnosis
    assert clip_row(services.ctx, evidence_id).deleted_at is None
    assert services.store.exists("originals", sha256)
    assert len(leaves(services.ctx, "retention.failed", evidence_id)) == 1

    time.sleep(max(0.0, (locked_until - datetime.now(UTC)).total_seconds()) + 0.5)
    report = run_retention(services.ctx, services.store, operator="admin-1", dry_run=False)
    assert [c.evidence_id for c in report.deleted] == [evidence_id]
    assert not services.store.exists("originals", sha256)
    [tombstone] = leaves(services.ctx, "clip.deleted", evidence_id)
    assert tombstone["details"]["store"] == s3(services).describe()


def test_an_original_locked_longer_than_its_copy_refuses_the_run_and_the_copy_stays(
    services: Services, tmp_path: Path
) -> None:
    evidence_id = ingest_clip(services, datetime.now(UTC) - timedelta(days=32))  # due a day ago
    sha256 = clip_row(services.ctx, evidence_id).sha256
    s3(services).extend_retention("originals", sha256, datetime.now(UTC) + timedelta(days=1))
    copy = add_export(services, evidence_id, tmp_path)  # locked for the one-second floor
    _mode, copy_until = s3(services).retention("exports", copy)
    assert copy_until is not None
    time.sleep(max(0.0, (copy_until - datetime.now(UTC)).total_seconds()) + 0.5)
    report = run_retention(services.ctx, services.store, operator="admin-1", dry_run=False)
    assert [f.evidence_id for f in report.failures] == [evidence_id]
    assert f"originals/{sha256}" in report.failures[0].diagnosis
    assert services.store.exists("exports", copy)
    assert services.store.exists("originals", sha256)
    assert clip_row(services.ctx, evidence_id).deleted_at is None


def test_a_copy_made_while_its_clip_was_held_and_categorised_is_held_and_locked_as_it(
    services: Services, tmp_path: Path
) -> None:
    street, _ = make_street_clip(tmp_path / "street.mp4", seconds=0.6, width=320, height=180)
    recorded = datetime.now(UTC) - timedelta(days=3)
    evidence_id = ingest_bytes(services, street.read_bytes(), recorded)
    changed: list[str] = []

    def meanwhile(stage: str, done: int, total: int) -> None:
        if not changed:  # once, after the clip was read and before the copy is stored
            changed.append(stage)
            categorise(services.ctx, services.store, evidence_id, "evidential", None, OFFICER, "x")
            place_hold(services.ctx, services.store, evidence_id, OFFICER, "complaint")

    result = export_clip(services.ctx, evidence_id, reason="CPS", progress=meanwhile)
    assert changed
    until = as_utc(clip_row(services.ctx, evidence_id).retain_until)
    assert s3(services).legal_hold("exports", result.sha256)
    assert s3(services).retention("exports", result.sha256) == ("COMPLIANCE", whole_second(until))
