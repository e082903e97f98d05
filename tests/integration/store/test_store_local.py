"""LocalStore on a directory it cannot write: refused as unavailable, nothing written. As root,
mode bits do not stop writes, so the directory is made immutable with ``chattr`` (a process)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bwv.store.base import StoreUnavailable
from bwv.store.local import LocalStore


def test_read_only_store_directory_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    source, data = tmp_path / "clip.mp4", os.urandom(100_000)
    source.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    root.chmod(0o555)
    immutable = False
    try:
        if os.access(root, os.W_OK):  # root ignores mode bits: make the directory immutable
            chattr = shutil.which("chattr")
            done = chattr and subprocess.run([chattr, "+i", str(root)], capture_output=True)
            if not done or done.returncode != 0:
                pytest.skip("cannot make a directory read-only for this user")
            immutable = True
        store = LocalStore(root)
        with pytest.raises(StoreUnavailable):
            store.put("originals", sha, source)
        with pytest.raises(StoreUnavailable):
            store.check()
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(root)], check=True)
        root.chmod(0o755)
    assert [p for p in root.rglob("*") if p.is_file()] == []
