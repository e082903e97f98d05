"""Tampering with the stored ledger is detected and the first bad index is named, on SQLite and
PostgreSQL. Each test drops the append-only trigger first, as an attacker with raw SQL would."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, text

from bwv.base.errors import BundleError
from bwv.custody import merkle
from bwv.custody.bundle import make_bundle, verify_bundle
from bwv.custody.leaf import Event
from bwv.custody.ledger import Ledger
from bwv.custody.note import Checkpoint, sign_note
from bwv.custody.verify import LedgerReport, verify_ledger
from bwv.keys import Keyring, SigningKey
from tests.support import ORIGIN


@pytest.fixture
def full_ledger(ledger: Ledger, keyring: Keyring) -> Ledger:
    for n in range(50):
        ledger.append(
            Event(
                actor=f"officer-{n}",
                role="evidence-officer",
                action="clip.viewed",
                target=f"EV-{n % 5}",
                reason="case 1234",
            )
        )
    ledger.checkpoint()
    assert verify_ledger(ledger.engine, keyring, ORIGIN).ok
    return ledger


def _unprotect(conn: Connection, table: str) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"DROP TRIGGER {table}_no_update"))
        conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
    else:
        conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))


def _verify(ledger: Ledger, keyring: Keyring) -> LedgerReport:
    report = verify_ledger(ledger.engine, keyring, ORIGIN)
    assert not report.ok
    return report


def _body(conn: Connection, seq: int) -> bytes:
    return bytes(
        conn.execute(text("SELECT body FROM ledger_leaf WHERE seq = :s"), {"s": seq}).scalar_one()
    )


def test_edited_leaf_is_named(full_ledger: Ledger, keyring: Keyring) -> None:
    with full_ledger.engine.begin() as conn:
        _unprotect(conn, "ledger_leaf")
        body = _body(conn, 17).replace(b"case 1234", b"case 9999")
        conn.execute(text("UPDATE ledger_leaf SET body = :b WHERE seq = 17"), {"b": body})
    first = _verify(full_ledger, keyring).first
    assert first is not None and first.index == 17
    assert "leaf 17" in first.message and "edited" in first.message


def test_leaf_edited_with_its_hash_is_caught_by_the_nodes_and_checkpoints(
    full_ledger: Ledger, keyring: Keyring
) -> None:
    with full_ledger.engine.begin() as conn:
        _unprotect(conn, "ledger_leaf")
        body = _body(conn, 17).replace(b"case 1234", b"case 9999")
        conn.execute(
            text("UPDATE ledger_leaf SET body = :b, leaf_hash = :h WHERE seq = 17"),
            {"b": body, "h": merkle.leaf_hash(body)},
        )
    report = _verify(full_ledger, keyring)
    assert report.first is not None and report.first.message.startswith(
        "stored Merkle node over leaves 16..17"
    )
    assert any("a leaf in 10..19 was changed" in f.message for f in report.findings)


def test_deleted_row_is_named(full_ledger: Ledger, keyring: Keyring) -> None:
    with full_ledger.engine.begin() as conn:
        _unprotect(conn, "ledger_leaf")
        conn.execute(text("DELETE FROM ledger_leaf WHERE seq = 23"))
    first = _verify(full_ledger, keyring).first
    assert first is not None and first.index == 23
    assert "leaf 23 missing" in first.message


def test_swapped_rows_are_named(full_ledger: Ledger, keyring: Keyring) -> None:
    with full_ledger.engine.begin() as conn:
        _unprotect(conn, "ledger_leaf")
        conn.execute(text("UPDATE ledger_leaf SET seq = -1 WHERE seq = 12"))
        conn.execute(text("UPDATE ledger_leaf SET seq = 12 WHERE seq = 31"))
        conn.execute(text("UPDATE ledger_leaf SET seq = 31 WHERE seq = -1"))
    report = _verify(full_ledger, keyring)
    assert report.first is not None and report.first.index == 12
    assert {f.index for f in report.findings if f.rank == 0} == {12, 31}


def test_truncated_tail_is_named(full_ledger: Ledger, keyring: Keyring) -> None:
    with full_ledger.engine.begin() as conn:
        _unprotect(conn, "ledger_leaf")
        _unprotect(conn, "merkle_node")
        conn.execute(text("DELETE FROM ledger_leaf WHERE seq >= 40"))
        conn.execute(text("DELETE FROM merkle_node WHERE (idx + 1) * power(2, level) > 40"))
    first = _verify(full_ledger, keyring).first
    assert first is not None and first.index == 40
    assert "tail truncated" in first.message and "leaves 40..49" in first.message


def test_checkpoint_forged_with_another_key_is_named(full_ledger: Ledger, keyring: Keyring) -> None:
    forger = SigningKey(ORIGIN, Ed25519PrivateKey.generate())
    fake_root = merkle.leaf_hash(b"history as the forger would like it")
    note = sign_note(Checkpoint(ORIGIN, 50, fake_root).body(), [forger])
    with full_ledger.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_checkpoint (tree_size, root, note, issued_at) "
                "VALUES (50, :r, :n, CURRENT_TIMESTAMP)"
            ),
            {"r": fake_root, "n": note},
        )
    first = _verify(full_ledger, keyring).first
    assert first is not None and first.index == 50
    assert "(tree size 50)" in first.message and "not signed by any trusted key" in first.message


def test_flipped_bit_in_a_bundle_proof_is_named(full_ledger: Ledger, keyring: Keyring) -> None:
    bundle = make_bundle(full_ledger, "EV-2", keyring)
    verify_bundle(bundle, keyring)
    entry = bundle["leaves"][3]
    proof = bytearray(__import__("base64").b64decode(entry["inclusion_proof"][2]))
    proof[5] ^= 0x10
    entry["inclusion_proof"][2] = __import__("base64").b64encode(bytes(proof)).decode()
    with pytest.raises(BundleError, match=f"leaf {entry['index']}: inclusion proof"):
        verify_bundle(bundle, keyring)


def test_bundle_leaf_that_cannot_be_canonical_json_is_refused(
    full_ledger: Ledger, keyring: Keyring
) -> None:
    bundle = make_bundle(full_ledger, "EV-2", keyring)
    bundle["leaves"][0]["leaf"] = bundle["leaves"][0]["leaf"].replace('"v":1', '"v":NaN')
    with pytest.raises(BundleError, match="cannot be canonical JSON"):
        verify_bundle(bundle, keyring)


def test_bundle_index_must_be_an_integer(full_ledger: Ledger, keyring: Keyring) -> None:
    bundle = make_bundle(full_ledger, "EV-1", keyring)
    bundle["leaves"][0]["index"] = True
    with pytest.raises(BundleError, match="malformed"):
        verify_bundle(bundle, keyring)
