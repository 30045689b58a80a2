"""Sentry's before_send (app/core/sentry.py): a realistic event keeps its shape and loses every secret."""

from __future__ import annotations

import copy
import json

from app.core.sentry import FILTERED, scrub_event

SECRETS = [
    "sk_live_abcdef0123456789",
    "vtu_session=s3ss10n",
    "hunter2-password",
    "4321",
    "9876",
    "22222222222",
    "12345678901",
    "deadbeef" * 16,
    "MK_PROD_KEY",
    "csrf-token-value",
]


def realistic_event() -> dict:
    return {
        "level": "error",
        "environment": "prod",
        "request": {
            "url": "https://vtu.example.com/buy/airtime?token=sk_live_abcdef0123456789&page=2",
            "method": "POST",
            "query_string": "token=sk_live_abcdef0123456789&page=2",
            "headers": {
                "Authorization": "Bearer sk_live_abcdef0123456789",
                "Cookie": "vtu_session=s3ss10n; vtu_csrf=abc",
                "monnify-signature": "deadbeef" * 16,
                "X-CSRFToken": "csrf-token-value",
                "User-Agent": "Mozilla/5.0",
                "X-Request-ID": "abcdef0123456789",
            },
            "cookies": {"vtu_session": "vtu_session=s3ss10n"},
            "data": {
                "phone": "08011111111",
                "amount": "500",
                "pin": "4321",
                "new_pin": "9876",
                "password": "hunter2-password",
                "password_confirm": "hunter2-password",
                "nested": {"bvn": "22222222222", "NIN": "12345678901", "api-key": "MK_PROD_KEY"},
                "_csrf_token": "csrf-token-value",
            },
        },
        "extra": {"secret": "MK_PROD_KEY", "purchase_id": "p-1"},
        "breadcrumbs": {
            "values": [
                {"message": "login password=hunter2-password", "category": "log"},
                {"message": "{'event': 'x', 'pin': '4321'}", "category": "log"},
            ]
        },
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": "bad token=sk_live_abcdef0123456789",
                    "stacktrace": {
                        "frames": [
                            {
                                "function": "buy",
                                "vars": {
                                    "pin": "'4321'",
                                    "phone": "'08011111111'",
                                    "headers": {"cookie": "x"},
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "logentry": {"message": "{'event': 'boom', 'authorization': 'Bearer sk_live_abcdef0123456789'}"},
    }


def test_every_secret_is_blanked_and_the_rest_kept() -> None:
    event = scrub_event(copy.deepcopy(realistic_event()), {})
    text = json.dumps(event)
    for secret in SECRETS:
        assert secret not in text, secret
    request = event["request"]
    for name in ("Authorization", "Cookie", "monnify-signature", "X-CSRFToken"):
        assert request["headers"][name] == FILTERED
    assert request["headers"]["User-Agent"] == "Mozilla/5.0"
    assert request["headers"]["X-Request-ID"] == "abcdef0123456789"
    assert request["data"]["phone"] == "08011111111" and request["data"]["amount"] == "500"
    for name in ("pin", "new_pin", "password", "password_confirm", "_csrf_token"):
        assert request["data"][name] == FILTERED
    assert request["data"]["nested"] == {"bvn": FILTERED, "NIN": FILTERED, "api-key": FILTERED}
    assert request["query_string"] == f"token={FILTERED}&page=2"
    assert event["extra"] == {"secret": FILTERED, "purchase_id": "p-1"}
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame["vars"]["pin"] == FILTERED and frame["vars"]["phone"] == "'08011111111'"
    assert event["exception"]["values"][0]["type"] == "ValueError"


def test_header_pairs_and_odd_shapes() -> None:
    event = scrub_event(
        {
            "request": {
                "headers": [["authorization", "Basic abc"], ["set-cookie", "a=b"], ["accept", "*/*"]],
                "data": "pin=1234&phone=0801",
            }
        },
        None,
    )
    assert event["request"]["headers"] == [
        ["authorization", FILTERED],
        ["set-cookie", FILTERED],
        ["accept", "*/*"],
    ]
    assert event["request"]["data"] == f"pin={FILTERED}&phone=0801"
    assert scrub_event({}, None) == {}


def test_sentry_log_items_are_scrubbed_too() -> None:
    from app.core.sentry import scrub_log

    record = scrub_log(
        {
            "body": "{'pin': '4321', 'event': 'x'}",
            "attributes": {
                "sentry.message.parameter.pin": {"value": "4321", "type": "string"},
                "token": "sk_live_abcdef0123456789",
                "logger.name": {"value": "app.vtu", "type": "string"},
            },
        },
        None,
    )
    text = json.dumps(record)
    assert "4321" not in text and "sk_live" not in text
    assert record["attributes"]["logger.name"]["value"] == "app.vtu"
