"""`vtu keys generate|rotate`: data encryption keys (app/core/encryption.py has the rotation steps)."""

from __future__ import annotations

import asyncio

import click


@click.group(name="keys", help="Data encryption keys (DATA_ENCRYPTION_KEYS).")
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
