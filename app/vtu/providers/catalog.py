"""The services we sell, keyed by VTpass serviceID (the stub uses the same ids)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ServiceKind(enum.StrEnum):
    AIRTIME = "airtime"
    DATA = "data"
    ELECTRICITY = "electricity"
    CABLE = "cable"
    EXAM = "exam"  # exam PINs (WAEC, JAMB): a fixed-price plan, `quantity` PINs per purchase


@dataclass(frozen=True, slots=True)
class Service:
    service_id: str
    kind: ServiceKind
    name: str  # shown to customers
    brand: str  # network / disco / TV brand, groups services on pages


def _services() -> tuple[Service, ...]:
    networks = (("mtn", "MTN"), ("glo", "Glo"), ("airtel", "Airtel"), ("etisalat", "9mobile"))
    discos = (
        ("ikeja-electric", "Ikeja Electric (IKEDC)"),
        ("eko-electric", "Eko Electric (EKEDC)"),
        ("abuja-electric", "Abuja Electric (AEDC)"),
        ("kano-electric", "Kano Electric (KEDCO)"),
        ("portharcourt-electric", "Port Harcourt Electric (PHED)"),
        ("ibadan-electric", "Ibadan Electric (IBEDC)"),
        ("kaduna-electric", "Kaduna Electric (KAEDCO)"),
        ("jos-electric", "Jos Electric (JED)"),
        ("enugu-electric", "Enugu Electric (EEDC)"),
        ("benin-electric", "Benin Electric (BEDC)"),
    )
    return (
        *(Service(sid, ServiceKind.AIRTIME, f"{brand} Airtime", brand) for sid, brand in networks),
        *(Service(f"{sid}-data", ServiceKind.DATA, f"{brand} Data", brand) for sid, brand in networks),
        *(Service(sid, ServiceKind.ELECTRICITY, name, name.split(" (")[0]) for sid, name in discos),
        Service("dstv", ServiceKind.CABLE, "DStv Subscription", "DStv"),
        Service("gotv", ServiceKind.CABLE, "GOtv Subscription", "GOtv"),
        Service("startimes", ServiceKind.CABLE, "StarTimes Subscription", "StarTimes"),
        Service("waec", ServiceKind.EXAM, "WAEC Result Checker PIN", "WAEC"),
        Service("waec-registration", ServiceKind.EXAM, "WAEC Registration PIN", "WAEC"),
        Service("jamb", ServiceKind.EXAM, "JAMB PIN (UTME / DE)", "JAMB"),
    )


SERVICES: tuple[Service, ...] = _services()
SERVICES_BY_ID: dict[str, Service] = {s.service_id: s for s in SERVICES}
METER_TYPES = ("prepaid", "postpaid")
SUBSCRIPTION_TYPES = ("change", "renew")  # dstv / gotv only; startimes takes none
EXAM_QUANTITY = (1, 10)  # PINs per exam purchase (VTpass `quantity`)
# Exam services whose buyer is verified first (VTpass merchant-verify, billersCode = the JAMB profile id).
PROFILE_VERIFIED = frozenset({"jamb"})
# Exam services never sold above the plan price, whatever a price rule says (JAMB's approved price).
PRICE_CAPPED = frozenset({"jamb"})


def get_service(service_id: str) -> Service | None:
    return SERVICES_BY_ID.get(service_id)


def service_kind(service_id: str) -> ServiceKind | None:
    """Kind of a known service, or a best guess from VTpass naming for one not in SERVICES yet."""
    known = SERVICES_BY_ID.get(service_id)
    if known:
        return known.kind
    if service_id.endswith("-electric"):
        return ServiceKind.ELECTRICITY
    if service_id.endswith("-data"):
        return ServiceKind.DATA
    return None
