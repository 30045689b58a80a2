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
from typing import Any

import click

DEMO_PASSWORD = "demo-pass-1234"
DEMO_PIN = "2580"  # transaction PIN of every demo user
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
    from app.accounts.passwords import hash_password_async
    from app.accounts.services import SignUp, UserService
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    lines = []
    async with standalone_session(get_settings()) as session:
        users = UserService(session=session)
        for email, name, phone, tier, staff, superuser in DEMO_USERS:
            user = await users.get_by_email(email)
            if user is None:
                user = await users.register(
                    SignUp(
                        email=email,
                        password=DEMO_PASSWORD,
                        full_name=name,
                        phone=phone,
                        tier=tier,
                        is_staff=staff,
                        is_superuser=superuser,
                        email_verified=True,
                    )
                )
            if user.pin_hash is None:
                user.pin_hash = await hash_password_async(DEMO_PIN)
            role = "staff" if staff else tier
            lines.append(f"  {role:<9} {email} / {DEMO_PASSWORD} (transaction PIN {DEMO_PIN})")
        from app.core import demo_hooks

        demo_hooks.load()
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


DEMO_FUNDING = (("customer@demo.ng", 50_000), ("reseller@demo.ng", 200_000))  # e-mail, naira
# What the stub "pays back" per sale in the demo, like VTpass's commission: without it every reseller plan
# (VTU_RESELLER_DISCOUNT_BPS airtime=200,data=100) sells below cost and the console opens on four alerts.
DEMO_COMMISSION_BPS = "airtime=300,data=300"


