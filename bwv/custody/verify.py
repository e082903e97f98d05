"""Full audit of a ledger: recompute the tree from the leaves and hold it against every signed
checkpoint, trusting nothing the database says about hashes.

What is checked, in order of how precisely a failure names the bad leaf:

1. each leaf's bytes hash to the hash recorded for it, and say the sequence number they sit at;
   no sequence number is missing;
2. every stored Merkle node (which proofs are served from) equals the recomputed one;
3. every checkpoint is signed by a key in the keyring, for this log's origin, matches the tree
   recomputed from the leaves at its size, and is consistent with the next (RFC 9162 §2.1.4);
   no checkpoint commits to more leaves than the ledger holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.pool import PoolProxiedConnection

from bwv.base.errors import BwvError, ProofError
from bwv.custody import merkle
from bwv.custody.leaf import sequence_marker
from bwv.custody.note import Checkpoint, open_checkpoint
from bwv.keys import Keyring

Progress = Callable[[int, int], None]
# A row as the DB-API driver hands it back: values not yet typed (a tampered table may hold
# text where bytes belong, which is what this module looks for).
_Row = Sequence[Any]

# How precisely a finding locates the damage: a leaf, a proof node, or only a checkpoint.
LEAF, NODE, CHECKPOINT = 0, 1, 2

_BATCH = 20_000


@dataclass(frozen=True)
class Finding:
    rank: int
    index: int | None
    message: str


@dataclass
class LedgerReport:
    size: int = 0
    checkpoints: int = 0
    nodes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The most precise, earliest finding: what an auditor should look at first."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.rank, -1 if f.index is None else f.index))


def verify_ledger(
    engine: Engine, keyring: Keyring, origin: str, progress: Progress | None = None
) -> LedgerReport:
    report = LedgerReport()
    raw = engine.raw_connection()  # plain DB-API: a million rows through the ORM layer is slow
    try:
        cur = raw.cursor()
        total = _scalar(cur, "SELECT count(*) FROM ledger_leaf") or 0
        cur.execute("SELECT id, tree_size, root, note FROM ledger_checkpoint ORDER BY id")
        checkpoint_rows = cur.fetchall()
        cur.close()
        hashes = _check_leaves(
            _stream(raw, "SELECT seq, leaf_hash, body FROM ledger_leaf ORDER BY seq"),
            total,
            report.findings,
            progress,
        )
        report.size = len(hashes)
        levels = merkle.tree_levels(hashes) if hashes else [[]]
        del hashes
        report.nodes = _check_nodes(raw, levels, report.findings)
    finally:
        raw.close()
    report.checkpoints = len(checkpoint_rows)
    _check_checkpoints(checkpoint_rows, levels, report.size, keyring, origin, report.findings)
    return report


def _stream(raw: PoolProxiedConnection, query: str) -> Iterator[list[_Row]]:
    """Rows in batches, without holding a million of them at once (server-side on PostgreSQL)."""
    driver = raw.driver_connection
    if _is_postgres(raw):  # a server-side cursor, in binary: bytea as text is twice the bytes
        assert driver is not None  # an open connection has its driver's
        cur = driver.cursor(name="bwv_verify", binary=True)
    else:
        cur = raw.cursor()
    try:
        cur.execute(query)
        while rows := cur.fetchmany(_BATCH):
            yield rows
    finally:
        cur.close()


def _is_postgres(raw: PoolProxiedConnection) -> bool:
    return type(raw.driver_connection).__module__.startswith("psycopg")


def _check_leaves(
    batches: Iterable[list[_Row]],
    total: int,
    findings: list[Finding],
    progress: Progress | None,
) -> list[bytes]:
    """Recompute every leaf hash; note edited, moved and missing leaves."""
    add = findings.append
    hashes: list[bytes] = []
    sha256 = hashlib.sha256
    expected = 0
    for rows in batches:
        seqs = [r[0] for r in rows]
        bodies = [r[2] for r in rows]
        if not all(type(b) is bytes for b in bodies):
            bodies = [_blob(b) for b in bodies]  # rewritten as text by raw SQL, or a memoryview
        computed = [sha256(b"\x00" + b).digest() for b in bodies]
        if seqs[0] != expected or seqs[-1] != expected + len(rows) - 1:
            for seq in seqs:
                if seq != expected:
                    add(Finding(LEAF, expected, _gap(expected, seq)))
                expected = seq + 1
        else:
            expected += len(rows)
        if computed != [r[1] for r in rows]:
            for seq, c, r in zip(seqs, computed, rows, strict=True):
                if c != _blob(r[1]):
                    add(
                        Finding(
                            LEAF,
                            seq,
                            f"leaf {seq}: its content does not match the hash "
                            "recorded when it was appended (edited afterwards)",
                        )
                    )
        for seq, body in zip(seqs, bodies, strict=True):
            if sequence_marker(seq) not in body:
                add(
                    Finding(
                        LEAF,
                        seq,
                        f"leaf {seq}: holds an entry written for another position "
                        "(rows moved or swapped)",
                    )
                )
        hashes.extend(computed)
        if progress:
            progress(len(hashes), total)
    return hashes


def _blob(value: object) -> bytes:
    """A stored hash or leaf as bytes, even if raw SQL rewrote it as text."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()  # a number or NULL written over it: hashes to nothing recorded


