"""Which pg_dump / pg_restore `vtu backup` picks for a server version (app/core/backup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.backup import BackupError, Client, Database, choose_client

FOUND = [Client(Path("/usr/lib/postgresql/15/bin/pg_dump"), 15), Client(Path("/embedded/bin/pg_dump"), 18)]


def test_the_same_version_as_the_server_wins_then_the_next_newer() -> None:
    assert choose_client("pg_dump", FOUND, 15, []).major == 15
    assert choose_client("pg_dump", FOUND, 16, []).major == 18
    assert choose_client("pg_dump", FOUND, 14, []).major == 15


def test_a_server_newer_than_every_client_is_refused_by_name() -> None:
    with pytest.raises(
        BackupError, match="server runs PostgreSQL 19 but the newest pg_dump found is version 18"
    ):
        choose_client("pg_dump", FOUND, 19, [])


def test_no_client_says_where_it_looked_and_what_to_install() -> None:
    with pytest.raises(BackupError, match=r"pg_restore not found \(looked in /x/bin\).*postgresql-client-15"):
        choose_client("pg_restore", [], 15, [Path("/x/bin")])


def test_the_password_stays_off_the_command_line() -> None:
    db = Database.from_url("postgresql+asyncpg://owner:s3cret@db.internal:5432/vtu")
    assert db.libpq_url == "postgresql://owner@db.internal:5432/vtu" and "s3cret" not in db.shown
    assert db.env()["PGPASSWORD"] == "s3cret" and db.name == "vtu"
    with pytest.raises(BackupError, match="postgresql://user:password@host:5432/dbname"):
        Database.from_url("redis://localhost:6379/0")
