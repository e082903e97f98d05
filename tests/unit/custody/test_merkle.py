"""RFC 9162 §2.1 hashing and proofs: known answers, the transparency-dev vectors, and
generated proofs checked against their verifiers."""

from __future__ import annotations

import base64
import json
import os
import warnings
from pathlib import Path

import pytest

from bwv.base.errors import ProofError
from bwv.custody import merkle
from bwv.custody.merkle import verify_consistency, verify_inclusion
from tests.support import REPO

# The RFC 6962 reference tree (certificate-transparency's merkle tree tests): 8 leaves.
LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}
INCLUSION = {  # (index, size): path
    (0, 8): ["96a2", "5f08", "6b47"],
    (5, 8): ["bc1a", "ca85", ROOTS[4]],
    (2, 3): [ROOTS[2]],
    (1, 5): [ROOTS[1], "5f08", "bc1a"],
}
CONSISTENCY = {
    (6, 8): ["0ebc", "ca85", ROOTS[4]],
    (2, 5): ["5f08", "bc1a"],
    (1, 8): ["96a2", "5f08", "6b47"],
}


def _h(name: str) -> bytes:
    return bytes.fromhex(H.get(name, name))


@pytest.fixture(scope="module")
def reference_tree() -> merkle.NodeLookup:
    return merkle.levels_lookup(merkle.tree_levels([merkle.leaf_hash(x) for x in LEAVES]))


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_reference_roots(reference_tree: merkle.NodeLookup, size: int) -> None:
    assert merkle.root_hash(reference_tree, size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_reference_inclusion_proofs(
    reference_tree: merkle.NodeLookup, index: int, size: int
) -> None:
    expected = [_h(n) for n in INCLUSION[(index, size)]]
    assert merkle.inclusion_path(reference_tree, index, size) == expected
    verify_inclusion(
        merkle.leaf_hash(LEAVES[index]), index, size, expected, bytes.fromhex(ROOTS[size])
    )


@pytest.mark.parametrize(("size1", "size2"), sorted(CONSISTENCY))
def test_reference_consistency_proofs(
    reference_tree: merkle.NodeLookup, size1: int, size2: int
) -> None:
    expected = [_h(n) for n in CONSISTENCY[(size1, size2)]]
    assert merkle.consistency_path(reference_tree, size1, size2) == expected
    verify_consistency(
        size1, size2, expected, bytes.fromhex(ROOTS[size1]), bytes.fromhex(ROOTS[size2])
    )


def test_every_generated_proof_verifies_and_every_flipped_bit_fails() -> None:
    for size in range(1, 34):
        hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
        get = merkle.levels_lookup(merkle.tree_levels(hashes))
        root = merkle.root_hash(get, size)
        for index in range(size):
            proof = merkle.inclusion_path(get, index, size)
            verify_inclusion(hashes[index], index, size, proof, root)
            for n in range(len(proof)):
                bad = [*proof]
                bad[n] = bytes([bad[n][0] ^ 1]) + bad[n][1:]
                with pytest.raises(ProofError):
                    verify_inclusion(hashes[index], index, size, bad, root)
        for size1 in range(1, size + 1):
            proof = merkle.consistency_path(get, size1, size)
            verify_consistency(size1, size, proof, merkle.root_hash(get, size1), root)


def test_inclusion_refuses_wrong_index() -> None:
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(7)]
    get = merkle.levels_lookup(merkle.tree_levels(hashes))
    proof = merkle.inclusion_path(get, 3, 7)
    with pytest.raises(ProofError):
        verify_inclusion(hashes[3], 4, 7, proof, merkle.root_hash(get, 7))


def test_inclusion_refuses_short_hashes() -> None:
    with pytest.raises(ProofError, match="not a 32-byte"):
        verify_inclusion(b"\x00" * 31, 0, 1, [], b"\x00" * 32)


def test_consistency_from_empty_tree_is_refused() -> None:
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 1, [], merkle.EMPTY_ROOT, ROOTS[1].encode())


def test_stored_nodes_match_a_tree_built_in_one_go() -> None:
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(45)]
    stored: dict[merkle.NodeKey, bytes] = {}
    known: dict[merkle.NodeKey, bytes] = {}
    for start, end in ((0, 1), (1, 13), (13, 32), (32, 45)):  # batches of different sizes
        frontier = {k: known[k] for k in merkle.frontier(start)}
        stored.update(merkle.append_nodes(start, hashes[start:end], frontier))
        known.update(frontier)
    levels = merkle.tree_levels(hashes)
    assert stored == {(lv, i): h for lv in range(1, len(levels)) for i, h in enumerate(levels[lv])}


# --- transparency-dev/merkle test vectors (../shared/vectors/merkle) ---------------------------

VECTORS = Path(os.environ.get("BWV_MERKLE_VECTORS", REPO.parent / "shared" / "vectors" / "merkle"))


def _vectors(kind: str) -> list[Path]:
    found = sorted((VECTORS / kind).glob("**/*.json"))
    if not found:
        warnings.warn(
            f"no Merkle test vectors at {VECTORS / kind}: vector cases skipped", stacklevel=1
        )
    return found


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize(
    "path", _vectors("inclusion") or [None], ids=lambda p: p and f"{p.parent.name}/{p.stem}"
)
def test_inclusion_vector(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"Merkle test vectors not found at {VECTORS}")
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "path", _vectors("consistency") or [None], ids=lambda p: p and f"{p.parent.name}/{p.stem}"
)
def test_consistency_vector(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"Merkle test vectors not found at {VECTORS}")
    case = json.loads(path.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_vector_count_when_present() -> None:
    if not VECTORS.exists():
        pytest.skip(f"Merkle test vectors not found at {VECTORS}")
    count = len(_vectors("inclusion")) + len(_vectors("consistency"))
    assert count >= 184
