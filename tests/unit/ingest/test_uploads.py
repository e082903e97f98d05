"""In-flight uploads on disk: what survives a crash of the service."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bwv.ingest.uploads import UploadError, Uploads


async def _body(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _checksum(data: bytes) -> tuple[str, bytes]:
    return "sha256", hashlib.sha256(data).digest()


def test_crash_mid_checksummed_chunk_is_cut_back_on_restart(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    upload = uploads.create("dock-a", 100, {})
    asyncio.run(uploads.write(upload, 0, _body(b"a" * 10), _checksum(b"a" * 10)))
    # The process dies while a checksummed chunk is half written: its guard is on disk.
    (tmp_path / f"{upload.id}.guard").write_text("10")
    with open(tmp_path / f"{upload.id}.part", "ab") as part:
        part.write(b"unverified")
    uploads.close()  # the process is gone, and its lock on the folder with it
    restarted = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    reloaded = restarted.get(upload.id)
    assert reloaded is not None and restarted.offset(reloaded) == 10
    assert not (tmp_path / f"{upload.id}.guard").exists()


def test_verified_and_refused_chunks_leave_no_guard(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    upload = uploads.create("dock-a", 100, {})
    asyncio.run(uploads.write(upload, 0, _body(b"b" * 10), _checksum(b"b" * 10)))
    with pytest.raises(UploadError) as refused:
        asyncio.run(uploads.write(upload, 10, _body(b"c" * 10), _checksum(b"x")))
    assert refused.value.status == 460
    assert uploads.offset(upload) == 10
    assert list(tmp_path.glob("*.guard")) == []


def test_whole_file_hash_is_rebuilt_after_a_restart(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    upload = uploads.create("dock-a", 20, {})
    asyncio.run(uploads.write(upload, 0, _body(b"d" * 12), None))
    uploads.close()
    restarted = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    reloaded = restarted.get(upload.id)
    assert reloaded is not None
    asyncio.run(restarted.write(reloaded, 12, _body(b"e" * 8), None))
    assert restarted.sha256(reloaded) == hashlib.sha256(b"d" * 12 + b"e" * 8).hexdigest()
