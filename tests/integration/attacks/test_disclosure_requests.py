"""Disclosure requests as an attacker (or a hurried officer) sends them: a reviewed plan with
mute spans and options it must honour, spans past the clip's end, options that hide nothing,
plans too big to parse or to render, a service killed mid-export, and leaves that must not
show the server's filesystem. All against a live ``bwv serve`` under uvicorn."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from bwv.records.tables import Clip
from bwv.redact.plan import MAX_REGIONS
from bwv.services.samples import make_sample_clip
from bwv.store import open_store
from tests.support import sha256_of
from tests.support.apiserver import CAMERAS, OFFICER, Api, start_api
from tests.support.cli import client_env, run_bwv
from tests.support.ledger import leaves

EO = "evidence-officer"
MUTE = [0.6, 1.4]  # seconds: inside the 2 s clip, clear of its edges


def ingest(api: Api, name: str, seconds: float = 2.0, **size: int) -> str:
    """A clip with a tone, from the officer's camera, uploaded by the dock; its evidence id."""
    assert api.dock is not None
    path = make_sample_clip(
        api.clips_dir / f"{CAMERAS[OFFICER]}_{name}.mp4",
        seconds=seconds,
        width=size.get("width", 160),
        height=size.get("height", 120),
        seed=len(name),
    )
    sha = sha256_of(path)
    done = api.dock.upload(path, sha256=sha, camera=CAMERAS[OFFICER], filename=path.name)
    assert done.status_code == 204, done.text
    with api.ctx.engine.connect() as conn:
        column = Clip.__table__.c
        return conn.execute(select(column.evidence_id).where(column.sha256 == sha)).scalar_one()


def export(api: Api, evidence_id: str, **body: Any) -> Any:
    return api.call(
        EO,
        "POST",
        f"/api/v1/clips/{evidence_id}/exports",
        params={"reason": "CPS disclosure: mute all speech"},
        json={"options": None, "plan": None, "mute": [], **body},
    )


def content(api: Api, export_id: str) -> bytes:
    got = api.call(EO, "GET", f"/api/v1/exports/{export_id}/content", params={"reason": "check"})
    assert got.status_code == 200, got.text
    return got.content


def rms(data: bytes, start: float, end: float) -> float:
    """The root mean square of the copy's audio between ``start`` and ``end`` seconds."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        parts = []
        for frame in container.decode(stream):
            t0 = float(frame.pts * frame.time_base)
            samples = frame.to_ndarray().reshape(-1)
            times = t0 + np.arange(len(samples)) / frame.sample_rate
            parts.append(samples[(times >= start) & (times < end)])
    inside = np.concatenate(parts)
    assert len(inside) > 1000
    return float(np.sqrt(np.mean(inside.astype(np.float64) ** 2)))


def one_line(detail: Any) -> str:
    """A refusal's detail is one line: a string, or FastAPI's 422 list with one entry."""
    if isinstance(detail, list):
        assert len(detail) == 1, detail
        detail = detail[0]["msg"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300, detail
    return detail


@pytest.fixture(scope="module")
def clip(api: Api) -> str:
    return ingest(api, "tone")


@pytest.fixture(scope="module")
def reviewed(api: Api, clip: str) -> str:
    """The clip's plan as the service made it, with a manual box an officer added."""
    made = api.call(EO, "POST", f"/api/v1/clips/{clip}/plan", params={"reason": "review"}, json={})
    assert made.status_code == 200, made.text
    plan = json.loads(made.json()["plan"])
    plan["manual"] = [{"start_s": 0, "end_s": plan["duration_s"], "box": [16, 16, 96, 96]}]
    return json.dumps(plan, indent=1)


@pytest.fixture(scope="module")
def muted(api: Api, clip: str, reviewed: str) -> dict[str, Any]:
    """An export of the reviewed plan with a mute span asked."""
    size = api.ledger_size()
    made = export(api, clip, plan=reviewed, mute=[MUTE])
    assert made.status_code == 201, made.text
    created = leaves(api.ctx, "export.created", since=size)
    assert len(created) == 1
    return {
        "export": made.json(),
        "leaf": created[0],
        "data": content(api, made.json()["export_id"]),
    }


# --- finding 3: a reviewed plan honours the mute spans and options asked --------------------


