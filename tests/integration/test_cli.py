"""The `vtu` console script, run as a real process against the test database."""

from __future__ import annotations

import os
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
