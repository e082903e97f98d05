"""What the commands print off a terminal: progress as plain lines, only for long work."""

from __future__ import annotations

import pytest

from bwv.cli import output


def test_off_a_terminal_long_work_is_reported_in_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "FIRST_NOTE_SECONDS", 0.0)
    monkeypatch.setattr(output, "NOTE_EVERY_SECONDS", 0.0)
    with output._Plain() as bar:
        task = bar.add_task("detecting in a.mp4", total=4000)
        bar.update(task, completed=1000)
        bar.advance(task, 1000)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(", ")[0] for line in lines] == [
        "detecting in a.mp4: 1,000 of 4,000 (25%)",
        "detecting in a.mp4: 2,000 of 4,000 (50%)",
    ]


def test_off_a_terminal_a_count_with_no_total_is_still_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "FIRST_NOTE_SECONDS", 0.0)
    with output._Plain() as bar:
        bar.update(bar.add_task("detecting in b.mp4", total=None), completed=250)
    assert capsys.readouterr().err.startswith("detecting in b.mp4: 250, ")


def test_off_a_terminal_quick_work_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with output._Plain() as bar:
        task = bar.add_task("rendering c.mp4", total=10)
        for _ in range(10):
            bar.advance(task)
    assert capsys.readouterr().err == ""
