"""provider_routes: the staff-edited provider order per service

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 10:50:00.000000+00:00

One row per service staff routed by hand (app/vtu/provider_routes.py): `providers` is the ordered list of
provider slugs, NULL after "reset to configured". The application role gets the ordinary SELECT, INSERT,
UPDATE (app/core/roles.py); rows are never deleted (a reset keeps the row; the audit log has the history).
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]


def upgrade() -> None:
    op.create_table(
        "provider_routes",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("providers", postgresql.ARRAY(sa.String(length=32)), nullable=True),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("updated_at", sa.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "providers IS NULL OR cardinality(providers) BETWEEN 1 AND 5",
            name=op.f("ck_provider_routes_providers_length"),
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_provider_routes")),
    )


def downgrade() -> None:
    op.drop_table("provider_routes")
