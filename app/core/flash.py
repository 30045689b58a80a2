"""One-shot messages shown on the next page (stored in the server-side session)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.template.base import _get_request_from_context

_KEY = "_messages"


def flash(connection: ASGIConnection[Any, Any, Any, Any], message: str, category: str = "info") -> None:
    session = connection.scope.get("session")
    if not isinstance(session, dict):  # cleared or never started (e.g. right after logout)
        session = {}
        connection.set_session(session)
    session.setdefault(_KEY, []).append({"message": message, "category": category})


def get_flashes(context: Mapping[str, Any], /) -> list[dict[str, str]]:
    session = _get_request_from_context(context).scope.get("session")
    if not isinstance(session, dict):
        return []
    return session.pop(_KEY, [])
