"""The customer's statement: `GET /statement` (the page; htmx asks for the next page's lines) and
`GET /statement.csv` (the same filters as a download). The signed-in customer's own wallet only: the user id
comes from the session, never from the request.

Query: `kind` (funding / purchase / refund / bonus / adjustment), `status` (a purchase status), `from` / `to`
(Lagos dates, YYYY-MM-DD, inclusive), `before` (an entry id: the next, older page; malformed = the first
page). A refused filter value answers 400 with what was wrong (the page still lists with the other filters;
the CSV is not made), never 500.
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, MediaType, Response, get
from litestar.params import Parameter
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.core.db import reads_only
from app.core.keyset import decode_id
from app.ledger import statement as st

NO_STORE = {"Cache-Control": "no-store"}
ROWS = "ledger/partials/statement_rows.html"
STATEMENT_PAGE = st.PAGE
CSV_BATCH = 1_000


def _older_url(filters: st.Filters, next_before: int | None) -> str | None:
    if next_before is None:
        return None
    return "/statement?" + urlencode({**filters.query(), "before": str(next_before)})


class StatementController(Controller):
    guards = [requires_login]
    include_in_schema = False

    @get("/statement", name="ledger:statement")
    async def page(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        kind: str | None = Parameter(query="kind", default=None, required=False),
        status: str | None = Parameter(query="status", default=None, required=False),
        date_from: str | None = Parameter(query="from", default=None, required=False),
        date_to: str | None = Parameter(query="to", default=None, required=False),
        before: str | None = Parameter(query="before", default=None, required=False),
    ) -> Template:
        user_id = request.user.id
        filters, errors = st.parse_filters(kind, status, date_from, date_to)
        cursor = decode_id(before)
        await reads_only(db_session)
        statement = await st.wallet_statement_rows(
            db_session, user_id, filters=filters, before=cursor, limit=STATEMENT_PAGE
        )
        context: dict[str, Any] = {
            "statement": statement,
            "older": _older_url(filters, statement.next_before),
        }
        htmx = request.htmx
        if htmx and not htmx.history_restore_request and htmx.target == "more-statement":
            return Template(template_name=ROWS, context=context, media_type=MediaType.HTML, headers=NO_STORE)
        query = filters.query()
        context |= {
            "filters": filters,
            "errors": errors,
            "paged": cursor is not None,
            "balance_kobo": statement.balance,  # read with the lines (one round trip)
            "kinds": list(st.FILTER_KINDS),
            "statuses": st.PURCHASE_STATUSES,
            "csv_url": "/statement.csv" + (f"?{urlencode(query)}" if query else ""),
            "csv_max": st.CSV_MAX_ROWS,
        }
        return Template(
            template_name="ledger/statement.html",
            context=context,
            status_code=400 if errors else 200,
            media_type=MediaType.HTML,
            headers=NO_STORE,
        )

    @get("/statement.csv", name="ledger:statement-csv")
    async def download(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        kind: str | None = Parameter(query="kind", default=None, required=False),
        status: str | None = Parameter(query="status", default=None, required=False),
        date_from: str | None = Parameter(query="from", default=None, required=False),
        date_to: str | None = Parameter(query="to", default=None, required=False),
    ) -> Response[bytes]:
        """The statement as CSV, newest first, at most CSV_MAX_ROWS lines (then a last line says so), read in
        keyset batches. Built in memory: 10,000 lines are about 1 MB."""
        filters, errors = st.parse_filters(kind, status, date_from, date_to)
        if errors:
            message = (" ".join(errors) + "\n").encode()
            return Response(message, status_code=400, media_type=MediaType.TEXT, headers=NO_STORE)
        await reads_only(db_session)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(st.CSV_COLUMNS)
        written, before = 0, None
        while written < st.CSV_MAX_ROWS:
            batch = min(CSV_BATCH, st.CSV_MAX_ROWS - written)
            page = await st.wallet_statement_rows(
                db_session, request.user.id, filters=filters, before=before, limit=batch
            )
            writer.writerows(st.csv_row(row) for row in page.rows)
            written += len(page.rows)
            before = page.next_before
            if before is None:
                break
        if before is not None:
            note = f"Only the newest {st.CSV_MAX_ROWS:,} lines: choose dates to download older ones."
            writer.writerow(["", "note", note, "", "", ""])
        today = datetime.datetime.now(st.LAGOS).date().isoformat()
        headers = {
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="statement-{today}.csv"',
            "X-Content-Type-Options": "nosniff",
        }
        return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)


__all__ = ["StatementController"]
