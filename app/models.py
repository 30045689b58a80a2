"""Imports every domain's models so Alembic and the app see one complete metadata."""

from app.accounts.models import User

__all__ = ["User"]
