"""Worker start-up: each worker process opens its own engine and session factory (jobs never share a web
request's session) and an HTTP client for provider calls."""

from __future__ import annotations

from typing import Any

import structlog

from app.config.settings import get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.logging import configure_logging


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    from app.core.sentry import init_sentry

    init_sentry(settings, component="worker")  # SENTRY_DSN: failed jobs (logged as errors) are reported
    engine = make_engine(settings)
    from app.core.roles import check_connected_role

    await check_connected_role(engine, settings)  # prod: never as a role that can write the ledger
    ctx["settings"] = settings
    ctx["engine"] = engine
    ctx["sessionmaker"] = make_sessionmaker(engine)
    from app.core.redis import make_redis
    from workers.heartbeat import beat

    ctx["redis"] = make_redis(settings.redis_url)  # heartbeat, last reconcile, cached provider balances
    await beat(ctx["redis"])  # alive from the start, not only after the first cron minute
    # The purchase engine: provider clients (one shared httpx client) and the queue for follow-up requeries.
    from app.vtu.runtime import VtuRuntime

    worker = ctx.get("worker")
    ctx["vtu"] = VtuRuntime(
        settings, ctx["sessionmaker"], queue=worker.queue if worker else None, redis=ctx["redis"]
    )
    if worker is not None:  # e-mails recorded by jobs (a funding credit) are enqueued after their commit
        from app.mail.outbox import use_queue

        use_queue(worker.queue)


# Job arguments naming a purchase: bound on every line the job logs (docs/architecture.md, "Observability")
_PURCHASE_ARGS = ("purchase_id",)


async def before_process(ctx: dict[str, Any]) -> None:
    """Each job runs in its own task, started after this hook in this hook's context: a fresh log context
    naming the job (and the purchase it handles, when its arguments say)."""
    structlog.contextvars.clear_contextvars()
    job = ctx.get("job")
    if job is None:
        return
    values: dict[str, Any] = {"job": job.function, "job_key": job.key}
    for name in _PURCHASE_ARGS:
        if (job.kwargs or {}).get(name) is not None:
            values[name] = str(job.kwargs[name])
    structlog.contextvars.bind_contextvars(**values)


async def shutdown(ctx: dict[str, Any]) -> None:
    vtu = ctx.get("vtu")
    if vtu is not None:
        await vtu.aclose()
    redis = ctx.get("redis")
    if redis is not None:
        await redis.aclose()
    engine = ctx.get("engine")
    if engine is not None:
        await engine.dispose()
