"""Database roles: what the application's role may do, applied by every `vtu database upgrade`.

Two roles (README, "Database roles"):
- the **owner** (DATABASE_OWNER_URL) owns every table, sequence and function and runs the migrations;
- the **application** (DATABASE_URL) gets only what the web app, the worker and the CLI use:
  SELECT, INSERT, UPDATE on the application's tables (no DELETE, no TRUNCATE: nothing in the app deletes
  rows, except a customer's own saved beneficiaries, `DELETABLE_TABLES`); SELECT alone on the ledger
  tables and `alembic_version`; EXECUTE on the SQL functions. Money reaches
  the ledger only through `ledger_post`, and accounts only through `ledger_open_wallet` /
  `ledger_open_system_account`, which are SECURITY DEFINER (they run as the owner; app/ledger/sql/ledger.sql).
  Not being the owner, the application cannot ALTER or DISABLE TRIGGER, and not being a superuser it cannot
  SET session_replication_role; without UPDATE on ledger_accounts, setting `ledger.posting` gains it nothing.

`apply()` is the current definition of those privileges, like the SQL files are of the functions:
db/migrations/env.py runs it at the end of every upgrade, in the migration's transaction, when
DATABASE_OWNER_URL names a role other than DATABASE_URL's. It first revokes everything the application role
holds in the schema, so the result is exactly this policy whatever was granted by hand, whenever the roles
were split, and whatever tables the migrations just added. Default privileges cover tables created later by
the owner outside a migration (they get the ordinary grants; a new ledger-like table must be revoked here).

The development roles (`vtu_owner`, `vtu_app`) are created by the embedded server and the test set-up only;
in production the operator creates both and chooses their names and passwords.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from app.config.settings import Settings

# Rows the application reads but never writes itself (ledger_post and the account openers write them).
LEDGER_TABLES = ("ledger_accounts", "ledger_transactions", "ledger_entries")
READ_ONLY_TABLES = (*LEDGER_TABLES, "alembic_version")
# Rows the application adds but never changes (the audit log: append-only, app/audit/sql/audit.sql).
APPEND_ONLY_TABLES = ("audit_log",)
APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE"
# Rows a customer may remove for good (their saved numbers, app/vtu/beneficiaries.py): DELETE as well.
DELETABLE_TABLES = ("beneficiaries", "kyc_documents")

# Development and test roles (the embedded server, the test databases); never used by name in production.
DEV_OWNER_ROLE = "vtu_owner"
DEV_APP_ROLE = "vtu_app"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _existing(conn: Connection, names: tuple[str, ...]) -> list[str]:
    rows = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(:names)"),
        {"names": list(names)},
    ).scalars()
    return sorted(rows)


def _sequences_of(conn: Connection, tables: list[str]) -> list[str]:
    """Sequences behind the identity / serial columns of `tables` (only their owner's inserts use them)."""
    rows = conn.execute(
        text(
            "SELECT DISTINCT s.relname FROM pg_class s"
            " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
            " AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE s.relkind = 'S' AND n.nspname = 'public' AND t.relname = ANY(:tables)"
        ),
        {"tables": tables},
    ).scalars()
    return sorted(rows)


def statements(conn: Connection, app_role: str) -> list[str]:
    """The statements that give `app_role` exactly the application's privileges (run as the owner)."""
    role = quote_ident(app_role)
    owner = quote_ident(conn.execute(text("SELECT current_user")).scalar_one())
    read_only = _existing(conn, READ_ONLY_TABLES)
    found = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT {APP_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}",
    ]
    if read_only:
        found.append(f"REVOKE INSERT, UPDATE ON {', '.join(read_only)} FROM {role}")
        if sequences := _sequences_of(conn, read_only):
            found.append(f"REVOKE USAGE ON SEQUENCE {', '.join(sequences)} FROM {role}")
    if append_only := _existing(conn, APPEND_ONLY_TABLES):
        found.append(f"REVOKE UPDATE ON {', '.join(append_only)} FROM {role}")
    if deletable := _existing(conn, DELETABLE_TABLES):
        found.append(f"GRANT DELETE ON {', '.join(deletable)} TO {role}")
    defaults = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT"
    found += [
        f"{defaults} {APP_TABLE_PRIVILEGES} ON TABLES TO {role}",
        f"{defaults} USAGE, SELECT ON SEQUENCES TO {role}",
        f"{defaults} EXECUTE ON FUNCTIONS TO {role}",
    ]
    return found