def test_a_reviewed_plan_export_silences_the_mute_span_asked(muted: dict[str, Any]) -> None:
    data = muted["data"]
    assert rms(data, MUTE[0] + 0.1, MUTE[1] - 0.1) < 0.002  # silence
    assert rms(data, 0.1, MUTE[0] - 0.1) > 0.05  # the tone (0.2 peak) either side
    assert rms(data, MUTE[1] + 0.1, 1.9) > 0.05


def test_the_export_leaf_records_the_merged_plan_and_its_mute_span(
    api: Api, muted: dict[str, Any], reviewed: str
) -> None:
    details = muted["leaf"]["details"]
    reviewed_sha = hashlib.sha256(reviewed.encode()).hexdigest()
    assert details["reviewed_plan_sha256"] == reviewed_sha
    assert details["plan_sha256"] == muted["export"]["plan_sha256"] != reviewed_sha
    assert details["audio"] != "copied" and MUTE in details["mute_spans"]
    store = open_store(api.server.settings.store_url)
    stored = b"".join(store.read_chunks("plans", details["plan_sha256"]))
    assert hashlib.sha256(stored).hexdigest() == details["plan_sha256"]
    assert {"start_s": MUTE[0], "end_s": MUTE[1]} in json.loads(stored)["mute"]
    assert store.exists("plans", reviewed_sha)  # what the officer reviewed is kept too


def test_a_reviewed_plan_export_renders_in_the_mode_asked(
    api: Api, clip: str, reviewed: str
) -> None:
    size = api.ledger_size()
    made = export(api, clip, plan=reviewed, options={"mode": "solid"})
    assert made.status_code == 201, made.text
    assert leaves(api.ctx, "export.created", since=size)[0]["details"]["mode"] == "solid"
    with av.open(io.BytesIO(content(api, made.json()["export_id"]))) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="gray")
    box = frame[20:92, 20:92]  # inside the manual box; blurred bars would average ~110
    assert box.mean() < 40 and box.std() < 8


@pytest.mark.parametrize(
    "options", [{"classes": ["text"]}, {"face_every_s": 0.5}, {"padding": 0.0}], ids=str
)
def test_what_cannot_apply_to_a_reviewed_plan_is_refused_in_one_line_and_recorded(
    api: Api, clip: str, reviewed: str, options: dict[str, Any]
) -> None:
    size = api.ledger_size()
    refused = export(api, clip, plan=reviewed, options=options)
    assert refused.status_code == 422, refused.text
    why = one_line(refused.json()["detail"])
    assert next(iter(options)) in why
    assert leaves(api.ctx, "export.refused", since=size)[0]["details"]["why"] == why
    assert not leaves(api.ctx, "export.created", since=size)


# --- round 2: a request never weakens what a reviewed plan hides ----------------------------

WEAKER = [
    ({"audio": "mute"}, {"audio": "keep"}),
    ({"audio": "strip"}, {"audio": "keep"}),
    ({"shape": "box"}, {"shape": "ellipse"}),
    ({"mode": "solid"}, {"mode": "blur"}),
    ({"mode": "solid"}, {"mode": "pixelate"}),
]


def strengthened(reviewed: str, **options: Any) -> str:
    """The reviewed plan, reviewed again to hide more (``options`` set in its own)."""
    plan = json.loads(reviewed)
    plan["options"] = {**plan["options"], **options}
    return json.dumps(plan, indent=1)


@pytest.mark.parametrize(("planned", "asked"), WEAKER, ids=lambda o: "-".join(o.values()))
def test_a_request_that_would_hide_less_than_the_reviewed_plan_is_refused_and_recorded(
    api: Api, clip: str, reviewed: str, planned: dict[str, str], asked: dict[str, str]
) -> None:
    size = api.ledger_size()
    refused = export(api, clip, plan=strengthened(reviewed, **planned), options=asked)
    assert refused.status_code == 422, refused.text
    why = one_line(refused.json()["detail"])
    assert f"options.{next(iter(asked))}" in why and "hides less" in why
    assert leaves(api.ctx, "export.refused", since=size)[0]["details"]["why"] == why
    assert not leaves(api.ctx, "export.created", since=size)


@pytest.mark.parametrize(
    ("planned", "asked"),
    [({"audio": "mute"}, {"audio": "strip"}), ({"mode": "pixelate"}, {"mode": "blur"})],
    ids=lambda o: "-".join(o.values()),
)
def test_a_request_as_strong_as_the_reviewed_plan_is_applied(
    api: Api, clip: str, reviewed: str, planned: dict[str, str], asked: dict[str, str]
) -> None:
    size = api.ledger_size()
    made = export(api, clip, plan=strengthened(reviewed, **planned), options=asked)
    assert made.status_code == 201, made.text
    [created] = leaves(api.ctx, "export.created", since=size)
    if "mode" in asked:
        assert created["details"]["mode"] == asked["mode"]
    else:
        assert created["details"]["audio"] == "none"  # stripped


