"""LocalStore: write-once, read-only files under one directory."""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bwv.store import open_store
from bwv.store.base import StoreError
from bwv.store.local import LocalStore


def _source(directory: Path, data: bytes | None = None, name: str = "clip.mp4") -> tuple[Path, str]:
    data = os.urandom(100_000) if data is None else data
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_put_then_read_back_equal_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    stored = store.put("originals", sha, source)
    assert stored.created and stored.size == source.stat().st_size
    assert b"".join(store.read_chunks("originals", sha, chunk=4096)) == source.read_bytes()


def test_file_url_opens_a_local_store(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path / 'store'}")
    assert isinstance(store, LocalStore) and store.root == tmp_path / "store"


def test_second_put_of_same_bytes_creates_no_second_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    first = store.put("originals", sha, source)
    again = store.put("originals", sha, source)
    assert first.created and not again.created
    assert len(_files(store.root)) == 1


def test_stored_files_are_read_only_by_their_owner(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    stored = store.put("originals", sha, source)
    assert stat.S_IMODE(os.stat(stored.location).st_mode) == 0o400


def test_put_with_wrong_sha256_leaves_no_object_and_no_temp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, _ = _source(tmp_path / "in")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(StoreError, match="hash"):
        store.put("originals", wrong, source)
    assert not store.exists("originals", wrong)
    assert _files(store.root) == []


def test_adopt_moves_the_source_without_copying(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    inode = source.stat().st_ino
    stored = store.put("originals", sha, source, adopt=True)
    assert stored.created
    kept = os.stat(stored.location)
    # the same inode, no longer reachable from where a writer had it: one name only
    assert (kept.st_ino, kept.st_nlink, source.exists()) == (inode, 1, False)


def test_concurrent_puts_of_same_bytes_make_one_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = os.urandom(1 << 20)
    sources = [_source(tmp_path / f"in{i}", data)[0] for i in range(8)]
    sha = hashlib.sha256(data).hexdigest()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: store.put("originals", sha, s), sources))
    assert sum(r.created for r in results) == 1
    assert len(_files(store.root)) == 1
    assert b"".join(store.read_chunks("originals", sha)) == data


def test_fetch_writes_the_object_whole_and_refuses_bytes_that_no_longer_match(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    store.put("originals", sha, source)
    store.fetch("originals", sha, tmp_path / "out.mp4")
    assert (tmp_path / "out.mp4").read_bytes() == source.read_bytes()
    stored = next(p for p in _files(tmp_path / "store") if p.name.startswith(sha))
    stored.chmod(0o644)
    stored.write_bytes(b"damaged")
    with pytest.raises(StoreError, match="does not match its SHA-256"):
        store.fetch("originals", sha, tmp_path / "again.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.mp4", "store"]


def test_expire_deletes_the_object_for_good(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    store.put("originals", sha, source)
    store.expire("originals", sha)
    assert not store.exists("originals", sha)
    assert _files(store.root) == []


def test_expire_of_an_object_already_gone_does_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.expire("originals", hashlib.sha256(b"never stored").hexdigest())
    assert not store.exists("originals", hashlib.sha256(b"never stored").hexdigest())


def test_locks_and_holds_are_accepted_but_a_local_store_has_none(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    later = datetime.now(UTC) + timedelta(days=3650)
    stored = store.put("originals", sha, source, retain_until=later)
    store.extend_retention("originals", sha, later + timedelta(days=1))
    store.set_legal_hold("originals", sha, True)
    assert stat.S_IMODE(os.stat(stored.location).st_mode) == 0o400
    store.expire("originals", sha)  # the records, not the filesystem, enforce the policy
    assert not store.exists("originals", sha)


def test_a_local_store_lets_any_object_be_expired_even_one_locked_and_held(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    source, sha = _source(tmp_path / "in")
    store.put("exports", sha, source, retain_until=datetime.now(UTC) + timedelta(days=3650))
    store.set_legal_hold("exports", sha, True)
    assert store.expirable("exports", sha) is None
    assert store.exists("exports", sha)  # asking deletes nothing
    with pytest.raises(StoreError, match="not a lowercase hex SHA-256"):
        store.expirable("exports", "../../etc/passwd")
