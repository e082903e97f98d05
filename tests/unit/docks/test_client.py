"""The dock's tus client (docks/client.py): the rate cap, the retry policy and the wire formats
of docs/INGEST.md."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx
import pytest
import tenacity

from bwv.keys import SigningKey
from docks import RetryPolicy
from docks.client import (
    RateLimiter,
    ServiceUnavailable,
    TusClient,
    UploadRejected,
    decode_receipt_header,
    encode_metadata,
)
from tests.support.docks import (
    SERVICE,
    TOKEN,
    FakeService,
    receipt_for,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_rate_cap_keeps_the_average_at_or_below_the_cap() -> None:
    t = FakeTime()
    limiter = RateLimiter(200_000, clock=t.clock, sleep=t.sleep)
    sent = 0
    for _ in range(10):
        limiter.acquire(100_000)  # the piece goes out now, at the time the cap allows
        assert sent <= 200_000 * t.now  # bytes already out fit under the cap by now
        sent += 100_000
    assert t.now == pytest.approx(4.5)  # 1 MB at 0.2 MB/s: the 10th piece starts at 4.5 s


def test_rate_cap_idle_time_earns_no_burst() -> None:
    t = FakeTime()
    limiter = RateLimiter(100_000, clock=t.clock, sleep=t.sleep)
    limiter.acquire(100_000)
    t.now += 100.0  # idle
    start = t.now
    for _ in range(3):
        limiter.acquire(100_000)
    assert t.now - start == pytest.approx(2.0)


def test_rate_cap_is_given_in_megabytes_per_second() -> None:
    limiter = RateLimiter.from_mb_s(2.5)
    assert limiter is not None and limiter.bytes_per_second == 2_500_000
    assert RateLimiter.from_mb_s(None) is None


def test_chunks_are_streamed_through_the_cap_in_small_pieces(
    tmp_path: Path, service: FakeService
) -> None:
    pieces: list[int] = []

    class Spy(RateLimiter):
        def acquire(self, size: int) -> None:
            pieces.append(size)

    client = TusClient(
        SERVICE, TOKEN, http_client=service.client(), chunk_size=200_000, limiter=Spy(1)
    )
    url = client.create(400_000, {"sha256": "00" * 32})
    assert client.patch(url, 0, os.urandom(200_000), final=False) == (200_000, None)
    assert sum(pieces) == 200_000
    assert max(pieces) <= 64 * 1024 and len(pieces) > 1


def test_default_retry_policy_never_gives_up_on_retryable_errors() -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 300:
            if calls % 2:
                raise ServiceUnavailable("503 store unavailable")
            raise httpx.ReadTimeout("timed out")
        return "receipt"

    policy = RetryPolicy(multiplier=0.0, max_wait=0.0)  # no waiting, otherwise the defaults
    assert policy.retrying()(flaky) == "receipt"
    assert calls == 300


def test_retry_policy_does_not_retry_a_permanent_refusal() -> None:
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise UploadRejected("401 unknown dock token", 401)

    with pytest.raises(UploadRejected):
        RetryPolicy(multiplier=0.0, max_wait=0.0).retrying()(refused)
    assert calls == 1


def test_retry_waits_grow_but_stay_under_the_maximum() -> None:
    policy = RetryPolicy(multiplier=0.5, max_wait=30.0)
    retrying = policy.retrying()
    waits = []
    for attempt in range(1, 40):
        state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.set_exception((ServiceUnavailable, ServiceUnavailable("x"), None))
        waits.append(policy.wait_seconds(state))
    assert all(0 <= w <= 30.0 for w in waits)
    assert max(waits[20:]) > 1.0  # jittered, but no longer tiny


def test_upload_metadata_is_tus_key_base64_pairs() -> None:
    encoded = encode_metadata({"filename": "A B.MP4", "bay": "bay1"})
    assert encoded == "filename QSBCLk1QNA==,bay YmF5MQ=="


def test_receipt_header_is_read_with_or_without_padding(signer: SigningKey) -> None:
    document = receipt_for(signer, "ab" * 32, 1)
    raw = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    assert decode_receipt_header(raw) == document
    assert decode_receipt_header(raw.rstrip("=")) == document
    assert decode_receipt_header("%%%") is None
