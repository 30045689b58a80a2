"""Operational alerts: conditions checked every minute by the worker, raised once, e-mailed to staff,
cleared when the condition ends. See README.md."""
