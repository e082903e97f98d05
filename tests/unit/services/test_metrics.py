"""The metrics of one service instance: a registry each, the scrape credential's file read
strictly and compared exactly, the ledger's size read at the scrape and a scrape that still
answers when it cannot be read."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bwv.base.errors import ConfigError
from bwv.services.metrics import Metrics, load_scrape_token


def values(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_two_instances_in_one_process_count_apart() -> None:
    one, two = Metrics(lambda: 0), Metrics(lambda: 0)
    one.uploads_started.inc()
    assert values(one)["bwv_uploads_started_total"] == 1
    assert values(two)["bwv_uploads_started_total"] == 0


def test_the_ledger_size_is_read_at_each_scrape() -> None:
    size = iter([5, 9])
    metrics = Metrics(lambda: next(size))
    assert values(metrics)["bwv_ledger_leaves"] == 5
    assert values(metrics)["bwv_ledger_leaves"] == 9


def test_a_ledger_that_cannot_be_read_leaves_out_its_gauge_not_the_scrape() -> None:
    def broken() -> int:
        raise OSError("database gone")

    found = values(Metrics(broken))
    assert "bwv_ledger_leaves" not in found
    assert "bwv_uploads_started_total" in found


def test_registering_reads_no_ledger() -> None:
    def unread() -> int:
        raise AssertionError("read at registration")

    Metrics(unread)  # describe() answers without a value


def test_only_the_exact_token_is_the_scraper() -> None:
    token = secrets.token_hex(32)
    metrics = Metrics(lambda: 0, token)
    assert metrics.served
    assert metrics.is_scraper(token)
    assert not metrics.is_scraper(token[:-1])
    assert not metrics.is_scraper(token + "0")
    assert not metrics.is_scraper("")
    assert not metrics.is_scraper("\udcff" * 64)  # not UTF-8 as sent: compared, not raised


def test_without_a_token_nothing_is_the_scraper() -> None:
    metrics = Metrics(lambda: 0)
    assert not metrics.served
    assert not metrics.is_scraper("")


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_token_file_of_one_long_line_owner_only_is_read(tmp_path: Path) -> None:
    token = secrets.token_hex(32)
    assert load_scrape_token(write(tmp_path / "t", token + "\n")) == token


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    with pytest.raises(ConfigError, match="open to other users"):
        load_scrape_token(write(tmp_path / "t", secrets.token_hex(32), mode))


@pytest.mark.parametrize("text", ["short", "", "a" * 20 + " " + "b" * 20, "a" * 40 + "\x00"])
def test_a_token_too_short_or_not_one_word_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        load_scrape_token(write(tmp_path / "t", text))


def test_a_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_scrape_token(tmp_path / "absent")
