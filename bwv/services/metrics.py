"""Prometheus metrics of one running service: uploads started, completed and failed, clip
bytes received, how long finalisation takes, answers refused (or failed) by HTTP status, and
the ledger's size, read when scraped.

Each service instance has a registry of its own (never prometheus_client's global one: tests
start several services in one process). The metrics are served only to a scraper presenting
the token in ``BWV_METRICS_TOKEN_FILE`` (compared in constant time); with no such file set
there is no metrics endpoint at all.
"""

from __future__ import annotations

import hmac
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bwv.base.errors import ConfigError

log = logging.getLogger("bwv.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
MIN_TOKEN_CHARS = 32
# Finalisation: hashing is done as bytes arrive; what is left is the store write (a copy or a
# rename), the probe, the index row and the leaf. Seconds for small clips, minutes for a
# multi-GiB copy into S3.
FINALISE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def load_scrape_token(path: Path) -> str:
    """The scrape credential: the file's one line, at least 32 characters, readable by its
    owner alone (as the signing key). :class:`ConfigError` otherwise: the service does not
    start with a metrics token anyone on the machine could read."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read BWV_METRICS_TOKEN_FILE {path}: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"BWV_METRICS_TOKEN_FILE {path} is open to other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it"
        )
    if len(text) < MIN_TOKEN_CHARS or any(c.isspace() for c in text) or not text.isprintable():
        raise ConfigError(
            f"BWV_METRICS_TOKEN_FILE {path} must hold one token of at least {MIN_TOKEN_CHARS} "
            "printable characters without spaces (e.g. `openssl rand -hex 32`)"
        )
    return text


class _LedgerSize(Collector):
    """``bwv_ledger_leaves``: the leaves in the custody ledger, read at each scrape."""

    def __init__(self, size: Callable[[], int]) -> None:
        self.size = size

    def describe(self) -> Iterator[Metric]:  # so that registering it reads nothing
        yield GaugeMetricFamily("bwv_ledger_leaves", "Leaves in the custody ledger.")

    def collect(self) -> Iterator[Metric]:
        try:
            value = self.size()
        except Exception as exc:  # a scrape during a database outage still answers
            log.warning("ledger size not read for metrics: %s", type(exc).__name__)
            return
        yield GaugeMetricFamily("bwv_ledger_leaves", "Leaves in the custody ledger.", value=value)


class Metrics:
    """The counters of one service instance, in its own registry."""

    def __init__(self, ledger_size: Callable[[], int], token: str | None = None) -> None:
        self._token = token.encode() if token is not None else None
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.uploads_started = Counter(
            "bwv_uploads_started", "tus uploads created (POST /files/).", registry=r
        )
        self.uploads_completed = Counter(
            "bwv_uploads_completed", "Uploads finalised and receipted.", registry=r
        )
        self.uploads_failed = Counter(
            "bwv_uploads_failed", "Uploads whose finalisation failed (no receipt).", registry=r
        )
        self.bytes_received = Counter(
            "bwv_upload_bytes_received", "Clip bytes written by tus uploads.", registry=r
        )
        self.finalise_seconds = Histogram(
            "bwv_ingest_finalise_seconds",
            "Seconds from the last byte of an upload to its receipt (or failure).",
            buckets=FINALISE_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "bwv_refusals",
            "Requests answered with an error status (4xx refused, 5xx failed), by status.",
            ["status"],
            registry=r,
        )
        r.register(_LedgerSize(ledger_size))
        ProcessCollector(registry=r)  # CPU, memory, open descriptors of this process

    @property
    def served(self) -> bool:
        """Whether a scrape credential is configured (else there is no endpoint)."""
        return self._token is not None

    def is_scraper(self, token: str) -> bool:
        """Whether ``token`` is the scrape credential, compared in constant time."""
        if self._token is None:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._token)

    def refused(self, status: int) -> None:
        self.refusals.labels(str(status)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric, the ledger's size read now."""
        return generate_latest(self.registry)


def from_settings(ledger_size: Callable[[], int], token_file: Path | None) -> Metrics:
    token = load_scrape_token(token_file.expanduser()) if token_file is not None else None
    return Metrics(ledger_size, token)
