"""Exam PINs: purchases.kind 'exam' and purchases.pins_ciphertext, written by purchase_deliver

`pins_ciphertext` holds a delivered exam purchase's PINs and serials, encrypted by the application
(app/core/encryption.py, registered in ENCRYPTED_COLUMNS); `purchase_deliver` (app/vtu/sql/purchases.sql) takes
them as a new last argument `p_pins` (default NULL) and writes them in the delivery's own statement. The old
signature is dropped first so no overload is left behind.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 10:50:00.000000+00:00
"""

from __future__ import annotations

from textwrap import dedent

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_OLD_SIGNATURE = (
    "purchase_deliver(uuid, jsonb, timestamptz, text, text, text, text, text, text, bigint, bigint, bigint)"
)
_NEW_SIGNATURE = "purchase_deliver(uuid, jsonb, timestamptz, text, text, text, text, text, text, bigint, bigint, bigint, text)"
_KINDS_OLD = "kind IN ('airtime', 'data', 'electricity', 'cable')"
_KINDS_NEW = "kind IN ('airtime', 'data', 'electricity', 'cable', 'exam')"


def upgrade() -> None:
    op.add_column("purchases", sa.Column("pins_ciphertext", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_purchases_kind"), "purchases", type_="check")
    op.create_check_constraint(op.f("ck_purchases_kind"), "purchases", _KINDS_NEW)
    op.execute(f"DROP FUNCTION IF EXISTS {_OLD_SIGNATURE}")
    op.execute(
        dedent(
            """
    CREATE OR REPLACE FUNCTION purchase_deliver(
        p_id uuid,
        p_exchange jsonb,
        p_now timestamptz,
        p_message text,
        p_code text,
        p_reference text,
        p_token text,
        p_units text,
        p_alert text,
        p_in_flight_id bigint,
        p_float_id bigint,
        p_revenue_id bigint,
        p_pins text DEFAULT NULL  -- exam PINs, already encrypted by the application (app/vtu/exam.py)
    ) RETURNS SETOF purchases LANGUAGE plpgsql AS $$
    DECLARE
        r purchases;
        v_ids bigint[];
        v_amounts bigint[];
    BEGIN
        UPDATE purchases p
        SET exchanges = p.exchanges || p_exchange,
            updated_at = p_now,
            provider_message = coalesce(p_message, p.provider_message),
            provider_code = coalesce(p_code, p.provider_code),
            provider_reference = coalesce(p_reference, p.provider_reference),
            pins_ciphertext = coalesce(p_pins, p.pins_ciphertext),
            status = 'successful',
            completed_at = coalesce(p.completed_at, p_now),
            next_requery_at = NULL,
            token = coalesce(p_token, p.token),
            units = coalesce(p_units, p.units),
            needs_attention = purchase_attention_when_final(p.needs_attention, p.attention_reason, p_alert),
            attention_reason = coalesce(p_alert, p.attention_reason)
        WHERE p.id = p_id AND p.status = 'pending'
        RETURNING p.* INTO r;
        IF NOT FOUND THEN
            RETURN;  -- not pending any more: another answer won; nothing moves
        END IF;

        SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
        INTO v_ids, v_amounts
        FROM (VALUES (p_in_flight_id, -r.amount_kobo),
                     (p_float_id, r.cost_kobo),
                     (p_revenue_id, r.amount_kobo - r.cost_kobo)) AS leg(id, amount)
        WHERE leg.amount <> 0;
        PERFORM ledger_post('delivery:' || p_id::text, 'purchase_delivery', 'Purchase delivered', 'purchase',
                            p_id::text, 'system', v_ids, v_amounts);
        RETURN NEXT r;
    END;
    $$
    """
        )
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {_NEW_SIGNATURE}")
    op.execute(
        dedent(
            """
    CREATE OR REPLACE FUNCTION purchase_deliver(
        p_id uuid,
        p_exchange jsonb,
        p_now timestamptz,
        p_message text,
        p_code text,
        p_reference text,
        p_token text,
        p_units text,
        p_alert text,
        p_in_flight_id bigint,
        p_float_id bigint,
        p_revenue_id bigint
    ) RETURNS SETOF purchases LANGUAGE plpgsql AS $$
    DECLARE
        r purchases;
        v_ids bigint[];
        v_amounts bigint[];
    BEGIN
        UPDATE purchases p
        SET exchanges = p.exchanges || p_exchange,
            updated_at = p_now,
            provider_message = coalesce(p_message, p.provider_message),
            provider_code = coalesce(p_code, p.provider_code),
            provider_reference = coalesce(p_reference, p.provider_reference),
            status = 'successful',
            completed_at = coalesce(p.completed_at, p_now),
            next_requery_at = NULL,
            token = coalesce(p_token, p.token),
            units = coalesce(p_units, p.units),
            needs_attention = purchase_attention_when_final(p.needs_attention, p.attention_reason, p_alert),
            attention_reason = coalesce(p_alert, p.attention_reason)
        WHERE p.id = p_id AND p.status = 'pending'
        RETURNING p.* INTO r;
        IF NOT FOUND THEN
            RETURN;  -- not pending any more: another answer won; nothing moves
        END IF;

        SELECT array_agg(leg.id ORDER BY leg.id), array_agg(leg.amount ORDER BY leg.id)
        INTO v_ids, v_amounts
        FROM (VALUES (p_in_flight_id, -r.amount_kobo),
                     (p_float_id, r.cost_kobo),
                     (p_revenue_id, r.amount_kobo - r.cost_kobo)) AS leg(id, amount)
        WHERE leg.amount <> 0;
        PERFORM ledger_post('delivery:' || p_id::text, 'purchase_delivery', 'Purchase delivered', 'purchase',
                            p_id::text, 'system', v_ids, v_amounts);
        RETURN NEXT r;
    END;
    $$
    """
        )
    )
    op.drop_constraint(op.f("ck_purchases_kind"), "purchases", type_="check")
    op.create_check_constraint(op.f("ck_purchases_kind"), "purchases", _KINDS_OLD)
    op.drop_column("purchases", "pins_ciphertext")
