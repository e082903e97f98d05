"""Bay folders: finding finished clips, leaving everything else alone.

Each bay is one folder where a docked camera's storage appears; the bay's name is the folder's
name and the camera's serial is the first line of ``<bay>/CAMERA`` (else the bay's name). Clips
are looked for in the bay and up to two folder levels below it (the camera layout
``DCIM/100MEDIA/``). A clip is finished when the camera's own marker ``<clip>.done`` exists, or
when its size and mtime have not changed for ``settle_seconds`` across scans. Files that are not
clips are reported once each and never touched.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bwv.base.errors import BwvError
from bwv.base.files import file_sha256_and_size

log = logging.getLogger("bwv.dock")

CLIP_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".mts"})
MARKER_SUFFIX = ".done"
CAMERA_FILE = "CAMERA"
_SUBFOLDER_LEVELS = 2


class ClipChanged(BwvError):
    """The file on the camera is not the one that was seen (size or mtime moved, or it is gone)."""


@dataclass(frozen=True)
class Candidate:
    """A finished clip in a bay, as the scan saw it."""

    bay: str
    camera: str
    path: Path
    size: int
    mtime_ns: int
    marker: Path | None


@dataclass
class ScanResult:
    """One scan: finished clips, clips still settling, and non-clip files newly noticed."""

    finished: list[Candidate] = field(default_factory=list)
    settling: list[Path] = field(default_factory=list)
    non_clips: list[Path] = field(default_factory=list)


def is_clip(path: Path) -> bool:
    return path.suffix.lower() in CLIP_EXTENSIONS and not path.name.startswith(".")


def marker_for(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def camera_serial(bay: Path) -> str:
    """First line of ``<bay>/CAMERA`` if it has one, else the bay folder's name."""
    try:
        with open(bay / CAMERA_FILE, encoding="utf-8", errors="replace") as f:
            serial = f.readline().strip()
    except OSError:
        serial = ""
    return serial or bay.name


def hash_file(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of the file (1 MiB reads), lowercase hex.

    Raises :class:`ClipChanged` if the file is not ``size`` bytes with mtime ``mtime_ns`` before
    and after hashing: the hash must describe the exact file that will be uploaded and wiped.
    """
    check_unchanged(path, size, mtime_ns)
    sha256, read = file_sha256_and_size(path)
    if read != size:
        raise ClipChanged(f"{path} changed while it was hashed ({read} bytes, not {size})")
    check_unchanged(path, size, mtime_ns)
    return sha256


def check_unchanged(path: Path, size: int, mtime_ns: int) -> None:
    """Raise :class:`ClipChanged` unless the file is still ``size`` bytes with that mtime."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ClipChanged(f"{path} is no longer in the bay") from None
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        raise ClipChanged(f"{path} changed on the camera after it was hashed")


class BayWatcher:
    """Scans bay folders; remembers sizes between scans to tell when a clip has settled."""

    def __init__(
        self,
        bays: Sequence[Path],
        settle_seconds: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bays = [Path(b) for b in bays]
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> size, mtime, since
        self._reported: set[Path] = set()
        self._missing_bays: set[Path] = set()

    def scan(self) -> ScanResult:
        result = ScanResult()
        now = self._clock()
        present: set[Path] = set()
        for bay in self.bays:
            if not bay.is_dir():
                if bay not in self._missing_bays:
                    log.warning("bay %s is not a folder (no camera docked?)", bay)
                    self._missing_bays.add(bay)
                continue
            self._missing_bays.discard(bay)
            camera = camera_serial(bay)
            for path, st in _files(bay):
                present.add(path)
                self._consider(bay, camera, path, st, now, result)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return result

    def _consider(
        self, bay: Path, camera: str, path: Path, st: os.stat_result, now: float, out: ScanResult
    ) -> None:
        if path.name.endswith(MARKER_SUFFIX) or (path.parent == bay and path.name == CAMERA_FILE):
            return
        if not stat.S_ISREG(st.st_mode) or not is_clip(path):
            if path not in self._reported:
                self._reported.add(path)
                out.non_clips.append(path)
                log.info("non-clip file left alone: %s", path)
            return
        size, mtime_ns = st.st_size, st.st_mtime_ns
        marker = marker_for(path)
        if marker.exists():
            out.finished.append(Candidate(bay.name, camera, path, size, mtime_ns, marker))
            return
        seen = self._seen.get(path)
        if seen is None or seen[:2] != (size, mtime_ns):
            self._seen[path] = (size, mtime_ns, now)
            out.settling.append(path)
        elif now - seen[2] >= self.settle_seconds:
            out.finished.append(Candidate(bay.name, camera, path, size, mtime_ns, None))
        else:
            out.settling.append(path)


def _files(folder: Path, depth: int = 0) -> Iterator[tuple[Path, os.stat_result]]:
    """Entries of ``folder`` and its subfolders, not following symbolic links.

    Hidden folders (``.Trashes`` and the like) are skipped; a folder deeper than the levels
    searched is yielded itself, so it is reported rather than silently ignored.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc.strerror)
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        path = Path(entry.path)
        if stat.S_ISDIR(st.st_mode):
            if entry.name.startswith("."):
                continue
            if depth < _SUBFOLDER_LEVELS:
                yield from _files(path, depth + 1)
                continue
        yield path, st
