"""What the tests share: the real servers they start (PostgreSQL, Ceph RGW, the service under
uvicorn) and the helpers more than one test module uses, one module each:

- ``cli``: ``bwv`` as a process or through its entry point in this process; one-line errors
- ``records``, ``ledger``: clip rows and decoded ledger leaves; the keys a dock pins
- ``services``: the service's parts in this process on a real data dir, clips through finalise
- ``tus``, ``wire``: a dock's raw tus requests; raw HTTP/1.1 over TLS
- ``docks``, ``dockprocess``: the dock agent against a fake service; the agent as a process
- ``apiserver``, ``ingestserver``, ``pgserver``, ``rgwserver``: the servers; ``pgreplica``: a
  PostgreSQL primary with a synchronous standby, to fail over; ``pgproxy``: a proxy that loses
  a COMMIT's answer
- ``fixtures``: the committed inputs under fixtures/ (see fixtures/README.md)
- ``source``: which modules a Python file imports, for the layout tests
"""

from pathlib import Path

from bwv.base.files import file_sha256

# The repository's root: tests run from anywhere, and scripts/ and docs/ are found from here.
REPO = Path(__file__).resolve().parents[2]
# The log origin of the test ledgers (the first line of their checkpoints, C2SP signed note).
ORIGIN = "test.bwv.example/custody"


def sha256_of(path: Path) -> str:
    """The file's SHA-256, as the product computes it (bwv.base.files)."""
    return file_sha256(path)
