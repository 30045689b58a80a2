"""POST /api/v1/bulk and GET /api/v1/bulk/{id} over a real socket (docs/api.md, "Bulk orders"): per-line
errors with nothing written, Idempotency-Key (same body -> same order, also racing; other body -> 409), the
order bought line by line (the runner the worker runs, here inline) with one purchase per line, 404s."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text

from app.vtu.bulk import BulkService, line_key
from app.vtu.bulk_runner import BulkRunner
from tests.integration import api_fixtures
from tests.integration.api_fixtures import DELIVERED, new_reseller
from tests.integration.purchase_fixtures import assert_reconciled, make_service, money

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http


def lines(n: int, *, amount: int = 10_000) -> list[dict[str, Any]]:
    """Line 1 to the stub's delivering number, the rest to numbers it fails (016, refunded)."""
    first = {"phone": DELIVERED, "service_id": "mtn", "amount_kobo": amount}
    return [first] + [{"phone": f"0803{i:07d}", "amount_kobo": amount} for i in range(2, n + 1)]


async def count(sessionmaker: Any, sql: str, **params: Any) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def test_bad_lines_are_named_and_nothing_is_written(http, sessionmaker) -> None:
    reseller = await new_reseller(sessionmaker)
    body = {"kind": "airtime", "lines": lines(500)}  # ~25 KB: over the purchase API's 16 KB body limit
    body["lines"][7] = {"phone": "0803123", "amount_kobo": 10_000}
    body["lines"][8] = {"phone": "08031234569", "amount_kobo": "100"}
    body["lines"][9] = {"phone": "08031234570", "amount_kobo": 10_000, "colour": "red"}
    body["lines"][10] = {"amount_kobo": 10_000}
    body["lines"][499] = {"phone": "08031234571", "amount_kobo": 1_000}  # below N50
    answer = await http.post("/api/v1/bulk", json=body, headers=reseller.buy_headers())
    assert answer.status_code == 400, answer.text
    fields = answer.json()["fields"]
    assert set(fields) == {"lines[8].amount_kobo", "lines[9].colour", "lines[10].phone"}  # types first
    body["lines"][8]["amount_kobo"] = 10_000
    del body["lines"][9]["colour"]
    body["lines"][10]["phone"] = "08031234572"
    answer = await http.post("/api/v1/bulk", json=body, headers=reseller.buy_headers())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert set(answer.json()["fields"]) == {"lines[7].phone", "lines[499].amount_kobo"}
    assert "nothing was bought" in answer.json()["detail"]
    for bad in ({"kind": "cable", "lines": lines(1)}, {"kind": "airtime", "lines": []},
                {"kind": "airtime", "lines": lines(501)}, [1, 2]):  # fmt: skip
        answer = await http.post("/api/v1/bulk", json=bad, headers=reseller.buy_headers())
        assert answer.status_code == 400, answer.text
    answer = await http.post(
        "/api/v1/bulk", json={"kind": "airtime", "lines": lines(1)}, headers=reseller.headers
    )
    assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["fields"]
    assert await count(sessionmaker, "SELECT count(*) FROM bulk_orders") == 0
    assert await count(sessionmaker, "SELECT count(*) FROM purchases") == 0


async def test_idempotent_order_bought_once_per_line(api, http, sessionmaker) -> None:
    start = 1_000_000
    reseller = await new_reseller(sessionmaker, fund=start)
    body = {"kind": "airtime", "lines": lines(4)}
    headers = reseller.buy_headers("batch-2026-12-07")
    # Racing requests with one key: one order, every answer is it.
    answers = await asyncio.gather(*(http.post("/api/v1/bulk", json=body, headers=headers) for _ in range(5)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    first = answers[0].json()
    assert (first["status"], first["line_count"], first["total_kobo"]) == ("running", 4, 4 * 9_800)  # tier
    assert [li["line"] for li in first["lines"]] == [1, 2, 3, 4]
    assert first["lines"][1]["service_id"] == "mtn"  # detected from 0803
    changed = {"kind": "airtime", "lines": lines(3)}
    conflict = await http.post("/api/v1/bulk", json=changed, headers=headers)
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_key_reused"
    assert await count(sessionmaker, "SELECT count(*) FROM bulk_orders") == 1

    # The worker's runner (inline here) buys each line once; a second run buys nothing.
    harness = make_service(sessionmaker, api.app.state.settings)
    service = BulkService(sessionmaker, harness.service, None)
    runner = BulkRunner(sessionmaker, service, lines_per_second=0, lease_seconds=5)
    bulk_id = uuid.UUID(first["id"])
    assert (await runner.run(bulk_id)).startswith("done")
    assert await runner.run(bulk_id) == "not_taken"
    await harness.aclose()

    got = await http.get(f"/api/v1/bulk/{bulk_id}", headers=reseller.headers)
    assert got.status_code == 200
    order = got.json()
    assert order["status"] == "done" and order["counts"] == {"successful": 1, "failed": 3}
    assert all(li["purchase_id"] and li["reference"] for li in order["lines"])
    assert order["lines"][1]["error"]  # the provider's refusal, refunded
    replay = await http.post("/api/v1/bulk", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json()["id"] == str(bulk_id)
    assert replay.json()["status"] == "done"
    keys = {line_key(bulk_id, n) for n in range(1, 5)}
    assert (
        await count(sessionmaker, "SELECT count(*) FROM purchases WHERE user_id = :u", u=reseller.user_id)
        == 4
    )
    assert await count(
        sessionmaker, "SELECT count(DISTINCT idempotency_key) FROM purchases WHERE idempotency_key = ANY(:k)",
        k=list(keys),
    ) == 4  # fmt: skip
    assert (await money(sessionmaker, reseller.user_id, "stub")).wallet == start - 9_800  # 3 refunded
    await assert_reconciled(sessionmaker)


async def test_another_users_order_is_404(http, sessionmaker) -> None:
    owner = await new_reseller(sessionmaker)
    other = await new_reseller(sessionmaker)
    made = await http.post(
        "/api/v1/bulk", json={"kind": "airtime", "lines": lines(1)}, headers=owner.buy_headers()
    )
    assert made.status_code == 201
    bulk_id = made.json()["id"]
    assert (await http.get(f"/api/v1/bulk/{bulk_id}", headers=other.headers)).status_code == 404
    assert (await http.get("/api/v1/bulk/not-a-uuid", headers=owner.headers)).status_code == 404
    assert (await http.get(f"/api/v1/bulk/{bulk_id}", headers=owner.headers)).status_code == 200
    assert (await http.get(f"/api/v1/bulk/{bulk_id}")).status_code == 401
