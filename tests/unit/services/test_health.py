"""Readiness checks in this process, on a real data dir (SQLite, a local store): each failure
is named, says no path, and a check that hangs is failed within its timeout."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bwv.services import health
from bwv.services.context import Services
from tests.support.services import make_services


@pytest.fixture
def services(tmp_path: Path) -> Services:
    made = make_services(tmp_path / "data", readiness_timeout_seconds=0.5)
    # One round first: a new database's first connection (slow on a loaded machine) is not
    # what these tests time.
    ready(made)
    return made


def ready(services: Services) -> health.Readiness:
    return asyncio.run(health.readiness(services))


def test_every_check_passes_on_a_working_install(services: Services) -> None:
    found = ready(services)
    assert found.ok
    assert [c.name for c in found.checks] == ["database", "store", "uploads"]
    assert found.failed == []


def test_an_upload_folder_that_is_not_a_folder_fails_the_uploads_check_only(
    services: Services,
) -> None:
    folder = services.ctx.settings.upload_dir
    assert folder is not None
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    found = ready(services)
    assert found.failed == ["uploads"]
    (check,) = [c for c in found.checks if c.name == "uploads"]
    assert check.detail.startswith("the upload folder is not writable")
    assert str(folder) not in check.detail


def test_a_store_that_cannot_take_writes_fails_the_store_check_without_its_path(
    services: Services, tmp_path: Path
) -> None:
    store_root = services.ctx.settings.data_dir / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    store_root.write_text("not a folder")
    found = ready(services)
    assert found.failed == ["store"]
    (check,) = [c for c in found.checks if c.name == "store"]
    assert "cannot take writes" in check.detail
    assert str(tmp_path) not in check.detail


def test_a_database_that_cannot_be_opened_fails_the_database_check_without_its_url(
    tmp_path: Path,
) -> None:
    services = make_services(tmp_path / "data")
    # An engine on a database file whose folder is gone: every connection fails.
    services.ctx.__dict__["engine"] = create_engine(f"sqlite:///{tmp_path / 'gone' / 'db'}")
    found = ready(services)
    assert found.failed == ["database"]
    (check,) = [c for c in found.checks if c.name == "database"]
    assert check.detail.startswith("the database does not answer a query")
    assert str(tmp_path) not in check.detail


def test_a_check_that_hangs_is_failed_within_the_timeout(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.store, "check", lambda: time.sleep(3))

    async def timed() -> tuple[health.Readiness, float]:
        start = time.monotonic()
        found = await health.readiness(services)
        return found, time.monotonic() - start

    found, took = asyncio.run(timed())  # (asyncio.run then waits for the sleeping thread)
    assert found.failed == ["store"]
    assert "did not answer within 0.5 seconds" in found.checks[1].detail
    assert took < 2


def counting_store_check(
    services: Services, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> list[int]:
    """Replace the store's check with one that takes ``seconds``; the list counts its calls."""
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        time.sleep(seconds)

    monkeypatch.setattr(services.store, "check", slow)
    return calls


def test_probes_that_arrive_together_share_one_round_of_checks(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_store_check(services, monkeypatch, 0.2)

    async def many() -> list[health.Readiness]:
        probe = health.Probe(services, max_age=0)
        return list(await asyncio.gather(*(probe.readiness() for _ in range(50))))

    found = asyncio.run(many())
    assert all(f.ok for f in found)
    assert len(calls) == 1


def test_a_result_younger_than_max_age_is_answered_again_without_checking(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_store_check(services, monkeypatch, 0)

    async def twice() -> None:
        probe = health.Probe(services, max_age=60)
        await probe.readiness()
        await probe.readiness()

    asyncio.run(twice())
    assert len(calls) == 1


def test_a_check_that_has_not_answered_is_waited_for_never_started_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_store_check(services, monkeypatch, 1.2)  # timeout 0.5 s: two rounds miss it

    async def rounds() -> list[health.Readiness]:
        probe = health.Probe(services, max_age=0)
        return [await probe.readiness() for _ in range(3)]

    first, second, third = asyncio.run(rounds())
    assert (first.failed, second.failed) == (["store"], ["store"])
    assert third.ok  # the one check, answering at last, within this round's wait
    assert len(calls) == 1
