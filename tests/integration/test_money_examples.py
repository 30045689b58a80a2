"""The money examples in docs/money/ are executable documentation: every `<name>.sql` there is run by psql,
in order of name, in ONE fresh database cloned from the migrated template (the scripts follow each other),
and psql's transcript must equal the checked-in `<name>.out` exactly. docs/money/README.md says how to read
and regenerate them:

    UPDATE_MONEY_EXAMPLES=1 uv run pytest tests/integration/test_money_examples.py
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _build_databases, _drop_database

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "money"
UPDATE = os.environ.get("UPDATE_MONEY_EXAMPLES", "") not in ("", "0")

# psql as a transcript: echo every input line (-a), no psqlrc (-X), go on after an error. Input comes on
# stdin, so errors print without a "psql:file:line:" prefix. `\set VERBOSITY terse` at the top of each
# script keeps every error to one line, the same on every server version.
PSQL_ARGS = ("-X", "-q", "--no-psqlrc", "-v", "ON_ERROR_STOP=0", "-a")

# The one normalisation: an error message that names a generated account or transaction id (e.g.
# "insufficient funds in account 11") shows `<id>`, so the transcripts do not change when a migration
# opens one more system account.
_GENERATED_ID = re.compile(r"\b(account|transaction) \d+\b")


def psql_binary() -> str:
    """The machine's psql, else the one shipped with the embedded PostgreSQL (app/core/embedded.py)."""
    found = shutil.which("psql")
    if found:
        return found
    from app.core.embedded import postgres_bin_dir

    bundled = postgres_bin_dir() / "psql"
    assert bundled.exists(), f"no psql on PATH and none at {bundled}"
    return str(bundled)


def psql_env(url: str) -> dict[str, str]:
    """libpq's environment for a SQLAlchemy URL; a unix socket arrives as the `host=` query parameter."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env |= {"LC_ALL": "C", "LANG": "C", "PGCLIENTENCODING": "UTF8", "PGAPPNAME": "money-examples"}
    for key, value in (
        ("PGHOST", host),
        ("PGPORT", parsed.port),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
        ("PGDATABASE", parsed.database),
    ):
        if value:
            env[key] = str(value)
    return env


def run_script(psql: str, env: dict[str, str], script: Path) -> str:
    with script.open("rb") as stdin:
        done = subprocess.run(
            [psql, *PSQL_ARGS],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # errors in place, between the statements that caused them
            env=env,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, f"psql failed on {script.name}:\n{done.stdout.decode()}"
    lines = done.stdout.decode().splitlines(keepends=True)
    return "".join(
        _GENERATED_ID.sub(r"\1 <id>", line) if line.startswith("ERROR:") else line for line in lines
    )


def _diff(expected: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"docs/money/{name}.out (checked in)",
            tofile=f"docs/money/{name}.out (psql now)",
        )
    )


async def test_the_money_examples_print_what_their_out_files_say(service_urls):
    scripts = sorted(EXAMPLES.glob("*.sql"))
    assert scripts, f"no examples in {EXAMPLES}"
    orphans = sorted({p.stem for p in EXAMPLES.glob("*.out")} - {p.stem for p in scripts})
    assert not orphans, f".out files without a script: {orphans}"

    base = service_urls["base_database_url"]
    # A fresh clone of the migrated template (conftest's), private to this test and dropped after it, used
    # as the base URL's user: the scripts write the users row and the wallet the way sign-up does.
    url = await _build_databases(base, "money")
    failures: list[str] = []
    try:
        env = psql_env(url)
        psql = psql_binary()
        for script in scripts:
            actual = run_script(psql, env, script)
            expected_path = script.with_suffix(".out")
            if UPDATE:
                if not expected_path.exists() or expected_path.read_text(encoding="utf-8") != actual:
                    expected_path.write_text(actual, encoding="utf-8")
                continue
            if not expected_path.exists():
                failures.append(f"docs/money/{expected_path.name} is missing (see docs/money/README.md)")
            elif (expected := expected_path.read_text(encoding="utf-8")) != actual:
                failures.append(_diff(expected, actual, script.stem))
    finally:
        await _drop_database(base, url)
    if failures:
        pytest.fail(
            "the money examples no longer print what docs/money/*.out say. If the change is deliberate, "
            "regenerate them (UPDATE_MONEY_EXAMPLES=1, see docs/money/README.md) and read the diff.\n\n"
            + "\n".join(failures),
            pytrace=False,
        )
