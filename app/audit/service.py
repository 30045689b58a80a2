"""Recording staff actions. Every console action and operator CLI command that changes something calls
`record` in the same transaction as the change, so the log and the change commit (or roll back) together.

- `Actor`: who acts — a signed-in staff member (`Actor.of(request)`: user, role and client IP) or an
  operator's CLI command (`Actor.cli()`: the OS user, role `operator`).
- `record(session, actor, action, target=(type, id), before=..., after=..., reason=...)`: one row.
- `snapshot(obj, *fields)`: the named attributes as JSON-safe values, for `before` / `after`.
"""

from __future__ import annotations

import datetime
import getpass
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from app.accounts.staff_roles import role_of
from app.audit.models import AuditEntry

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from app.accounts.models import User

CLI_ROLE = "operator"


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: uuid.UUID | None
    label: str  # the staff member's e-mail, or "cli:<os user>"
    role: str
    ip: str | None = None

    @classmethod
    def staff(cls, user: User, *, ip: str | None = None) -> Actor:
        return cls(user.id, user.email, role_of(user) or "none", ip)

    @classmethod
    def of(cls, request: Any) -> Actor:
        """The signed-in staff member behind a console request (IP as the proxy middleware resolved it)."""
        client = request.client
        return cls.staff(request.user, ip=client.host if client else None)

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            who = "unknown"
        return cls(None, f"cli:{who}"[:254], CLI_ROLE)

    @property
    def source(self) -> str:
        """How other tables record who acted (`staff:<email>`, `cli:<user>`)."""
        return self.label if self.user_id is None else f"staff:{self.label}"


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return str(value)


def snapshot(obj: Any, *fields: str) -> dict[str, Any]:
    return {name: _json_safe(getattr(obj, name, None)) for name in fields}


async def record(
    session: AsyncSession | AsyncConnection,
    actor: Actor,
    action: str,
    *,
    target: tuple[str, object],
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> int:
    """Append one entry (inside the caller's transaction); returns its id."""
    target_type, target_id = target
    row = await session.execute(
        insert(AuditEntry)
        .values(
            actor_id=actor.user_id,
            actor=actor.label[:254],
            actor_role=actor.role[:16],
            action=action[:64],
            target_type=target_type[:32],
            target_id=str(target_id)[:64],
            before=_json_safe(before) if before is not None else None,
            after=_json_safe(after) if after is not None else None,
            reason=(reason or None) and reason[:2000],
            ip=(actor.ip or None) and actor.ip[:45],
        )
        .returning(AuditEntry.id)
    )
    return int(row.scalar_one())


__all__ = ["CLI_ROLE", "Actor", "record", "snapshot"]
