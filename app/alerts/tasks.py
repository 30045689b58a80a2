"""SAQ cron job of the alerts: `check_alerts` every minute (workers/settings.py CRON)."""

from __future__ import annotations

from typing import Any

from app.alerts import service


async def check_alerts(ctx: dict[str, Any]) -> dict[str, Any]:
    async with ctx["sessionmaker"]() as session:
        outcome = await service.run(session, redis=ctx["redis"], runtime=ctx["vtu"], settings=ctx["settings"])
        await session.commit()
    return outcome.summary()
