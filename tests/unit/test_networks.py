"""The network prefix table (app/vtu/networks.py) and the stub's demo numbers that show it working."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.vtu.config import VtuConfig
from app.vtu.networks import NETWORK_PREFIXES, detect_network, detect_service
from app.vtu.orders import PurchaseRequest, validate
from app.vtu.providers import Outcome, PurchaseOrder, StubProvider
from app.vtu.providers.catalog import ServiceKind, get_service
from app.vtu.providers.stub import DEMO_PHONES

EXPECTED = {
    "mtn": "0703 0704 0706 0803 0806 0810 0813 0814 0816 0903 0906 0913 0916 07025 07026",
    "airtel": "0701 0708 0802 0808 0812 0901 0902 0904 0907 0911 0912",
    "glo": "0705 0805 0807 0811 0815 0905 0915",
    "etisalat": "0809 0817 0818 0908 0909",
}


def test_the_table_is_the_published_prefixes_and_no_prefix_is_listed_twice():
    assert {k: " ".join(v) for k, v in NETWORK_PREFIXES.items()} == EXPECTED
    every = [p for prefixes in NETWORK_PREFIXES.values() for p in prefixes]
    assert len(every) == len(set(every))
    for network in NETWORK_PREFIXES:  # keys are the airtime services, each with a data twin
        assert get_service(network).kind is ServiceKind.AIRTIME
        assert get_service(f"{network}-data").kind is ServiceKind.DATA


@pytest.mark.parametrize("network", sorted(NETWORK_PREFIXES))
def test_every_prefix_is_detected_in_each_spelling(network):
    for prefix in NETWORK_PREFIXES[network]:
        local = prefix + "1" * (11 - len(prefix))
        for spelling in (
            local,
            "234" + local[1:],
            "+234" + local[1:],
            f"{local[:4]} {local[4:7]} {local[7:]}",
        ):
            assert detect_network(spelling) == network, spelling


@pytest.mark.parametrize(
    "phone",
    [
        "08011111111",  # the sandbox number: 0801 is no network's
        "07027123456",  # 0702 is no network's; only 07025 / 07026 are MTN
        "0803",  # incomplete
        "080312345678",  # too long
        "0803123456x",
        "08031234\uff1567",  # a full-width digit is not a digit here
        "",
        "201000000000",
    ],
)
def test_numbers_without_a_known_network_detect_nothing(phone):
    assert detect_network(phone) is None


def test_detect_service_names_the_airtime_or_data_service():
    assert detect_service("08031234567", ServiceKind.AIRTIME).service_id == "mtn"
    assert detect_service("+2348091234567", ServiceKind.DATA).service_id == "etisalat-data"
    assert detect_service("07025123456", ServiceKind.DATA).service_id == "mtn-data"
    assert detect_service("08031234567", ServiceKind.CABLE) is None


def test_the_stub_demo_numbers_have_their_networks_prefix_pass_the_api_rules_and_are_delivered():
    for network, phone in DEMO_PHONES.items():
        assert detect_network(phone) == network
        for service_id, extra in (
            (network, {"amount_kobo": 10_000}),
            (f"{network}-data", {"variation_code": "x"}),
        ):
            order = validate(
                PurchaseRequest(service_id, phone=phone, **extra), VtuConfig(), allow_sandbox=False
            )
            assert order.phone == phone  # valid as a real number: no sandbox exception needed
    stub = StubProvider()
    for network, phone in DEMO_PHONES.items():
        plan = {"mtn": "mtn-1gb-1day", "airtel": "airtel-1gb-1day", "glo": "glo-750mb-1day",
                "etisalat": "9mobile-100mb-1day"}[network]  # fmt: skip
        for service_id, code in ((network, None), (f"{network}-data", plan)):
            request_id = f"202601011200{uuid.uuid4().hex[:12]}"
            result = asyncio.run(
                stub.purchase(PurchaseOrder(request_id, service_id, 10_000, phone, variation_code=code))
            )
            assert result.outcome is Outcome.DELIVERED, (service_id, result)
