"""A real PostgreSQL primary and a synchronous standby on loopback, for the failover tests:
the primary from ``initdb``, the standby from ``pg_basebackup -R`` streaming from it, and
``synchronous_standby_names='*'`` with ``synchronous_commit=on``, so a COMMIT the primary
answers is on the standby too. :meth:`Replicated.fail_over` stops the primary as a crash would
(``pg_ctl stop -m immediate``) and promotes the standby (``pg_ctl promote``). As root the
servers run as ``postgres``, as in tests.support.pgserver."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bwv.base.net import free_ports
from tests.support.pgserver import find_bindir


@dataclass
class Replicated:
    primary_port: int
    standby_port: int
    _pg_ctl: list[str]
    _base: Path

    def url(self, database: str) -> str:
        """A libpq multi-host URL, as README gives it: whichever of the two takes writes."""
        return (
            f"postgresql://bwv@/{database}?host=127.0.0.1:{self.primary_port}"
            f"&host=127.0.0.1:{self.standby_port}&target_session_attrs=read-write"
            "&connect_timeout=2"
        )

    def new_database(self, name: str) -> str:
        with psycopg.connect(_dsn(self.primary_port), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def sync_state(self) -> str | None:
        with psycopg.connect(_dsn(self.primary_port), autocommit=True) as conn:
            row = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
        return None if row is None else str(row[0])

    def stop_primary(self) -> None:
        """As a crash: no shutdown checkpoint, every connection cut."""
        self._ctl("primary", "-m", "immediate", "-w", "stop")

    def promote(self) -> None:
        self._ctl("standby", "-w", "promote")

    def in_recovery(self, port: int) -> bool:
        with psycopg.connect(_dsn(port), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def _ctl(self, which: str, *args: str) -> None:
        subprocess.run(
            [*self._pg_ctl, "-D", str(self._base / which), *args],
            check=True,
            capture_output=True,
            cwd=self._base,
            timeout=60,
        )


def _dsn(port: int) -> str:
    return f"host=127.0.0.1 port={port} user=bwv dbname=postgres connect_timeout=5"


@contextmanager
def replicated_postgres() -> Iterator[Replicated]:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="bwv-pgrep-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    primary, standby = free_ports(2)

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base, timeout=120)

    def start(which: str, port: int, *options: str) -> None:
        conf = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=100"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(base / which),
            "-l",
            str(base / f"{which}.log"),
            "-o",
            " ".join((conf, *options)),
            "-w",
            "start",
        )

    pg_ctl = [*prefix, str(bindir / "pg_ctl")]
    run(str(bindir / "initdb"), "-D", str(base / "primary"), "-A", "trust", "-U", "bwv")
    try:
        start(
            "primary",
            primary,
            "-c synchronous_standby_names='*'",
            "-c synchronous_commit=on",
            "-c wal_level=replica",
        )
        run(
            str(bindir / "pg_basebackup"),
            "-D",
            str(base / "standby"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary),
            "-U",
            "bwv",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        start("standby", standby, "-c hot_standby=on", "-c synchronous_standby_names=''")
        replicated = Replicated(primary, standby, pg_ctl, base)
        deadline = time.monotonic() + 30
        while replicated.sync_state() != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous within 30 s")
            time.sleep(0.1)
        yield replicated
    finally:
        for which in ("standby", "primary"):
            subprocess.run(
                [*pg_ctl, "-D", str(base / which), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                cwd=base,
            )
        shutil.rmtree(base, ignore_errors=True)