# --- finding 8: spans past the end, options that hide nothing, plans too big ----------------


@pytest.mark.parametrize("route", ["exports", "exports with a plan", "plan"])
def test_a_mute_span_past_the_clip_s_end_is_422_in_one_line_and_recorded(
    api: Api, clip: str, reviewed: str, route: str
) -> None:
    size = api.ledger_size()
    body: dict[str, Any] = {"mute": [[1.0, 99.0]]}
    if route == "exports with a plan":
        body["plan"] = reviewed
    path = "plan" if route == "plan" else "exports"
    refused = api.call(
        EO, "POST", f"/api/v1/clips/{clip}/{path}", params={"reason": "case 3"}, json=body
    )
    assert refused.status_code == 422, refused.text
    why = one_line(refused.json()["detail"])
    assert "past the clip's end" in why and "99" in why
    kind = "redact" if route == "plan" else "export"
    assert leaves(api.ctx, since=size, action=f"{kind}.refused")[0]["details"]["why"] == why


def test_options_that_hide_no_class_are_refused_and_recorded(api: Api, clip: str) -> None:
    size = api.ledger_size()
    refused = export(api, clip, options={"classes": []})
    assert refused.status_code == 422, refused.text
    assert "classes" in json.dumps(refused.json()["detail"])
    denied = leaves(api.ctx, "access.denied", since=size)
    assert denied and "classes" in denied[0]["details"]["why"]
    assert not leaves(api.ctx, "export.created", since=size)


def test_a_plan_over_the_size_cap_is_413_in_one_line_and_recorded(
    api: Api, clip: str, reviewed: str
) -> None:
    cap = api.server.settings.max_plan_bytes
    big = reviewed + " " * (cap + 1 - len(reviewed.encode()))  # still a valid plan, one byte over
    size = api.ledger_size()
    refused = export(api, clip, plan=big)
    assert refused.status_code == 413, refused.text
    assert "larger than" in one_line(refused.json()["detail"])
    assert leaves(api.ctx, "access.denied", since=size)[0]["details"]["why"].startswith(
        "the plan is"
    )
    assert not leaves(api.ctx, "export.created", since=size)


