"""S3Store against a real Ceph RADOS Gateway with object lock (the session fixture ``rgw``).

Each test uses its own bucket, and retention of one day, so the tests do not see each other."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from minio.error import S3Error

from bwv.store import open_store
from bwv.store.base import StoreError, StoreUnavailable
from bwv.store.s3 import S3Store
from tests.rgwserver import RgwServer


def _bucket() -> str:
    return f"bwv-test-{uuid.uuid4().hex[:16]}"


def _source(tmp_path: Path, size: int = 100_000, name: str = "clip.mp4") -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _store(rgw: RgwServer, bucket: str | None = None) -> S3Store:
    store = open_store(rgw.url(bucket or _bucket(), retention_days=1))
    assert isinstance(store, S3Store)
    return store


def _versions(rgw: RgwServer, store: S3Store, key: str) -> list[str]:
    objects = rgw.client().list_objects(store.bucket, prefix=key, include_version=True)
    return [o.version_id for o in objects if o.object_name == key and not o.is_delete_marker]


# -- the URL, no server needed ---------------------------------------------------------------


def test_url_credentials_are_url_decoded() -> None:
    store = S3Store.from_url("s3://a%2Fk:s%40c%2Bre%2Ft@10.0.0.1:7480/evidence?secure=false")
    assert store.client._provider is not None
    credentials = store.client._provider.retrieve()
    assert (credentials.access_key, credentials.secret_key) == ("a/k", "s@c+re/t")
    assert (store.endpoint, store.bucket, store.secure) == ("10.0.0.1:7480", "evidence", False)


def test_url_retention_days_default_is_seven_years() -> None:
    assert S3Store.from_url("s3://a:b@h:1/evidence").retention_days == 2557
    assert S3Store.from_url("s3://a:b@h:1/evidence?retention_days=30").retention_days == 30


def test_url_with_unknown_option_is_refused() -> None:
    with pytest.raises(StoreError, match="retention_day"):
        S3Store.from_url("s3://a:b@h:1/evidence?retention_day=30")


# -- against the gateway -------------------------------------------------------------------------


def test_put_then_read_back_equal_bytes(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    stored = store.put("originals", sha, source)
    assert stored.created and stored.size == source.stat().st_size
    assert b"".join(store.read_chunks("originals", sha, chunk=4096)) == source.read_bytes()


def test_multipart_put_reads_back_equal_bytes(rgw: RgwServer, tmp_path: Path) -> None:
    bucket = _bucket()
    store = S3Store(
        rgw.endpoint,
        rgw.access_key,
        rgw.secret_key,
        bucket,
        secure=False,
        region="us-east-1",
        retention_days=1,
        part_size=5 << 20,
    )
    source, sha = _source(tmp_path, size=(11 << 20) + 7)
    assert store.put("originals", sha, source).created
    assert store.size("originals", sha) == source.stat().st_size
    with store.open("originals", sha) as f:
        assert f.read() == source.read_bytes()


def test_open_reads_a_prefix_and_closes(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("exports", sha, source)
    with store.open("exports", sha) as f:
        assert f.read(10) == source.read_bytes()[:10]
    assert f.closed


def test_second_put_of_same_bytes_creates_no_second_version(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    first = store.put("originals", sha, source)
    again = store.put("originals", sha, source)
    assert first.created and not again.created
    assert len(_versions(rgw, store, f"originals/{sha}")) == 1


def test_put_with_wrong_sha256_stores_nothing(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, _ = _source(tmp_path)
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(StoreError, match="hash"):
        store.put("originals", wrong, source)
    assert not store.exists("originals", wrong)
    assert _versions(rgw, store, f"originals/{wrong}") == []


def test_original_carries_compliance_retention_in_the_future(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    metadata = rgw.client().stat_object(store.bucket, f"originals/{sha}").metadata
    assert metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    mode, until = store.retention("originals", sha)
    assert mode == "COMPLIANCE"
    assert until is not None and until > datetime.now(UTC)


def test_legal_hold_is_read_from_the_object(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    assert store.legal_hold("originals", sha) is False
    rgw.client().enable_object_legal_hold(store.bucket, f"originals/{sha}")
    assert store.legal_hold("originals", sha) is True


def test_deleting_the_locked_version_is_refused(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    key = f"originals/{sha}"
    [version] = _versions(rgw, store, key)
    with pytest.raises(S3Error) as refused:
        rgw.client().remove_object(store.bucket, key, version_id=version)
    assert refused.value.code == "AccessDenied"
    assert b"".join(store.read_chunks("originals", sha)) == source.read_bytes()


def test_raw_overwrite_leaves_the_original_version_retrievable_and_locked(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    key = f"originals/{sha}"
    [original] = _versions(rgw, store, key)
    client = rgw.client()
    client.put_object(store.bucket, key, io.BytesIO(b"forged"), 6)
    assert len(_versions(rgw, store, key)) == 2
    response = client.get_object(store.bucket, key, version_id=original)
    try:
        assert response.read() == source.read_bytes()
    finally:
        response.close()
        response.release_conn()
    stat = client.stat_object(store.bucket, key, version_id=original)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"


def test_store_refuses_to_serve_a_version_it_did_not_write(rgw: RgwServer, tmp_path: Path) -> None:
    store = _store(rgw)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    rgw.client().put_object(store.bucket, f"originals/{sha}", io.BytesIO(b"forged"), 6)
    with pytest.raises(StoreError, match="not written by bwv"):
        store.open("originals", sha)
    with pytest.raises(StoreError, match="not written by bwv"):
        store.put("originals", sha, source)


def test_missing_bucket_is_created_with_object_lock(rgw: RgwServer) -> None:
    store = _store(rgw)
    store.check()
    client = rgw.client()
    client.get_object_lock_config(store.bucket)  # raises without object lock
    assert client.get_bucket_versioning(store.bucket).status == "Enabled"


def test_bucket_without_object_lock_is_refused(rgw: RgwServer, tmp_path: Path) -> None:
    bucket = _bucket()
    rgw.client().make_bucket(bucket)
    store = _store(rgw, bucket)
    source, sha = _source(tmp_path)
    with pytest.raises(StoreError, match="no object lock"):
        store.check()
    with pytest.raises(StoreError, match="no object lock"):
        store.put("originals", sha, source)
    assert list(rgw.client().list_objects(bucket, recursive=True)) == []


def test_wrong_secret_key_is_refused_not_unavailable(rgw: RgwServer) -> None:
    store = S3Store(
        rgw.endpoint, rgw.access_key, "not-the-secret", _bucket(), secure=False, region="us-east-1"
    )
    with pytest.raises(StoreError) as refused:
        store.check()
    assert not isinstance(refused.value, StoreUnavailable)


def test_stopped_gateway_makes_the_store_unavailable_until_restarted(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _store(rgw)
    store.check()
    source, sha = _source(tmp_path)
    rgw.stop()
    try:
        with pytest.raises(StoreUnavailable, match=rgw.endpoint):
            store.put("originals", sha, source)
        with pytest.raises(StoreUnavailable):
            store.check()
    finally:
        rgw.start()
    assert store.put("originals", sha, source).created
    assert store.exists("originals", sha)
