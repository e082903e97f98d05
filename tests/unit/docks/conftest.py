"""The fake ingest service each dock agent test speaks to."""

from __future__ import annotations

import pytest

from bwv.keys import SigningKey
from tests.support.docks import FakeService


@pytest.fixture
def service(signer: SigningKey) -> FakeService:
    return FakeService(signer)
