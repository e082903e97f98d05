"""A real S3 server with object lock on loopback for the tests: a one-node Ceph cluster (monitor
plus an in-memory OSD) and a RADOS Gateway, started with ``scripts/ceph-rgw.sh`` on free ports.
Start-up takes about 13 s, so the ``rgw`` fixture starts it once per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from minio import Minio

from bwv.base.net import free_ports

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ceph-rgw.sh"
BINARIES = ("radosgw", "ceph-mon", "ceph-osd", "ceph", "radosgw-admin")
ACCESS_KEY = "bwv-test-ak"
SECRET_KEY = "bwv-test-sk/0123456789+secret"  # "/" and "+" exercise URL-decoding in from_url
START_TIMEOUT = 120


def find_binaries() -> list[str]:
    """The names of the Ceph binaries the gateway needs that are not on PATH."""
    return [name for name in BINARIES if shutil.which(name) is None]


@dataclass
class RgwServer:
    endpoint: str  # "127.0.0.1:port"
    access_key: str
    secret_key: str
    _env: dict[str, str]
    _base: Path

    def url(self, bucket: str, retention_days: int = 1) -> str:
        """The ``s3://`` store URL of ``bucket`` on this gateway, for S3Store.from_url."""
        return (
            f"s3://{quote(self.access_key, safe='')}:{quote(self.secret_key, safe='')}"
            f"@{self.endpoint}/{bucket}?secure=false&region=us-east-1"
            f"&retention_days={retention_days}"
        )

    def client(self) -> Minio:
        """A raw minio client with the gateway user's keys."""
        return Minio(
            self.endpoint, self.access_key, self.secret_key, secure=False, region="us-east-1"
        )

    def stop(self) -> None:
        """Stop the gateway process only; the Ceph cluster and its data stay."""
        self._run("rgw-stop", timeout=30)

    def start(self) -> None:
        """Start the gateway again after :meth:`stop`."""
        self._run("rgw-start", timeout=START_TIMEOUT)

    def _run(self, command: str, timeout: float) -> None:
        log = self._base / f"{command}.log"
        try:
            with open(log, "wb") as out:
                # the daemons inherit stdout/stderr: a file, never a pipe we would wait on
                subprocess.run(
                    ["bash", str(SCRIPT), command],
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=True,
                )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            rgw_log = self._base / "ceph" / "log" / "client.rgw.log"
            if rgw_log.exists():
                lines = rgw_log.read_text(errors="replace").splitlines()[-20:]
                tail += "\n--- client.rgw.log ---\n" + "\n".join(lines)
            raise RuntimeError(f"scripts/ceph-rgw.sh {command} failed ({exc}):\n{tail}") from None


@contextmanager
def rgw_server() -> Iterator[RgwServer]:
    missing = find_binaries()
    if missing:
        raise FileNotFoundError(f"Ceph binaries not installed: {', '.join(missing)}")
    base = Path(tempfile.mkdtemp(prefix="bwv-rgw-"))
    rgw_port, mon_port, mon_port2 = free_ports(3)
    env = {
        **os.environ,
        "DIR": str(base / "ceph"),
        "RGW_PORT": str(rgw_port),
        "MON_PORT": str(mon_port),
        "MON_PORT2": str(mon_port2),
        "AK": ACCESS_KEY,
        "SK": SECRET_KEY,
        "MEMSTORE_BYTES": str(4 << 30),
    }
    server = RgwServer(f"127.0.0.1:{rgw_port}", ACCESS_KEY, SECRET_KEY, env, base)
    try:
        server._run("start", timeout=START_TIMEOUT)
        yield server
    finally:
        with contextlib.suppress(Exception):
            server._run("stop", timeout=60)
        shutil.rmtree(base, ignore_errors=True)
