"""The service on the engines it scales out on: records in PostgreSQL, originals in an S3 store
with object lock (a real Ceph RADOS Gateway), several service instances side by side."""

from __future__ import annotations

import shutil
import ssl
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from minio.error import S3Error

from bwv.base.settings import Settings
from bwv.custody.verify import verify_ledger
from bwv.ingest.receipts import verify_receipt
from bwv.services.context import Context
from bwv.services.samples import make_sample_clip
from bwv.store.s3 import S3Store
from tests.support import sha256_of
from tests.support.ingestserver import IngestServer, make_server
from tests.support.ledger import pinned
from tests.support.tus import Dock, receipt_from

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def scaled(tmp_path: Path, pg_server, rgw):  # type: ignore[no-untyped-def]
    server = make_server(
        tmp_path,
        database_url=pg_server.new_database(),
        store_url=rgw.url(f"bwv-{uuid.uuid4().hex[:12]}", retention_days=1),
    )
    server.start()
    yield server
    while Dock.opened:
        Dock.opened.pop().http.close()
    server.stop()


def test_clip_lands_in_postgres_and_locked_s3(scaled: IngestServer, tmp_path: Path) -> None:
    clip = make_sample_clip(tmp_path / "CAM7_0001.mp4", seconds=2, seed=7)
    sha = sha256_of(clip)
    response = Dock(scaled).upload(clip, sha256=sha, camera="CAM7")
    assert response.status_code == 204
    fields = verify_receipt(receipt_from(response), pinned(scaled), sha256=sha)
    ctx = Context(scaled.settings)
    assert ctx.engine.dialect.name == "postgresql"
    with ctx.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT evidence_id, status FROM clip WHERE sha256 = %s", (sha,)
        ).one()
    assert tuple(row) == (fields["evidence_id"], "playable")
    store = S3Store.from_url(scaled.settings.store_url)
    mode, _until = store.retention("originals", sha)
    assert mode == "COMPLIANCE"
    client, bucket = store.client, store.bucket
    (version,) = [
        o.version_id
        for o in client.list_objects(bucket, prefix=f"originals/{sha}", include_version=True)
    ]
    with pytest.raises(S3Error) as refused:
        client.remove_object(bucket, f"originals/{sha}", version_id=version)
    assert refused.value.code == "AccessDenied"
    assert hashlib_of(store, sha) == sha
    ctx.close()


def hashlib_of(store: S3Store, sha: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    for chunk in store.read_chunks("originals", sha):
        digest.update(chunk)
    return digest.hexdigest()


def test_two_service_instances_share_records_store_and_ledger(
    scaled: IngestServer, tmp_path: Path
) -> None:
    # A second instance: same database, store and signing key; its own in-flight uploads.
    second_dir = tmp_path / "second"
    shutil.copytree(scaled.data_dir / "keys", second_dir / "keys")
    second = IngestServer(
        second_dir,
        Settings(
            data_dir=second_dir,
            **{
                "database_url": scaled.settings.database_url,
                "store_url": scaled.settings.store_url,
            },
        ),
        scaled.ca,
        scaled.cert,
        scaled.key,
        env=dict(scaled.env),
    )
    second.start()
    try:
        clips = [make_sample_clip(tmp_path / f"c{n}.mp4", seconds=1, seed=20 + n) for n in range(6)]
        docks = [Dock(scaled, "dock-1"), Dock(second, "dock-2")]
        statuses: list[int] = []

        def upload(dock: Dock, mine: list[Path]) -> None:
            for clip in mine:
                statuses.append(dock.upload(clip, sha256=sha256_of(clip)).status_code)

        threads = [
            threading.Thread(target=upload, args=(d, clips[i::2])) for i, d in enumerate(docks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [204] * 6
        ctx = Context(scaled.settings)
        report = verify_ledger(ctx.engine, ctx.keyring, ctx.settings.ledger_origin)
        assert report.ok, report.findings
        with ctx.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM clip").scalar_one() == 6
        ctx.close()
        verify = ssl.create_default_context(cafile=str(scaled.ca))
        assert httpx.get(f"{second.url}/api/v1/health", verify=verify).status_code == 200
    finally:
        while Dock.opened:
            Dock.opened.pop().http.close()
        second.stop()
