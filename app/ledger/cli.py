"""`vtu ledger ...` commands."""

from __future__ import annotations

import asyncio
import sys

import click


@click.group(name="ledger", help="The double-entry wallet ledger.")
def ledger_group() -> None:
    pass


@ledger_group.command(name="reconcile", help="Check every balance against its entries; exit 1 on any drift.")
def reconcile_command() -> None:
    from app.config.settings import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.ledger.reconcile import ReconcileReport, run_reconcile

    async def run() -> ReconcileReport:
        engine = make_engine(get_settings(), pool_size=1, max_overflow=0)
        try:
            return await run_reconcile(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    click.echo("\n".join(report.lines()))
    if not report.ok:
        sys.exit(1)