class RoleError(RuntimeError):
    """The application role cannot be given its privileges (missing, or it is the owner itself)."""


def apply(conn: Connection, app_role: str) -> None:
    """Give `app_role` the application's privileges, inside the caller's (migration) transaction."""
    row = conn.execute(
        text(
            "SELECT r.rolsuper, pg_has_role(r.oid, current_user, 'MEMBER') AS is_owner"
            " FROM pg_roles r WHERE r.rolname = :role"
        ),
        {"role": app_role},
    ).first()
    if row is None:
        raise RoleError(
            f"the application role {app_role!r} (DATABASE_URL's user) does not exist: create it first "
            '(README, "Database roles")'
        )
    if row.rolsuper:
        raise RoleError(
            f"the application role {app_role!r} is a superuser: no privilege would hold it back "
            '(README, "Database roles")'
        )
    if row.is_owner:
        raise RoleError(
            f"the application role {app_role!r} is (a member of) the role running the migrations: it would "
            'own the ledger tables (README, "Database roles")'
        )
    for statement in statements(conn, app_role):
        conn.exec_driver_sql(statement)


# What the connected role could do to the ledger tables past the SECURITY DEFINER functions.
_CONNECTED_ROLE = text(
    """
    SELECT current_user AS role, r.rolsuper AS superuser,
           bool_or(pg_has_role(current_user, c.relowner, 'USAGE')) AS owner,
           bool_or(has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')) AS writer
    FROM pg_roles r
    JOIN pg_class c ON c.oid IN (SELECT to_regclass('public.' || t) FROM unnest(CAST(:tables AS text[])) t)
    WHERE r.rolname = current_user
    GROUP BY r.rolsuper
    """
)


async def connected_role_problems(conn: AsyncConnection) -> list[str]:
    """Why the role this connection logged in as must not run the application (empty when it may)."""
    row = (await conn.execute(_CONNECTED_ROLE, {"tables": list(LEDGER_TABLES)})).first()
    if row is None:  # not migrated yet: nothing to protect, and the app fails on its own
        return []
    if row.superuser:
        return [f"DATABASE_URL logs in as {row.role!r}, a superuser: it can switch the ledger's triggers off"]
    if row.owner:
        return [f"DATABASE_URL logs in as {row.role!r}, which owns the ledger tables"]
    if row.writer:
        return [f"DATABASE_URL's role {row.role!r} may write the ledger tables directly"]
    return []


async def check_connected_role(engine: AsyncEngine, settings: Settings) -> None:
    """At start-up of the web app and the worker in production: refuse to run as a role that could change
    the ledger past ledger_post. Outside production nothing is checked (a developer's own server may run
    everything as one role; the embedded one and the tests separate them)."""
    if not settings.is_prod:
        return
    async with engine.connect() as conn:
        problems = await connected_role_problems(conn)
    if problems:
        from app.config.settings import ConfigError

        advice = (
            "connect as the application role, and run migrations with DATABASE_OWNER_URL "
            '(README, "Database roles")'
        )
        lines = "\n".join(f"  - {p}" for p in [*problems, advice])
        raise ConfigError(f"Refusing to start (APP_ENV={settings.app_env}): fix these settings:\n{lines}")


__all__ = [
    "DELETABLE_TABLES",
    "DEV_APP_ROLE",
    "DEV_OWNER_ROLE",
    "LEDGER_TABLES",
    "READ_ONLY_TABLES",
    "RoleError",
    "apply",
    "check_connected_role",
    "connected_role_problems",
    "quote_ident",
    "statements",
]
