"""C2PA manifests on disclosure copies: signed under bwv's own PKI, read back offline."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import av
import ffmpeg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bwv.custody.rotation import rotate_keys
from bwv.keys import SigningKey, init_keys
from bwv.redact.provenance import (
    C2paIdentity,
    ProvenanceError,
    ensure_identity,
    read_disclosure,
    redaction_action,
    sign_disclosure,
)
from bwv.services.samples import make_sample_clip

NAME = "bwv.test/custody"
PEM = Encoding.PEM
FPS = 25


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(original clip, rendered redacted copy), made once for the module."""
    d = tmp_path_factory.mktemp("clips")
    parent = make_sample_clip(d / "BWV-0001.mp4", seconds=1, fps=FPS, seed=0)
    redacted = make_sample_clip(d / "rendered.mp4", seconds=1, fps=FPS, seed=5)
    return parent, redacted


def _install(root: Path) -> tuple[Path, SigningKey]:
    keys_dir = root / "keys"
    key = init_keys(keys_dir / "signing.key", keys_dir / "keyring", NAME)
    return keys_dir, key


@pytest.fixture
def install(tmp_path: Path) -> tuple[Path, SigningKey]:
    return _install(tmp_path / "force-a")


@pytest.fixture
def identity(install: tuple[Path, SigningKey]) -> C2paIdentity:
    return ensure_identity(*install)


ACTIONS = [redaction_action("2 faces blurred", faces=2), {"action": "c2pa.transcoded"}]


def _sign(clips: tuple[Path, Path], dest: Path, identity: C2paIdentity) -> Path:
    parent, redacted = clips
    sign_disclosure(
        redacted,
        dest,
        parent=parent,
        parent_title="BWV-0001.mp4",
        actions=ACTIONS,
        identity=identity,
        metadata={"case": "CASE-42"},
    )
    return dest


@pytest.fixture
def signed(clips: tuple[Path, Path], tmp_path: Path, identity: C2paIdentity) -> Path:
    return _sign(clips, tmp_path / "disclosure.mp4", identity)


def test_signed_copy_is_valid_and_trusted_with_parent_and_actions(
    signed: Path, identity: C2paIdentity
) -> None:
    report = read_disclosure(signed, identity.anchors_pem)
    assert (report.valid, report.trusted, report.validation_state) == (True, True, "Trusted")
    assert report.status == []
    parents = [i for i in report.manifest["ingredients"] if i["relationship"] == "parentOf"]
    assert [p["title"] for p in parents] == ["BWV-0001.mp4"] == [report.parent_title]
    assert report.actions == ["c2pa.opened", "c2pa.edited", "c2pa.transcoded"]
    assert report.manifest["claim_generator_info"][0]["name"] == "bwv"


def test_parent_hash_is_bound_into_the_claim(
    signed: Path, identity: C2paIdentity, clips: tuple[Path, Path]
) -> None:
    report = read_disclosure(signed, identity.anchors_pem)
    assert report.parent_sha256 == hashlib.sha256(clips[0].read_bytes()).hexdigest()


def test_another_installs_anchor_finds_it_valid_but_not_trusted(
    signed: Path, tmp_path: Path
) -> None:
    other = ensure_identity(*_install(tmp_path / "force-b"))
    report = read_disclosure(signed, other.anchors_pem)
    assert (report.valid, report.trusted, report.validation_state) == (True, False, "Valid")
    assert "signingCredential.untrusted" in report.status


def _top_level_box(data: bytes, kind: bytes) -> tuple[int, int]:
    """(offset, size) of the first top-level ISO BMFF box of ``kind``."""
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        elif size == 0:
            size = len(data) - offset
        if data[offset + 4 : offset + 8] == kind:
            return offset, size
        offset += size
    raise AssertionError(f"no {kind!r} box")


def test_flipping_video_bytes_after_signing_makes_it_invalid(
    signed: Path, identity: C2paIdentity
) -> None:
    data = bytearray(signed.read_bytes())
    offset, size = _top_level_box(bytes(data), b"mdat")
    middle = offset + size // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    signed.write_bytes(bytes(data))
    report = read_disclosure(signed, identity.anchors_pem)
    assert (report.valid, report.trusted, report.validation_state) == (False, False, "Invalid")
    assert "assertion.bmffHash.mismatch" in report.status


def test_identity_is_made_once_with_private_key_files_0600(
    install: tuple[Path, SigningKey],
) -> None:
    first = ensure_identity(*install)
    second = ensure_identity(*install)
    assert second == first
    c2pa_dir = install[0] / "c2pa"
    assert stat.S_IMODE((c2pa_dir / "leaf.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(c2pa_dir.stat().st_mode) == 0o700
    assert first.anchors_pem.count(b"BEGIN CERTIFICATE") == 1


def test_after_key_rotation_old_and_new_copies_are_trusted(
    clips: tuple[Path, Path], tmp_path: Path, install: tuple[Path, SigningKey]
) -> None:
    keys_dir, _ = install
    before = ensure_identity(*install)
    old_copy = _sign(clips, tmp_path / "old.mp4", before)
    _, new_key = rotate_keys(keys_dir / "signing.key", keys_dir / "keyring", NAME)
    after = ensure_identity(keys_dir, new_key)
    assert after.chain_pem != before.chain_pem
    assert after.anchors_pem.count(b"BEGIN CERTIFICATE") == 2
    new_copy = _sign(clips, tmp_path / "new.mp4", after)
    anchors = (keys_dir / "c2pa" / "anchors.pem").read_bytes()
    assert read_disclosure(new_copy, anchors).trusted
    assert read_disclosure(old_copy, anchors).trusted
    newest_ca_only = x509.load_pem_x509_certificates(after.chain_pem)[1].public_bytes(PEM)
    assert not read_disclosure(old_copy, newest_ca_only).trusted


def test_signed_copy_still_probes_and_decodes(signed: Path) -> None:
    info = ffmpeg.probe(str(signed))
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert [s["codec_name"] for s in video] == ["h264"]
    with av.open(str(signed)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == FPS


def test_c2pa_redacted_for_pixels_is_refused_and_writes_nothing(
    clips: tuple[Path, Path], tmp_path: Path, identity: C2paIdentity
) -> None:
    dest = tmp_path / "disclosure.mp4"
    with pytest.raises(ProvenanceError, match=r"c2pa\.edited"):
        sign_disclosure(
            clips[1],
            dest,
            parent=clips[0],
            parent_title="BWV-0001.mp4",
            actions=[{"action": "c2pa.redacted", "parameters": {"faces": 2}}],
            identity=identity,
        )
    assert list(tmp_path.glob("*disclosure.mp4*")) == []


def test_missing_parent_is_a_one_line_diagnosis(
    clips: tuple[Path, Path], tmp_path: Path, identity: C2paIdentity
) -> None:
    with pytest.raises(ProvenanceError, match="no original clip at") as info:
        sign_disclosure(
            clips[1],
            tmp_path / "d.mp4",
            parent=tmp_path / "gone.mp4",
            parent_title="gone.mp4",
            actions=ACTIONS,
            identity=identity,
        )
    assert "\n" not in info.value.diagnosis


def test_reading_an_unsigned_clip_says_it_has_no_manifest(
    clips: tuple[Path, Path], identity: C2paIdentity
) -> None:
    with pytest.raises(ProvenanceError, match="carries no C2PA manifest"):
        read_disclosure(clips[0], identity.anchors_pem)
