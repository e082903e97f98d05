"""The redaction commands as an officer meets them: output on success, one clear line and a
non-zero exit on bad input, and a refused request recorded in the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bwv.samples import make_street_clip
from tests.test_cli import assert_one_line_error, bwv


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = make_street_clip(
        tmp_path_factory.mktemp("cli") / "street.mp4", seconds=1, width=480, height=270
    )
    return path


def test_redact_a_local_file_writes_the_copy_and_the_contact_sheet(
    street: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out.mp4", tmp_path / "sheet.png"
    result = bwv(tmp_path / "data", "redact", str(street), "-o", str(out), "--sheet", str(sheet))
    assert "25 frames" in result.stdout and "frames/s" in result.stdout
    assert out.stat().st_size > 1000 and sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_redact_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = bwv(
        tmp_path / "data", "redact", str(tmp_path / "nope.mp4"), "-o", "x.mp4", check=False
    )
    assert_one_line_error(result, "nope.mp4", "no such file")


def test_redact_with_a_corrupt_plan_is_one_line(street: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{ not json")
    result = bwv(
        tmp_path / "data",
        "redact",
        str(street),
        "-o",
        str(tmp_path / "o.mp4"),
        "--plan",
        str(plan),
        check=False,
    )
    assert_one_line_error(result, "not JSON")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--classes", "faces,dogs"], "unknown class dogs"),
        (["--mode", "smudge"], "--mode"),
        (["--mute", "20-10"], "--mute"),
        (["--reason", ""], "a reason is required"),
    ],
)
def test_a_bad_export_request_is_one_line_and_recorded_as_refused(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    data = tmp_path / "data"
    bwv(data, "init")
    full = ["export", "EV-20261125-AAAAAAAA", *args]
    if "--reason" not in args:
        full += ["--reason", "case 1"]
    assert_one_line_error(bwv(data, *full, check=False), fragment)
    log = bwv(data, "audit", "log", "EV-20261125-AAAAAAAA", "--json").stdout
    leaves = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert [leaf["action"] for leaf in leaves] == ["export.refused"]
    assert leaves[0]["outcome"] == "refused"
