"""fixtures/ is what scripts/make_fixtures.py makes: byte for byte where the script is
deterministic everywhere, and by what the files are where FFmpeg encodes them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import av

from bwv.ingest.probe import PLAYABLE, probe_clip
from tests.support import REPO
from tests.support.fixtures import FIXTURES, fixture


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", REPO / "scripts/make_fixtures.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_fixtures = _script()


def test_the_byte_made_fixtures_are_cut_and_written_as_the_script_does() -> None:
    made = make_fixtures.derived(fixture("sample.mp4").read_bytes())
    assert made and {name: fixture(name).read_bytes() for name in made} == made


def test_the_script_writes_the_committed_files_and_no_others(tmp_path: Path) -> None:
    written = make_fixtures.write_all(tmp_path, sample=fixture("sample.mp4"))
    committed = {p.name for p in FIXTURES.iterdir()} - {"README.md"}
    assert {p.name for p in written} == committed


def test_the_script_encodes_a_clip_that_is_what_the_committed_one_is(tmp_path: Path) -> None:
    fresh = probe_clip(make_fixtures.write_sample(tmp_path / "sample.mp4"))
    committed = probe_clip(fixture("sample.mp4"))
    assert committed.status == PLAYABLE, committed.error
    assert fresh.status == committed.status and fresh.fields == committed.fields
    assert committed.fields["creation_time"] == make_fixtures.RECORDED_AT


def test_the_committed_still_is_one_64x48_jpeg(tmp_path: Path) -> None:
    fresh = make_fixtures.write_still(tmp_path / "still.jpg")
    for path in (fresh, fixture("still.jpg")):
        with av.open(str(path)) as container:
            (stream,) = container.streams.video
            assert (stream.codec_context.name, stream.width, stream.height) == ("mjpeg", 64, 48)
            assert sum(1 for _ in container.decode(stream)) == 1


def test_the_readme_names_every_fixture() -> None:
    named = set(re.findall(r"^\| `([^`]+)` \|", (FIXTURES / "README.md").read_text(), re.M))
    assert named == {p.name for p in FIXTURES.iterdir()} - {"README.md"}
