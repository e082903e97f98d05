"""Files written all or nothing: the one place that knows how (invariant 5: nothing
half-written is presented as done)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or link inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write ``data`` to a fresh temporary file beside ``path`` with ``mode``, fsync it, rename it
    over ``path`` and fsync the directory. A crash leaves the old file or the new, never half."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # not subject to the umask
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@contextmanager
def replaced_when_done(dest: Path) -> Iterator[Path]:
    """A partial file beside ``dest`` to write, renamed over ``dest`` when the block completes;
    if it raises, the partial file is removed and ``dest`` is untouched (for files too large to
    hold in memory for :func:`write_atomic`)."""
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        yield partial
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks. OSError as it comes."""
    return file_sha256_and_size(path)[0]


def file_sha256_and_size(path: Path) -> tuple[str, int]:
    """The hex SHA-256 of a file's bytes and how many bytes were read to make it (for a caller
    that must know the hash describes a file of the size it saw)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
