"""The served OpenAPI document (/api/docs/openapi.json) describes the request bodies the API really accepts:
each purchase shape with the contract's fields and `additionalProperties: false`, every service in exactly
one shape, examples the API takes, and amount limits that are the ones the purchase engine enforces (checked
by buying at and just past each documented limit over real HTTP)."""

from __future__ import annotations

import pytest

from app.vtu.config import get_vtu_config
from app.vtu.providers.catalog import SERVICES
from tests.integration import api_fixtures
from tests.integration.api_fixtures import DELIVERED, new_reseller, purchase_count

api_server = api_fixtures.api_server
api = api_fixtures.api
http = api_fixtures.http

# The contract's purchase bodies (field -> required), by shape.
SHAPES = {
    "airtime": {"service_id": True, "phone": True, "amount_kobo": True},
    "data": {"service_id": True, "phone": True, "variation_code": True},
    "electricity": {
        "service_id": True, "meter_number": True, "meter_type": True, "amount_kobo": True, "phone": True,
    },
    # variation_code may be left out to renew the current bouquet
    "cable": {
        "service_id": True, "smartcard_number": True, "subscription_type": True, "phone": True,
        "variation_code": False,
    },
    "startimes": {"service_id": True, "smartcard_number": True, "variation_code": True, "phone": True},
    # exam PINs: quantity defaults to 1; JAMB also takes the candidate's profile id
    "exam": {"service_id": True, "variation_code": True, "phone": True, "quantity": False},
    "jamb": {"service_id": True, "variation_code": True, "profile_id": True, "phone": True,
             "quantity": False},
}  # fmt: skip
SAMPLE_SERVICE = {"airtime": "mtn", "data": "mtn-data", "electricity": "ikeja-electric", "cable": "dstv",
                  "startimes": "startimes", "exam": "waec", "jamb": "jamb"}  # fmt: skip
METER = {"meter_number": "1111111111111", "meter_type": "prepaid", "phone": DELIVERED}


async def _served(http) -> tuple[dict, dict[str, dict]]:
    """(the purchase operation, its body shapes by the service ids they take)."""
    schema = (await http.get("/api/docs/openapi.json")).json()
    operation = schema["paths"]["/api/v1/purchases"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    shapes = {}
    for ref in body["oneOf"]:
        shape = schema["components"]["schemas"][ref["$ref"].removeprefix("#/components/schemas/")]
        shapes[tuple(shape["properties"]["service_id"]["enum"])] = shape
    return operation, shapes


def _shape_for(shapes: dict[tuple, dict], service_id: str) -> dict:
    (shape,) = [shape for ids, shape in shapes.items() if service_id in ids]
    return shape


async def test_each_purchase_body_is_described_with_its_fields_and_nothing_else(http):
    operation, shapes = await _served(http)
    assert len(shapes) == len(SHAPES)
    every_id = [service_id for ids in shapes for service_id in ids]
    assert sorted(every_id) == sorted(s.service_id for s in SERVICES)  # each service in exactly one shape
    for name, fields in SHAPES.items():
        shape = _shape_for(shapes, SAMPLE_SERVICE[name])
        assert shape["type"] == "object" and shape["additionalProperties"] is False, name
        assert set(shape["properties"]) == set(fields), name
        assert set(shape["required"]) == {field for field, required in fields.items() if required}, name
        for field in fields:
            expected = "integer" if field in ("amount_kobo", "quantity") else "string"
            prop = shape["properties"][field]
            assert expected in (prop.get("type"), *(o.get("type") for o in prop.get("oneOf", []))), (
                name,
                field,
            )
    cable = _shape_for(shapes, "dstv")
    assert cable["properties"]["subscription_type"]["enum"] == ["change", "renew"]
    assert _shape_for(shapes, "ikeja-electric")["properties"]["meter_type"]["enum"] == ["prepaid", "postpaid"]
    assert set(operation["requestBody"]["content"]["application/json"]["examples"]) == {
        "airtime", "data", "electricity", "cable", "exam", "jamb",
    }  # fmt: skip


async def test_verify_body_is_described_strictly(http):
    schema = (await http.get("/api/docs/openapi.json")).json()
    body = schema["paths"]["/api/v1/verify"]["post"]["requestBody"]["content"]["application/json"]
    (ref,) = body["schema"].get("allOf") or [body["schema"]]  # allOf: a $ref with its own description
    shape = schema["components"]["schemas"][ref["$ref"].removeprefix("#/components/schemas/")]
    assert shape["additionalProperties"] is False and set(shape["required"]) == {
        "service_id",
        "customer_number",
    }
    assert set(shape["properties"]) == {"service_id", "customer_number", "type"}
    assert (
        "mtn" not in shape["properties"]["service_id"]["enum"]
        and "dstv" in shape["properties"]["service_id"]["enum"]
    )


async def test_documented_examples_are_accepted(http, sessionmaker):
    """Every example in the document is a body the API takes (the plan and meter exist at the stub)."""
    from app.vtu.plans import sync_plans
    from app.vtu.providers.stub import StubProvider

    async with sessionmaker() as session:
        for service_id in ("mtn-data", "dstv", "waec", "jamb"):
            await sync_plans(session, StubProvider(), service_id)
    reseller = await new_reseller(sessionmaker, fund=10_000_000)
    operation, _ = await _served(http)
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    for name, example in examples.items():
        response = await http.post("/api/v1/purchases", json=example["value"], headers=reseller.buy_headers())
        assert response.status_code == 201, (name, response.text)


@pytest.mark.parametrize("service_id", ["mtn", "ikeja-electric"])
async def test_documented_amount_limits_are_the_configured_and_enforced_ones(http, sessionmaker, service_id):
    _, shapes = await _served(http)
    amount = _shape_for(shapes, service_id)["properties"]["amount_kobo"]
    low, high = amount["minimum"], amount["maximum"]
    config = get_vtu_config()  # what the served app's purchase engine reads
    if service_id == "mtn":
        assert (low, high) == (config.airtime_min_kobo, config.airtime_max_kobo)
        extra = {"phone": DELIVERED}
    else:
        assert (low, high) == (config.electricity_min_kobo, config.electricity_max_kobo)
        extra = METER
    reseller = await new_reseller(sessionmaker, fund=2 * high)

    async def buy(amount_kobo: int):
        body = {"service_id": service_id, "amount_kobo": amount_kobo, **extra}
        return await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())

    for outside in (low - 100, high + 100):
        response = await buy(outside)
        assert response.status_code == 400 and "amount_kobo" in response.json()["fields"], (
            outside,
            response.text,
        )
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
    at_the_top = await buy(high)
    assert at_the_top.status_code == 201, at_the_top.text
    if service_id == "mtn":  # a meter's own minimum (the stub's: N1,000) may be above the lower limit
        at_the_bottom = await buy(low)
        assert at_the_bottom.status_code == 201, at_the_bottom.text


async def test_documenting_the_body_does_not_let_litestar_parse_it(http, sessionmaker):
    """The body schema reaches the document through a dependency the handler never asks for; were Litestar to
    parse the body (laxly: "10000" -> 10000), this would be bought, or fail on the union of shapes."""
    reseller = await new_reseller(sessionmaker)
    body = {"service_id": "mtn", "phone": DELIVERED, "amount_kobo": "10000", "colour": "red"}
    response = await http.post("/api/v1/purchases", json=body, headers=reseller.buy_headers())
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "amount_kobo": "Must be a JSON integer (kobo).",
        "colour": "Unknown field.",
    }
    assert await purchase_count(sessionmaker, reseller.user_id) == 0
