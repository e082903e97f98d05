"""Bearer tokens, for users and docks alike: one scheme.

A token is its kind's prefix and 32 random bytes (URL-safe base64), shown once; the service
keeps only the hex SHA-256 of the whole text. A token has full entropy, so a slow password hash
would add nothing but latency to every request (and the stored hashes of databases made before
this module stay valid: same function, same format). The prefix says what a token is for
before any database is read: a user's (``bwvu_``) or a dock's (``bwvdock_``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum


class TokenKind(StrEnum):
    """Who a token is for, spelled as the prefix it starts with."""

    USER = "bwvu_"
    DOCK = "bwvdock_"


def mint(kind: TokenKind) -> str:
    """A new token of ``kind``: the only time it exists in clear."""
    return kind.value + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token: the hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` is the one whose hash was stored, compared in constant time."""
    return hmac.compare_digest(token_hash(token), stored_hash)


def kind_of(token: str) -> TokenKind | None:
    """The kind a token's prefix names; None for text that is no bwv token."""
    for kind in TokenKind:
        if token.startswith(kind.value):
            return kind
    return None
