"""The demo's own set-up on the embedded default: cameras docked in bay folders, each issued to
an officer and holding one finished clip, as a docking station would see them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bwv.base.clock import system_clock
from bwv.services import admin
from bwv.services.context import Context
from bwv.services.samples import make_sample_clip, make_street_clip


def docked_cameras(
    ctx: Context, bays_dir: Path, clips: int, advance: Callable[[], None]
) -> list[Path]:
    """``clips`` bay folders under ``bays_dir``, each with a ``CAMERA`` file, one clip and its
    ``.done`` marker; camera ``BWC-000N`` issued to officer ``PC 452N``. The first clip is a
    street (a face and a number plate, for the disclosure copy). The bays, in order."""
    started = system_clock() - timedelta(minutes=30)
    bays = []
    for n in range(1, clips + 1):
        serial, bay = f"BWC-{n:04d}", bays_dir / f"bay-{n}"
        bay.mkdir(parents=True)
        (bay / "CAMERA").write_text(serial + "\n")
        recorded = started + timedelta(minutes=5 * n)
        if n == 1:
            clip, _ = make_street_clip(
                bay / f"{serial}_0001.mp4", seconds=3, width=960, height=540, recorded_at=recorded
            )
        else:
            clip = make_sample_clip(
                bay / f"{serial}_0001.mp4", seconds=2 + n, seed=n, recorded_at=recorded
            )
        finished = (recorded + timedelta(seconds=2 + n)).timestamp()
        os.utime(clip, (finished, finished))  # as the camera wrote it
        clip.with_name(clip.name + ".done").touch()
        admin.assign_device(ctx, serial, f"PC {4520 + n}")
        bays.append(bay)
        advance()
    return bays


def evidence_officer(ctx: Context) -> tuple[str, str]:
    """A new evidence officer for the demo's requests over the API, with a day's token."""
    name = f"demo-eo-{secrets.token_hex(2)}"
    return name, admin.add_user(ctx, name, "evidence-officer", days=1).token


def stored_original(ctx: Context, sha256: str) -> Path:
    """Where the embedded default's local store keeps an original."""
    with admin.evidence_store(ctx).open("originals", sha256) as f:
        return Path(f.name)
