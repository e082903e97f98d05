"""Running ``bwv`` as the tests do: as its own process (``python -m cli``, the operator on the
server host), or in this process through its real entry point (``cli.main``, the thin client on
a workstation); and the one-line error every refusal must be."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from click.testing import CliRunner

import cli
from tests.support import REPO

if TYPE_CHECKING:
    from tests.support.apiserver import Api

Process = subprocess.CompletedProcess[str]


def bwv_process(
    *args: str,
    check: bool = False,
    env: Mapping[str, str] | None = None,
    umask: int | None = None,
    timeout: float = 120,
) -> Process:
    """``bwv ARGS`` as its own process from this checkout. ``env`` replaces the environment
    where given; ``umask`` is the one a shell would give it; ``check`` fails the test on a
    non-zero exit, with the command's stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
        check=False,
    )
    if check:
        assert result.returncode == 0, f"bwv {' '.join(args)} failed: {result.stderr}"
    return result


def without_bwv_settings(**extra: str) -> dict[str, str]:
    """This process's environment less every BWV_* setting, with ``extra`` laid over it: the
    command reads only what the test gives it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BWV_")} | extra


def bwv(data_dir: Path, *args: str, **options: Any) -> Process:
    """``bwv --data-dir DATA ARGS`` as its own process (options as for :func:`bwv_process`)."""
    return bwv_process("--data-dir", str(data_dir), *args, **options)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_bwv(env: Mapping[str, str | None], *args: str, stdin: str | None = None) -> Ran:
    """``bwv ARGS`` through its real entry point (``cli.main``), in this process, with ``env``
    laid over the environment."""
    runner = CliRunner()
    with runner.isolation(input=stdin, env=env) as (stdout, stderr, _):
        argv, sys.argv = sys.argv, ["bwv", *args]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        return Ran(code, stdout.getvalue().decode(), stderr.getvalue().decode())


def ok(result: Ran) -> Ran:
    assert result.returncode == 0, result.stderr
    return result


def client_env(api: Api, home: Path, role: str | None = None, **extra: str | None) -> dict:
    """A workstation that is not the server host: the service, maybe a token, credentials kept
    under ``home``, and a database that cannot be opened."""
    env: dict[str, str | None] = {
        "BWV_URL": api.server.url,
        "BWV_TOKEN": api.tokens[role] if role else None,
        "BWV_CA": str(api.server.ca),
        "BWV_CREDENTIALS": str(home / "credentials.json"),
        "BWV_DATA_DIR": str(home / "no-data-dir"),
        "BWV_DATABASE_URL": f"sqlite:///{home / 'no-such-dir' / 'bwv.sqlite3'}",
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    env.update(extra)
    return env


def login(api: Api, home: Path, role: str, *extra: str) -> Ran:
    """``bwv login`` on a workstation with the token of ``role`` on stdin."""
    env = client_env(api, home, BWV_URL=None, BWV_CA=None)
    args = ["login", "--url", api.server.url, "--ca", str(api.server.ca), "--token-stdin"]
    return run_bwv(env, *args, *extra, stdin=api.tokens[role] + "\n")


def as_role(api: Api, home: Path, role: str, *args: str) -> Ran:
    """``bwv ARGS`` on a workstation, as the caller of ``role``."""
    return run_bwv(client_env(api, home, role), *args)


class _Result(Protocol):
    returncode: int
    stderr: str


def assert_one_line_error(result: _Result, *fragments: str) -> None:
    """A refusal: non-zero exit, one ``bwv: error:`` line naming each fragment, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bwv: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
