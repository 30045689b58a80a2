"""Which mobile network a Nigerian number belongs to, from its prefix (docs/architecture.md, "Customer
pages"). The ONE copy of the prefix table: the buy forms ask the server (`GET /buy/<kind>/network`) and the
server fills an empty network from it on submit; no other copy exists (none in JavaScript).

A prefix says where a number was issued, not where it is now: a ported number keeps its old prefix, so a
customer's own choice of network always wins over a detection.
"""

from __future__ import annotations

from app.core.validation import InvalidPhone, normalise_phone
from app.vtu.providers.catalog import Service, ServiceKind, get_service

# Keys are the airtime service ids (app/vtu/providers/catalog.py); "etisalat" is 9mobile.
NETWORK_PREFIXES: dict[str, tuple[str, ...]] = {
    "mtn": (
        "0703", "0704", "0706", "0803", "0806", "0810", "0813", "0814", "0816", "0903", "0906", "0913",
        "0916", "07025", "07026",
    ),
    "airtel": ("0701", "0708", "0802", "0808", "0812", "0901", "0902", "0904", "0907", "0911", "0912"),
    "glo": ("0705", "0805", "0807", "0811", "0815", "0905", "0915"),
    "etisalat": ("0809", "0817", "0818", "0908", "0909"),
}  # fmt: skip

_BY_PREFIX: dict[str, str] = {
    prefix: network for network, prefixes in NETWORK_PREFIXES.items() for prefix in prefixes
}
_LENGTHS = sorted({len(p) for p in _BY_PREFIX}, reverse=True)  # longest first: 07025 before a 4-digit one


def detect_network(phone: str) -> str | None:
    """The network (airtime service id) a number was issued by, or None: not a complete Nigerian mobile
    number (0XXXXXXXXXX, 234XXXXXXXXXX or +234XXXXXXXXXX), or a prefix no network uses."""
    try:
        local = normalise_phone(phone)
    except InvalidPhone:
        return None
    for length in _LENGTHS:
        network = _BY_PREFIX.get(local[:length])
        if network:
            return network
    return None


def detect_service(phone: str, kind: ServiceKind) -> Service | None:
    """The airtime or data service of the number's network (e.g. "mtn" / "mtn-data"), or None."""
    network = detect_network(phone)
    if network is None or kind not in (ServiceKind.AIRTIME, ServiceKind.DATA):
        return None
    return get_service(network if kind is ServiceKind.AIRTIME else f"{network}-data")


__all__ = ["NETWORK_PREFIXES", "detect_network", "detect_service"]
