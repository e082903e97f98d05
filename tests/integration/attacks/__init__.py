"""The service's threat model, as tests: each file is one class of attack found against a live
`bwv serve` (issue "Evidence integrity under attack"), run against the real service under
uvicorn on loopback."""
