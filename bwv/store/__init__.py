"""The store of record: originals and disclosure copies, content-addressed by SHA-256,
write-once. ``open_store(url)`` picks the backend from the URL:

- ``file:///path`` -- :class:`~bwv.store.local.LocalStore` (the embedded default)
- ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=...&retention_days=N`` --
  :class:`~bwv.store.s3.S3Store` (object lock, COMPLIANCE retention)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bwv.store.base import (
    ObjectDamaged,
    ObjectMissing,
    ObjectStore,
    StoredObject,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "ObjectDamaged",
    "ObjectMissing",
    "ObjectStore",
    "StoreError",
    "StoreUnavailable",
    "StoredObject",
    "open_store",
]


def open_store(url: str) -> ObjectStore:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from bwv.store.local import LocalStore

        return LocalStore.from_url(url)
    if scheme == "s3":
        from bwv.store.s3 import S3Store

        return S3Store.from_url(url)
    raise StoreError(f"unsupported store URL {url!r}: use file:///path or s3://...")
