"""S3Store against a real Ceph RADOS Gateway with object lock (the session fixture ``rgw``).

Each test uses its own bucket, and retention of one day, so the tests do not see each other."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio.error import S3Error

from bwv.store import open_store
from bwv.store.base import StoreError, StoreUnavailable
from bwv.store.s3 import S3Store
from tests.support.rgwserver import RgwServer


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


def test_url_lock_floor_defaults_to_one_day() -> None:
    assert S3Store.from_url("s3://a:b@h:1/evidence").lock_floor_seconds == 86400
    assert S3Store.from_url("s3://a:b@h:1/e?lock_floor_seconds=5").lock_floor_seconds == 5


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


# -- retention, legal hold and the one delete -------------------------------------------------


def _floored(rgw: RgwServer, seconds: int = 1) -> S3Store:
    store = open_store(f"{rgw.url(_bucket())}&lock_floor_seconds={seconds}")
    assert isinstance(store, S3Store)
    return store


def _all_versions(rgw: RgwServer, store: S3Store, key: str) -> list[str]:
    """Versions and delete markers."""
    objects = rgw.client().list_objects(store.bucket, prefix=key, include_version=True)
    return [o.version_id for o in objects if o.object_name == key]


def _wait_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.5)


def test_put_locks_until_the_policy_s_date(rgw: RgwServer, tmp_path: Path) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    until = datetime(2031, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    store.put("originals", sha, source, retain_until=until)
    assert store.retention("originals", sha) == (
        "COMPLIANCE",
        until.replace(microsecond=0) + timedelta(seconds=1),
    )


def test_put_with_a_date_already_past_is_locked_for_the_floor(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _floored(rgw, seconds=600)
    source, sha = _source(tmp_path)
    before = datetime.now(UTC)
    store.put("originals", sha, source, retain_until=datetime(2020, 1, 1, tzinfo=UTC))
    _mode, until = store.retention("originals", sha)
    assert until is not None
    assert before + timedelta(seconds=600) <= until <= datetime.now(UTC) + timedelta(seconds=601)


def test_expire_is_refused_while_locked_then_deletes_every_version_once_the_date_passes(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    key = f"originals/{sha}"
    store.put("originals", sha, source, retain_until=datetime.now(UTC) + timedelta(seconds=3))
    _mode, until = store.retention("originals", sha)
    rgw.client().remove_object(store.bucket, key)  # a plain delete: only a delete marker
    assert len(_all_versions(rgw, store, key)) == 2
    with pytest.raises(StoreError, match=rf"storage refuses to delete {key}.*retained until"):
        store.expire("originals", sha)
    assert len(_versions(rgw, store, key)) == 1
    assert until is not None
    _wait_until(until)
    store.expire("originals", sha)
    assert _all_versions(rgw, store, key) == []
    store.expire("originals", sha)  # already gone: nothing to do


def test_a_legal_hold_refuses_expire_even_after_retention_passes(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    store.put("exports", sha, source, retain_until=datetime.now(UTC) + timedelta(seconds=2))
    store.set_legal_hold("exports", sha, True)
    assert store.legal_hold("exports", sha)
    _mode, until = store.retention("exports", sha)
    assert until is not None
    _wait_until(until)
    with pytest.raises(StoreError, match="legal hold"):
        store.expire("exports", sha)
    assert store.exists("exports", sha)
    store.set_legal_hold("exports", sha, False)
    store.expire("exports", sha)
    assert not store.exists("exports", sha)


def test_expirable_names_the_lock_then_the_hold_and_deletes_nothing(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    key = f"exports/{sha}"
    store.put("exports", sha, source, retain_until=datetime.now(UTC) + timedelta(seconds=3))
    _mode, until = store.retention("exports", sha)
    refusal = store.expirable("exports", sha)
    assert refusal is not None and refusal.startswith(f"storage refuses to delete {key}")
    assert "retained until" in refusal
    store.set_legal_hold("exports", sha, True)
    assert until is not None
    _wait_until(until)
    assert "legal hold" in (store.expirable("exports", sha) or "")
    assert len(_versions(rgw, store, key)) == 1  # asking deleted nothing
    store.set_legal_hold("exports", sha, False)
    assert store.expirable("exports", sha) is None
    store.expire("exports", sha)
    assert store.expirable("exports", sha) is None  # already gone


def test_the_server_itself_refuses_to_delete_a_locked_version(
    rgw: RgwServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _floored(rgw, seconds=600)
    source, sha = _source(tmp_path)
    store.put("originals", sha, source)
    monkeypatch.setattr(store, "_lock", lambda key, version: (None, None, False))
    with pytest.raises(StoreError, match=r"storage refuses to delete.*AccessDenied"):
        store.expire("originals", sha)
    assert b"".join(store.read_chunks("originals", sha)) == source.read_bytes()


def test_extend_retention_lengthens_a_lock_and_never_shortens_it(
    rgw: RgwServer, tmp_path: Path
) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    store.put("originals", sha, source, retain_until=now + timedelta(days=1))
    store.extend_retention("originals", sha, now + timedelta(days=30))
    assert store.retention("originals", sha) == ("COMPLIANCE", now + timedelta(days=30))
    store.extend_retention("originals", sha, now + timedelta(days=2))
    assert store.retention("originals", sha) == ("COMPLIANCE", now + timedelta(days=30))


def test_extend_retention_covers_every_version_of_the_key(rgw: RgwServer, tmp_path: Path) -> None:
    store = _floored(rgw)
    source, sha = _source(tmp_path)
    key = f"originals/{sha}"
    now = datetime.now(UTC).replace(microsecond=0)
    store.put("originals", sha, source, retain_until=now + timedelta(days=1))
    rgw.client().put_object(store.bucket, key, io.BytesIO(b"forged"), 6)  # an unlocked version
    store.extend_retention("originals", sha, now + timedelta(days=9))
    client = rgw.client()
    dates = {
        client.stat_object(store.bucket, key, version_id=v).metadata.get(
            "x-amz-object-lock-retain-until-date", ""
        )[:19]
        for v in _versions(rgw, store, key)
    }
    assert dates == {f"{now + timedelta(days=9):%Y-%m-%dT%H:%M:%S}"}
