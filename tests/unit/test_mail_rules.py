"""Mail settings, templates and the dev page's link rendering (no I/O)."""

from __future__ import annotations

import pytest

from app.config.settings import ConfigError, validate
from app.mail.config import MailConfigError, parse_smtp_url
from app.mail.pages import linkify
from app.mail.render import SUBJECTS, render
from tests.unit.test_settings import PROD_OK, env  # noqa: F401 - the fixture

SITE = "https://topup.example.ng"


def test_smtp_url_forms():
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.use_tls, plain.start_tls, plain.username) == (
        "127.0.0.1",
        2525,
        False,
        False,
        None,
    )
    tls = parse_smtp_url("smtps://mailer:p%40ss%2Fword@smtp.example.ng")
    assert (tls.port, tls.use_tls, tls.username, tls.password) == (465, True, "mailer", "p@ss/word")
    upgrade = parse_smtp_url("smtp://u:p@smtp.example.ng:587?starttls=1")
    assert (upgrade.port, upgrade.start_tls, upgrade.use_tls) == (587, True, False)
    assert "p@ss" not in tls.describe() and "mailer@smtp.example.ng:465" in tls.describe()


@pytest.mark.parametrize(
    "url", ["http://smtp.example.ng", "smtp://", "smtps://h:465?starttls=1", "smtp://h:notaport", "smtp:/x"]
)
def test_bad_smtp_urls_are_refused(url):
    with pytest.raises(MailConfigError):
        parse_smtp_url(url)


def test_prod_needs_smtp_sender_and_https_site(env):  # noqa: F811
    settings = env(**{**PROD_OK, "SMTP_URL": "", "MAIL_FROM": "", "SITE_URL": "http://topup.example.ng"})
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    for name in ("SMTP_URL", "MAIL_FROM", "SITE_URL"):
        assert name in str(exc.value)


def test_malformed_mail_settings_stop_even_dev(env):  # noqa: F811
    with pytest.raises(ConfigError, match="SMTP_URL"):
        validate(env(SMTP_URL="mail.example.ng:25"))
    with pytest.raises(ConfigError, match="MAIL_FROM"):
        validate(env(MAIL_FROM="nobody"))


CONTEXTS = {
    "password_reset": {"link": f"{SITE}/password/reset/abc", "minutes": 30},
    "verify_email": {"link": f"{SITE}/account/verify/abc", "hours": 48},
    "password_changed": {"via": "reset", "changed_at": "07 Dec 2026, 10:00 AM"},
    "api_key_created": {"key_name": "Shop <b>", "prefix": "vtu_abc", "created_at": "07 Dec 2026"},
    "funding_received": {
        "amount_paid_kobo": 500000,
        "credited_kobo": 495000,
        "fee_kobo": 5000,
        "reference": "MNFY|1",
    },
    "purchase_receipt": {
        "purchase_id": "p1",
        "product": "Ikeja Electric prepaid",
        "recipient": "1111111111111",
        "amount_kobo": 100000,
        "token": "1234-5678-9012-3456-7890",
        "units": "32.5 kWh",
        "reference": "202612071000abc",
        "completed_at": "x",
    },
    "staff_alert": {
        "alert_id": 7,
        "key": "float_low:vtpass",
        "message": "vtpass float is <low>",
        "opened_at": "2026-12-07T10:00:00+00:00",
        "at": "2026-12-07T10:00:00+00:00",
    },
    "staff_alert_cleared": {
        "alert_id": 7,
        "key": "float_low:vtpass",
        "message": "vtpass float is <low>",
        "opened_at": "2026-12-07T10:00:00+00:00",
        "at": "2026-12-07T10:05:00+00:00",
    },
}


@pytest.mark.parametrize("template", sorted(SUBJECTS))
def test_every_message_renders_text_and_html(template):
    rendered = render(template, CONTEXTS[template], site_url=SITE + "/", name="Ada <Obi>")
    assert rendered.subject and "\n" not in rendered.subject
    assert "Hello Ada <Obi>," in rendered.text
    assert "Hello Ada &lt;Obi&gt;," in rendered.html  # the HTML is escaped, the text is not
    assert "<script" not in rendered.html and 'style="' in rendered.html
    assert SITE + "//" not in rendered.text + rendered.html  # links built from SITE_URL, no double slash
    for value in CONTEXTS[template].values():
        if isinstance(value, str) and value.startswith("http"):
            assert value in rendered.text and f'href="{value}"' in rendered.html


def test_receipt_carries_the_electricity_token_and_units():
    rendered = render("purchase_receipt", CONTEXTS["purchase_receipt"], site_url=SITE)
    for part in (rendered.text, rendered.html):
        assert "1234-5678-9012-3456-7890" in part and "32.5 kWh" in part and "₦1,000.00" in part
    assert f"{SITE}/purchases/p1" in rendered.text


def test_missing_context_is_an_error_not_a_blank():
    with pytest.raises(Exception, match="link"):
        render("password_reset", {"minutes": 30}, site_url=SITE)


def test_dev_page_links_are_clickable_and_escaped():
    html = str(linkify('Open <this> https://x.ng/reset/a-b_c?d=1 now "ok"'))
    assert '<a href="https://x.ng/reset/a-b_c?d=1">https://x.ng/reset/a-b_c?d=1</a>' in html
    assert "&lt;this&gt;" in html and "<this>" not in html


async def test_a_queue_is_only_used_on_the_loop_that_registered_it():
    """An app served on another thread's loop (as the test servers are) must not have its queue, whose Redis
    connections belong to that loop, used from this loop: that once crashed a test process (segfault)."""
    import asyncio
    import threading

    from app.mail import outbox

    other_loop_queue = object()

    def serve_elsewhere() -> None:
        async def start() -> None:
            outbox.use_queue(other_loop_queue)
            assert outbox.current_queue() is other_loop_queue

        asyncio.run(start())

    before = outbox.current_queue()
    thread = threading.Thread(target=serve_elsewhere)
    thread.start()
    thread.join()
    assert outbox.current_queue() is before  # this loop's queue is untouched
    assert outbox.current_queue() is not other_loop_queue
