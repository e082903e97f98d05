"""``bwv hold``: legal holds, through the service. A held clip is kept whatever its retention
date says, until the hold is released."""

from __future__ import annotations

from typing import Any

from bwv.cli.client import ApiClient
from bwv.cli.clips import EvidenceId, clip_line
from bwv.cli.common import api_path, group, sendable, service
from bwv.cli.options import ReasonOpt
from bwv.cli.output import say

holds = group("Legal holds, through the service.")


def place_hold(api: ApiClient, evidence_id: str, reason: str) -> dict[str, Any]:
    """The clip, held."""
    return _hold(api, "PUT", evidence_id, reason)


def release_hold(api: ApiClient, evidence_id: str, reason: str) -> dict[str, Any]:
    return _hold(api, "DELETE", evidence_id, reason)


def _hold(api: ApiClient, method: str, evidence_id: str, reason: str) -> dict[str, Any]:
    sendable(reason)
    path = api_path("clips", evidence_id, "hold")
    return api.request(method, path, params={"reason": reason}).json()  # type: ignore[no-any-return]


@holds.command("place")
def hold_place(evidence_id: EvidenceId, reason: ReasonOpt) -> None:
    """Place a legal hold: the clip is kept, whatever its retention date, until released."""
    sendable(reason)
    with service() as (api, _):
        say(clip_line(place_hold(api, evidence_id, reason)))


@holds.command("release")
def hold_release(evidence_id: EvidenceId, reason: ReasonOpt) -> None:
    """Release a legal hold: the clip's retention date applies again."""
    sendable(reason)
    with service() as (api, _):
        say(clip_line(release_hold(api, evidence_id, reason)))