def test_a_body_far_over_the_cap_is_refused_before_it_is_read_whole(api: Api, clip: str) -> None:
    cap = 2 * api.server.settings.max_plan_bytes + 64 * 1024

    def body() -> Iterator[bytes]:
        yield b'{"plan": "'
        for _ in range(cap // 65536 + 64):
            yield b" " * 65536
        yield b'"}'

    size = api.ledger_size()
    try:
        assert api.http is not None
        refused = api.http.post(
            f"/api/v1/clips/{clip}/exports",
            params={"reason": "case 3"},
            content=body(),
            headers={
                "Authorization": f"Bearer {api.tokens[EO]}",
                "Content-Type": "application/json",
            },
        )
        assert refused.status_code == 413, refused.text
    except httpx.TransportError:
        pass  # the service answered and closed before the client had sent it all
    assert leaves(api.ctx, "access.denied", since=size)
    assert not leaves(api.ctx, "export.refused", since=size)  # never parsed as a plan


def test_a_plan_hiding_more_regions_than_a_render_may_is_refused_before_rendering(
    api: Api, clip: str, reviewed: str
) -> None:
    plan = json.loads(reviewed)
    per_box = plan["frames"]  # each manual box spans the whole clip
    count = MAX_REGIONS // per_box + 1
    plan["manual"] = [{"start_s": 0, "end_s": plan["duration_s"], "box": [0, 0, 8, 8]}] * count
    size = api.ledger_size()
    started = time.monotonic()
    refused = export(api, clip, plan=json.dumps(plan, separators=(",", ":")))
    assert refused.status_code == 422, refused.text
    assert "regions" in one_line(refused.json()["detail"])
    assert time.monotonic() - started < 30  # refused, not rendered
    assert leaves(api.ctx, "export.refused", since=size)
    assert not leaves(api.ctx, "export.created", since=size)


# --- the CLI sends only what the service will honour ----------------------------------------


def test_cli_export_of_a_plan_honours_mute_audio_and_mode(
    api: Api, clip: str, reviewed: str, tmp_path: Path
) -> None:
    plan = tmp_path / "reviewed.plan.json"
    plan.write_text(reviewed)
    size = api.ledger_size()
    args = ["export", clip, "--plan", str(plan), "--reason", "CPS", "--mute", "0-2"]
    ran = run_bwv(client_env(api, tmp_path, EO), *args, "--audio", "mute", "--mode", "solid")
    assert ran.returncode == 0, ran.stderr
    details = leaves(api.ctx, "export.created", since=size)[0]["details"]
    assert details["audio"] == "silent" and details["mode"] == "solid"
    assert [0.0, 2.0] in details["mute_spans"]
    assert details["reviewed_plan_sha256"] == sha256_of(plan)


@pytest.mark.parametrize("flags", [["--classes", "text"], ["--face-every", "0.5"]], ids=str)
def test_cli_export_of_a_plan_refuses_a_detection_flag_in_one_line_without_sending(
    api: Api, clip: str, reviewed: str, tmp_path: Path, flags: list[str]
) -> None:
    plan = tmp_path / "reviewed.plan.json"
    plan.write_text(reviewed)
    size = api.ledger_size()
    args = ["export", clip, "--plan", str(plan), "--reason", "CPS", *flags]
    ran = run_bwv(client_env(api, tmp_path, EO), *args)
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bwv: error: ") and flags[0] in lines[0]
    assert api.ledger_size() == size  # nothing was sent


def test_cli_export_refuses_a_flag_that_would_weaken_the_reviewed_plan_without_sending(
    api: Api, clip: str, reviewed: str, tmp_path: Path
) -> None:
    plan = tmp_path / "reviewed.plan.json"
    plan.write_text(strengthened(reviewed, audio="mute"))
    size = api.ledger_size()
    args = ["export", clip, "--plan", str(plan), "--reason", "CPS", "--audio", "keep"]
    ran = run_bwv(client_env(api, tmp_path, EO), *args)
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and "--audio keep hides less" in lines[0], ran.stderr
    assert api.ledger_size() == size  # nothing was sent


def test_cli_export_of_a_plan_refuses_a_mute_span_past_the_end_without_sending(
    api: Api, clip: str, reviewed: str, tmp_path: Path
) -> None:
    plan = tmp_path / "reviewed.plan.json"
    plan.write_text(reviewed)
    size = api.ledger_size()
    args = ["export", clip, "--plan", str(plan), "--reason", "CPS", "--mute", "1-99"]
    ran = run_bwv(client_env(api, tmp_path, EO), *args)
    assert ran.returncode == 1 and "past the clip's end" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert api.ledger_size() == size


# --- no server paths in what is recorded or answered -----------------------------------------


def test_no_export_or_redact_leaf_names_a_server_path(api: Api, clip: str) -> None:
    made = export(api, clip)
    assert made.status_code == 201, made.text
    refused = export(api, clip, plan="{ not a plan")
    assert refused.status_code == 400
    data_dir = str(api.server.data_dir)
    for answer in (made, refused):
        assert data_dir not in answer.text
    recorded = [lf for lf in api.leaves_since(0) if lf["action"].startswith(("export.", "redact."))]
    assert {"export.created", "export.refused"} <= {lf["action"] for lf in recorded}
    for leaf in recorded:
        assert data_dir not in json.dumps(leaf), leaf


# --- kill -9 mid-export: no copy of the original left in the data folder's scratch ---------


def test_a_service_killed_mid_export_leaves_no_scratch_after_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    own = start_api(tmp_path_factory.mktemp("killed"))
    try:
        evidence_id = ingest(own, "long", seconds=8, width=320, height=240)
        work = own.server.data_dir / "work"

        def scratch() -> list[Path]:
            return [p for p in work.rglob("*") if p.is_file()] if work.is_dir() else []

        asked = threading.Thread(target=lambda: _quietly(export, own, evidence_id), daemon=True)
        asked.start()
        deadline = time.monotonic() + 60
        while not scratch() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scratch(), "the export never put the original in data/work"
        own.server.kill()
        asked.join(30)
        assert scratch(), "a killed service runs no cleanup"
        own.server.start()
        assert scratch() == [] and list(work.iterdir()) == []
    finally:
        own.close()


def _quietly(call: Any, *args: Any) -> None:
    # The service is killed under the request: no answer is expected.
    with contextlib.suppress(Exception):
        call(*args)
