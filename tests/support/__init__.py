"""What the tests share: the real servers they start (PostgreSQL, Ceph RGW, the service under
uvicorn) and the helpers more than one test module uses."""

from pathlib import Path

# The repository's root: tests run from anywhere, and scripts/ and docs/ are found from here.
REPO = Path(__file__).resolve().parents[2]
