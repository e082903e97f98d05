"""No store call runs inside the ledger's append lock (holds, categories, retention runs), and
the order of store and records fails safe: a hold is placed in the store before the records
say so and removed only after the release commits; a lock is lengthened before the records
give the later date. Records on SQLite and PostgreSQL, objects in a LocalStore behind a store
that watches every call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwv.custody.leaf import Event
from bwv.ingest.finalise import Services
from bwv.services.retention import (
    categorise,
    place_hold,
    release_hold,
    run_retention,
    set_category,
)
from tests.support.records import clip_row
from tests.support.services import (
    ADMIN,
    OFFICER,
    WatchedStore,
    add_export,
    ingest_clip,
    make_services,
    watch_store,
)


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "data", database_url=database_url)
    yield services
    services.ctx.close()


@pytest.fixture
def store(services: Services) -> WatchedStore:
    return watch_store(services)


def _holds(store: WatchedStore, on: bool) -> list[tuple[object, ...]]:
    return [args[:2] for name, args, _ in store.calls if name == "set_legal_hold" and args[2] is on]


def test_no_store_call_runs_while_the_append_lock_is_held(
    services: Services, store: WatchedStore, tmp_path: Path
) -> None:
    ctx = services.ctx
    kept, due = ingest_clip(services), ingest_clip(services)
    add_export(services, kept, tmp_path)
    categorise(ctx, store, kept, "evidential", "CASE-1", OFFICER, "arrest")
    set_category(ctx, store, "evidential", 3000, ADMIN)
    place_hold(ctx, store, kept, OFFICER, "complaint")
    release_hold(ctx, store, kept, OFFICER, "closed")
    place_hold(ctx, store, kept, OFFICER, "complaint again")
    ctx.clock.advance(days=32)  # type: ignore[attr-defined]
    report = run_retention(ctx, store, operator="admin-1", dry_run=False)
    assert [c.evidence_id for c in report.deleted] == [due]
    called = {name for name, _, _ in store.calls}
    assert {"extend_retention", "set_legal_hold", "expirable", "expire"} <= called
    assert store.under_lock() == []


def test_a_slow_store_does_not_hold_up_other_appends(
    services: Services, store: WatchedStore
) -> None:
    evidence_id = ingest_clip(services)
    entered, go_on = threading.Event(), threading.Event()

    def stall(name: str, args: tuple[object, ...]) -> None:
        if name == "set_legal_hold":
            entered.set()
            assert go_on.wait(30)

    store.before = stall
    holder = threading.Thread(
        target=place_hold, args=(services.ctx, store, evidence_id, OFFICER, "complaint")
    )
    holder.start()
    try:
        assert entered.wait(30)
        done = threading.Event()
        threading.Thread(
            target=lambda: (
                services.ctx.ledger.append(Event("pc-2", "officer", "clip.viewed")),
                done.set(),
            ),
            daemon=True,
        ).start()
        assert done.wait(10), "an append waited for the store's legal hold call"
    finally:
        go_on.set()
        holder.join(30)
    assert clip_row(services.ctx, evidence_id).held


def test_a_hold_is_in_the_store_before_the_records_say_held(
    services: Services, store: WatchedStore
) -> None:
    evidence_id = ingest_clip(services)
    seen: list[bool] = []
    store.before = lambda name, args: seen.append(clip_row(services.ctx, evidence_id).held)
    place_hold(services.ctx, store, evidence_id, OFFICER, "complaint")
    assert seen == [False]
    assert clip_row(services.ctx, evidence_id).held


def test_a_release_leaves_the_store_s_hold_until_the_records_say_not_held(
    services: Services, store: WatchedStore
) -> None:
    evidence_id = ingest_clip(services)
    place_hold(services.ctx, store, evidence_id, OFFICER, "complaint")
    seen: list[bool] = []
    store.before = lambda name, args: seen.append(clip_row(services.ctx, evidence_id).held)
    release_hold(services.ctx, store, evidence_id, OFFICER, "closed")
    assert seen == [False]  # the release had committed when the store's hold came off
    assert _holds(store, False) == [("originals", clip_row(services.ctx, evidence_id).sha256)]


def test_a_copy_recorded_while_a_hold_is_placed_is_held_too(
    services: Services, store: WatchedStore, tmp_path: Path
) -> None:
    evidence_id = ingest_clip(services)
    made: list[str] = []

    def copy_meanwhile(name: str, args: tuple[object, ...]) -> None:
        if name == "set_legal_hold" and not made:
            assert not services.ctx.ledger.locked()  # else the append below would deadlock
            store.before = None
            made.append(add_export(services, evidence_id, tmp_path))

    store.before = copy_meanwhile
    place_hold(services.ctx, store, evidence_id, OFFICER, "complaint")
    assert ("exports", made[0]) in _holds(store, True)
    assert clip_row(services.ctx, evidence_id).held


def test_a_copy_recorded_while_a_clip_is_categorised_is_locked_to_the_new_date(
    services: Services, store: WatchedStore, tmp_path: Path
) -> None:
    evidence_id = ingest_clip(services)
    made: list[str] = []

    def copy_meanwhile(name: str, args: tuple[object, ...]) -> None:
        if name == "extend_retention" and not made:
            assert not services.ctx.ledger.locked()  # else the append below would deadlock
            store.before = None
            made.append(add_export(services, evidence_id, tmp_path))

    store.before = copy_meanwhile
    categorise(services.ctx, store, evidence_id, "evidential", None, OFFICER, "arrest")
    until = clip_row(services.ctx, evidence_id).retain_until
    extended = [args for name, args, _ in store.calls if name == "extend_retention"]
    assert ("exports", made[0]) in [a[:2] for a in extended]
    assert all(a[2] is not None for a in extended) and until is not None
