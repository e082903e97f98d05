"""The units of deploy/systemd/ as systemd itself reads them: `systemd-analyze verify` finds no
error, and `systemd-analyze security` rates the sandbox OK or better. Only where
systemd-analyze is installed (it is not installed for this test); ExecStart is pointed at this
checkout's `bwv` first, since verify checks that the program exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def runnable(unit: Path, into: Path) -> Path:
    """The unit with /opt/bwv/bin/bwv replaced by this Python's `-m cli`."""
    copy = into / unit.name
    copy.write_text(unit.read_text().replace("/opt/bwv/bin/bwv", f"{sys.executable} -m cli"))
    return copy


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_finds_nothing_wrong(unit: Path, tmp_path: Path) -> None:
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", str(runnable(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stderr, done.stderr  # no warning about the unit itself


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_security_rates_the_sandbox_ok(unit: Path, tmp_path: Path) -> None:
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(runnable(unit, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= 2.0, found.group(0)