def _gap(expected: int, seq: int) -> str:
    if seq > expected:
        span = f"leaf {expected}" if seq == expected + 1 else f"leaves {expected}..{seq - 1}"
        return f"{span} missing: the sequence jumps from {expected - 1} to {seq}"
    return f"leaf {seq} appears twice"


def _check_nodes(
    raw: PoolProxiedConnection, levels: list[list[bytes]], findings: list[Finding]
) -> int:
    """Hold every stored node against the recomputed tree; report the lowest mismatch only
    (every node above a bad one differs too, and says less about where the damage is)."""
    seen = 0
    reported = len(findings)
    for level in range(1, max(len(levels), _max_level(raw) + 1)):
        want = levels[level] if level < len(levels) else []
        idxs: list[int] = []
        stored: list[bytes] = []
        for rows in _stream(
            raw, f"SELECT idx, hash FROM merkle_node WHERE level = {level} ORDER BY idx"
        ):
            idxs.extend(r[0] for r in rows)
            stored.extend(_blob(r[1]) for r in rows)
        seen += len(idxs)
        if len(findings) > reported or (stored == want and idxs == list(range(len(want)))):
            continue
        for i in range(max(len(want), len(idxs))):
            if i >= len(idxs) or idxs[i] != i:
                missing = i if i >= len(idxs) else min(i, idxs[i])
                what = "missing" if i >= len(idxs) or idxs[i] > i else "duplicated"
                first = missing << level
                findings.append(
                    Finding(
                        NODE,
                        first,
                        f"stored Merkle node over leaves {first}.."
                        f"{((missing + 1) << level) - 1} is {what}",
                    )
                )
                break
            if i >= len(want):
                findings.append(
                    Finding(
                        NODE,
                        i << level,
                        f"stored Merkle node ({level}, {i}) covers leaves the ledger does not hold",
                    )
                )
                break
            if stored[i] != want[i]:
                first, last = i << level, ((i + 1) << level) - 1
                findings.append(
                    Finding(
                        NODE,
                        first,
                        f"stored Merkle node over leaves {first}.."
                        f"{last} does not match those leaves: proofs served for "
                        "them are wrong",
                    )
                )
                break
    return seen


def _max_level(raw: PoolProxiedConnection) -> int:
    cur = raw.cursor()
    value = _scalar(cur, "SELECT max(level) FROM merkle_node")
    cur.close()
    return value or 0


def _scalar(cur: DBAPICursor, query: str) -> int | None:
    """The one value an aggregate query answers."""
    cur.execute(query)
    row = cur.fetchone()
    assert row is not None  # an aggregate answers one row
    value: int | None = row[0]
    return value


def _check_checkpoints(
    rows: Sequence[_Row],
    levels: list[list[bytes]],
    size: int,
    keyring: Keyring,
    origin: str,
    findings: list[Finding],
) -> None:
    add = findings.append
    get = merkle.levels_lookup(levels)
    previous: Checkpoint | None = None
    for row_id, tree_size, root, note in rows:
        name = f"checkpoint #{row_id} (tree size {tree_size})"
        try:
            checkpoint = open_checkpoint(note, keyring, origin)
        except BwvError as exc:
            add(Finding(CHECKPOINT, tree_size, f"{name}: {exc.diagnosis}"))
            continue
        if checkpoint.size != tree_size or checkpoint.root != _blob(root):
            add(
                Finding(
                    CHECKPOINT,
                    min(tree_size, checkpoint.size),
                    f"{name}: the indexed size/root differ from the signed note",
                )
            )
        if checkpoint.size > size:
            add(
                Finding(
                    LEAF,
                    size,
                    f"the ledger ends at leaf {size - 1} but {name} is signed "
                    f"for {checkpoint.size} leaves: leaves {size}.."
                    f"{checkpoint.size - 1} are missing (tail truncated)",
                )
            )
            continue
        if checkpoint.size and merkle.root_hash(get, checkpoint.size) != checkpoint.root:
            since = previous.size if previous else 0
            add(
                Finding(
                    CHECKPOINT,
                    since,
                    f"{name}: the leaves do not hash to its signed root; "
                    f"a leaf in {since}..{checkpoint.size - 1} was changed",
                )
            )
            continue
        if previous is not None:
            try:
                if previous.size:
                    proof = merkle.consistency_path(get, previous.size, checkpoint.size)
                    merkle.verify_consistency(
                        previous.size, checkpoint.size, proof, previous.root, checkpoint.root
                    )
                elif checkpoint.size < previous.size:
                    raise ProofError("tree size went down")
            except ProofError as exc:
                add(
                    Finding(
                        CHECKPOINT,
                        previous.size,
                        f"{name} is not consistent with the checkpoint before it: {exc.diagnosis}",
                    )
                )
        previous = checkpoint
