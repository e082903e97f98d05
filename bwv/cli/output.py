"""What the commands print: stdout for results, stderr for progress and notes, and the shapes
they share (progress bars, escaped cells, counts in words, dates)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from bwv.access.text import shown_badly
from bwv.base.errors import ConfigError
from bwv.base.files import write_atomic

out = Console(soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # tables piped to a file or a test should not be squeezed to 80 columns
err = Console(stderr=True)

# How long a wait on the service goes unremarked on a stderr that is not a terminal, then how
# often a plain line says it is still going (a log or a CI job shows no spinner).
FIRST_NOTE_SECONDS, NOTE_EVERY_SECONDS = 5.0, 10.0


def say(text: str) -> None:
    """A result line on stdout, exactly as written (no markup, no highlighting)."""
    out.print(text, highlight=False, markup=False)


def note(text: str) -> None:
    """A note on stderr, exactly as written."""
    err.print(text, highlight=False, markup=False, soft_wrap=True)


def counted(n: int, thing: str, things: str | None = None) -> str:
    """``1 clip``, ``3 clips``: a count in words."""
    return f"{n} {thing if n == 1 else things or thing + 's'}"


def write_file(path: Path, data: str | bytes) -> None:
    """Write all or nothing: a failed command leaves no half-written file behind."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def emit(text: str, output: Path | None) -> None:
    """To the file (all or nothing), or to stdout."""
    if output:
        write_file(output, text)
    else:
        sys.stdout.write(text)


@dataclass
class _PlainTask:
    label: str
    total: float | None
    started: float
    next_note: float
    done: float = 0


class _Plain:
    """Progress for a non-terminal stderr (a log, a pipe): no bar, but once a task has run
    longer than a refusal takes, a plain line now and then (``detecting in a.mp4: 1,200 of
    3,600 (33%)``), so a log does not look hung. Nothing at all for quick work."""

    def __init__(self) -> None:
        self._tasks: list[_PlainTask] = []

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_: object) -> TaskID:
        now = time.monotonic()
        self._tasks.append(_PlainTask(description, total, now, now + FIRST_NOTE_SECONDS))
        return TaskID(len(self._tasks) - 1)

    def update(
        self,
        task: TaskID,
        *,
        completed: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        **_: object,
    ) -> None:
        state = self._tasks[task]
        if total is not None:
            state.total = total
        if completed is not None:
            state.done = completed
        if advance is not None:
            state.done += advance
        now = time.monotonic()
        if now < state.next_note:
            return
        state.next_note = now + NOTE_EVERY_SECONDS
        whole = state.total
        of = f" of {whole:,.0f} ({100 * state.done / whole:.0f}%)" if whole else ""
        note(f"{state.label}: {state.done:,.0f}{of}, {now - state.started:.0f} s")

    def advance(self, task: TaskID, advance: float = 1) -> None:
        self.update(task, advance=advance)


def progress(transfer: bool = False) -> Progress | _Plain:
    """Bars on a terminal's stderr, plain lines now and then elsewhere (:class:`_Plain`);
    ``transfer`` counts bytes (size and speed) not items."""
    if not err.is_terminal:
        return _Plain()
    counts = (DownloadColumn(), TransferSpeedColumn()) if transfer else (MofNCompleteColumn(),)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def on_bar(bar: Any, label: str, total: int | None = None) -> Callable[[int, int | None], None]:
    """A progress callback (done, total if known) on a new bar."""
    task = bar.add_task(label, total=total)
    return lambda done, total: bar.update(task, completed=done, total=total)


def frames_bar(bar: Any, label: str, total: int | None) -> Callable[[int], None]:
    """A progress callback: frames done so far, on a new bar."""
    task = bar.add_task(label, total=total or None)
    return lambda n: bar.update(task, completed=n)


@contextmanager
def waiting(text: str) -> Iterator[None]:
    """While the service works: a spinner on a terminal; elsewhere, once the wait is longer
    than a refusal takes, a plain line on stderr now and then, so a log does not look hung."""
    if err.is_terminal:
        with err.status(text):
            yield
        return
    done = threading.Event()

    def remark() -> None:
        started = time.monotonic()
        wait = FIRST_NOTE_SECONDS
        while not done.wait(wait):
            note(f"{text}: still working ({time.monotonic() - started:.0f} s)")
            wait = NOTE_EVERY_SECONDS

    ticker = threading.Thread(target=remark, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def escaped(value: object) -> str:
    """A value from the service as a terminal may show it: what a clip's name or a camera
    serial could use to retitle, clear or reorder the screen is written as an escape."""
    if value is None:
        return ""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if shown_badly(c)  # C0, DEL, C1 and bidirectional controls
        else c
        for c in str(value)
    )


def cell(value: object) -> Text:
    """A table cell: escaped, and never read as Rich markup."""
    return Text(escaped(value))


def copies_table(
    copies: list[dict[str, Any]], *, evidence_id: bool, title: str | None = None
) -> Table:
    """Disclosure copies as the service lists them, a row each, every cell escaped (a reason
    is the officer's own text); with ``evidence_id`` a column names each copy's clip."""
    columns = ["export id", *(["evidence id"] if evidence_id else []), "created", "officer"]
    table = Table(*columns, "sha256", "reason", title=title)
    for e in copies:
        named = [e["evidence_id"]] if evidence_id else []
        when = shown(e["created_at"])
        values = [e["export_id"], *named, when, e["officer"], e["sha256"][:12] + "...", e["reason"]]
        table.add_row(*(cell(v) for v in values))
    return table


def shown(when: str | None) -> str:
    """An RFC 3339 time from the service as ``YYYY-MM-DD HH:MM``."""
    return when[:16].replace("T", " ") if when else ""


def pages(page: int, per_page: int, total: int, thing: str, things: str) -> str:
    count = max(1, -(-total // per_page))
    return f"page {page} of {count}, {counted(total, thing, things)}"
