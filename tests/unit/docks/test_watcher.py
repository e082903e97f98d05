"""The bay watcher (docks/watcher.py): which files are clips, when a clip is complete, and the
hash of exactly the file that was seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from docks.watcher import BayWatcher, ClipChanged, hash_file
from tests.support import sha256_of
from tests.support.docks import (
    camera_clip,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_watcher_takes_a_clip_with_a_done_marker_at_once(tmp_path: Path) -> None:
    path = camera_clip(tmp_path / "bay1", done=True)
    result = BayWatcher([tmp_path / "bay1"], settle_seconds=60).scan()
    assert [(c.path, c.marker) for c in result.finished] == [(path, path.with_suffix(".MP4.done"))]


def test_watcher_takes_a_clip_once_its_size_has_settled(tmp_path: Path) -> None:
    path = camera_clip(tmp_path / "bay1", done=False)
    clock = Clock()
    watcher = BayWatcher([tmp_path / "bay1"], settle_seconds=2.0, clock=clock)
    assert watcher.scan().finished == []
    clock.now += 1.0
    assert watcher.scan().finished == []
    clock.now += 1.0
    assert [c.path for c in watcher.scan().finished] == [path]


def test_watcher_does_not_take_a_growing_clip(tmp_path: Path) -> None:
    path = camera_clip(tmp_path / "bay1", done=False)
    clock = Clock()
    watcher = BayWatcher([tmp_path / "bay1"], settle_seconds=2.0, clock=clock)
    watcher.scan()
    for _ in range(3):
        clock.now += 5.0
        with open(path, "ab") as f:
            f.write(b"more")
        result = watcher.scan()
        assert result.finished == []
        assert result.settling == [path]


def test_watcher_reports_a_non_clip_once_and_leaves_it(tmp_path: Path) -> None:
    bay = tmp_path / "bay1"
    bay.mkdir()
    notes = bay / "notes.txt"
    notes.write_text("officer notes")
    watcher = BayWatcher([bay], settle_seconds=0)
    assert watcher.scan().non_clips == [notes]
    assert watcher.scan().non_clips == []
    assert notes.read_text() == "officer notes"


def test_watcher_does_not_report_markers_or_the_camera_file(tmp_path: Path) -> None:
    bay = tmp_path / "bay1"
    camera_clip(bay, done=True)
    (bay / "CAMERA").write_text("SN-1\n")
    assert BayWatcher([bay]).scan().non_clips == []


def test_watcher_reads_the_camera_serial_else_uses_the_bay_name(tmp_path: Path) -> None:
    camera_clip(tmp_path / "bay1")
    camera_clip(tmp_path / "bay2")
    (tmp_path / "bay1" / "CAMERA").write_text("SN-7781\nmodel X\n")
    found = BayWatcher([tmp_path / "bay1", tmp_path / "bay2"]).scan().finished
    assert [(c.bay, c.camera) for c in found] == [("bay1", "SN-7781"), ("bay2", "bay2")]


def test_watcher_finds_clips_in_camera_subfolders(tmp_path: Path) -> None:
    path = camera_clip(tmp_path / "bay1" / "DCIM" / "100MEDIA")
    found = BayWatcher([tmp_path / "bay1"]).scan().finished
    assert [(c.path, c.bay) for c in found] == [(path, "bay1")]


@pytest.mark.parametrize("name", ["a.mp4", "B.MOV", "c.M4V", "d.avi", "e.MKV", "f.mts"])
def test_watcher_clip_extensions_ignore_case(tmp_path: Path, name: str) -> None:
    camera_clip(tmp_path / "bay", name=name)
    assert [c.path.name for c in BayWatcher([tmp_path / "bay"]).scan().finished] == [name]


def test_hash_file_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = camera_clip(tmp_path, size=3 * 1024 * 1024 + 17)
    st = path.stat()
    assert hash_file(path, st.st_size, st.st_mtime_ns) == sha256_of(path)


def test_hash_file_refuses_a_file_that_is_not_the_one_seen(tmp_path: Path) -> None:
    path = camera_clip(tmp_path)
    st = path.stat()
    with pytest.raises(ClipChanged):
        hash_file(path, st.st_size + 1, st.st_mtime_ns)
