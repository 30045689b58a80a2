"""A local SMTP server that keeps what it receives: the development mailbox (`vtu dev` without SMTP_URL,
messages saved as .eml files under .local/mail/ and listed at /dev/mail) and the tests' real SMTP server.

Never used in production (the dev page is not even routed there)."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import socket
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from app.config.settings import BASE_DIR

MAIL_DIR = BASE_DIR / ".local" / "mail"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""  # type: ignore[attr-defined]

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every message (and writes it to `directory` as an .eml file if given)."""

    directory: Path | None = None
    messages: list[Received] = field(default_factory=list)
    arrived: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
            (self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml").write_bytes(raw)
        if self.arrived is not None:
            self.arrived.set()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.recipients)]


async def serve_async(mailbox: Mailbox, host: str = "127.0.0.1") -> tuple[asyncio.AbstractServer, int]:
    """An SMTP server on this event loop, on a free port (tests). Close with server.close()."""
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox, hostname="sink.local"), host=host, port=0)
    port = server.sockets[0].getsockname()[1]
    return server, port


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_thread(directory: Path | None = None, host: str = "127.0.0.1") -> tuple[Any, int]:
    """The development sink in a thread of `vtu dev` (aiosmtpd's Controller). Returns (controller, port);
    stop it with controller.stop()."""
    from aiosmtpd.controller import Controller

    port = free_port(host)
    controller = Controller(Mailbox(directory=directory or MAIL_DIR), hostname=host, port=port)
    controller.start()
    return controller, port


@dataclass(frozen=True, slots=True)
class StoredMail:
    name: str
    received_at: datetime.datetime
    sender: str
    to: str
    subject: str


def list_mail(directory: Path | None = None, limit: int = 100) -> list[StoredMail]:
    directory = directory or MAIL_DIR
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.eml"), reverse=True)[:limit]:
        with path.open("rb") as handle:
            headers = email.message_from_binary_file(handle, policy=email.policy.default)
        found.append(
            StoredMail(
                name=path.name,
                received_at=datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC),
                sender=str(headers["From"] or ""),
                to=str(headers["To"] or ""),
                subject=str(headers["Subject"] or ""),
            )
        )
    return found


def read_mail(name: str, directory: Path | None = None) -> Received | None:
    """One stored message by file name (only plain names inside the directory)."""
    directory = directory or MAIL_DIR
    if "/" in name or "\\" in name or not name.endswith(".eml") or name.startswith("."):
        return None
    path = directory / name
    if not path.is_file():
        return None
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return Received(str(message["From"] or ""), [str(message["To"] or "")], message)


__all__ = [
    "MAIL_DIR",
    "Mailbox",
    "Received",
    "StoredMail",
    "list_mail",
    "read_mail",
    "serve_async",
    "start_thread",
]
