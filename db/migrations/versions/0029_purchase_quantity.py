"""purchases.quantity: exam PINs bought at once, written by purchase_open, so every attempt sends the same order

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 11:45:00+00:00

A failover or a VTpass 019 hold sends a purchase again (a new attempt, app/vtu/failover.py); for exam PINs the
quantity must be the one the customer paid for, so it is stored with the purchase (`p_quantity`, last
argument of `purchase_open`, app/vtu/sql/purchases.sql). The old signature is dropped (a new IN parameter
would otherwise overload it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

OLD_SIGNATURE = (
    "uuid, uuid, text, text, text, text, text, text, text, text, text, bigint, bigint, bigint, text, text, "
    "timestamptz, timestamptz, uuid, text, text, bigint, timestamptz, text, bigint[], bigint[]"
)
NEW_SIGNATURE = OLD_SIGNATURE + ", integer"

NEW_FUNCTION = r"""
CREATE OR REPLACE FUNCTION purchase_open(
    p_id uuid,
    p_user_id uuid,
    p_channel text,
    p_service_id text,
    p_kind text,
    p_recipient text,
    p_phone text,
    p_variation_code text,
    p_subscription_type text,
    p_product_name text,
    p_customer_name text,
    p_amount bigint,
    p_face bigint,
    p_cost bigint,
    p_provider_slug text,
    p_request_id text,
    p_now timestamptz,
    p_next_requery_at timestamptz,
    p_api_key_id uuid,
    p_idempotency_key text,
    p_request_hash text,
    p_spend_limit bigint,
    p_spend_since timestamptz,
    p_actor text,
    p_kyc_single bigint[],
    p_kyc_daily bigint[],
    p_quantity integer,
    OUT created boolean,
    OUT wallet_id bigint,
    OUT in_flight_id bigint,
    OUT provider_float_id bigint,
    OUT revenue_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_spent bigint;
    v_suspended boolean;
    v_level smallint;
    v_single bigint;
    v_daily bigint;
BEGIN
    -- A suspended account opens no purchase, by any channel (app/accounts/suspension.py). FOR SHARE waits for
    -- a suspension being committed on this row and then reads it, and a suspension waits for purchases
    -- opening now: each purchase was opened before the suspension committed, or is refused.
    SELECT u.suspended_at IS NOT NULL, u.kyc_level INTO v_suspended, v_level
    FROM users u WHERE u.id = p_user_id FOR SHARE;
    IF v_suspended THEN
        RAISE EXCEPTION 'account % is suspended', p_user_id USING ERRCODE = 'VT002';
    END IF;

    INSERT INTO purchases AS p
        (id, user_id, channel, service_id, kind, recipient, phone, variation_code, subscription_type,
         product_name, customer_name, amount_kobo, face_amount_kobo, cost_kobo, status, needs_attention,
         provider_slug, request_id, attempts, next_requery_at, exchanges, paid_at, api_key_id,
         idempotency_key, request_hash, quantity, created_at, updated_at)
    VALUES (p_id, p_user_id, p_channel, p_service_id, p_kind, p_recipient, p_phone, p_variation_code,
            p_subscription_type, p_product_name, p_customer_name, p_amount, p_face, p_cost, 'pending', false,
            p_provider_slug, p_request_id, 0, p_next_requery_at, '[]'::jsonb, p_now, p_api_key_id,
            p_idempotency_key, p_request_hash, p_quantity, p_now, p_now)
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING true INTO created;

    IF created IS NULL THEN
        created := false;  -- a twin with this key got there first: nothing written, nothing moved
        RETURN;
    END IF;

    -- KYC limits (app/accounts/kyc.py, KYC_LIMITS): element level+1 of each array is the buyer's limit in kobo
    -- (0 or missing: none). Checked after the twin test, so a replayed idempotency key still gets its
    -- purchase; a refusal raises, which undoes this statement's insert: nothing is written.
    v_level := coalesce(v_level, 0);
    v_single := coalesce(p_kyc_single[v_level + 1], 0);
    v_daily := coalesce(p_kyc_daily[v_level + 1], 0);
    IF v_single > 0 AND p_amount > v_single THEN
        RAISE EXCEPTION 'single purchase limit of % kobo at KYC level %', v_single, v_level
            USING ERRCODE = 'VT003', DETAIL = format('level=%s limit=%s amount=%s', v_level, v_single, p_amount);
    END IF;

    IF coalesce(p_spend_limit, 0) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_channel || '-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id AND p.channel = p_channel AND p.created_at >= p_spend_since
          AND p.status IN ('pending', 'successful');
        IF v_spent > p_spend_limit THEN
            RAISE EXCEPTION 'daily spend limit of % kobo reached', p_spend_limit
                USING ERRCODE = 'VT001', DETAIL = format('limit=%s spent=%s', p_spend_limit, v_spent);
        END IF;
    END IF;

    -- The KYC daily limit counts every channel since midnight in Lagos, this purchase included, under one lock
    -- per buyer (taken after the channel's own lock, always in this order): racing purchases queue here and
    -- each sees the ones committed before it, so together they never pass the limit.
    IF v_daily > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('kyc-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id
          AND p.created_at >= (date_trunc('day', p_now AT TIME ZONE 'Africa/Lagos') AT TIME ZONE 'Africa/Lagos')
          AND p.status IN ('pending', 'successful');
        IF v_spent > v_daily THEN
            RAISE EXCEPTION 'daily limit of % kobo at KYC level %', v_daily, v_level
                USING ERRCODE = 'VT004', DETAIL = format('level=%s limit=%s spent=%s', v_level, v_daily, v_spent);
        END IF;
    END IF;

    SELECT a.id INTO wallet_id FROM ledger_accounts a WHERE a.user_id = p_user_id AND a.kind = 'wallet';
    -- The other accounts the purchase may touch later (delivery, refund), for the caller to reuse;
    -- a provider float not opened yet is NULL here and opened by the application on first delivery.
    SELECT max(a.id) FILTER (WHERE a.code = 'purchases_in_flight'),
           max(a.id) FILTER (WHERE a.code = 'provider_float:' || p_provider_slug),
           max(a.id) FILTER (WHERE a.code = 'revenue:commission')
    INTO in_flight_id, provider_float_id, revenue_id
    FROM ledger_accounts a
    WHERE a.code IN ('purchases_in_flight', 'provider_float:' || p_provider_slug, 'revenue:commission');
    IF wallet_id IS NULL OR in_flight_id IS NULL THEN
        RAISE EXCEPTION 'no ledger account % for this purchase',
            CASE WHEN wallet_id IS NULL THEN 'wallet of ' || p_user_id::text ELSE 'purchases_in_flight' END
            USING ERRCODE = 'LG003';
    END IF;

    -- wallet -> purchases in flight (app.vtu.postings), in account-id order (ledger_post's locking order).
    IF wallet_id < in_flight_id THEN
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[wallet_id, in_flight_id], ARRAY[-p_amount, p_amount]);
    ELSE
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[in_flight_id, wallet_id], ARRAY[p_amount, -p_amount]);
    END IF;
END;
$$;
"""

OLD_FUNCTION = r"""
CREATE OR REPLACE FUNCTION purchase_open(
    p_id uuid,
    p_user_id uuid,
    p_channel text,
    p_service_id text,
    p_kind text,
    p_recipient text,
    p_phone text,
    p_variation_code text,
    p_subscription_type text,
    p_product_name text,
    p_customer_name text,
    p_amount bigint,
    p_face bigint,
    p_cost bigint,
    p_provider_slug text,
    p_request_id text,
    p_now timestamptz,
    p_next_requery_at timestamptz,
    p_api_key_id uuid,
    p_idempotency_key text,
    p_request_hash text,
    p_spend_limit bigint,
    p_spend_since timestamptz,
    p_actor text,
    p_kyc_single bigint[],
    p_kyc_daily bigint[],
    OUT created boolean,
    OUT wallet_id bigint,
    OUT in_flight_id bigint,
    OUT provider_float_id bigint,
    OUT revenue_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_spent bigint;
    v_suspended boolean;
    v_level smallint;
    v_single bigint;
    v_daily bigint;
BEGIN
    -- A suspended account opens no purchase, by any channel (app/accounts/suspension.py). FOR SHARE waits for
    -- a suspension being committed on this row and then reads it, and a suspension waits for purchases
    -- opening now: each purchase was opened before the suspension committed, or is refused.
    SELECT u.suspended_at IS NOT NULL, u.kyc_level INTO v_suspended, v_level
    FROM users u WHERE u.id = p_user_id FOR SHARE;
    IF v_suspended THEN
        RAISE EXCEPTION 'account % is suspended', p_user_id USING ERRCODE = 'VT002';
    END IF;

    INSERT INTO purchases AS p
        (id, user_id, channel, service_id, kind, recipient, phone, variation_code, subscription_type,
         product_name, customer_name, amount_kobo, face_amount_kobo, cost_kobo, status, needs_attention,
         provider_slug, request_id, attempts, next_requery_at, exchanges, paid_at, api_key_id,
         idempotency_key, request_hash, created_at, updated_at)
    VALUES (p_id, p_user_id, p_channel, p_service_id, p_kind, p_recipient, p_phone, p_variation_code,
            p_subscription_type, p_product_name, p_customer_name, p_amount, p_face, p_cost, 'pending', false,
            p_provider_slug, p_request_id, 0, p_next_requery_at, '[]'::jsonb, p_now, p_api_key_id,
            p_idempotency_key, p_request_hash, p_now, p_now)
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING true INTO created;

    IF created IS NULL THEN
        created := false;  -- a twin with this key got there first: nothing written, nothing moved
        RETURN;
    END IF;

    -- KYC limits (app/accounts/kyc.py, KYC_LIMITS): element level+1 of each array is the buyer's limit in kobo
    -- (0 or missing: none). Checked after the twin test, so a replayed idempotency key still gets its
    -- purchase; a refusal raises, which undoes this statement's insert: nothing is written.
    v_level := coalesce(v_level, 0);
    v_single := coalesce(p_kyc_single[v_level + 1], 0);
    v_daily := coalesce(p_kyc_daily[v_level + 1], 0);
    IF v_single > 0 AND p_amount > v_single THEN
        RAISE EXCEPTION 'single purchase limit of % kobo at KYC level %', v_single, v_level
            USING ERRCODE = 'VT003', DETAIL = format('level=%s limit=%s amount=%s', v_level, v_single, p_amount);
    END IF;

    IF coalesce(p_spend_limit, 0) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_channel || '-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id AND p.channel = p_channel AND p.created_at >= p_spend_since
          AND p.status IN ('pending', 'successful');
        IF v_spent > p_spend_limit THEN
            RAISE EXCEPTION 'daily spend limit of % kobo reached', p_spend_limit
                USING ERRCODE = 'VT001', DETAIL = format('limit=%s spent=%s', p_spend_limit, v_spent);
        END IF;
    END IF;

    -- The KYC daily limit counts every channel since midnight in Lagos, this purchase included, under one lock
    -- per buyer (taken after the channel's own lock, always in this order): racing purchases queue here and
    -- each sees the ones committed before it, so together they never pass the limit.
    IF v_daily > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('kyc-spend:' || p_user_id::text, 0));
        SELECT coalesce(sum(p.amount_kobo), 0) INTO v_spent
        FROM purchases p
        WHERE p.user_id = p_user_id
          AND p.created_at >= (date_trunc('day', p_now AT TIME ZONE 'Africa/Lagos') AT TIME ZONE 'Africa/Lagos')
          AND p.status IN ('pending', 'successful');
        IF v_spent > v_daily THEN
            RAISE EXCEPTION 'daily limit of % kobo at KYC level %', v_daily, v_level
                USING ERRCODE = 'VT004', DETAIL = format('level=%s limit=%s spent=%s', v_level, v_daily, v_spent);
        END IF;
    END IF;

    SELECT a.id INTO wallet_id FROM ledger_accounts a WHERE a.user_id = p_user_id AND a.kind = 'wallet';
    -- The other accounts the purchase may touch later (delivery, refund), for the caller to reuse;
    -- a provider float not opened yet is NULL here and opened by the application on first delivery.
    SELECT max(a.id) FILTER (WHERE a.code = 'purchases_in_flight'),
           max(a.id) FILTER (WHERE a.code = 'provider_float:' || p_provider_slug),
           max(a.id) FILTER (WHERE a.code = 'revenue:commission')
    INTO in_flight_id, provider_float_id, revenue_id
    FROM ledger_accounts a
    WHERE a.code IN ('purchases_in_flight', 'provider_float:' || p_provider_slug, 'revenue:commission');
    IF wallet_id IS NULL OR in_flight_id IS NULL THEN
        RAISE EXCEPTION 'no ledger account % for this purchase',
            CASE WHEN wallet_id IS NULL THEN 'wallet of ' || p_user_id::text ELSE 'purchases_in_flight' END
            USING ERRCODE = 'LG003';
    END IF;

    -- wallet -> purchases in flight (app.vtu.postings), in account-id order (ledger_post's locking order).
    IF wallet_id < in_flight_id THEN
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[wallet_id, in_flight_id], ARRAY[-p_amount, p_amount]);
    ELSE
        PERFORM ledger_post('purchase:' || p_id::text, 'purchase', 'Purchase', 'purchase',
            p_id::text, p_actor, ARRAY[in_flight_id, wallet_id], ARRAY[p_amount, -p_amount]);
    END IF;
END;
$$;
"""


def upgrade() -> None:
    op.add_column("purchases", sa.Column("quantity", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_purchases_quantity_range"), "purchases", "quantity IS NULL OR quantity BETWEEN 1 AND 10"
    )
    op.execute(f"DROP FUNCTION IF EXISTS purchase_open({OLD_SIGNATURE})")
    op.execute(NEW_FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS purchase_open({NEW_SIGNATURE})")
    op.execute(OLD_FUNCTION)
    op.drop_constraint(op.f("ck_purchases_quantity_range"), "purchases", type_="check")
    op.drop_column("purchases", "quantity")
