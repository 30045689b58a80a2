"""Bulk order pages (docs/architecture.md, "Bulk orders"). Thin: parse the form, call `BulkService`, render.

- `GET /bulk`: the paste / upload form and the customer's bulk orders. `POST /bulk`: check the list (every
  bad line listed, nothing written: 400) or keep it as a draft and go to it (303); the same list again is the
  order it already made (a notice says so; nothing is bought twice).
- `GET /bulk/{id}`: a draft's confirmation (lines, total at the customer's price, wallet balance, what
  happens if the balance runs out, transaction PIN), else its live progress (the status block polls
  `GET /bulk/{id}/progress` every 3 s while running). `POST /bulk/{id}/confirm` (PIN) and
  `POST /bulk/{id}/cancel`. `GET /bulk/{id}.csv`: the results. Another customer's id, or not one: 404.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.core.flash import flash
from app.vtu.approval import check_pin
from app.vtu.bulk import (
    MAX_LINES,
    MAX_UPLOAD_BYTES,
    BulkError,
    BulkInvalid,
    BulkNotFound,
    BulkView,
    csv_rows,
)
from app.vtu.runtime import get_vtu

Req = Request[Any, Any, Any]
PROGRESS_POLL = "every 3s"


async def _upload(raw: Any) -> tuple[str, str | None]:
    """The list from the form: the uploaded file when one was chosen, else the pasted text."""
    upload: Any = raw.get("file")
    if not isinstance(upload, str) and getattr(upload, "filename", None):
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            return "", f"The file is too large: at most {MAX_UPLOAD_BYTES // 1024} KB."
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            return "", "Upload a CSV or text file (UTF-8), one recipient per line."
    text = str(raw.get("lines", "") or "")
    if len(text.encode()) > MAX_UPLOAD_BYTES:
        return "", f"The list is too large: at most {MAX_UPLOAD_BYTES // 1024} KB."
    return text, None


class BulkPagesController(Controller):
    guards = [requires_login]

    async def _order(self, request: Req, bulk_id: str) -> BulkView:
        try:
            return await (await get_vtu(request.app)).bulk.get(request.user.id, uuid.UUID(bulk_id))
        except (ValueError, BulkNotFound):
            raise NotFoundException("No such bulk order.") from None

    async def _index(
        self, request: Req, *, form: dict[str, str] | None = None, problem: BulkInvalid | None = None,
        status: int = 200,
    ) -> Template:  # fmt: skip
        runtime = await get_vtu(request.app)
        orders = await runtime.bulk.list_for_user(request.user.id, limit=20)
        plan_codes = await runtime.bulk.data_plan_codes(request.user)
        return Template(
            template_name="vtu/bulk.html",
            media_type=MediaType.HTML,
            context={
                "orders": orders,
                "form": form or {"kind": "airtime", "lines": ""},
                "problem": problem,
                "max_lines": MAX_LINES,
                "max_kb": MAX_UPLOAD_BYTES // 1024,
                "plan_codes": plan_codes,
            },
            status_code=status,
        )

    @get("/bulk", name="bulk:index")
    async def index(self, request: Req, db_session: AsyncSession) -> Template:
        await db_session.commit()  # the service takes its own connections
        return await self._index(request)

    @post("/bulk", name="bulk:create", status_code=200)
    async def create(self, request: Req, db_session: AsyncSession) -> Any:
        await db_session.commit()
        raw = await request.form()
        kind = str(raw.get("kind", "") or "")
        content, problem = await _upload(raw)
        form = {"kind": kind, "lines": str(raw.get("lines", "") or "")[:MAX_UPLOAD_BYTES]}
        if problem:
            return await self._index(request, form=form, problem=BulkInvalid(problem), status=400)
        runtime = await get_vtu(request.app)
        try:
            prepared = await runtime.bulk.prepare_upload(request.user, kind, content)
        except BulkInvalid as exc:
            return await self._index(request, form=form, problem=exc, status=400)
        if prepared.existing:
            flash(
                request,
                "You already uploaded this same list: this is that order. Nothing is bought twice.",
                category="info",
            )
        return Redirect(f"/bulk/{prepared.bulk.id}", status_code=303)

    @get("/bulk/{ref:str}", name="bulk:show")
    async def show(self, request: Req, db_session: AsyncSession, ref: str) -> Any:
        if ref.endswith(".csv"):
            return await self._csv(request, db_session, ref.removesuffix(".csv"))
        bulk = await self._order(request, ref)
        return await self._page(request, db_session, bulk)

    async def _page(
        self, request: Req, db_session: AsyncSession, bulk: BulkView, *, errors: dict[str, str] | None = None,
        alert: str | None = None, status: int = 200,
    ) -> Template:  # fmt: skip
        runtime = await get_vtu(request.app)
        await db_session.commit()
        balance = await runtime.purchases.balance(request.user.id)
        return Template(
            template_name="vtu/bulk_order.html",
            media_type=MediaType.HTML,  # the handlers return Any: without it, Litestar sends JSON's type
            context={
                "bulk": bulk,
                "balance": balance,
                "short": max(0, bulk.total_kobo - balance),
                "errors": errors or {},
                "alert": alert,
                "has_pin": bool(request.user.pin_hash),
                "poll": PROGRESS_POLL,
            },
            status_code=status,
        )

    @get("/bulk/{ref:str}/progress", name="bulk:progress")
    async def progress(self, request: Req, ref: str) -> Template:
        """The status block; while running it asks for itself again every 3 s (outerHTML), and the final
        version has no trigger, so polling stops."""
        bulk = await self._order(request, ref)
        return Template(
            template_name="vtu/partials/bulk_progress.html",
            # once it stops, the lines' final statuses go along (hx-swap-oob)
            context={"bulk": bulk, "poll": PROGRESS_POLL, "lines_oob": True},
            media_type=MediaType.HTML,
        )

    @post("/bulk/{ref:str}/confirm", name="bulk:confirm", status_code=200)
    async def confirm(self, request: Req, db_session: AsyncSession, ref: str) -> Any:
        bulk = await self._order(request, ref)
        raw = await request.form()
        if bulk.status != "draft":
            return Redirect(f"/bulk/{bulk.id}", status_code=303)  # a double tap: already running
        # The transaction PIN approves spending (app/vtu/approval.py), as on every buy form.
        refusal = await check_pin(request.app.state, request.user, str(raw.get("pin", "") or "")[:16])
        if refusal is not None:
            alert = "no_pin" if refusal.alert and refusal.alert.get("kind") == "no_pin" else None
            page = await self._page(
                request, db_session, bulk, errors=refusal.errors, alert=alert, status=refusal.status
            )
            if refusal.retry_after:
                page.headers["Retry-After"] = str(refusal.retry_after)
            return page
        runtime = await get_vtu(request.app)
        try:
            await runtime.bulk.confirm(request.user.id, bulk.id)
        except BulkError as exc:
            return await self._page(request, db_session, bulk, alert=exc.message, status=409)
        flash(request, f"Started: {bulk.line_count} top-ups are being bought one by one.", category="success")
        return Redirect(f"/bulk/{bulk.id}", status_code=303)

    @post("/bulk/{ref:str}/cancel", name="bulk:cancel", status_code=200)
    async def cancel(self, request: Req, db_session: AsyncSession, ref: str) -> Any:
        bulk = await self._order(request, ref)
        runtime = await get_vtu(request.app)
        try:
            await runtime.bulk.cancel(request.user.id, bulk.id)
        except BulkError as exc:
            return await self._page(request, db_session, bulk, alert=exc.message, status=409)
        flash(request, "Cancelled: no further lines will be bought.", category="info")
        return Redirect(f"/bulk/{bulk.id}", status_code=303)

    async def _csv(self, request: Req, db_session: AsyncSession, ref: str) -> Response[bytes]:
        bulk = await self._order(request, ref)
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(csv_rows(bulk))
        headers = {"Content-Disposition": f'attachment; filename="bulk-{bulk.id}.csv"'}
        return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)


__all__ = ["BulkPagesController"]
