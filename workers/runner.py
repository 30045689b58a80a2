"""`vtu workers run`: SAQ worker processes that stop gracefully (docs/architecture.md "Processes").

litestar-saq's own command has two gaps this one closes:
- `--concurrency N` (jobs at once per process; default WORKER_CONCURRENCY) next to `--workers N` (processes);
- SIGTERM: SAQ's stop waits `shutdown_grace_period_s` for *every* task of the worker, its upkeep loops (which
  sleep up to a minute) and the job slots blocked waiting for a job included, so an idle worker always sat
  out the whole grace period and then cancelled. Here the upkeep loops are cancelled at once, idle slots
  give up within a second (`dequeue_timeout`), and only running jobs get the grace period
  (SHUTDOWN_GRACE_SECONDS) before they are cancelled (and retried by SAQ). With `--workers N` the first
  process forwards SIGTERM to the others and waits for them (litestar-saq's left them running, and the
  parent then blocked on them forever).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from typing import TYPE_CHECKING, Any

import click
from litestar.plugins import CLIPluginProtocol
from litestar_saq import SAQPlugin
from litestar_saq.base import Worker

if TYPE_CHECKING:
    from click import Group
    from litestar import Litestar

MAX_PROCESSES = 64
MAX_CONCURRENCY = 1000


class GracefulWorker(Worker):
    """A litestar-saq Worker whose stop gives the grace period to running jobs only."""

    children: list[multiprocessing.Process]
    _upkeep_tasks: list[asyncio.Task[None]]

    async def upkeep(self) -> list[asyncio.Task[None]]:
        self._upkeep_tasks = await super().upkeep()
        return self._upkeep_tasks

    async def stop(self) -> None:
        self.event.set()  # no slot takes a new job from here on
        children = getattr(self, "children", [])
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)  # they drain their own jobs meanwhile
        for task in getattr(self, "_upkeep_tasks", []):
            task.cancel()
        await super().stop()
        if children:
            await asyncio.to_thread(_join, children, self.grace_seconds + 5)

    @property
    def grace_seconds(self) -> float:
        return float(self._shutdown_grace_period_s or 0) + float(self._cancellation_hard_deadline_s or 0)


def _join(children: list[multiprocessing.Process], timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            child.kill()
            child.join(5)


def graceful_workers(plugin: SAQPlugin) -> dict[str, Worker]:
    """The plugin's workers, built afresh as GracefulWorkers."""
    plugin.remove_workers()
    workers = plugin.get_workers()
    for worker in workers.values():
        if type(worker) is Worker:
            worker.__class__ = GracefulWorker
    return workers


class WorkersCLI(CLIPluginProtocol):
    """Replaces litestar-saq's `workers run` with ours. Listed after SAQPlugin (which adds the group); not a
    SAQPlugin subclass, because Litestar finds plugins by their exact type (`app.plugins.get(SAQPlugin)`)."""

    def on_cli_init(self, cli: Group) -> None:
        group = cli.commands.get("workers")
        if isinstance(group, click.Group):
            group.add_command(run_workers_command)


@click.command(name="run", help="SAQ worker processes: `vtu workers run [--workers N] [--concurrency N]`.")
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=MAX_PROCESSES),
    default=1,
    show_default=True,
    help="Worker processes.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=MAX_CONCURRENCY),
    default=None,
    help="Jobs each process runs at once (default: WORKER_CONCURRENCY, 20).",
)
@click.option("--queues", type=str, multiple=True, help="Queue names to process (default: all).")
@click.option("-v", "--verbose", is_flag=True, default=None, help="Verbose logging.")
@click.option("-d", "--debug", is_flag=True, default=None, help="Debug mode.")
def run_workers_command(
    app: Litestar,
    workers: int,
    concurrency: int | None,
    queues: tuple[str, ...],
    verbose: bool | None,
    debug: bool | None,
) -> None:
    from litestar_saq.cli import get_saq_plugin, limited_start_up, run_saq_worker

    settings = app.state.settings
    if app.logging_config is not None:
        app.logging_config.configure()
    if debug or verbose:
        app.debug = True
    plugin = get_saq_plugin(app)
    if queues:
        unknown = set(queues) - {qc.name for qc in plugin.config.queue_configs}
        if unknown:
            raise click.BadParameter(f"unknown queue(s): {', '.join(sorted(unknown))}", param_hint="--queues")
        limited_start_up(plugin, list(queues))
    jobs_at_once = concurrency or settings.worker_concurrency
    for queue_config in plugin.config.queue_configs:
        queue_config.concurrency = jobs_at_once
    names = list(graceful_workers(plugin))
    grace = plugin.config.queue_configs[0].shutdown_grace_period_s or 0
    click.echo(
        f"SAQ workers: {workers} process(es) x {len(names)} queue(s) ({', '.join(names)}), "
        f"concurrency {jobs_at_once} jobs each, shutdown grace {grace} s",
        err=True,
    )
    # One process per (process, queue) pair; this one runs the first and forwards SIGTERM to the others.
    # Forked (Linux's default start method): the children inherit the configured app and plugin.
    slots = [name for _ in range(workers) for name in names]
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_run_child, args=(plugin, name, app.logging_config), name=f"saq-{name}-{i}")
        for i, name in enumerate(slots[1:], start=1)
    ]
    for child in children:
        child.start()
    main = plugin.get_workers()[slots[0]]  # GracefulWorkers (above)
    main.children = children  # type: ignore[attr-defined]  # a GracefulWorker
    run_saq_worker(main, app.logging_config)


def _run_child(plugin: SAQPlugin, name: str, logging_config: Any) -> None:
    from litestar_saq.cli import run_saq_worker

    asyncio.set_event_loop(asyncio.new_event_loop())  # never the parent's loop (or its epoll descriptor)
    run_saq_worker(graceful_workers(plugin)[name], logging_config)  # fresh Worker objects in this process
