"""SAQ worker: queue settings, task functions and the cron schedule (see workers/settings.py)."""
