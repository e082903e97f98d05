"""The ingest service: tus 1.0 uploads from docks, verified, stored write-once, indexed,
recorded in the custody ledger and answered with a signed receipt (docs/INGEST.md)."""
