"""Fixity: someone with access to the store (the files, or the bucket's credentials) flips a
byte, cuts an object short or deletes it. ``bwv audit fixity`` finds and names each, on both
stores; the service's scheduled scrub records it; a download of a damaged original is answered
as the server's fault, never served.

On S3 with object lock the locked version cannot be overwritten or deleted, but a PUT with the
bucket's credentials makes a new current version and a DELETE a delete marker: that is what the
attacks here do (and the current version is what the service would serve)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from bwv.access import rule_for
from bwv.access.roles import Principal, Role
from bwv.api.deps import Access
from bwv.api.routes.clips import place_hold
from bwv.base.errors import BwvError
from bwv.base.net import free_port
from bwv.custody.leaf import Event
from bwv.ingest.finalise import Services
from bwv.records.tables import Clip, Export, LedgerLeaf
from bwv.services.context import Context
from bwv.store import ObjectMissing
from bwv.store.local import LocalStore
from tests.support.apiserver import Api, start_api
from tests.support.cli import bwv, without_bwv_settings
from tests.support.ingestserver import make_server
from tests.support.ledger import leaves
from tests.support.services import OFFICER, ingest_bytes, make_services
from tests.support.tus import Dock

CLIP = Clip.__table__
EXPORT = Export.__table__
LEAF = LedgerLeaf.__table__
Damage = Callable[[str, str], None]  # (kind, sha256)


# -- the attacker's three moves, on either store ------------------------------------------------


@dataclass
class Host:
    """A server host's records and store, the CLI run against them, and the attacks."""

    services: Services
    env: dict[str, str]
    rgw: Any = None
    bucket: str | None = None

    @property
    def ctx(self) -> Context:
        return self.services.ctx

    def fixity(self) -> subprocess.CompletedProcess[str]:
        return bwv(
            self.ctx.settings.data_dir,
            "audit",
            "fixity",
            env=without_bwv_settings(**self.env, COLUMNS="400"),
        )

    def flip(self, kind: str, sha256: str) -> None:
        data = bytearray(self.read(kind, sha256))
        data[len(data) // 2] ^= 0x01
        self.write(kind, sha256, bytes(data))

    def truncate(self, kind: str, sha256: str) -> None:
        self.write(kind, sha256, self.read(kind, sha256)[:-100])

    def delete(self, kind: str, sha256: str) -> None:
        if self.rgw is None:
            local_path(self.services, kind, sha256).unlink()
        else:
            self.rgw.client().remove_object(self.bucket, f"{kind}/{sha256}")  # a delete marker

    def read(self, kind: str, sha256: str) -> bytes:
        with self.services.store.open(kind, sha256) as f:
            return f.read()

    def write(self, kind: str, sha256: str, data: bytes) -> None:
        if self.rgw is None:
            path = local_path(self.services, kind, sha256)
            path.chmod(0o600)
            path.write_bytes(data)
            return
        import io

        # A new current version, dressed up as bwv's own (the metadata bwv writes).
        self.rgw.client().put_object(
            self.bucket,
            f"{kind}/{sha256}",
            io.BytesIO(data),
            len(data),
            metadata={"x-amz-meta-sha256": sha256},
        )


def local_path(services: Services, kind: str, sha256: str) -> Path:
    store = services.store
    assert isinstance(store, LocalStore)
    return store.root / kind / sha256[:2] / sha256[2:4] / sha256


@pytest.fixture(params=["local", "s3"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    if request.param == "local":
        services = make_services(tmp_path / "data")
        yield Host(services, {})
    else:
        rgw = request.getfixturevalue("rgw")
        bucket = f"bwv-fix-{uuid.uuid4().hex[:12]}"
        url = f"{rgw.url(bucket)}&lock_floor_seconds=1"
        services = make_services(tmp_path / "data", store_url=url)
        yield Host(services, {"BWV_STORE_URL": url}, rgw, bucket)
    services.ctx.close()


def sha_of(host: Host, evidence_id: str) -> str:
    with host.ctx.engine.connect() as conn:
        return conn.execute(
            select(CLIP.c.sha256).where(CLIP.c.evidence_id == evidence_id)
        ).scalar_one()


def add_copy(host: Host, evidence_id: str, *, reviewed: bool = False) -> tuple[str, str]:
    """A disclosure copy and its plan as an export records them: objects, leaf, index row
    (with ``reviewed``, the officer's reviewed plan stored beside the merged one too)."""
    ctx, store = host.ctx, host.services.store
    copy, plan = os.urandom(3000), b'{"plan": "%s"}' % uuid.uuid4().hex.encode()
    copy_sha, plan_sha = hashlib.sha256(copy).hexdigest(), hashlib.sha256(plan).hexdigest()
    export_id = f"DC-{copy_sha[:8].upper()}"
    objects = [("exports", copy_sha, copy), ("plans", plan_sha, plan)]
    extra: dict[str, str] = {}
    if reviewed:
        original = b'{"reviewed": "%s"}' % uuid.uuid4().hex.encode()
        extra["reviewed_plan_sha256"] = hashlib.sha256(original).hexdigest()
        objects.append(("plans", extra["reviewed_plan_sha256"], original))
    for kind, sha, data in objects:
        path = ctx.settings.data_dir / f"{sha}.bin"
        path.write_bytes(data)
        store.put(kind, sha, path)
    with ctx.engine.connect() as conn:
        clip = conn.execute(select(CLIP).where(CLIP.c.evidence_id == evidence_id)).one()
    leaf = ctx.ledger.append(
        OFFICER.event(
            "export.created",
            target=evidence_id,
            sha256=copy_sha,
            details={"export_id": export_id, "plan_sha256": plan_sha, **extra},
        )
    )
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(EXPORT).values(
                export_id=export_id,
                clip_id=clip.id,
                evidence_id=evidence_id,
                sha256=copy_sha,
                size=len(copy),
                parent_sha256=clip.sha256,
                plan_sha256=plan_sha,
                classes="face",
                officer=OFFICER.name,
                reason="disclosure to CPS",
                created_at=datetime.now(UTC),
                ledger_index=leaf.seq,
            )
        )
    return export_id, copy_sha


# -- bwv audit fixity ---------------------------------------------------------------------------


def test_fixity_of_an_intact_store_exits_0_and_is_recorded(host: Host) -> None:
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    add_copy(host, evidence_id)
    run = host.fixity()
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK 3 stored objects"), run.stdout
    (verified,) = leaves(host.ctx, "store.verified")
    assert verified["outcome"] == "ok"
    assert verified["details"]["objects"] == 3
    assert leaves(host.ctx, "store.damaged") == []


@pytest.mark.parametrize(
    ("attack", "problem", "said"),
    [
        ("flip", "bytes differ", "is damaged: its bytes hash to"),
        ("truncate", "size differs", "is damaged: it is 4900 bytes, not the 5000 recorded"),
        ("delete", "missing", "is missing"),
    ],
)
def test_fixity_names_a_damaged_original_by_evidence_id_and_exits_2(
    host: Host, attack: str, problem: str, said: str
) -> None:
    intact = ingest_bytes(host.services, os.urandom(5000))
    victim = ingest_bytes(host.services, os.urandom(5000))
    getattr(host, attack)("originals", sha_of(host, victim))
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored original of {victim} {said}" in run.stdout
    assert intact not in run.stdout + run.stderr
    assert f"1 of 2 stored objects damaged or missing ({victim})" in run.stderr
    (damaged,) = leaves(host.ctx, "store.damaged")
    assert damaged["target"] == victim
    assert damaged["details"]["problem"] == problem
    assert damaged["details"]["expected_sha256"] == sha_of(host, victim)
    assert leaves(host.ctx, "store.verified")[-1]["outcome"] == "failed"


@pytest.mark.parametrize("attack", ["flip", "truncate", "delete"])
def test_fixity_names_a_damaged_disclosure_copy_by_evidence_and_export_id(
    host: Host, attack: str
) -> None:
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    export_id, copy_sha = add_copy(host, evidence_id)
    getattr(host, attack)("exports", copy_sha)
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored disclosure copy of {evidence_id} (disclosure copy {export_id})" in (
        run.stdout
    )
    (damaged,) = leaves(host.ctx, "store.damaged")
    assert damaged["details"]["export_id"] == export_id


def test_fixity_holds_the_store_to_the_ledger_not_the_index(host: Host) -> None:
    """Bytes replaced and the index row edited to match: the leaf still says what was stored."""
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    with host.ctx.engine.begin() as conn:
        conn.execute(CLIP.update().where(CLIP.c.evidence_id == evidence_id).values(size=4000))
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored original of {evidence_id}: the index says" in run.stdout


def mark_deleted(host: Host, evidence_id: str, *, tombstone: bool) -> None:
    """What retention does to the index (and, with ``tombstone``, to the ledger)."""
    with host.ctx.engine.begin() as conn:
        conn.execute(
            CLIP.update()
            .where(CLIP.c.evidence_id == evidence_id)
            .values(deleted_at=datetime.now(UTC))
        )
    if tombstone:
        host.ctx.ledger.append(
            Event("retention", "system", "clip.deleted", target=evidence_id, reason="ended")
        )


def test_fixity_expects_a_clip_deleted_under_retention_to_be_absent(host: Host) -> None:
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    host.delete("originals", sha_of(host, evidence_id))
    mark_deleted(host, evidence_id, tombstone=True)
    run = host.fixity()
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "1 deleted under retention, absent as expected" in run.stdout


def test_fixity_names_an_original_deleted_with_only_the_index_marked_deleted(host: Host) -> None:
    """An index edit (deleted_at) and a deleted object, with no clip.deleted leaf: damage."""
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    host.delete("originals", sha_of(host, evidence_id))
    mark_deleted(host, evidence_id, tombstone=False)
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored original of {evidence_id} is missing" in run.stdout
    assert "no clip.deleted leaf" in run.stdout
    assert "absent as expected" not in run.stdout + run.stderr


def test_fixity_names_a_stored_original_whose_clip_the_index_alone_marks_deleted(
    host: Host,
) -> None:
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    mark_deleted(host, evidence_id, tombstone=False)  # hidden from downloads (410), not deleted
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored original of {evidence_id}: the index marks its clip deleted" in run.stdout


def test_fixity_names_a_damaged_reviewed_plan_kept_beside_the_merged_one(host: Host) -> None:
    evidence_id = ingest_bytes(host.services, os.urandom(5000))
    export_id, _ = add_copy(host, evidence_id, reviewed=True)
    (created,) = leaves(host.ctx, "export.created")
    reviewed_sha = created["details"]["reviewed_plan_sha256"]
    host.flip("plans", reviewed_sha)
    run = host.fixity()
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"the stored redaction plan of {evidence_id} (plan of {export_id})" in run.stdout
    (damaged,) = leaves(host.ctx, "store.damaged")
    assert damaged["sha256"] == reviewed_sha


@pytest.mark.parametrize("how", ["EIO on read", "unopenable"])
def test_fixity_names_an_unreadable_original_and_checks_the_rest(tmp_path: Path, how: str) -> None:
    services = make_services(tmp_path / "data")
    host = Host(services, {})
    try:
        victim = ingest_bytes(services, os.urandom(5000))
        intact = ingest_bytes(services, os.urandom(5000))
        path = local_path(services, "originals", sha_of(host, victim))
        path.unlink()
        if how == "EIO on read":
            path.symlink_to("/proc/self/mem")  # opens; the first read is EIO
        else:
            path.mkdir()  # open() fails: the store cannot serve this one object
        run = host.fixity()
        assert run.returncode == 2, (run.stdout, run.stderr)
        assert "Traceback" not in run.stderr
        assert f"the stored original of {victim} is damaged: its bytes cannot be read" in (
            run.stdout
        )
        assert str(services.ctx.settings.data_dir) not in run.stdout + run.stderr
        assert intact not in run.stdout
        (damaged,) = leaves(services.ctx, "store.damaged")
        assert damaged["details"]["problem"] == "bytes unreadable"
        assert leaves(services.ctx, "store.verified")[-1]["details"]["objects"] == 2
    finally:
        services.ctx.close()


def test_fixity_with_the_store_unreachable_is_a_set_up_error_exit_1(tmp_path: Path) -> None:
    services = make_services(tmp_path / "data")
    try:
        ingest_bytes(services, os.urandom(5000))
        closed = f"s3://ak:sk@127.0.0.1:{free_port()}/bucket?secure=false&region=us-east-1"
        run = bwv(
            services.ctx.settings.data_dir,
            "audit",
            "fixity",
            env=without_bwv_settings(BWV_STORE_URL=closed, COLUMNS="400"),
        )
    finally:
        services.ctx.close()
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "is unreachable" in run.stderr
    assert "damaged" not in run.stdout + run.stderr


# -- the service ----------------------------------------------------------------------------


def test_the_scheduled_scrub_records_store_damaged_and_store_verified(tmp_path: Path) -> None:
    server = make_server(tmp_path, fixity_every_seconds=1)
    server.start()
    dock = Dock(server, "dock-a")
    ctx = Context(server.settings)
    try:
        data = os.urandom(6000)
        sha = hashlib.sha256(data).hexdigest()
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(data)
        done = dock.upload(clip, sha256=sha, filename="clip.mp4")
        assert done.status_code == 204, done.text
        with ctx.engine.connect() as conn:
            evidence_id = conn.execute(
                select(CLIP.c.evidence_id).where(CLIP.c.sha256 == sha)
            ).scalar_one()
        path = LocalStore(Path(server.settings.store_url.removeprefix("file://")))._path(
            "originals", sha
        )
        path.chmod(0o600)
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not leaves(ctx, "store.damaged"):
            time.sleep(0.25)
        (damaged, *_) = leaves(ctx, "store.damaged")
        assert damaged["actor"] == "fixity"
        assert damaged["target"] == evidence_id
        assert damaged["outcome"] == "failed"
        assert damaged["details"]["problem"] == "bytes differ"
        assert damaged["details"]["expected_sha256"] == sha
        assert damaged["details"]["found_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        summary = next(v for v in leaves(ctx, "store.verified") if v["outcome"] == "failed")
        assert summary["details"]["objects"] == 1
        assert summary["details"]["damaged"] == 1
        assert summary["details"]["bytes"] == len(data)
        health = dock.http.get("/api/v1/health")  # the scrub never held the service up
        assert health.status_code == 200
    finally:
        ctx.close()
        dock.http.close()
        Dock.opened.remove(dock)
        server.stop()


def damage_original(api: Api, evidence_id: str) -> str:
    with api.ctx.engine.connect() as conn:
        sha = conn.execute(
            select(CLIP.c.sha256).where(CLIP.c.evidence_id == evidence_id)
        ).scalar_one()
    root = Path(api.server.settings.store_url.removeprefix("file://"))
    path = LocalStore(root)._path("originals", sha)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    return sha


def test_downloading_a_damaged_original_is_a_recorded_500_naming_the_damage(api: Api) -> None:
    evidence_id = api.ingest("pc-a")
    damage_original(api, evidence_id)
    size = api.ledger_size()
    got = api.call(
        "evidence-officer", "GET", f"/api/v1/clips/{evidence_id}/original", params={"reason": "x"}
    )
    assert got.status_code == 500, got.text[:300]
    detail = got.json()["detail"]
    assert detail.startswith(f"the stored original of {evidence_id} is damaged: ")
    assert str(api.server.data_dir) not in detail
    (leaf,) = [x for x in api.leaves_since(size) if x["target"] == evidence_id]
    assert (leaf["action"], leaf["outcome"]) == ("clip.downloaded", "failed")
    assert leaf["details"]["why"] == detail


def test_downloading_a_deleted_original_is_a_500_not_a_broken_200(api: Api) -> None:
    evidence_id = api.ingest("pc-a")
    sha = damage_original(api, evidence_id)
    root = Path(api.server.settings.store_url.removeprefix("file://"))
    LocalStore(root)._path("originals", sha).unlink()
    got = api.call(
        "evidence-officer", "GET", f"/api/v1/clips/{evidence_id}/original", params={"reason": "x"}
    )
    assert got.status_code == 500, got.text[:300]
    assert got.json()["detail"].startswith(f"the stored original of {evidence_id} is missing: ")


@pytest.mark.parametrize("route", ["plan", "exports"])
def test_planning_or_exporting_a_damaged_original_is_a_recorded_500_not_a_400(
    api: Api, route: str
) -> None:
    evidence_id = api.ingest("pc-a")
    damage_original(api, evidence_id)
    size = api.ledger_size()
    got = api.call(
        "evidence-officer",
        "POST",
        f"/api/v1/clips/{evidence_id}/{route}",
        params={"reason": "disclosure to CPS"},
        json={},
    )
    assert got.status_code == 500, got.text[:300]
    detail = got.json()["detail"]
    assert detail.startswith(f"the stored original of {evidence_id} is damaged: "), detail
    assert str(api.server.data_dir) not in detail
    failed = [x for x in api.leaves_since(size) if x["outcome"] == "failed"]
    assert [x["target"] for x in failed] == [evidence_id]
    assert failed[0]["details"]["why"] == detail


def test_a_store_failure_answers_a_dock_503_that_names_no_server_path(api: Api) -> None:
    root = Path(api.server.settings.store_url.removeprefix("file://"))
    originals = root / "originals"
    originals.mkdir(parents=True, exist_ok=True)
    originals.rename(root / "originals.away")
    originals.write_bytes(b"")  # the store cannot make its folders now
    try:
        assert api.dock is not None
        data = os.urandom(7000)
        clip = api.clips_dir / "unstorable.mp4"
        clip.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        got = api.dock.upload(clip, sha256=sha, filename=clip.name)
    finally:
        originals.unlink()
        (root / "originals.away").rename(originals)
    assert got.status_code == 503, got.text
    assert "cannot write to the local store" in got.text
    assert str(root) not in got.text and str(api.server.data_dir) not in got.text


class _LostOnHold:
    """A store that has lost every object by the time a legal hold is placed on it."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def set_legal_hold(self, kind: str, sha256: str, on: bool) -> None:
        raise ObjectMissing(f"no {kind} object {sha256} in /srv/secret", shown=f"no {kind} object")


def test_a_hold_on_a_clip_whose_original_is_missing_is_a_recorded_500_not_a_503_retry(
    tmp_path: Path,
) -> None:
    """In the route itself (no store on disk can be made to lose an object between the
    route's read and its hold): the damage is the server's, named, and no retry mends it. The
    route raises; the API's one handler answers the error and records it (``Access.failed``)."""
    services = make_services(tmp_path / "data")
    try:
        evidence_id = ingest_bytes(services, os.urandom(5000))
        lost = dataclasses.replace(services, store=_LostOnHold(services.store))
        who = Principal("eo-1", Role.EVIDENCE_OFFICER, "192.0.2.7")
        access = Access(lost, None, who, "hold.place", rule_for("hold.place"), "case 9")  # type: ignore[arg-type]
        with pytest.raises(BwvError) as raised:
            place_hold(evidence_id, access)
        access.failed(raised.value)  # what bwv.api.errors does with a 5xx
        assert raised.value.status == 500
        assert raised.value.shown.startswith(f"the stored object of {evidence_id} is missing")
        assert "/srv/secret" not in raised.value.shown and not raised.value.headers
        (failed,) = leaves(services.ctx, "hold.placed")
        assert failed["outcome"] == "failed" and failed["details"]["why"] == raised.value.shown
    finally:
        services.ctx.close()


def test_downloads_stuck_verifying_an_original_leave_the_service_answering(
    tmp_path: Path,
) -> None:
    """44 downloads of an original whose read never returns (a FIFO in its place, from two
    loopback addresses: each may hold 32 connections) must not take every worker thread: a
    clip view, which needs one, is still answered."""
    own = start_api(tmp_path)
    try:
        stuck, other = own.ingest("pc-a"), own.ingest("pc-a")
        with own.ctx.engine.connect() as conn:
            sha = conn.execute(
                select(CLIP.c.sha256).where(CLIP.c.evidence_id == stuck)
            ).scalar_one()
        root = Path(own.server.settings.store_url.removeprefix("file://"))
        path = LocalStore(root)._path("originals", sha)
        path.unlink()
        os.mkfifo(path, 0o600)  # open() blocks until a writer comes
        token = own.tokens["evidence-officer"]
        ca = ssl.create_default_context(cafile=str(own.server.ca))

        def download(address: str) -> int:
            transport = httpx.HTTPTransport(local_address=address, verify=ca)
            with httpx.Client(base_url=own.server.url, transport=transport, timeout=120) as c:
                return c.get(
                    f"/api/v1/clips/{stuck}/original",
                    params={"reason": "x"},
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code

        with ThreadPoolExecutor(44) as pool:
            answers = [pool.submit(download, f"127.0.0.{2 + n % 2}") for n in range(44)]
            time.sleep(3)  # every download is in, and stuck
            try:
                started = time.monotonic()
                view = own.call("evidence-officer", "GET", f"/api/v1/clips/{other}", timeout=15)
                assert view.status_code == 200, view.text
                assert time.monotonic() - started < 10
            finally:
                while not all(a.done() for a in answers):  # a writer lets every reader go
                    with contextlib.suppress(OSError):
                        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                    time.sleep(0.05)
        assert {a.result() for a in answers} == {500}  # an empty original: damaged, not served
    finally:
        own.close()
