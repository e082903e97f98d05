"""Users and their tokens: a token is shown once and only its SHA-256 kept; tokens expire and end
when their user is revoked; bad names, roles and tokens are refused with one line. And the admin
commands on the server host that manage them, each recorded in the ledger without the token."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from bwv.access import AuthError, UserError, add_user, authenticate_user, issue_token, list_users
from bwv.access import revoke_user as revoke
from bwv.base.clock import MovableClock
from bwv.records.database import open_engine
from bwv.records.tables import ApiToken
from tests.support.cli import Ran, assert_one_line_error, ok, run_bwv

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TOKEN = ApiToken.__table__


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


def stored_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(TOKEN)).all()]


def test_a_token_is_kept_only_as_its_sha256(engine: Engine, clock: MovableClock) -> None:
    token = add_user(engine, "pc-1", "officer", clock())
    rows = stored_rows(engine)
    assert len(rows) == 1
    assert hashlib.sha256(token.encode()).hexdigest() in rows[0]
    assert not any(token in str(value) for value in rows[0])


def test_each_token_is_new(engine: Engine, clock: MovableClock) -> None:
    first = add_user(engine, "pc-1", "officer", clock())
    assert issue_token(engine, "pc-1", clock()) != first


def test_a_token_names_its_user_and_role_until_it_expires(
    engine: Engine, clock: MovableClock
) -> None:
    token = add_user(engine, "eo-1", "evidence-officer", clock(), days=2)
    who, expires = authenticate_user(engine, token, clock())
    assert (who.name, who.role, expires) == ("eo-1", "evidence-officer", START + timedelta(days=2))
    clock.advance(days=2, seconds=-1)
    authenticate_user(engine, token, clock())
    clock.advance(seconds=1)
    with pytest.raises(AuthError, match="token expired at 2026-03-03 09:00Z") as caught:
        authenticate_user(engine, token, clock())
    assert caught.value.name == "eo-1"


def test_revoking_a_user_ends_every_token_they_hold(engine: Engine, clock: MovableClock) -> None:
    tokens = [add_user(engine, "pc-1", "officer", clock())]
    tokens.append(issue_token(engine, "pc-1", clock()))
    assert revoke(engine, "pc-1", clock()) == 2
    for token in tokens:
        with pytest.raises(AuthError, match="token revoked"):
            authenticate_user(engine, token, clock())


def test_a_revoked_user_gets_no_new_token(engine: Engine, clock: MovableClock) -> None:
    add_user(engine, "pc-1", "officer", clock())
    revoke(engine, "pc-1", clock())
    with pytest.raises(UserError, match="revoked"):
        issue_token(engine, "pc-1", clock())


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "malformed token"),
        ("Bearer bwvu_x", "malformed token"),
        ("bwvdock_" + "A" * 43, "malformed token"),
        ("bwvu_" + "A" * 500, "malformed token"),
        ("bwvu_" + "A" * 43, "unknown token"),
    ],
)
def test_a_malformed_or_unknown_token_is_refused(
    engine: Engine, clock: MovableClock, token: str, why: str
) -> None:
    add_user(engine, "pc-1", "officer", clock())
    with pytest.raises(AuthError, match=why):
        authenticate_user(engine, token, clock())


@pytest.mark.parametrize("role", ["dock", "superuser", "Officer", ""])
def test_an_unknown_role_is_refused(engine: Engine, clock: MovableClock, role: str) -> None:
    with pytest.raises(UserError, match="unknown role"):
        add_user(engine, "pc-1", role, clock())
    assert list_users(engine, clock()) == []


@pytest.mark.parametrize("name", ["", "-pc", "pc 1", "pc/1", "../etc", "x" * 65, "pc\n1"])
def test_a_bad_name_is_refused(engine: Engine, clock: MovableClock, name: str) -> None:
    with pytest.raises(UserError, match="user name"):
        add_user(engine, name, "officer", clock())


def test_a_name_is_taken_once(engine: Engine, clock: MovableClock) -> None:
    add_user(engine, "pc-1", "officer", clock())
    with pytest.raises(UserError, match="already exists"):
        add_user(engine, "pc-1", "auditor", clock())


def test_a_user_refused_a_token_is_not_left_half_made(engine: Engine, clock: MovableClock) -> None:
    with pytest.raises(UserError, match="1 to 3660 days"):
        add_user(engine, "pc-1", "officer", clock(), days=0)
    assert list_users(engine, clock()) == []
    add_user(engine, "pc-1", "officer", clock())  # the name is still free


@pytest.mark.parametrize("days", [0, -1, 3661])
def test_a_token_lasts_one_day_to_ten_years(engine: Engine, clock: MovableClock, days: int) -> None:
    add_user(engine, "pc-1", "officer", clock())
    with pytest.raises(UserError, match="1 to 3660 days"):
        issue_token(engine, "pc-1", clock(), days)


def test_listing_counts_only_live_tokens(engine: Engine, clock: MovableClock) -> None:
    add_user(engine, "au-1", "auditor", clock(), days=1)
    issue_token(engine, "au-1", clock(), days=10)
    add_user(engine, "pc-1", "officer", clock())
    revoke(engine, "pc-1", clock())
    clock.advance(days=2)
    users = {u.name: u for u in list_users(engine, clock())}
    assert (users["au-1"].tokens, users["au-1"].disabled_at) == (1, None)
    assert users["pc-1"].tokens == 0 and users["pc-1"].disabled_at is not None


# --- the admin commands (server host) ---------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    ok(run_bwv({}, "--data-dir", str(d), "init"))
    return d


def admin(data_dir: Path, *args: str) -> Ran:
    return run_bwv({}, "--data-dir", str(data_dir), *args)


def ledger_text(data_dir: Path) -> str:
    return admin(data_dir, "audit", "log", "--json", "--last", "1000").stdout


def token_of(result: Ran) -> str:
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("token:")]
    return line.split()[1]


def test_users_add_prints_the_token_once_and_records_the_user_without_it(
    data_dir: Path,
) -> None:
    result = ok(admin(data_dir, "users", "add", "pc-1", "--role", "officer", "--days", "30"))
    token = token_of(result)
    assert token.startswith("bwvu_") and "will not be shown again" in result.stderr
    leaves = [json.loads(line) for line in ledger_text(data_dir).splitlines()]
    added = [leaf for leaf in leaves if leaf["action"] == "user.added"]
    assert [(a["details"]["user"], a["details"]["role"]) for a in added] == [("pc-1", "officer")]
    assert token not in ledger_text(data_dir)


def test_users_list_shows_role_and_live_tokens(data_dir: Path) -> None:
    ok(admin(data_dir, "users", "add", "au-1", "--role", "auditor"))
    ok(admin(data_dir, "users", "token", "au-1"))
    row = next(x for x in admin(data_dir, "users", "list").stdout.splitlines() if "au-1" in x)
    assert "auditor" in row and row.rstrip(" │").endswith("2")


def test_users_token_issues_another_token_and_records_it(data_dir: Path) -> None:
    first = token_of(ok(admin(data_dir, "users", "add", "eo-1", "--role", "evidence-officer")))
    second = token_of(ok(admin(data_dir, "users", "token", "eo-1", "--days", "7")))
    assert second != first
    log = ledger_text(data_dir)
    assert '"action":"user.token.issued"' in log.replace(" ", "") and second not in log


def test_users_revoke_ends_the_tokens_and_is_recorded(data_dir: Path) -> None:
    token = token_of(ok(admin(data_dir, "users", "add", "pc-1", "--role", "officer")))
    result = ok(admin(data_dir, "users", "revoke", "pc-1"))
    assert "pc-1 revoked (1 live token ended)" in result.stdout
    engine = open_engine(f"sqlite:///{data_dir / 'bwv.sqlite3'}")
    try:
        with pytest.raises(AuthError, match="revoked"):
            authenticate_user(engine, token, datetime.now(UTC))
        with engine.connect() as conn:
            actions = conn.execute(text("SELECT action FROM ledger_leaf")).scalars().all()
    finally:
        engine.dispose()
    assert "user.revoked" in actions


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["users", "add", "pc-1", "--role", "dock"], "unknown role 'dock'"),
        (["users", "add", "pc 1", "--role", "officer"], "user name 'pc 1'"),
        (["users", "token", "nobody"], "no user named 'nobody'"),
        (["users", "revoke", "nobody"], "no active user named 'nobody'"),
        (["users", "add", "pc-1", "--role", "officer", "--days", "0"], "1 to 3660 days"),
    ],
)
def test_a_bad_users_command_is_one_line(data_dir: Path, args: list[str], fragment: str) -> None:
    assert_one_line_error(admin(data_dir, *args), fragment)
