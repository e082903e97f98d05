"""The committed inputs under fixtures/ (fixtures/README.md says what each is; regenerate them
with ``python scripts/make_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

from tests.support import REPO

FIXTURES = REPO / "fixtures"
# Evidence that will not play: cut short, without its index, not video, a still, text.
UNPLAYABLE = ("truncated.mp4", "no-moov.mp4", "not-video.mp4", "still.jpg", "notes.txt")


def fixture(name: str) -> Path:
    """The committed file ``fixtures/NAME``; tests read it and never write it."""
    path = FIXTURES / name
    assert path.is_file(), f"fixtures/{name} is missing: run python scripts/make_fixtures.py"
    return path
