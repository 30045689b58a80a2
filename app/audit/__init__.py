"""Audit log of staff actions (README.md)."""
