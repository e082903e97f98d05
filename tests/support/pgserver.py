"""A real PostgreSQL server on loopback for the tests and benchmarks, started from the system's
``initdb``/``pg_ctl``. PostgreSQL refuses to run as root, so as root it runs as ``postgres``."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bwv.base.net import free_port


def find_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)
    # How to stop and start it again (pg_ctl), for tests of an outage.
    _ctl: list[str] = field(default_factory=list)
    _options: str = ""
    _cwd: Path | None = None

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: connections are cut, new ones refused, until :meth:`start`."""
        subprocess.run(
            [*self._ctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True, cwd=self._cwd
        )

    def start(self) -> None:
        subprocess.run(
            [*self._ctl, "-o", self._options, "-w", "start"],
            check=True,
            capture_output=True,
            cwd=self._cwd,
        )

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://bwv@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"bwv_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://bwv@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="bwv-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base)

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "bwv",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "log"),
        "-o",
        options,
        "-w",
        "start",
    )
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log")]
    try:
        yield PostgresServer(port, _ctl=ctl, _options=options, _cwd=base)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)
