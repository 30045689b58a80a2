"""The bulk order pages (app/vtu/bulk_pages.py) through the real app: paste / upload, per-line errors with
nothing written, confirmation with the PIN, progress polling that stops, the results CSV, a re-upload that
buys nothing, CSRF, and other customers' orders 404. The worker's runner is run inline here."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

from sqlalchemy import text

from app.vtu.runtime import get_vtu
from tests.factories import PASSWORD, create_user
from tests.helpers import csrf_token, log_in
from tests.integration.purchase_fixtures import assert_reconciled, money
from tests.integration.test_purchase_pages import PIN, customer

LOCATION = re.compile(r"^/bulk/([0-9a-f-]{36})$")
LIST = "08011111111,100,mtn\n08031234567,200"  # the stub delivers the first, fails (refunds) the second


async def count(sessionmaker: Any, sql: str) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(text(sql))).scalar_one())


async def upload(client: Any, data: dict[str, str], files: Any = None) -> Any:
    token = await csrf_token(client, "/bulk")
    return await client.post(
        "/bulk", data={"_csrf_token": token, **data}, files=files, follow_redirects=False
    )


def bulk_id(response: Any) -> uuid.UUID:
    assert response.status_code == 303, (response.status_code, response.text[:2000])
    match = LOCATION.match(response.headers["location"])
    assert match, response.headers["location"]
    return uuid.UUID(match.group(1))


async def test_paste_confirm_progress_and_csv(client, db, sessionmaker, app) -> None:
    user = await customer(client, db, sessionmaker, fund_kobo=100_000)
    page = await client.get("/bulk")
    assert page.status_code == 200 and 'name="lines"' in page.text and "No bulk orders yet" in page.text

    bad = await upload(
        client, {"kind": "airtime", "lines": "08011111111,100,mtn\n0803,100\n08031234567,50.5"}
    )
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
    assert "Line 2:" in bad.text and "Line 3:" in bad.text and "Line 1:" not in bad.text
    assert "0803,100" in bad.text  # the list comes back to fix
    assert await count(sessionmaker, "SELECT count(*) FROM bulk_orders") == 0

    made = await upload(client, {"kind": "airtime", "lines": LIST})
    order = bulk_id(made)
    confirm_page = await client.get(f"/bulk/{order}")
    assert confirm_page.status_code == 200 and confirm_page.headers["content-type"].startswith("text/html")
    assert "₦300.00" in confirm_page.text and "₦1,000.00" in confirm_page.text  # total, wallet
    assert 'name="pin"' in confirm_page.text
    token = await csrf_token(client, f"/bulk/{order}")
    wrong = await client.post(f"/bulk/{order}/confirm", data={"_csrf_token": token, "pin": "0000"})
    assert wrong.status_code == 400 and 'id="e-pin"' in wrong.text
    assert wrong.headers["content-type"].startswith("text/html")
    assert await count(sessionmaker, "SELECT count(*) FROM purchases") == 0
    token = await csrf_token(client, f"/bulk/{order}")
    ok = await client.post(
        f"/bulk/{order}/confirm", data={"_csrf_token": token, "pin": PIN}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == f"/bulk/{order}"
    again = await client.post(
        f"/bulk/{order}/confirm", data={"_csrf_token": token, "pin": PIN}, follow_redirects=False
    )
    assert again.status_code == 303  # a double tap: the same order, one run
    running = await client.get(f"/bulk/{order}/progress")
    assert 'hx-trigger="every 3s"' in running.text and "0 of 2" in running.text

    runtime = await get_vtu(app)
    assert (await runtime.bulk_runner.run(order)).startswith("done")
    done = await client.get(f"/bulk/{order}/progress")
    assert "hx-trigger" not in done.text and "2 of 2" in done.text  # polling stops
    sheet = await client.get(f"/bulk/{order}.csv")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.text)))
    assert rows[0] == ["line", "phone", "product", "price", "status", "reference", "error"]
    assert [(r[0], r[1], r[3], r[4]) for r in rows[1:]] == [
        ("1", "08011111111", "100.00", "successful"),
        ("2", "08031234567", "200.00", "failed"),
    ]
    assert rows[1][5] and rows[2][6]  # a reference; the failure's reason
    assert (await money(sessionmaker, user.id, "stub")).wallet == 100_000 - 10_000  # the failure refunded

    # The same list uploaded as a file: that same order, nothing bought again.
    reupload = await upload(
        client, {"kind": "airtime", "lines": ""}, files={"file": ("list.csv", LIST.encode())}
    )
    assert bulk_id(reupload) == order
    shown = await client.get(f"/bulk/{order}")
    assert "already uploaded this same list" in shown.text
    assert await count(sessionmaker, "SELECT count(*) FROM purchases") == 2
    assert await count(sessionmaker, "SELECT count(*) FROM bulk_orders") == 1
    await assert_reconciled(sessionmaker)


async def test_csrf_and_other_customers_orders(client, db, sessionmaker, make_client) -> None:
    await customer(client, db, sessionmaker, fund_kobo=100_000)
    order = bulk_id(await upload(client, {"kind": "airtime", "lines": LIST}))
    refused = await client.post("/bulk", data={"kind": "airtime", "lines": LIST}, follow_redirects=False)
    assert refused.status_code == 403
    other = await create_user(db)
    await db.commit()
    async with make_client() as stranger:
        await log_in(stranger, other.email, PASSWORD)
        for path in (f"/bulk/{order}", f"/bulk/{order}.csv", f"/bulk/{order}/progress", "/bulk/not-a-uuid"):
            assert (await stranger.get(path)).status_code == 404, path
        token = await csrf_token(stranger, "/bulk")
        for action in ("confirm", "cancel"):
            answer = await stranger.post(f"/bulk/{order}/{action}", data={"_csrf_token": token, "pin": PIN})
            assert answer.status_code == 404
    assert (await client.get(f"/bulk/{order}")).status_code == 200
    assert await count(sessionmaker, "SELECT count(*) FROM bulk_orders WHERE status = 'draft'") == 1
    assert await count(sessionmaker, "SELECT count(*) FROM purchases") == 0


async def test_the_page_lists_the_data_plan_codes_a_list_may_use(client, db, sessionmaker) -> None:
    from tests.integration.test_purchase_pages import seed_plans

    await customer(client, db, sessionmaker, fund_kobo=100_000)
    await seed_plans(sessionmaker, "mtn-data")
    page = await client.get("/bulk")
    assert page.status_code == 200 and "Data plan codes" in page.text
    codes = re.findall(r"<tr><td><code>([^<]+)</code></td>", page.text)
    assert codes, page.text[-3000:]
    made = await upload(client, {"kind": "data", "lines": f"08031111111,{codes[0]}"})
    order = bulk_id(made)  # a code from the list is accepted as it is shown
    assert await count(sessionmaker, f"SELECT count(*) FROM bulk_order_lines WHERE bulk_id = '{order}'") == 1
