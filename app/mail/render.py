"""E-mail templates: `templates/mail/<name>.txt` and `<name>.html` (both extend a small shared layout), and a
subject per message. Links are absolute, built from SITE_URL. The HTML is deliberately simple (tables
avoided, inline styles only, no images or scripts) so every mail client shows it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.config.settings import BASE_DIR
from app.core.naira import format_naira
from app.core.templating import lagos_time

SITE_NAME = "TopUp NG"

SUBJECTS: dict[str, str] = {
    "password_reset": "Reset your {site_name} password",
    "verify_email": "Confirm your e-mail address for {site_name}",
    "password_changed": "Your {site_name} password was changed",
    "api_key_created": "A new API key was created on your {site_name} account",
    "funding_received": "Wallet funded: {amount} received",
    "purchase_receipt": "Receipt: {product}",
    "staff_alert": "[{site_name} alert] {key}",  # app/alerts
    "staff_alert_cleared": "[{site_name} cleared] {key}",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(BASE_DIR / "templates" / "mail"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty line in a customer's e-mail
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["naira"] = format_naira
    env.filters["lagos"] = lagos_time
    return env


def _subject(template: str, context: dict[str, Any]) -> str:
    values = {
        "site_name": SITE_NAME,
        "amount": format_naira(int(context.get("credited_kobo") or 0)),
        "product": context.get("product") or "your purchase",
        "key": context.get("key") or "",
    }
    return " ".join(SUBJECTS[template].format(**values).split())[:200]


def render(template: str, context: dict[str, Any], *, site_url: str, name: str = "") -> Rendered:
    if template not in SUBJECTS:
        raise ValueError(f"unknown mail template {template!r}")
    values = {**context, "site_url": site_url.rstrip("/"), "site_name": SITE_NAME, "name": name}
    env = environment()
    text_body = env.get_template(f"{template}.txt").render(values)
    html_body = env.get_template(f"{template}.html").render(values)
    return Rendered(_subject(template, context), text_body, html_body)


__all__ = ["SUBJECTS", "Rendered", "environment", "render"]
