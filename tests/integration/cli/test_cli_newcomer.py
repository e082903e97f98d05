"""The command line as a newcomer meets it: what the demo shows can be copied and run, every
message names the command to run where it is run, help says what it means (bay layout, exit
codes, no ``<bool>``), counts are in words, and waits and bad files are explained in a line."""

from __future__ import annotations

import itertools
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import cli
from bwv.cli import output
from tests.support.apiserver import OFFICER, Api, start_api
from tests.support.cli import (
    as_role,
    assert_one_line_error,
    bwv,
    client_env,
    login,
    ok,
    run_bwv,
)

# --- the demo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    return data_dir, bwv(data_dir, "demo", check=True, timeout=300).stdout


def _echoed(stdout: str) -> list[list[str]]:
    """The commands the demo shows: ``$ bwv ...`` lines and the ``try:`` lines at the end."""
    lines = stdout.splitlines()
    shown = [line.removeprefix("$ ") for line in lines if line.startswith("$ bwv ")]
    tried = lines[lines.index("try:") + 1 :]
    return [shlex.split(line)[1:] for line in shown + [t.strip() for t in tried]]


def test_the_demo_echoes_every_reason_a_command_needs(demo: tuple[Path, str]) -> None:
    asked = [w for w in _echoed(demo[1]) if w[0] in ("clips", "hold", "redact", "export")]
    assert {" ".join(w[:2]) for w in asked} >= {"clips categorize", "hold place", "redact plan"}
    for words in asked:
        if words[:2] != ["clips", "list"]:  # a search needs no reason
            assert "--reason" in words, words
            assert words[words.index("--reason") + 1].strip(), words


def test_the_demo_echoes_absolute_paths(demo: tuple[Path, str]) -> None:
    for words in _echoed(demo[1]):
        for before, word in itertools.pairwise(words):
            if before in ("-o", "--sheet", "--plan", "--state", "--data-dir", "--ca"):
                assert Path(word).is_absolute(), words
        if words[:2] == ["audit", "verify-bundle"]:
            assert Path(words[2]).is_absolute(), words


