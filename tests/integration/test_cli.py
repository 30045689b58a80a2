"""The `vtu` console script, run as a real process against the test database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from sqlalchemy import select

from app.accounts.models import User


def _vtu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


async def test_users_create(db):
    result = _vtu("users", "create", "--email", "Ops@Example.ng", "--password", "ops-pass-123", "--staff")
    assert result.returncode == 0, result.stderr
    assert "created ops@example.ng" in result.stdout
    code = result.stdout.rsplit("referral code ", 1)[1].strip(" )\n")
    result = _vtu(
        "users",
        "create",
        "--email",
        "r@example.ng",
        "--password",
        "reseller-pass-1",
        "--tier",
        "reseller",
        "--referrer",
        code,
    )
    assert result.returncode == 0, result.stderr
    staff = (await db.execute(select(User).where(User.email == "ops@example.ng"))).scalar_one()
    reseller = (await db.execute(select(User).where(User.email == "r@example.ng"))).scalar_one()
    assert staff.is_staff and not staff.is_superuser and staff.staff_role == "operations"  # --staff alone
    assert reseller.tier == "reseller" and reseller.referred_by_id == staff.id and reseller.staff_role is None


async def test_users_create_with_a_role(db):
    made = {}
    for role in ("support", "operations", "finance", "admin"):
        result = _vtu("users", "create", "--email", f"{role}@example.ng", "--password", "staff-pass-123",
                      "--role", role)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"role {role}" in result.stdout
        made[role] = role
    result = _vtu(
        "users", "create", "--email", "root@example.ng", "--password", "staff-pass-123", "--superuser"
    )
    assert result.returncode == 0 and "role admin" in result.stdout
    refused = _vtu(
        "users", "create", "--email", "x@example.ng", "--password", "staff-pass-123", "--role", "boss"
    )
    assert refused.returncode == 2 and "boss" in refused.stderr  # click names the bad choice
    mixed = _vtu("users", "create", "--email", "y@example.ng", "--password", "staff-pass-123", "--superuser",
                 "--role", "support")  # fmt: skip
    assert mixed.returncode == 1 and "superuser is an admin" in mixed.stderr
    rows = (await db.execute(select(User.email, User.staff_role, User.is_staff, User.is_superuser))).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        [(f"{r}@example.ng", r, True, False) for r in made] + [("root@example.ng", "admin", True, True)]
    )


async def test_users_create_refuses_bad_input_without_writing(db):
    result = _vtu("users", "create", "--email", "bad", "--password", "x")
    assert result.returncode == 1
    assert "email" in result.stderr and "password" in result.stderr
    assert (await db.execute(select(User))).first() is None


def test_prod_start_with_missing_settings_prints_one_message():
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MONNIFY", "VTPASS", "SECRET", "ALLOWED"))
    }
    env["APP_ENV"] = "prod"
    result = subprocess.run(
        [sys.executable, "-m", "app", "info"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0
    assert "Refusing to start (APP_ENV=prod)" in result.stderr
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "MONNIFY_API_KEY", "VTU_PROVIDER"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


async def test_seed_makes_demo_users_with_a_transaction_pin_once(db):
    from app.accounts.passwords import verify_password
    from app.core.devtools import DEMO_PASSWORD, DEMO_PIN

    for _ in range(2):  # idempotent
        result = _vtu("seed")
        assert result.returncode == 0, result.stderr
        assert f"customer@demo.ng / {DEMO_PASSWORD} (transaction PIN {DEMO_PIN})" in result.stdout
    logins = ["customer@demo.ng", "reseller@demo.ng", "staff@demo.ng"]
    users = (await db.execute(select(User).where(User.email.in_(logins)))).scalars().all()
    assert sorted(u.email for u in users) == logins
    assert all(verify_password(u.pin_hash, DEMO_PIN) for u in users)


async def test_seed_syncs_the_stub_plans_once_and_funds_no_wallet_by_hand(db):
    from sqlalchemy import func

    from app.ledger.queries import wallet_balance
    from app.vtu.models import Plan

    env_free = {k: v for k, v in os.environ.items() if k != "VTU_PROVIDER_BY_SERVICE"}
    for _ in range(2):  # idempotent
        result = subprocess.run(
            [sys.executable, "-m", "app", "seed"], capture_output=True, text=True, env=env_free, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "customer@demo.ng" in result.stdout
        counts = dict(
            (await db.execute(select(Plan.service_id, func.count()).group_by(Plan.service_id))).all()
        )
        await db.rollback()
        assert counts["mtn-data"] == 8 and counts["dstv"] == 6 and set(counts) >= {"glo-data", "gotv"}
    customer = (await db.execute(select(User).where(User.email == "customer@demo.ng"))).scalar_one()
    assert await wallet_balance(db, customer.id) == 0  # money arrives only by the funding path (vtu dev)


# -- commands that start without Litestar (app/__main__.py FAST_COMMANDS) --------------------------------
# Runs `vtu ARGS` for many ARGS in one process, through Litestar's CLI or through the fast path, and prints
# [exit code, stdout] for each as JSON. One process per path: click caches a command's help option on the
# command object, so the two paths must not share a process.
_MANY = """
import json, sys
from click.testing import CliRunner
through_litestar = sys.argv[1] == "litestar"
results = []
for args in json.loads(sys.argv[2]):
    with CliRunner().isolation() as (out, _err, *_):
        sys.argv = ["vtu", *args]
        try:
            if through_litestar:
                from litestar.cli.main import litestar_group
                litestar_group(prog_name="vtu")
            else:
                from app.__main__ import main
                main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        results.append([code, out.getvalue().decode()])
print(json.dumps(results))
"""


def _many(argsets: list[list[str]], path: str) -> list[list[object]]:
    env = {**os.environ, "LITESTAR_APP": "app.asgi:create_app", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", _MANY, path, json.dumps(argsets)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fast_commands_answer_as_litestars_cli_does(service_urls):
    import click

    from app.__main__ import FAST_COMMANDS
    from app.cli import DOMAIN_COMMANDS, load_command

    assert {"users", "services", *DOMAIN_COMMANDS} >= FAST_COMMANDS
    assert "dev" not in FAST_COMMANDS  # runs the web app and the worker: Litestar's CLI
    argsets: list[list[str]] = []
    for name in sorted(FAST_COMMANDS):
        command = load_command(name)
        assert command.name == name
        argsets += [[name, "--help"], [name, "-h"]]
        if isinstance(command, click.Group):
            argsets += [[name], [name, "no-such-command"]]
            for sub in sorted(command.commands):
                argsets += [[name, sub, "--help"], [name, sub, "-h"], [name, sub, "--no-such-option"]]
    fast, litestar = _many(argsets, "fast"), _many(argsets, "litestar")
    assert len(fast) == len(litestar) == len(argsets) >= 50
    for args, mine, theirs in zip(argsets, fast, litestar, strict=True):
        assert mine == theirs, args
        assert mine[0] in (0, 2), (args, mine)
    assert sum(code == 0 and "Usage: vtu " in text for code, text in fast) >= 40


def test_vtu_help_lists_every_command():
    from app.cli import DOMAIN_COMMANDS

    result = _vtu("--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^\W*([a-z][a-z-]+)\s", result.stdout, flags=re.MULTILINE))
    ours = {"users", "services", "run", *DOMAIN_COMMANDS}
    litestars = {"database", "workers", "info", "routes", "schema", "sessions", "version"}
    assert ours | litestars <= listed, sorted((ours | litestars) - listed)
