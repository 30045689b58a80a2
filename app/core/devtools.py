"""Developer commands: `vtu seed` (demo data) and `vtu dev` (services, migrations, demo data, web, worker).

Demo data is only ever created outside production; the commands refuse to run with APP_ENV=prod.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import click

DEMO_PASSWORD = "demo-pass-1234"
DEMO_USERS = [
    # email, name, phone, tier, staff, superuser
    ("customer@demo.ng", "Ada Customer", "08030000001", "customer", False, False),
    ("reseller@demo.ng", "Bayo Reseller", "08030000002", "reseller", False, False),
    ("staff@demo.ng", "Chi Staff", "08030000003", "customer", True, True),
]


def _refuse_in_prod() -> None:
    from app.config.settings import get_settings

    if get_settings().is_prod:
        raise click.ClickException("demo data and the dev server are not available with APP_ENV=prod")


async def seed_demo_data() -> list[str]:
    """Create the demo users if missing (idempotent). Returns printable login lines."""
    from app.accounts.services import SignUp, UserService
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    lines = []
    async with standalone_session(get_settings()) as session:
        users = UserService(session=session)
        for email, name, phone, tier, staff, superuser in DEMO_USERS:
            if await users.get_by_email(email) is None:
                await users.register(
                    SignUp(
                        email=email,
                        password=DEMO_PASSWORD,
                        full_name=name,
                        phone=phone,
                        tier=tier,
                        is_staff=staff,
                        is_superuser=superuser,
                    )
                )
            role = "staff" if staff else tier
            lines.append(f"  {role:<9} {email} / {DEMO_PASSWORD}")
        from app.core import demo_hooks

        for hook in demo_hooks.AFTER_SEED:
            await hook(session)
        await session.commit()
    return lines


def migrate() -> None:
    """Run Alembic upgrade head in a child process (env.py owns its own event loop)."""
    subprocess.run([sys.executable, "-m", "app", "database", "upgrade", "--no-prompt"], check=True)


@click.command(name="seed", help="Create demo users (and demo data of other domains). Not in prod.")
def seed_command() -> None:
    _refuse_in_prod()
    from app.core.embedded import ensure_services

    ensure_services()
    click.echo("Demo logins:\n" + "\n".join(asyncio.run(seed_demo_data())))


@click.command(name="dev", help="Embedded services + migrations + demo data + web (reload) + worker.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option("--no-worker", is_flag=True, default=False)
def dev_command(host: str, port: int, no_worker: bool) -> None:
    _refuse_in_prod()
    from app.core.embedded import ensure_services, stop_services

    urls = ensure_services()
    try:
        migrate()
        logins = asyncio.run(seed_demo_data())
        procs: list[subprocess.Popen[bytes]] = []
        env = dict(os.environ)
        if not no_worker:
            procs.append(subprocess.Popen([sys.executable, "-m", "app", "workers", "run"], env=env))
        web = [sys.executable, "-m", "app", "run", "--host", host, "--port", str(port), "--reload"]
        procs.append(subprocess.Popen(web, env=env))  # noqa: S603
        click.echo(
            f"\n  Open http://{host}:{port}  (Ctrl+C to stop)\n  Demo logins:\n" + "\n".join(logins) + "\n"
        )
        try:
            while all(p.poll() is None for p in procs):  # until Ctrl+C or a child exits
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    finally:
        if urls.started:
            click.echo(f"stopping embedded {', '.join(urls.started)}")
            stop_services(urls.started)