def test_what_the_demo_echoes_runs_as_typed_from_another_folder(
    demo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command parses as shown (no usage error); those on the server host's data or the
    dock's state run; those for the service fail only because the demo's service has stopped."""
    monkeypatch.chdir(tmp_path)
    dead = {"BWV_URL": "https://127.0.0.1:9", "BWV_TOKEN": "bwvu_x", "BWV_CA": None}
    dead |= {"BWV_CREDENTIALS": str(tmp_path / "none.json"), "BWV_DATA_DIR": None}
    for words in _echoed(demo[1]):
        if words[0] == "login":
            continue  # it reads the token; its options are those of the commands below
        ran = run_bwv(dead, *words)
        assert "Missing" not in ran.stderr and "No such" not in ran.stderr, (words, ran.stderr)
        if words[0] in ("clips", "hold", "redact", "export"):
            assert_one_line_error(ran, "cannot reach the service")
        else:
            assert ran.returncode == 0, (words, ran.stderr)


# --- messages that name the right command ------------------------------------------------------


def test_dock_run_unenrolled_names_the_dock_s_own_command(tmp_path: Path) -> None:
    ran = run_bwv({}, "dock", "run", "--state", str(tmp_path / "dock"), "--once")
    assert_one_line_error(ran, "not enrolled", "run `bwv dock enroll --url URL")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    service = start_api(tmp_path_factory.mktemp("newcomer-api"))
    try:
        yield service, service.ingest(OFFICER)
    finally:
        service.close()


def test_audit_log_on_a_workstation_goes_through_the_service(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    service, evidence_id = api
    ran = ok(as_role(service, tmp_path, "auditor", "audit", "log", "--json"))
    assert '"action": "clip.ingested"' in ran.stdout
    assert "bwv init" not in ran.stdout + ran.stderr
    mine = ok(as_role(service, tmp_path, "officer", "audit", "log", evidence_id, "--last", "5"))
    assert "clip.ingested" in mine.stdout and "bwv init" not in mine.stderr


def test_an_auditor_recomputes_the_ledger_from_afar(api: tuple[Api, str], tmp_path: Path) -> None:
    """``audit verify`` on a workstation: the service's recompute (admin.recompute_ledger) from
    the leaves it fetched, against the pinned key."""
    service, _ = api
    ok(login(service, tmp_path, "auditor", "--service-key", service.server.service_key))
    env = client_env(service, tmp_path, BWV_URL=None, BWV_CA=None)
    ran = ok(run_bwv(env, "audit", "verify"))
    assert "recomputed here from their bytes: the root matches the checkpoint" in ran.stdout


def test_a_token_piped_without_token_stdin_is_one_clear_line(tmp_path: Path) -> None:
    env = {"BWV_CREDENTIALS": str(tmp_path / "credentials.json"), "BWV_URL": None}
    ran = run_bwv(env, "login", "--url", "https://127.0.0.1:9", stdin="bwvu_token\n")
    assert_one_line_error(ran, "stdin is not a terminal", "--token-stdin")
    assert "GetPassWarning" not in ran.stderr
    assert not (tmp_path / "credentials.json").exists()


def test_users_add_prints_the_whole_login_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bwv(data_dir, "init", check=True)
    key = bwv(data_dir, "keys", "list", check=True).stdout.split()[-1]
    added = bwv(data_dir, "users", "add", "pc-9", "--role", "officer", check=True)
    assert f"bwv login --url https://HOST:8443 --ca CA.pem --service-key {key}" in added.stderr
    assert "--token-stdin" in added.stderr


# --- help --------------------------------------------------------------------------------------


def _helps(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    runner = CliRunner()
    for name, command in group.commands.items():
        here = (*path, name)
        yield here, runner.invoke(cli.app, [*here, "--help"]).output
        if hasattr(command, "commands"):  # a group
            yield from _helps(command, here)


def test_no_help_shows_a_python_type_for_a_flag_or_a_list() -> None:
    helps = list(_helps(typer.main.get_command(cli.app)))
    assert len(helps) > 40  # every command and group
    for path, text in helps:
        assert "<bool>" not in text and "<list" not in text, path


def test_no_help_shows_a_python_type_after_an_argument_or_braces_around_it() -> None:
    helps = dict(_helps(typer.main.get_command(cli.app)))
    for path, text in helps.items():
        assert "<str>" not in text and "<path>" not in text and "<int>" not in text, path
        assert "{" not in text.split("\n", 1)[0], path  # the usage line: NAME, or [NAME]
    assert " clips show [OPTIONS] EVIDENCE_ID\n" in helps[("clips", "show")]
    assert "[OPTIONS] [EVIDENCE_ID]\n" in helps[("exports", "list")]


def test_dock_help_says_how_a_bay_is_laid_out_and_what_each_exit_code_means() -> None:
    runner = CliRunner()
    run_help = runner.invoke(cli.app, ["dock", "run", "--help"]).output
    for words in ("BAY/CAMERA", "BAY/DCIM/100MEDIA/", "BAY/CLIP.mp4.done", "--settle"):
        assert words in run_help
    assert "Exit codes:" in run_help and "3   some clips were rejected or failed" in run_help
    assert "BAY/CAMERA" in runner.invoke(cli.app, ["dock", "--help"]).output
    readme = (Path(cli.__file__).parent / "README.md").read_text()
    assert "3 when some clips were rejected or failed" in readme


# --- waits, counts, files ----------------------------------------------------------------------


def test_a_long_wait_off_a_terminal_says_it_is_still_working(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "FIRST_NOTE_SECONDS", 0.05)
    monkeypatch.setattr(output, "NOTE_EVERY_SECONDS", 0.05)
    with output.waiting("finding faces and plates in X"):
        pass
    assert capsys.readouterr().err == ""  # an answer (or refusal) at once: nothing extra
    with output.waiting("finding faces and plates in X"):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2
    assert lines[0].startswith("finding faces and plates in X: still working (")


def test_counts_are_in_words() -> None:
    assert output.counted(1, "clip") == "1 clip"
    assert output.counted(3, "clip") == "3 clips"
    assert output.counted(1, "copy", "copies") == "1 copy"
    assert output.pages(1, 50, 1, "clip", "clips") == "page 1 of 1, 1 clip"
    assert output.pages(1, 50, 0, "copy", "copies") == "page 1 of 1, 0 copies"


def test_clips_list_of_one_clip_says_one_clip(api: tuple[Api, str], tmp_path: Path) -> None:
    service, evidence_id = api
    ran = ok(as_role(service, tmp_path, "officer", "clips", "list"))
    assert ran.stdout.endswith("page 1 of 1, 1 clip\n")
    env = client_env(service, tmp_path, "auditor")
    listed = ok(run_bwv(env, "exports", "list", evidence_id))
    assert "0 copies" in listed.stdout


def test_a_file_that_is_not_a_video_is_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    ran = bwv(tmp_path / "data", "redact", str(text), "-o", str(tmp_path / "out.mp4"))
    assert_one_line_error(ran, "not a video file PyAV can read: notes.mp4")
    assert "Errno" not in ran.stderr
