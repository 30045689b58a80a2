"""open the fixed system ledger accounts up front

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 14:30:00+00:00

The application opens any missing system account on first use (app.ledger.accounts.resolve_accounts), so
this changes no rule. It lets the one-statement paths (monnify_receive) find them from the very first
transfer on a new installation instead of handing over to the general path once.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACCOUNTS = {
    "monnify_clearing": "Monnify clearing",
    "purchases_in_flight": "Purchases in flight",
    "revenue:commission": "Revenue: purchase commission",
    "revenue:funding_fees": "Revenue: funding fees",
    "expense:monnify_fees": "Expense: Monnify fees",
    "expense:referral_bonuses": "Expense: referral bonuses",
    "staff_adjustments": "Staff adjustments",
    "suspense": "Suspense",
    "provider_float:stub": "Provider float: stub",
    "provider_float:vtpass": "Provider float: vtpass",
}


def upgrade() -> None:
    import sqlalchemy as sa

    statement = sa.text(
        "INSERT INTO ledger_accounts (code, kind, name, user_id, balance)"
        " VALUES (:code, 'system', :name, NULL, NULL) ON CONFLICT (code) DO NOTHING"
    )
    for code, name in ACCOUNTS.items():
        op.execute(statement.bindparams(code=code, name=name))


def downgrade() -> None:
    # Accounts are never removed (the ledger's rule); an empty one is harmless.
    pass