class Stop(Exception):
    """SIGTERM (or SIGHUP) to `vtu dev`: stop like Ctrl+C does."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def shutdown(
    procs: list[subprocess.Popen[bytes]],
    *,
    mail_sink: Any = None,
    started: list[str] | tuple[str, ...] = (),
    stop_services: Any = None,
    timeout: float = 10,
) -> None:
    """Stop everything `vtu dev` started, children first: SIGINT to each (uvicorn's reloader passes it to its
    worker), a kill for any still running after `timeout` seconds; then the SMTP sink and the embedded
    services this run started (not ones it found running)."""
    for p in procs:
        if p.poll() is None:
            _signal_group(p, signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()
    for (
        p
    ) in procs:  # what a child left behind in its group (uvicorn's reload worker, multiprocessing helpers)
        _signal_group(p, signal.SIGKILL, group_only=True)
    if mail_sink is not None:
        mail_sink.stop()
    if started and stop_services is not None:
        click.echo(f"stopping embedded {', '.join(started)}")
        stop_services(list(started))


def _signal_group(p: subprocess.Popen[bytes], signum: int, *, group_only: bool = False) -> None:
    """`signum` to the child's process group (each child is started in a session of its own, so the group
    holds its own children too: uvicorn's reload worker, SAQ's and multiprocessing's helpers), or to the
    child alone when it leads no group."""
    try:
        os.killpg(p.pid, signum)
    except (ProcessLookupError, PermissionError):
        if not group_only and p.poll() is None:
            p.send_signal(signum)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session (and process group) of its own: `shutdown` stops the child and everything it started.
    return subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603


@click.command(name="dev", help="Embedded services + migrations + demo data + web (reload) + worker.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option("--no-worker", is_flag=True, default=False)
def dev_command(host: str, port: int, no_worker: bool) -> None:
    _refuse_in_prod()
    from app.core.embedded import ensure_services, stop_services

    # SIGTERM (a supervisor, `kill`) stops everything like Ctrl+C (SIGINT) does; Python's default for
    # SIGTERM would end this process at once and leave the children and the embedded databases running.
    signal.signal(signal.SIGTERM, _raise_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _raise_stop)  # the terminal was closed
    urls = ensure_services()
    mail_sink = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        simulator = not os.environ.get("MONNIFY_API_KEY")
        if simulator:
            procs.append(_start_monnify_simulator(host, port))
        os.environ.setdefault("SITE_URL", f"http://{host}:{port}")  # links in e-mails
        if (os.environ.get("VTU_PROVIDER") or "stub").strip().lower() == "stub":
            os.environ.setdefault("VTU_PROVIDER_COMMISSION_BPS", DEMO_COMMISSION_BPS)
        if not os.environ.get("SMTP_URL"):
            mail_sink = _start_mail_sink()
        migrate()
        logins = asyncio.run(seed_demo_data())
        env = dict(os.environ)
        if not no_worker:
            procs.append(_spawn([sys.executable, "-m", "app", "workers", "run"], env))
        web = [sys.executable, "-m", "app", "run", "--host", host, "--port", str(port)]
        web += ["--reload", "--workers", "1"]  # one process, whatever WEB_CONCURRENCY says
        procs.append(_spawn(web, env))
        if simulator:
            for line in fund_demo_wallets(f"http://{host}:{port}"):
                click.echo(line)
        click.echo(
            f"\n  Open http://{host}:{port}  (Ctrl+C to stop)\n  Demo logins:\n" + "\n".join(logins) + "\n"
        )
        if mail_sink is not None:
            click.echo(
                f"  E-mail goes to a local SMTP sink ({os.environ['SMTP_URL']}): read it at "
                f"http://{host}:{port}/dev/mail\n"
            )
        if simulator:
            click.echo(
                f"  Monnify simulator on :{SIMULATOR_PORT}. Send a customer a bank transfer with\n"
                "    uv run vtu dev-transfer --email customer@demo.ng --naira 5000\n"
            )
        while all(p.poll() is None for p in procs):  # until Ctrl+C, SIGTERM or a child exits
            time.sleep(0.5)
    except (KeyboardInterrupt, Stop):
        pass
    finally:
        # Ctrl+C again while stopping must not leave half of it running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutdown(procs, mail_sink=mail_sink, started=urls.started, stop_services=stop_services)


def fund_demo_wallets(web_url: str, simulator: str | None = None, wait_seconds: float = 60) -> list[str]:
    """Give the demo customer and reseller their starting balance through the real funding path (a transfer
    from the Monnify simulator, its signed webhook to the web app: `vtu dev-transfer`), once: a user with
    any stored funding event is left alone. Returns lines to print."""
    import httpx

    simulator = simulator or f"http://127.0.0.1:{SIMULATOR_PORT}"
    deadline = time.monotonic() + wait_seconds
    while True:  # the webhook needs the web app up (with --reload it starts in a few seconds)
        try:
            if httpx.get(f"{web_url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return [f"  The web app did not answer at {web_url}: demo wallets not funded (vtu dev-transfer)."]
        time.sleep(0.5)
    lines = []
    for email, naira in DEMO_FUNDING:
        if asyncio.run(_never_funded(email)):
            try:
                lines.append("  " + send_transfer(email, naira, simulator))
            except click.ClickException as exc:
                lines.append(f"  demo funding of {email} failed: {exc.message}")
    return lines


async def _never_funded(email: str) -> bool:
    from sqlalchemy import select

    from app.accounts.services import UserService
    from app.config.settings import get_settings
    from app.core.db import standalone_session
    from app.payments.models import MonnifyEvent

    async with standalone_session(get_settings()) as session:
        user = await UserService(session=session).get_by_email(email)
        if user is None:
            return False
        found = await session.scalar(select(MonnifyEvent.id).where(MonnifyEvent.user_id == user.id).limit(1))
        return found is None


def _start_mail_sink() -> Any:
    """Without SMTP_URL, development mail goes to an SMTP server in this process (aiosmtpd, a free port on
    127.0.0.1) that saves each message under .local/mail/; the web app lists them at /dev/mail."""
    from app.config.settings import get_settings
    from app.mail.sink import start_thread

    controller, smtp_port = start_thread()
    os.environ["SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    get_settings.cache_clear()
    return controller


SIMULATOR_PORT = 8001
SIMULATOR_CREDENTIALS = {
    "MONNIFY_API_KEY": "MK_TEST_SIMULATOR01",
    "MONNIFY_SECRET_KEY": "SIMSECRETKEY0123456789ABCDEFGHJK",
    "MONNIFY_CONTRACT_CODE": "7059707855",
}


def _start_monnify_simulator(host: str, port: int) -> subprocess.Popen[bytes]:
    """Without Monnify keys, development talks to the Monnify simulator (tests/fakes/monnify.py)."""
    os.environ.update(SIMULATOR_CREDENTIALS)
    os.environ["MONNIFY_BASE_URL"] = f"http://127.0.0.1:{SIMULATOR_PORT}"
    os.environ["MONNIFY_SIM_WEBHOOK_URL"] = f"http://{host}:{port}/payments/webhooks/monnify/"
    from app.config.settings import get_settings

    get_settings.cache_clear()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.fakes.monnify:create_dev_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(SIMULATOR_PORT),
        "--log-level",
        "warning",
    ]
    return _spawn(command, dict(os.environ))


@click.command(
    name="dev-transfer", help="Development: send a bank transfer to a user's wallet via the simulator."
)
@click.option("--email", required=True)
@click.option("--naira", type=click.IntRange(1, 10_000_000), required=True)
@click.option("--simulator", default=f"http://127.0.0.1:{SIMULATOR_PORT}")
def dev_transfer_command(email: str, naira: int, simulator: str) -> None:
    _refuse_in_prod()
    from app.core.embedded import ensure_services

    ensure_services()
    click.echo(send_transfer(email, naira, simulator))


def send_transfer(email: str, naira: int, simulator: str) -> str:
    """A bank transfer of `naira` to `email`'s reserved account, sent by the Monnify simulator (which posts
    the signed webhook to the web app). Returns what to print; ClickException when it could not be sent."""
    import httpx

    from app.accounts.services import UserService
    from app.config.settings import get_settings
    from app.core.db import standalone_session

    async def reference() -> str | None:
        async with standalone_session(get_settings()) as session:
            user = await UserService(session=session).get_by_email(email)
            return user.account_reference if user else None

    account_reference = asyncio.run(reference())
    if account_reference is None:
        raise click.ClickException(f"no user with e-mail {email}")
    try:
        response = httpx.post(
            f"{simulator}/sim/transfers",
            json={"account_reference": account_reference, "amount_kobo": naira * 100},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"the Monnify simulator is not reachable at {simulator} ({exc})") from exc
    if response.status_code != 200:
        raise click.ClickException(f"simulator refused: {response.text}")
    body = response.json()
    return (
        f"sent ₦{naira:,} to {email}: {body['transactionReference']} "
        f"(webhook answered {body['webhook_status']})"
    )
