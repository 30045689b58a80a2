"""Shared declarative bases. Every table lives on advanced-alchemy's default metadata."""

from __future__ import annotations

from advanced_alchemy.base import BigIntAuditBase, UUIDv7AuditBase

__all__ = ["BigIntAuditBase", "UUIDv7AuditBase"]
