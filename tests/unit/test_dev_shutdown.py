"""`vtu dev` stops everything it started: children (SIGINT, then a kill), the SMTP sink, the embedded
services it started; on Ctrl+C and on SIGTERM (issue 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

from app.core.devtools import shutdown
from app.vtu.pages import PRODUCTS, demo_numbers
from app.vtu.providers.catalog import ServiceKind
from app.vtu.providers.stub import DELIVERED_PHONES, DEMO_PHONES, PREPAID_METER, SMARTCARD


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_shutdown_stops_children_the_sink_and_the_services_it_started():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    stopped: list[object] = []
    sink = SimpleNamespace(stop=lambda: stopped.append("sink"))
    shutdown(
        [polite, stubborn], mail_sink=sink, started=["postgres"], stop_services=stopped.append, timeout=2
    )
    assert polite.returncode == -signal.SIGINT or polite.returncode == 1  # KeyboardInterrupt
    assert stubborn.returncode == -signal.SIGKILL  # ignored SIGINT: killed after the timeout
    assert stopped == ["sink", ["postgres"]]
    shutdown([], started=[], stop_services=stopped.append)  # found everything running: stops nothing
    assert stopped == ["sink", ["postgres"]]


SCRIPT = textwrap.dedent(
    """
    import subprocess, sys
    from types import SimpleNamespace
    from app.core import devtools, embedded

    marker = sys.argv[1]
    real_popen = subprocess.Popen

    def fake_popen(command, **kw):  # the worker and the web app: a child that runs until told to stop
        child = real_popen([sys.executable, "-c", "import time; time.sleep(120)"], **kw)
        with open(marker + ".pids", "a") as out:
            out.write(f"{child.pid}\\n")
        return child

    embedded.ensure_services = lambda: SimpleNamespace(started=["redis"])
    embedded.stop_services = lambda names: open(marker, "w").write(",".join(names))
    devtools.migrate = lambda: None

    async def no_seed():
        return []

    devtools.seed_demo_data = no_seed
    devtools.subprocess.Popen = fake_popen
    devtools.dev_command.main(["--port", "8999"], standalone_mode=False)
    """
)


def _run_dev_and_signal(tmp_path: Path, signum: int) -> tuple[str, list[int], int]:
    marker = tmp_path / f"stopped-{signum}"
    env = {**os.environ, "MONNIFY_API_KEY": "MK_TEST_X", "SMTP_URL": "smtp://127.0.0.1:1", "APP_ENV": "dev"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(marker)], env=env)
    pids_file = Path(f"{marker}.pids")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not pids_file.exists() or len(pids_file.read_text().split()) < 2):
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    time.sleep(0.5)  # in the wait loop
    proc.send_signal(signum)
    code = proc.wait(timeout=30)
    return marker.read_text(), pids, code


def test_vtu_dev_stops_everything_on_sigterm_and_on_ctrl_c(tmp_path):
    for signum in (signal.SIGTERM, signal.SIGINT):
        stopped, pids, code = _run_dev_and_signal(tmp_path, signum)
        assert code == 0, signum
        assert stopped == "redis", signum  # the embedded service it started
        assert len(pids) == 2 and all(_gone(pid) for pid in pids), signum  # worker and web


def _runtime(app_env: str, slug: str = "stub") -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(app_env=app_env), providers=SimpleNamespace(slug_for=lambda _sid: slug)
    )


def test_dev_forms_are_prefilled_with_numbers_the_stub_delivers():
    electricity, cable = PRODUCTS[ServiceKind.ELECTRICITY], PRODUCTS[ServiceKind.CABLE]
    # the MTN demo number: delivered by the stub, and typing it shows the network detection at work
    assert demo_numbers(_runtime("dev"), PRODUCTS[ServiceKind.AIRTIME], "") == {"phone": DEMO_PHONES["mtn"]}
    assert DEMO_PHONES["mtn"] in DELIVERED_PHONES
    assert demo_numbers(_runtime("dev"), electricity, "")["meter_number"] == PREPAID_METER
    assert demo_numbers(_runtime("dev"), cable, "gotv")["smartcard_number"] == SMARTCARD
    for runtime in (_runtime("prod"), _runtime("test"), _runtime("dev", slug="vtpass")):
        assert demo_numbers(runtime, PRODUCTS[ServiceKind.DATA], "mtn-data") == {}


def test_services_started_by_an_earlier_call_are_still_ours(monkeypatch):
    """`vtu dev` runs after Litestar's CLI built the app, which already started the embedded servers: the
    second ensure_services must still report them as started by this process, or Ctrl+C leaves them
    running."""
    from contextlib import nullcontext

    from app.core import embedded

    running: set[str] = set()

    def start(name: str, url: str):
        def ensure() -> tuple[str, bool]:
            fresh = name not in running
            running.add(name)
            return url, fresh

        return ensure

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(embedded, "_STARTED_HERE", [])
    monkeypatch.setattr(embedded, "_services_lock", nullcontext)
    monkeypatch.setattr(embedded, "ensure_postgres", start("postgres", "postgresql://x@h/db"))
    monkeypatch.setattr(embedded, "ensure_redis", start("redis", "redis://h/0"))
    monkeypatch.setattr(embedded, "dev_database_urls", lambda url: (url, url))
    assert embedded.ensure_services(export=False).started == ("postgres", "redis")  # create_app's call
    assert embedded.ensure_services(export=False).started == ("postgres", "redis")  # vtu dev's own call
    monkeypatch.setattr(embedded, "stop_postgres", lambda: running.discard("postgres") is None)
    monkeypatch.setattr(embedded, "stop_redis", lambda: running.discard("redis") is None)
    assert embedded.stop_services(("postgres", "redis")) == ["postgres", "redis"]
    assert embedded.ensure_services(export=False).started == ("postgres", "redis")  # started again: ours
