"""Who may read the data folder: the service's own user, nobody else.

Originals, the index and the ledger are evidence: another local account must not hash a clip
or read who looked at what. ``bwv init`` and ``bwv serve`` run under :data:`PRIVATE_UMASK`, so
everything they create is owner-only (folders 0700, the database 0600, stored objects 0400);
``bwv init`` and ``bwv serve`` also tighten an existing folder left open by an older bwv or a
careless copy, and refuse one that another user owns.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from bwv.base.errors import ConfigError

PRIVATE_UMASK = 0o077
_OPEN = stat.S_IRWXG | stat.S_IRWXO


def private_umask() -> None:
    """From now on, this process creates files and folders for its own user only."""
    os.umask(PRIVATE_UMASK)


def open_paths(root: Path) -> list[Path]:
    """Every path under ``root`` (``root`` included) that group or others may use."""
    found = []
    for path in _walk(root):
        st = _stat(path)
        if st is not None and not stat.S_ISLNK(st.st_mode) and st.st_mode & _OPEN:
            found.append(path)
    return found


def tighten(root: Path) -> int:
    """Take group and other permissions off everything under ``root``; how many paths that
    changed. :class:`ConfigError`, changing nothing, when an open path is another user's."""
    if not root.exists():
        return 0
    uid = os.geteuid()
    loose = [(path, st) for path in open_paths(root) if (st := _stat(path)) is not None]
    for path, st in loose:
        if st.st_uid != uid:
            raise ConfigError(
                f"{path} is open to group or others and belongs to uid {st.st_uid}, not this "
                f"user (uid {uid}): chown it to the service's user, or chmod go-rwx it"
            )
    for path, st in loose:
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~_OPEN)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot make {path} private: {exc.strerror}") from None
    return len(loose)


def make_private(roots: Iterable[Path], database_url: str | None = None) -> str | None:
    """:func:`tighten` each folder of an install (and a SQLite database kept outside them), as
    ``bwv init`` does, for ``bwv serve`` to run on an install it did not make: one line saying
    what was made owner-only, None if nothing was open. :class:`ConfigError` (the service
    refuses to start) when something open cannot be made private."""
    paths = list(roots)
    database = _sqlite_file(database_url)
    if database is not None and not any(database.is_relative_to(r) for r in paths):
        paths.append(database)
    changed = [(root, n) for root in paths if (n := tighten(root))]
    if not changed:
        return None
    where = ", ".join(f"{root} ({n})" for root, n in changed)
    return f"open to group or others, now owner-only: {where}"


def _sqlite_file(url: str | None) -> Path | None:
    if not url:
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _walk(root: Path) -> list[Path]:
    paths = [root]
    for folder, dirs, files in os.walk(root, followlinks=False):
        paths.extend(Path(folder) / name for name in (*sorted(dirs), *sorted(files)))
    return paths


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:  # gone since the walk listed it (an upload finished, say)
        return None
