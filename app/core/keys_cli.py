"""`vtu keys generate|rotate|refingerprint`: data encryption keys (app/core/encryption.py has the rotation
steps) and the BVN/NIN fingerprints (app/accounts/kyc_keys.py)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from app.accounts.kyc_keys import FingerprintReport


@click.group(
    name="keys",
    help="Data encryption keys (DATA_ENCRYPTION_KEYS) and BVN/NIN fingerprints (KYC_FINGERPRINT_KEY).",
)
def keys_group() -> None:
    pass


@keys_group.command(name="generate", help="Print a new key to put first in DATA_ENCRYPTION_KEYS.")
def keys_generate() -> None:
    from app.core.encryption import generate_key

    click.echo(generate_key())


@keys_group.command(
    name="rotate",
    help="Re-encrypt every stored encrypted value with the first key of DATA_ENCRYPTION_KEYS.",
)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def keys_rotate(batch_size: int) -> None:
    from app.config.settings import get_settings
    from app.core.db import standalone_session
    from app.core.encryption import ENCRYPTED_COLUMNS, cipher_for, rotate_column

    settings = get_settings()
    cipher = cipher_for(settings)

    async def run() -> list[str]:
        lines = []
        async with standalone_session(settings) as session:
            for column in ENCRYPTED_COLUMNS:
                done = await rotate_column(session, cipher, column, batch_size=batch_size)
                lines.append(f"{column.table}.{column.column}: {done} value(s) re-encrypted")
        return lines or ["no encrypted columns"]

    for line in asyncio.run(run()):
        click.echo(line)


@keys_group.command(
    name="refingerprint",
    help="Recompute every stored BVN/NIN fingerprint under the current KYC_FINGERPRINT_KEY (run it right "
    "after changing that key, or SECRET_KEY while it is unset). Exits 1 when a number is on two accounts or "
    "unreadable.",
)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def keys_refingerprint(batch_size: int) -> None:
    from app.accounts.kyc_keys import refingerprint
    from app.config.settings import get_settings
    from app.core.db import make_engine, make_sessionmaker

    settings = get_settings()

    async def run() -> FingerprintReport:
        engine = make_engine(settings, pool_size=2, max_overflow=0)
        try:
            return await refingerprint(make_sessionmaker(engine), settings, batch_size=batch_size)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    click.echo(f"kyc_documents: {report.checked} checked, {report.recomputed} fingerprint(s) recomputed")
    for line in report.conflicts + report.unreadable:
        click.echo(line, err=True)
    if not report.clean:
        raise SystemExit(1)
