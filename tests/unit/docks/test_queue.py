"""The dock's queue (docks/queue.py): each clip's state, durable across restarts, and the
rules for what is due and what may be wiped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bwv.keys import SigningKey
from docks import status
from docks.queue import ClipQueue, QueueError
from tests.support.docks import (
    receipt_for,
)


def _queued(queue: ClipQueue, path: Path = Path("/bay/A.MP4"), size: int = 100) -> int:
    clip = queue.add(bay="bay", camera="CAM", path=path, size=size, mtime_ns=1)
    assert clip is not None
    return clip.id


def test_queue_state_survives_reopen(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.set_upload(clip_id, "https://svc/files/u1", 40)
    with ClipQueue.open(tmp_path) as queue:
        clip = queue.get(clip_id)
    assert (clip.state, clip.upload_url, clip.bytes_sent, clip.sha256) == (
        "uploading",
        "https://svc/files/u1",
        40,
        "ab" * 32,
    )


def test_queue_runs_wal_with_full_sync(tmp_path: Path) -> None:
    ClipQueue.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "queue.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    queue = ClipQueue.open(tmp_path)
    assert queue._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    queue.close()


def test_queue_takes_the_same_file_once(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        _queued(queue)
        again = queue.add(bay="bay", camera="CAM", path=Path("/bay/A.MP4"), size=100, mtime_ns=1)
        assert again is None
        assert len(queue.list()) == 1


def test_queue_same_path_with_other_size_or_mtime_is_a_new_clip(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        first = _queued(queue)
        resized = queue.add(bay="b", camera="C", path=Path("/bay/A.MP4"), size=101, mtime_ns=1)
        touched = queue.add(bay="b", camera="C", path=Path("/bay/A.MP4"), size=100, mtime_ns=2)
    assert resized is not None and touched is not None
    assert len({first, resized.id, touched.id}) == 3


def test_queue_refuses_to_mark_wiped_without_a_receipt(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        with pytest.raises(QueueError, match="cannot go from uploaded to wiped"):
            queue.mark_wiped(clip_id)
        assert queue.get(clip_id).state == "uploaded"


def test_queue_refuses_to_record_a_non_receipt(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        with pytest.raises(QueueError, match="no receipt"):
            queue.mark_receipted(clip_id, {"detail": "oops"})


def test_queue_wiped_clip_is_final_and_not_due(tmp_path: Path, signer: SigningKey) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        queue.mark_receipted(clip_id, receipt_for(signer, "ab" * 32, 100))
        queue.mark_wiped(clip_id)
        with pytest.raises(QueueError, match="cannot go from wiped"):
            queue.set_upload(clip_id, "https://svc/files/u2", 0)
        assert queue.due() == []


def test_queue_path_reused_after_wipe_is_a_new_clip(tmp_path: Path, signer: SigningKey) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        queue.mark_receipted(clip_id, receipt_for(signer, "ab" * 32, 100))
        queue.mark_wiped(clip_id)
        again = queue.add(bay="bay", camera="CAM", path=Path("/bay/A.MP4"), size=100, mtime_ns=1)
    assert again is not None and again.id != clip_id


def test_queue_failed_clip_is_due_only_from_its_retry_time(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_failed(clip_id, "network down", retry_after=1000.0)
        assert queue.due(now=999.0) == []
        assert [c.id for c in queue.due(now=1000.0)] == [clip_id]


def test_queue_rejected_clip_is_never_due(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_rejected(clip_id, "401 unknown dock token")
        assert queue.due() == []
        assert queue.due(now=float("inf")) == []


def test_queue_status_reports_progress_percent(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue, size=200)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.set_upload(clip_id, "https://svc/files/u1", 50)
    rows = status(tmp_path)
    assert [(r["id"], r["state"], r["progress"]) for r in rows] == [(clip_id, "uploading", 25.0)]
