"""Beneficiaries on the web: the recent / saved recipients a buy form offers, its "Save this number" choice,
and the /beneficiaries page where a customer renames or deletes saved ones. Thin: the rules are
app/vtu/beneficiaries.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Controller, MediaType, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import requires_login
from app.core.flash import flash
from app.vtu import beneficiaries as rules
from app.vtu.beneficiaries import LABEL_MAX, MAX_SAVED, RECIPIENT_OF, BeneficiaryError, BeneficiaryNotFound
from app.vtu.models import FAILED
from app.vtu.providers.catalog import ServiceKind

Req = Request[Any, Any, Any]
SAVE, LABEL = "save_beneficiary", "beneficiary_label"
RECIPIENT_FIELD = {
    ServiceKind.AIRTIME: "phone",
    ServiceKind.DATA: "phone",
    ServiceKind.ELECTRICITY: "meter_number",
    ServiceKind.CABLE: "smartcard_number",
}


@dataclass(frozen=True, slots=True)
class SaveChoice:
    """The buy form's "Save this number" box and optional name."""

    wanted: bool = False
    label: str = ""

    @classmethod
    def read(cls, form: Any) -> SaveChoice:
        label = rules.clean_label(str(form.get(LABEL, "") or "")[: LABEL_MAX * 4])
        return cls(wanted=bool(form.get(SAVE)), label=label)

    async def problem(
        self, db_session: AsyncSession, user_id: uuid.UUID, kind: ServiceKind, form: dict[str, str]
    ) -> str | None:
        """Checked before buying: a name too long, or the 50 saved already (nothing is bought then)."""
        return await rules.save_problem(
            db_session, user_id, kind, form.get(RECIPIENT_FIELD[kind], ""), self.label
        )

    async def keep(self, request: Req, db_session: AsyncSession, user_id: uuid.UUID, purchase: Any) -> None:
        """After the purchase was accepted (opened; not failed by the provider): save its recipient as it
        was bought. A save refused now (a race past the limit) never undoes the purchase: it is said."""
        if purchase.status == FAILED:
            return
        try:
            await rules.remember(db_session, user_id, purchase, self.label)
            await db_session.commit()
        except BeneficiaryError as exc:  # raised before any write: end the transaction (and its lock)
            await db_session.commit()
            flash(request, f"The number was not saved: {exc.message}", category="warning")


async def beneficiary_context(request: Req, db_session: AsyncSession, kind: ServiceKind) -> dict[str, Any]:
    """The buy form's offers and its save choice (as submitted, when the form is sent back)."""
    choice = SaveChoice.read(await request.form()) if request.method == "POST" else SaveChoice()
    return {
        "beneficiaries": await rules.offers(db_session, request.user.id, kind),
        "recipient_field": RECIPIENT_FIELD[kind],
        "save_choice": choice,
        "label_max": LABEL_MAX,
    }


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFoundException() from None


class BeneficiaryController(Controller):
    path = "/beneficiaries"
    guards = [requires_login]
    include_in_schema = False

    @get("/", name="beneficiaries:list")
    async def page(self, request: Req, db_session: AsyncSession) -> Template:
        return await self._page(request, db_session)

    @post("/{beneficiary_id:str}/rename", name="beneficiaries:rename", status_code=200)
    async def rename(self, request: Req, db_session: AsyncSession, beneficiary_id: str) -> Any:
        form = await request.form()
        label = rules.clean_label(str(form.get("label", "") or "")[: LABEL_MAX * 4])
        try:
            row = await rules.rename(db_session, request.user.id, _id(beneficiary_id), label)
        except BeneficiaryNotFound:
            raise NotFoundException() from None
        except BeneficiaryError as exc:  # nothing was written (a rollback would expire the signed-in user)
            return await self._page(request, db_session, errors={beneficiary_id: exc.message}, status=400)
        await db_session.commit()
        flash(request, f"Renamed {row.recipient}.", category="success")
        return Redirect("/beneficiaries", status_code=303)

    @post("/{beneficiary_id:str}/delete", name="beneficiaries:delete", status_code=200)
    async def delete(self, request: Req, db_session: AsyncSession, beneficiary_id: str) -> Any:
        try:
            row = await rules.delete(db_session, request.user.id, _id(beneficiary_id))
        except BeneficiaryNotFound:
            raise NotFoundException() from None
        await db_session.commit()
        flash(request, f"Deleted {row.label or row.recipient}.", category="success")
        return Redirect("/beneficiaries", status_code=303)

    async def _page(
        self,
        request: Req,
        db_session: AsyncSession,
        *,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        rows = await rules.saved(db_session, request.user.id)
        return Template(
            template_name="vtu/beneficiaries.html",
            context={
                "rows": [
                    {"row": row, "brand": rules.service_brand(row.service_id), "links": rules.buy_links(row)}
                    for row in rows
                ],
                "errors": errors or {},
                "max_saved": MAX_SAVED,
                "label_max": LABEL_MAX,
                "kinds": RECIPIENT_OF,
            },
            status_code=status,
            media_type=MediaType.HTML,
        )


__all__ = ["BeneficiaryController", "SaveChoice", "beneficiary_context"]
