"""The SQL functions and triggers, read from their readable files (`app/<domain>/sql/*.sql`), which are the
current definition of each. Migrations apply them; nothing in Python keeps a copy of their rules.

- `drift(connection)`: which objects in a database differ from the files. It installs every file's
  definition inside a savepoint, compares PostgreSQL's own rendering (`pg_get_functiondef`,
  `pg_get_triggerdef`) before and after, and rolls back, so formatting and comments never count, only
  behaviour. The test suite asserts that a database built by the migrations has no drift.
- `unlisted(connection)`: functions and triggers in the database that no file describes.
- Alembic: `register_autogenerate()` (called by db/migrations/env.py) makes `just makemigration` write a
  migration for every edited file: its upgrade runs the file's new text, its downgrade the definition the
  database had, both copied into the migration, so old migrations stay reproducible.

How to change a function: docs/architecture.md, "Where SQL lives".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

APP_DIR = Path(__file__).resolve().parents[1]
# In dependency order: later files call or trigger what earlier ones define.
SQL_FILES = (
    APP_DIR / "ledger" / "sql" / "ledger.sql",
    APP_DIR / "ledger" / "sql" / "adjustments.sql",
    APP_DIR / "payments" / "sql" / "funding.sql",
    APP_DIR / "vtu" / "sql" / "purchases.sql",
    APP_DIR / "referrals" / "sql" / "referrals.sql",
    APP_DIR / "audit" / "sql" / "audit.sql",
)

_FUNCTION = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:public\.)?(\w+)\s*\(", re.I)
_TRIGGER = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+(\w+)\s.*?\sON\s+(?:public\.)?(\w+)\s",
    re.I | re.S,
)


@dataclass(frozen=True, slots=True)
class SqlObject:
    kind: str  # "function" | "trigger"
    name: str
    table: str  # the trigger's table ("" for functions)
    sql: str  # the statement as written in the file, without the final semicolon
    source: Path

    @property
    def key(self) -> str:
        return f"trigger {self.name} ON {self.table}" if self.kind == "trigger" else f"function {self.name}"

    def install(self) -> list[str]:
        """Statements that make the database match this definition."""
        if self.kind == "trigger":
            return [f"DROP TRIGGER IF EXISTS {self.name} ON {self.table}", self.sql]
        return [
            re.sub(
                r"^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION",
                "CREATE OR REPLACE FUNCTION",
                self.sql,
                count=1,
                flags=re.I,
            )
        ]


def split_statements(sql: str) -> list[str]:
    """The file's statements: split on `;` at the end of a line, outside dollar-quoted bodies; comment lines
    between statements are dropped."""
    statements: list[str] = []
    current: list[str] = []
    in_body = False
    for line in sql.splitlines():
        if not in_body and not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";").rstrip())
            current = []
    if current and "\n".join(current).strip():
        raise ValueError(f"unterminated statement: {current[0][:60]!r}")
    return statements


def parse(statement: str, source: Path) -> SqlObject:
    if match := _FUNCTION.match(statement):
        return SqlObject("function", match.group(1), "", statement, source)
    if match := _TRIGGER.match(statement):
        return SqlObject("trigger", match.group(1), match.group(2), statement, source)
    raise ValueError(f"{source.name}: only CREATE FUNCTION / CREATE TRIGGER belong here: {statement[:60]!r}")


def objects(files: tuple[Path, ...] = SQL_FILES) -> list[SqlObject]:
    found = [parse(s, path) for path in files for s in split_statements(path.read_text())]
    keys = [o.key for o in found]
    if len(keys) != len(set(keys)):
        raise ValueError(f"defined twice: {sorted({k for k in keys if keys.count(k) > 1})}")
    return found


def _definition(conn: Connection, obj: SqlObject) -> str | None:
    if obj.kind == "function":
        rows = conn.execute(
            text(
                "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND p.proname = :name ORDER BY 1"
            ),
            {"name": obj.name},
        ).scalars()
        found = list(rows)
        return "\n".join(found) if found else None
    return conn.execute(
        text(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal"
            " AND t.tgname = :name AND t.tgrelid = to_regclass(:table)"
        ),
        {"name": obj.name, "table": f"public.{obj.table}"},
    ).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Drift:
    obj: SqlObject
    database: str | None  # what the database has now (None: missing)
    file: str | None  # what the file's definition renders as (None: it could not be installed)
    error: str = ""


def drift(conn: Connection, objs: list[SqlObject] | None = None) -> list[Drift]:
    """Objects whose definition in the database differs from their file. Changes nothing."""
    objs = objects() if objs is None else objs
    before = {o.key: _definition(conn, o) for o in objs}
    outer = conn.begin_nested()
    try:
        after: dict[str, str | None] = {}
        errors: dict[str, str] = {}
        for obj in objs:
            step = conn.begin_nested()
            try:
                for statement in obj.install():
                    conn.exec_driver_sql(statement)
                step.commit()
            except Exception as exc:  # e.g. a changed result type needs DROP + CREATE
                step.rollback()
                errors[obj.key] = str(exc).splitlines()[0]
        for obj in objs:
            after[obj.key] = None if obj.key in errors else _definition(conn, obj)
    finally:
        outer.rollback()
    return [
        Drift(o, before[o.key], after[o.key], errors.get(o.key, ""))
        for o in objs
        if o.key in errors or before[o.key] != after[o.key]
    ]


def unlisted(conn: Connection, objs: list[SqlObject] | None = None) -> list[str]:
    """Functions and triggers in the public schema that no file describes (extensions' own excluded)."""
    objs = objects() if objs is None else objs
    known = {o.key for o in objs}
    functions = conn.execute(
        text(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d"
            "  WHERE d.objid = p.oid AND d.deptype = 'e')"
        )
    ).scalars()
    triggers = conn.execute(
        text(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND n.nspname = 'public'"
        )
    ).all()
    found = {f"function {name}" for name in functions} | {f"trigger {n} ON {t}" for n, t in triggers}
    return sorted(found - known)


# -- Alembic autogenerate -----------------------------------------------------------------------------------
_registered = False


def register_autogenerate() -> None:
    """Teach `alembic revision --autogenerate` (`just makemigration`) about the SQL files (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    from alembic.autogenerate import comparators, renderers
    from alembic.operations import ops

    class ReplaceSql(ops.ExecuteSQLOp):
        """Run `statements` (a file's new definition); reversed, run `previous` (what the database had).
        One statement per execute: asyncpg prepares each one."""

        def __init__(self, statements: list[str], previous: list[str]) -> None:
            super().__init__(statements[0])
            self.statements, self.previous = statements, previous

        def reverse(self) -> ReplaceSql:
            return ReplaceSql(self.previous, self.statements)

    @renderers.dispatch_for(ReplaceSql)
    def _render(autogen_context: Any, op: ReplaceSql) -> str:
        # Alembic indents what we return; dedent() gives the function body back exactly as written
        # (PostgreSQL keeps a body's text verbatim, so an extra indent would itself be drift).
        autogen_context.imports.add("from textwrap import dedent")
        calls = []
        for statement in op.statements:
            body = statement.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
            calls.append(f'op.execute(\n    dedent(\n        """\n{body}\n"""\n    )\n)')
        return "\n".join(calls)

    @comparators.dispatch_for("schema")
    def _compare(autogen_context: Any, upgrade_ops: Any, schemas: Any) -> None:
        conn = autogen_context.connection
        for item in drift(conn, objects()):
            obj = item.obj
            if obj.kind == "trigger":
                drop = f"DROP TRIGGER IF EXISTS {obj.name} ON {obj.table}"
                new, old = [drop, obj.sql], [drop, *([item.database] if item.database else [])]
            else:
                # A changed result type (OUT parameters) cannot be replaced in place: drop it first (by
                # name alone, which PostgreSQL accepts for a name that is not overloaded).
                drop = f"DROP FUNCTION IF EXISTS {obj.name}"
                new = [drop, obj.sql] if item.error else obj.install()
                if item.database is None:
                    old = [drop]
                else:
                    old = [drop, item.database] if item.error else [item.database]
            upgrade_ops.ops.append(ReplaceSql(new, old))


__all__ = ["SQL_FILES", "Drift", "SqlObject", "drift", "objects", "register_autogenerate", "unlisted"]
