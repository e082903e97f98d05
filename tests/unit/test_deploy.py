"""The systemd units in deploy/systemd/: each parses, starts a `bwv` command that exists (the
worker's is still to come, and says so), stops with SIGTERM within a timeout longer than the
service's drain, restarts on failure, and runs in the sandbox docs/OPERATIONS.md describes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from typer.main import get_command

import cli
from bwv.base.settings import Settings
from tests.support import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
NOT_BUILT = {"bwv-worker.service": "worker"}  # the job queue's command, still to come
SANDBOX = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "UMask": "0077",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
}

Unit = dict[str, dict[str, list[str]]]


def parse(path: Path) -> Unit:
    """A unit file as systemd reads it: sections of keys, a key given twice keeps both values
    (LoadCredential=, ReadWritePaths=), comments and blank lines skipped; anything else is an
    error here as it would be a warning there."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, equals, value = line.partition("=")
        assert equals and section is not None, f"{path.name}:{number}: not key=value: {line}"
        assert key.strip().isidentifier(), f"{path.name}:{number}: bad key {key!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, key: str, section: str = "Service") -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"{key}= given {len(values)} times"
    return values[0]


def test_there_is_a_unit_for_the_service_the_dock_agent_and_the_worker() -> None:
    assert [u.name for u in UNITS] == [
        "bwv-dock.service",
        "bwv-serve.service",
        "bwv-worker.service",
    ]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_unit_has_its_three_sections(path: Path) -> None:
    assert set(parse(path)) == {"Unit", "Service", "Install"}


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_unit_runs_sandboxed(path: Path) -> None:
    unit = parse(path)
    assert {key: one(unit, key) for key in SANDBOX} == SANDBOX


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_unit_runs_as_a_dedicated_user_not_root(path: Path) -> None:
    user = one(parse(path), "User")
    assert user.startswith("bwv")


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_unit_may_write_only_its_own_state(path: Path) -> None:
    unit = parse(path)
    writable = " ".join(unit["Service"]["ReadWritePaths"]).split()
    state = "/var/lib/" + one(unit, "StateDirectory")
    assert state in writable
    assert all(p.startswith(("/var/lib/bwv", "/srv/bwv-bays")) for p in writable), writable


def bwv_command(path: Path) -> list[str]:
    """The `bwv` subcommand ExecStart= runs (options from the first one on left off)."""
    argv = shlex.split(one(parse(path), "ExecStart"))
    assert Path(argv[0]).name == "bwv", argv
    words = []
    for word in argv[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return words


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_a_unit_starts_a_bwv_command_that_exists(path: Path) -> None:
    words = bwv_command(path)
    if path.name in NOT_BUILT:
        assert words == [NOT_BUILT[path.name]]
        assert "needs the `bwv worker` command" in path.read_text()
        pytest.skip("the `bwv worker` command is not built yet (the job queue)")
    result = CliRunner().invoke(get_command(cli.app), [*words, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_every_option_exec_start_gives_is_one_the_command_takes(path: Path) -> None:
    if path.name in NOT_BUILT:
        pytest.skip("the `bwv worker` command is not built yet (the job queue)")
    argv = shlex.split(one(parse(path), "ExecStart"))
    words = bwv_command(path)
    options = {w.partition("=")[0] for w in argv[1 + len(words) :] if w.startswith("--")}
    helped = CliRunner().invoke(get_command(cli.app), [*words, "--help"]).output
    assert all(o in helped for o in options), (options, helped)


def test_the_service_s_stop_timeout_outlasts_its_drain() -> None:
    unit = parse(REPO / "deploy" / "systemd" / "bwv-serve.service")
    grace = next(
        float(v.partition("=")[2])
        for v in unit["Service"]["Environment"]
        if v.startswith("BWV_SHUTDOWN_GRACE_SECONDS=")
    )
    assert grace == Settings().shutdown_grace_seconds
    assert float(one(unit, "TimeoutStopSec")) >= grace + 10


def test_the_service_reads_its_secrets_as_credentials() -> None:
    unit = parse(REPO / "deploy" / "systemd" / "bwv-serve.service")
    credentials = {v.partition(":")[0] for v in unit["Service"]["LoadCredential"]}
    assert credentials == {"tls.pem", "tls.key", "metrics.token"}
    assert "BWV_METRICS_TOKEN_FILE=%d/metrics.token" in unit["Service"]["Environment"]
