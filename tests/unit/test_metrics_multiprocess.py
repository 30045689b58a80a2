"""PROMETHEUS_MULTIPROC_DIR (app/core/metrics.py): what one process counted (a worker's requery) shows in
another process's /metrics text, added up with its own; the directory must be set before start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

COUNT = """
from app.core.metrics import PROVIDER_CALLS, PURCHASES_SETTLED
PROVIDER_CALLS.labels("vtpass", "requery", "delivered").inc(3)
PURCHASES_SETTLED.labels("successful", "vtpass", "mtn").inc()
"""
SCRAPE = """
from app.core.metrics import PROVIDER_CALLS, render
PROVIDER_CALLS.labels("vtpass", "requery", "delivered").inc(2)
print(render(None).decode())
"""


def _run(code: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_counters_of_every_process_are_added_up(tmp_path: Path) -> None:
    _run(COUNT, tmp_path)  # e.g. a SAQ worker, which has exited since
    text = _run(SCRAPE, tmp_path)
    lines = text.splitlines()
    assert 'vtu_provider_calls_total{operation="requery",provider="vtpass",result="delivered"} 5.0' in lines
    assert 'vtu_purchases_settled_total{provider="vtpass",service="mtn",status="successful"} 1.0' in lines
