"""The dock agent (docks/agent.py) against an in-process fake of the ingest service
(httpx.MockTransport, following docs/INGEST.md): a camera file is wiped only after a verified
receipt for its exact bytes, and every protocol path of an upload ends in a receipt or a kept
file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bwv.keys import SigningKey
from docks import DockAgent, RetryPolicy, status
from docks.agent import CHANGED_AFTER_HASHING
from tests.support import sha256_of
from tests.support.docks import (
    SERVICE,
    TOKEN,
    FakeService,
    agent_for,
    camera_clip,
    dock_config,
    receipt_for,
    uploaded_clip,
)


def test_status_of_a_dock_that_never_ran_is_empty(tmp_path: Path) -> None:
    assert status(tmp_path / "nothing-here") == []


def test_verified_receipt_wipes_the_clip_and_its_marker(tmp_path: Path, signer: SigningKey) -> None:
    path = camera_clip(tmp_path / "bay1")
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = uploaded_clip(agent, path)
        clip = agent.handle_receipt(clip_id, receipt_for(signer, sha256_of(path), 3000))
    assert clip.state == "wiped"
    assert not path.exists()
    assert not path.with_name(path.name + ".done").exists()


def test_a_scan_racing_a_wipe_does_not_queue_the_clip_again(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    receipt = receipt_for(signer, sha256_of(path), 3000)
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = uploaded_clip(agent, path)
        wipe = threading.Thread(target=agent.handle_receipt, args=(clip_id, receipt))
        real_scan = agent.watcher.scan

        def scan_then_let_the_wipe_run() -> Any:
            seen = real_scan()  # the camera file is seen here, just before its wipe
            wipe.start()
            wipe.join(timeout=0.5)  # without exclusion the wipe would finish right now
            return seen

        agent.watcher.scan = scan_then_let_the_wipe_run  # type: ignore[method-assign]
        agent.scan()
        wipe.join()
        assert [c.state for c in agent.queue.list()] == ["wiped"]
    assert not path.exists()


def test_receipt_is_recorded_durably_with_the_clip(tmp_path: Path, signer: SigningKey) -> None:
    path = camera_clip(tmp_path / "bay1")
    sha = sha256_of(path)
    document = receipt_for(signer, sha, 3000)
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = uploaded_clip(agent, path)
        agent.handle_receipt(clip_id, document)
        assert agent.queue.get(clip_id).receipt == document
        assert agent.queue.get(clip_id).evidence_id == "EV-1"
    lines = (tmp_path / "state" / "receipts.jsonl").read_text().splitlines()
    assert [(json.loads(x)["sha256"], json.loads(x)["receipt"]) for x in lines] == [(sha, document)]


def test_receipt_signed_by_an_unpinned_key_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    stranger = SigningKey(signer.name, Ed25519PrivateKey.generate())
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = uploaded_clip(agent, path)
        clip = agent.handle_receipt(clip_id, receipt_for(stranger, sha256_of(path), 3000))
    assert path.exists()
    assert clip.state == "failed"
    assert clip.last_error is not None and "not the pinned service key" in clip.last_error


def test_receipt_carrying_the_pinned_key_but_signed_by_another_keeps_the_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    forged = receipt_for(
        SigningKey(signer.name, Ed25519PrivateKey.generate()), sha256_of(path), 3000
    )
    forged["key"] = str(signer.verifier)
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(uploaded_clip(agent, path), forged)
    assert path.exists()
    assert clip.state == "failed" and "does not verify" in (clip.last_error or "")


def test_receipt_naming_another_sha256_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(uploaded_clip(agent, path), receipt_for(signer, "0" * 64, 3000))
    assert path.exists()
    assert clip.state == "failed" and "names SHA-256" in (clip.last_error or "")


def test_receipt_naming_another_size_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(
            uploaded_clip(agent, path), receipt_for(signer, sha256_of(path), 1)
        )
    assert path.exists()
    assert clip.state == "failed"


def test_refused_receipt_leaves_no_local_record(tmp_path: Path, signer: SigningKey) -> None:
    path = camera_clip(tmp_path / "bay1")
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(uploaded_clip(agent, path), receipt_for(signer, "0" * 64, 3000))
    assert clip.receipt is None
    assert not (tmp_path / "state" / "receipts.jsonl").exists()


def test_clip_changed_after_hashing_is_not_wiped(tmp_path: Path, signer: SigningKey) -> None:
    path = camera_clip(tmp_path / "bay1")
    sha = sha256_of(path)
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = uploaded_clip(agent, path)
        with open(path, "ab") as f:
            f.write(b"appended by the camera")
        clip = agent.handle_receipt(clip_id, receipt_for(signer, sha, 3000))
    assert path.exists()
    assert (clip.state, clip.last_error) == ("failed", CHANGED_AFTER_HASHING)


def test_clip_changed_after_hashing_is_queued_again_as_a_new_clip(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = camera_clip(tmp_path / "bay1")
    with DockAgent(dock_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        first = uploaded_clip(agent, path)
        with open(path, "ab") as f:
            f.write(b"appended")
        agent.handle_receipt(first, receipt_for(signer, sha256_of(path), 3000))
        agent.scan()
        rows = agent.queue.list()
    assert [(c.id == first, c.state, c.size) for c in rows] == [
        (True, "failed", 3000),
        (False, "found", 3000 + len(b"appended")),
    ]


def test_once_uploads_verifies_and_wipes_every_bay(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    a = camera_clip(tmp_path / "bay1", "A.MP4", 5000)
    b = camera_clip(tmp_path / "bay2", "B.mov", 2500)
    sha_a, sha_b = sha256_of(a), sha256_of(b)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1", tmp_path / "bay2"]) as agent:
        report = agent.run(once=True)
    assert sorted(c.sha256 for c in report.wiped) == sorted([sha_a, sha_b])
    assert set(service.stored) == {sha_a, sha_b}
    assert not a.exists() and not b.exists()


def test_upload_metadata_names_the_clip(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay3", "VID9.MP4")
    (tmp_path / "bay3" / "CAMERA").write_text("SN-42\n")
    os.utime(path, ns=(0, 1_700_000_000_000_000_000))
    sha = sha256_of(path)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay3"]) as agent:
        agent.run(once=True)
    assert service.uploads["u1"]["meta"] == {
        "sha256": sha,
        "filename": "VID9.MP4",
        "camera": "SN-42",
        "recorded_at": "2023-11-14T22:13:20Z",
        "bay": "bay3",
    }


def test_non_clip_files_are_reported_and_kept(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    camera_clip(tmp_path / "bay1")
    other = tmp_path / "bay1" / "GPS.LOG"
    other.write_text("track")
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert report.non_clips == [other]
    assert other.read_text() == "track"


def test_requests_speak_tus_with_the_dock_token(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    camera_clip(tmp_path / "bay1")
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.run(once=True)
    tus = [h for _, p, h in service.requests if p.startswith("/files")]
    assert tus and all(h["tus-resumable"] == "1.0.0" for h in tus)
    assert all(h["authorization"] == f"Bearer {TOKEN}" for _, _, h in service.requests)


def test_upload_resumes_from_the_service_offset(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=4096)
    data = path.read_bytes()
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha256_of(path))
        url = f"{SERVICE}/files/u1"
        service.uploads["u1"] = {"length": 4096, "data": bytearray(data[:2048]), "meta": {}}
        service.uploads["u1"]["meta"]["sha256"] = sha256_of(path)
        agent.queue.set_upload(clip_id, url, 1024)  # the dock knew less than the service holds
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.patches() == [2048, 3072]
    assert "POST" not in service.methods()


def test_chunks_carry_no_checksum_unless_configured(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    camera_clip(tmp_path / "bay1", size=2048)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.run(once=True)
    assert service.checksummed == [False, False]


def test_checksum_failure_resends_the_chunk(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=2048)
    service.patch_faults = [460]
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"], chunk_checksums=True) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert service.patches() == [0, 0, 1024]
    assert service.checksummed == [True, True]


def test_offset_conflict_continues_from_the_service_offset(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=3072)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha256_of(path))
        service.uploads["u1"] = {
            "length": 3072,
            "data": bytearray(path.read_bytes()[:1024]),
            "meta": {"sha256": sha256_of(path)},
        }
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/u1", 0)
        service.patch_faults = [409]  # the first PATCH meets another idea of the offset
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.patches() == [1024, 1024, 2048]


def test_expired_upload_is_started_again(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=2048)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha256_of(path))
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/expired", 1024)
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods()[:3] == ["HEAD", "GET", "POST"]
    assert service.patches() == [0, 1024]


def test_expired_upload_of_a_stored_clip_takes_the_existing_receipt(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=2048)
    sha = sha256_of(path)
    service.stored[sha] = receipt_for(signer, sha, 2048)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha)
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/expired", 1024)
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods() == ["HEAD", "GET"]


def test_lost_final_response_is_recovered_by_finalise(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.patch_faults = ["lost"]
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert [p for m, p, _ in service.requests if m != "GET"][-2:] == [
        "/files/u1",
        "/api/v1/uploads/u1/finalise",
    ]
    assert service.patches() == [0]  # the bytes were not sent twice


def test_receipt_in_the_final_response_needs_no_further_request(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    camera_clip(tmp_path / "bay1", size=2048)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert len(report.wiped) == 1
    # create, 2 chunks: a clip never sent is not asked about first (that would be a refusal leaf)
    assert service.methods() == ["POST", "PATCH", "PATCH"]


def test_missing_receipt_header_is_fetched_by_finalise(tmp_path: Path, signer: SigningKey) -> None:
    service = FakeService(signer, receipt_header=False)
    path = camera_clip(tmp_path / "bay1", size=1024)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert service.requests[-1][1] == "/api/v1/uploads/u1/finalise"


def test_permanent_refusal_rejects_the_clip_and_keeps_the_file(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.patch_faults = [413]
    service.error_bodies[413] = "clip is larger than Tus-Max-Size"
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert path.exists()
    assert [(c.state, c.last_error) for c in report.rejected] == [
        ("rejected", "sending bytes from offset 0: 413 clip is larger than Tus-Max-Size")
    ]
    assert service.patches() == [0]  # not retried


def test_hash_mismatch_at_the_service_rejects_the_clip(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, "f" * 64)  # the service will compute another hash
        clip = agent.process(clip_id)
    assert path.exists()
    assert clip.state == "rejected" and "422" in (clip.last_error or "")


def test_server_errors_are_retried_not_rejected(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.patch_faults = [503, 500, 502]
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [(c.path, c.attempts) for c in report.wiped] == [(path, 3)]


def test_network_errors_are_retried(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.transport_failures = 4
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]


def test_retries_end_when_the_agent_is_stopped(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.transport_failures = 10**9  # the service never answers
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    config = dock_config(tmp_path, signer, [tmp_path / "bay1"])
    never_give_up = RetryPolicy(multiplier=0.001, max_wait=0.01)
    with DockAgent(config, http_client=service.client(), retry=never_give_up) as agent:
        report = agent.run(stop_event=stop, once=True)
    timer.cancel()
    assert path.exists()
    assert [c.state for c in report.pending] == ["hashed"]


def test_run_until_stopped_processes_new_clips(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    bay = tmp_path / "bay1"
    bay.mkdir()
    stop = threading.Event()
    with agent_for(tmp_path, signer, service, [bay], poll_interval=0.05) as agent:
        worker = threading.Thread(target=agent.run, kwargs={"stop_event": stop})
        worker.start()
        path = camera_clip(bay, size=1024)
        for _ in range(200):
            if not path.exists():
                break
            threading.Event().wait(0.05)
        stop.set()
        worker.join(10)
    assert not path.exists() and not worker.is_alive()


def test_crash_after_upload_before_receipt_recovers_the_receipt(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha256_of(path))
        service.uploads["u1"] = {
            "length": 1024,
            "data": bytearray(path.read_bytes()),
            "meta": {"sha256": sha256_of(path)},
        }
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/u1", 1024)
        agent.queue.mark_uploaded(clip_id)  # ... and the dock died here
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods() == ["HEAD", "POST"]  # the offset, then finalise: no bytes again


def test_receipted_clip_is_wiped_without_uploading_again(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1")
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        clip_id = uploaded_clip(agent, path)
        agent.queue.mark_receipted(clip_id, receipt_for(signer, sha256_of(path), 3000))
        report = agent.run(once=True)
    assert [c.id for c in report.wiped] == [clip_id]
    assert service.requests == []


def test_wrong_receipt_from_the_service_keeps_the_file_and_is_retried_later(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = camera_clip(tmp_path / "bay1", size=1024)
    service.signer = SigningKey("impostor.example/custody", Ed25519PrivateKey.generate())
    with agent_for(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
        assert [c.state for c in report.failed] == ["failed"]
        assert path.exists()
        service.signer, service.stored = signer, {}  # the service is fixed
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert [(m, p) for m, p, _ in service.requests].count(("POST", "/files/")) == 1
