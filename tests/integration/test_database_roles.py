"""The database roles (README, "Database roles"; app/core/roles.py): every upgrade gives the application role
exactly its privileges, and production refuses to run as a role that could write the ledger directly.
What the application role is refused is proven in test_ledger_database_rules.py."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from app.config.settings import ConfigError
from app.core import roles
from app.core.roles import DEV_APP_ROLE, check_connected_role, connected_role_problems


async def _privileges(conn, table: str) -> set[str]:
    checks = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    row = (
        await conn.execute(
            text(
                "SELECT "
                + ", ".join(f"has_table_privilege(:role, :table, '{p}') AS {p.lower()}" for p in checks)
            ),
            {"role": DEV_APP_ROLE, "table": table},
        )
    ).one()
    return {p for p in checks if getattr(row, p.lower())}


async def test_an_upgrade_resets_the_app_role_to_exactly_its_privileges(owner_engine):
    """Whatever was granted by hand (or before the roles were split) is taken back by the next upgrade."""
    async with owner_engine.connect() as conn:
        await conn.execute(text(f"GRANT ALL ON ledger_entries, users TO {DEV_APP_ROLE}"))
        assert await _privileges(conn, "ledger_entries") >= {"INSERT", "DELETE"}
        await conn.run_sync(roles.apply, DEV_APP_ROLE)  # what db/migrations/env.py runs after migrating
        assert await _privileges(conn, "ledger_entries") == {"SELECT"}
        assert await _privileges(conn, "users") == {"SELECT", "INSERT", "UPDATE"}
        # ... and DELETE only where a customer removes their own rows (saved numbers)
        assert await _privileges(conn, "beneficiaries") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
        # A table the owner creates later gets the ordinary grants (default privileges) ...
        await conn.execute(text("CREATE TABLE roles_probe (id int)"))
        assert await _privileges(conn, "roles_probe") == {"SELECT", "INSERT", "UPDATE"}
        await conn.rollback()


async def test_privileges_are_never_given_to_a_superuser_or_the_owner_itself(owner_engine, superuser_engine):
    async with superuser_engine.connect() as conn:
        superuser = (await conn.execute(text("SELECT current_user"))).scalar_one()
    async with owner_engine.connect() as conn:
        owner = (await conn.execute(text("SELECT current_user"))).scalar_one()
        for role, expected in (
            (superuser, "superuser"),
            (owner, "owner"),
            ("no_such_role_x", "does not exist"),
        ):
            with pytest.raises(roles.RoleError, match=expected):
                await conn.run_sync(roles.apply, role)
        await conn.rollback()


async def test_production_refuses_a_role_that_could_write_the_ledger(
    settings, engine, owner_engine, superuser_engine
):
    prod = dataclasses.replace(settings, app_env="prod")
    async with engine.connect() as conn:
        assert await connected_role_problems(conn) == []
    await check_connected_role(engine, prod)  # the application role: starts
    for other, expected in ((owner_engine, "owns the ledger tables"), (superuser_engine, "a superuser")):
        with pytest.raises(ConfigError) as caught:
            await check_connected_role(other, prod)
        message = str(caught.value)
        assert message.startswith("Refusing to start (APP_ENV=prod)") and expected in message
        assert "DATABASE_OWNER_URL" in message
        await check_connected_role(other, settings)  # outside prod: not checked
