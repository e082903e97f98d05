"""The custody ledger: an append-only RFC 9162 Merkle log of every access to evidence."""
