"""PostgreSQL or Redis unreachable: the API answers 503 with its JSON error, a page answers the friendly 503
page, never a 500 with a traceback (app/core/unavailable.py). The fault drill (README "Fault drill") does it
on real servers that it stops and restarts; here the app is pointed at a port where nothing listens."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.core.plugin import cookie_name
from app.core.unavailable import unavailable_service
from tests.fakes.server import free_port
from tests.helpers import running

API_KEY = "Bearer vtu_" + "x" * 40


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver.local")


async def test_database_down_api_and_pages_answer_503(settings, clean_db) -> None:
    dead = f"postgresql://vtu_app@127.0.0.1:{free_port()}/vtu"
    app = create_app(dataclasses.replace(settings, database_url=dead))
    async with running(app), _client(app) as client:
        api = await client.get("/api/v1/wallet", headers={"Authorization": API_KEY})
        assert api.status_code == 503, api.text
        assert api.json()["error"] == "service_unavailable"
        assert int(api.headers["retry-after"]) > 0
        ready = await client.get("/ready")
        assert ready.status_code == 503
        # a page that needs the database: logging in
        form = await client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
        assert token
        data = {"email": "someone@example.ng", "password": "whatever-123", "_csrf_token": token.group(1)}
        page = await client.post("/login", data=data)
        assert page.status_code == 503, page.text[:500]
        assert page.headers["content-type"].startswith("text/html")
        assert "We are briefly unavailable" in page.text and "Traceback" not in page.text


async def test_redis_down_pages_answer_503(settings) -> None:
    app = create_app(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    async with running(app), _client(app) as client:
        client.cookies.set(cookie_name("vtu_session", settings), "a" * 43)
        page = await client.get("/dashboard")
        assert page.status_code == 503, page.text[:500]
        assert "We are briefly unavailable" in page.text and "Traceback" not in page.text


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad input"), KeyError("x"), FileNotFoundError("a template, not a database socket")],
)
def test_other_errors_stay_500(exc: Exception) -> None:
    assert unavailable_service(exc) is None
