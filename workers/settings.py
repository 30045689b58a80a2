"""SAQ queue configuration shared by the web app (to enqueue) and `vtu workers run` (to process).

Every task and cron job sets an explicit timeout: SAQ's default of 10 s would sweep long jobs.
"""

from __future__ import annotations

from typing import Any

from litestar_saq import CronJob, QueueConfig, SAQConfig

from app.config.settings import Settings
from app.core.redis import make_redis
from app.vtu.config import get_vtu_config
from workers.context import before_process, shutdown, startup

QUEUE_NAME = "vtu"

# "module:function" task references, imported by the worker at start-up. Domains add theirs here.
TASKS: list[str] = [
    "workers.tasks:ping",
    "workers.tasks:heartbeat",
    "app.alerts.tasks:check_alerts",
    "app.ledger.tasks:reconcile_ledger",
    "app.payments.tasks:process_monnify_event",
    "app.payments.tasks:reserve_accounts",
    "app.payments.tasks:sweep_funding",
    "app.vtu.tasks:verify_pending_purchase",
    "app.vtu.tasks:sweep_pending_purchases",
    "app.vtu.tasks:sync_data_bundles",
    "app.vtu.tasks:probe_providers",
    "app.vtu.tasks:run_bulk_order",  # bulk orders, line by line (app/vtu/bulk_runner.py)
    "app.vtu.tasks:sweep_bulk_orders",
    "app.api.callbacks:deliver_purchase_callback",  # reseller completion callbacks (retried by SAQ)
    "app.api.callbacks:sweep_api_callbacks",
    "app.mail.tasks:send_mail",  # one outbox e-mail over SMTP (retried by SAQ)
    "app.mail.tasks:mail_purchase_receipt",
    "app.mail.tasks:sweep_mail",
]
# (module:function, cron expression, timeout seconds)
CRON: list[tuple[str, str, int]] = [
    ("workers.tasks:heartbeat", "* * * * *", 10),  # workers/heartbeat.py: the overview and the alerts read it
    ("app.alerts.tasks:check_alerts", "* * * * *", 50),  # app/alerts: raise / clear alerts, e-mail staff
    ("app.ledger.tasks:reconcile_ledger", "17 * * * *", 600),
    ("app.payments.tasks:sweep_funding", "* * * * *", 50),
    ("app.vtu.tasks:sweep_pending_purchases", "* * * * *", 50),
    ("app.vtu.tasks:probe_providers", "* * * * *", 50),  # app/vtu/provider_health.py: breakers, floats
    ("app.vtu.tasks:sweep_bulk_orders", "* * * * *", 50),
    ("app.api.callbacks:sweep_api_callbacks", "* * * * *", 50),
    ("app.mail.tasks:sweep_mail", "* * * * *", 50),
    ("app.vtu.tasks:sync_data_bundles", get_vtu_config().plan_sync_cron, 300),
]


def _resolve(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def saq_config(settings: Settings) -> SAQConfig:
    scheduled = [
        CronJob(function=_resolve(fn), cron=cron, timeout=timeout, unique=True) for fn, cron, timeout in CRON
    ]
    return SAQConfig(
        queue_configs=[
            QueueConfig(
                # A client instance rather than a DSN: the embedded Redis is a unix:// URL, which the DSN
                # parser does not accept.
                broker_instance=make_redis(settings.redis_url),
                name=QUEUE_NAME,
                tasks=[_resolve(t) for t in TASKS],
                scheduled_tasks=scheduled,
                # jobs at once per worker process (WORKER_CONCURRENCY, `vtu workers run --concurrency N`)
                concurrency=settings.worker_concurrency,
                # SIGTERM: running jobs get this long to finish before they are cancelled (and retried);
                # idle job slots give up waiting for a job within dequeue_timeout (workers/runner.py)
                shutdown_grace_period_s=settings.shutdown_grace_seconds,
                dequeue_timeout=1,
                startup=[startup],  # type: ignore[list-item]  # SAQ's Context is a TypedDict
                shutdown=[shutdown],  # type: ignore[list-item]
                before_process=[before_process],  # type: ignore[list-item]  # a fresh log context per job
            )
        ],
        use_server_lifespan=False,
        web_enabled=False,
    )
