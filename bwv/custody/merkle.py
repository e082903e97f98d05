"""Merkle tree hashing and proofs, RFC 9162 §2.1.

Hashes: a leaf is ``SHA-256(0x00 || leaf)``, an interior node ``SHA-256(0x01 || left || right)``
(§2.1.1). Proof *generation* works from a lookup of complete, aligned subtree hashes
``(level, index)`` -- the hash of leaves ``[index << level, (index + 1) << level)`` -- so a log that
stores those nodes answers a proof with O(log n) lookups instead of recomputing the tree.
Proof *verification* (§2.1.3.2, §2.1.4.2) needs nothing but the inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from bwv.base.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
NodeLookup = Callable[[int, int], bytes]


def leaf_hash(leaf: bytes) -> bytes:
    """MTH of a one-leaf tree: ``SHA-256(0x00 || leaf)`` (§2.1.1)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: ``SHA-256(0x01 || left || right)`` (§2.1.1)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): the k of §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_complete(start: int, end: int) -> bool:
    n = end - start
    return n > 0 and n & (n - 1) == 0 and start % n == 0


def subtree_hash(get: NodeLookup, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from stored complete subtrees."""
    if _is_complete(start, end):
        level = (end - start).bit_length() - 1
        return get(level, start >> level)
    k = _split(end - start)
    return node_hash(subtree_hash(get, start, start + k), subtree_hash(get, start + k, end))


def root_hash(get: NodeLookup, size: int) -> bytes:
    """The root of the tree of the first ``size`` leaves."""
    return EMPTY_ROOT if size == 0 else subtree_hash(get, 0, size)


def inclusion_path(get: NodeLookup, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.3.1."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")

    def path(m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, start, start + k), subtree_hash(get, start + k, end)]
        return [*path(m - k, start + k, end), subtree_hash(get, start, start + k)]

    return path(index, 0, size)


def consistency_path(get: NodeLookup, size1: int, size2: int) -> list[bytes]:
    """PROOF(m, D[n]) of §2.1.4.1; empty when the sizes are equal."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from tree size {size1} to {size2}")

    def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [subtree_hash(get, start, end)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, start, start + k, whole), subtree_hash(get, start + k, end)]
        return [*subproof(m - k, start + k, end, False), subtree_hash(get, start, start + k)]

    return subproof(size1, 0, size2, True)


def nodes_needed(compute: Callable[[NodeLookup], object]) -> set[NodeKey]:
    """The node keys ``compute`` will look up, found by a dry run with placeholder hashes.

    Lets a store fetch every node a proof needs in one query before computing it for real.
    """
    seen: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return bytes(HASH_SIZE)

    compute(record)
    return seen


def frontier(size: int) -> list[NodeKey]:
    """The complete subtrees that make up a tree of ``size`` leaves, largest first.

    These are the only stored nodes an append needs: every new node's left sibling is one of them.
    """
    keys = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, (size >> level) - 1))
    return keys


def append_nodes(
    first_index: int, leaf_hashes: Sequence[bytes], known: dict[NodeKey, bytes]
) -> dict[NodeKey, bytes]:
    """The interior nodes completed by appending ``leaf_hashes`` at ``first_index``.

    ``known`` must hold the frontier of ``first_index`` (level 0 included); it is extended in
    place with the new leaves and returned nodes, so it can be reused for the next batch.
    """
    new: dict[NodeKey, bytes] = {}
    for offset, h in enumerate(leaf_hashes):
        index = first_index + offset
        known[(0, index)] = h
        level, node = 0, h
        while index & 1:
            node = node_hash(known[(level, index - 1)], node)
            level, index = level + 1, index >> 1
            known[(level, index)] = node
            new[(level, index)] = node
    return new


def tree_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every complete node of the tree, level by level (level 0 is the leaf hashes)."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


def levels_lookup(levels: Sequence[Sequence[bytes]]) -> NodeLookup:
    return lambda level, index: levels[level][index]


# --- verification ------------------------------------------------------------------------------


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, not a {HASH_SIZE}-byte SHA-256 hash")


def _check_path(proof: Iterable[bytes]) -> list[bytes]:
    proof = list(proof)
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with ``leaf_hash`` is at ``index`` in the tree with ``root``.

    RFC 9162 §2.1.3.2. Returns None on success; raises :class:`ProofError` saying why otherwise.
    """
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    proof = _check_path(proof)
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof for leaf {index} is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof for leaf {index} is shorter than the tree needs")
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} leads to root {r.hex()[:16]}..., "
            f"not the checkpoint's {root.hex()[:16]}..."
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1).

    RFC 9162 §2.1.4.2. A proof from size 0 is refused: it would prove nothing. Equal sizes need
    an empty proof and equal roots. Raises :class:`ProofError` on failure.
    """
    if size1 > size2:
        raise ProofError(f"tree size went down from {size1} to {size2}: not an extension")
    if size1 == 0:
        raise ProofError("a consistency proof from an empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError(f"trees of equal size {size1} need an empty consistency proof")
        if root1 != root2:
            raise ProofError(f"two different roots for the same tree size {size1}: a fork")
        return
    _check_hash("first root", root1)
    _check_hash("second root", root2)
    path = _check_path(proof)
    if not path:
        raise ProofError(f"empty consistency proof from size {size1} to {size2}")
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof {size1}->{size2} is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof {size1}->{size2} is shorter than the trees need")
    if fr != root1:
        raise ProofError(
            f"consistency proof does not lead to the tree of size {size1}: history was rewritten"
        )
    if sr != root2:
        raise ProofError(
            f"consistency proof does not lead to the tree of size {size2}: not an extension"
        )
